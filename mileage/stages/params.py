"""Which config leaves each rule uses, as plain values, and which paths it reads.

Snakemake reruns a job when its params change, so each rule gets exactly the leaves its work depends on and
nothing else: a plot-style edit changes only the plots' params, a learning-rate edit only training's.
"""

from __future__ import annotations

from mileage.layout import Layout

# What miles' converter tools depend on: the checkouts and the interpreter.
MILES_TOOL_KEYS = ("miles_dir", "megatron_dir", "python")

# Sections of an experiment the training job depends on.
TRAIN_SECTIONS = (
    "engine", "seed", "rollout_seed", "model", "rollout", "train", "eval", "resources", "ray", "tracking", "miles",
)


def experiment_paths(layout: Layout, name: str, exp: dict) -> dict:
    """Paths of one experiment's inputs; registers every shared cache entry it needs with `layout`."""
    paths = {
        "train_data": layout.dataset(exp, "train"),
        "eval_data": layout.dataset(exp, "eval"),
        "start_model": layout.start_model(exp),
    }
    train_inputs = {"model": paths["start_model"], "train_data": paths["train_data"], "eval_data": paths["eval_data"]}
    if exp["model"]["source"] == "hf":
        paths["hf_model_key"] = layout.hf_model_key(exp)[0]
    if exp["engine"] == "miles":
        paths["torch_dist"] = layout.torch_dist(exp)
        train_inputs["torch_dist"] = paths["torch_dist"]
    paths["train_inputs"] = train_inputs
    paths["base_eval_inputs"] = {"model": paths["start_model"], "data": paths["eval_data"]}
    paths["final_eval_inputs"] = {"done": layout.exp(name, "train", "done.json"), "data": paths["eval_data"]}
    if exp["engine"] == "miles":  # miles evaluates torch_dist checkpoints and reads the HF dir for the tokenizer
        for key in ("base_eval_inputs", "final_eval_inputs"):
            paths[key].update(model=paths["start_model"], torch_dist=paths["torch_dist"])
    return paths


def train_params(name: str, exp: dict, card: dict | None) -> dict:
    params = {key: exp[key] for key in TRAIN_SECTIONS}
    # The experiment's shape, minus what the input files already pin (dataset and model contents).
    params["data"] = {
        "apply_chat_template": exp["data"]["apply_chat_template"],
        "train": {"name": exp["data"]["train"]["name"]},
        "eval": {"name": exp["data"]["eval"]["name"]},
    }
    params.update(name=name, card=card)
    return params


def eval_params(name: str, exp: dict, which: str, card: dict | None) -> dict:
    """The base or final evaluation: its own section (base_eval / final_eval) plus what sampling needs."""
    params = {
        "name": name,
        "which": which,
        "data": {"apply_chat_template": exp["data"]["apply_chat_template"], "eval": {"name": exp["data"]["eval"]["name"]}},
        "engine": exp["engine"],
        "settings": exp[f"{which}_eval"],
        "dataset": exp["data"]["eval"]["name"],
        "reward": exp["rollout"]["reward"],
        "apply_chat_template": exp["data"]["apply_chat_template"],
        "device": exp["resources"]["device"],
    }
    if exp["engine"] == "miles":
        params.update(
            rollout=exp["rollout"], train=exp["train"], seed=exp["seed"], rollout_seed=exp["rollout_seed"],
            resources=exp["resources"], ray=exp["ray"], miles=exp["miles"], card=card,
        )
    return params


def summary_params(name: str, exp: dict, report: dict) -> dict:
    return {
        "experiment": name,
        "dataset": exp["data"]["eval"]["name"],
        "n_boot": report["bootstrap_samples"],
        "seed": report["bootstrap_seed"],
    }


def warm_start_params(entry: dict) -> dict:
    keys = ("epochs", "lr", "batch_size", "n_examples", "seed", "max_operand", "operations", "boxed_fraction")
    return {key: entry[key] for key in keys}


def preflight_params(exp: dict, card: dict | None) -> dict:
    keys = ("engine", "rollout", "train", "resources", "miles", "model")
    return {**{key: exp[key] for key in keys}, "card": card}


def convert_params(layout: Layout, key: str, experiments: dict, paths: dict) -> dict:
    """Conversion depends on the card and the miles/Megatron checkouts of the first experiment using the model."""
    for name in sorted(experiments):
        if paths[name].get("hf_model_key") == key and experiments[name]["engine"] == "miles":
            exp = experiments[name]
            return {"card": layout.card(exp), "miles": {k: exp["miles"][k] for k in MILES_TOOL_KEYS}}
    raise KeyError(f"no miles experiment uses model {key}")


def export_params(exp: dict) -> dict:
    return {"miles": {k: exp["miles"][k] for k in MILES_TOOL_KEYS}, "engine": exp["engine"]}
