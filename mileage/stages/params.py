"""Which config leaves each rule uses, as plain values, and which paths it reads.

Snakemake reruns a job when its params change, so each rule gets exactly the leaves its work depends on and
nothing else: a plot-style edit changes only the plots' params, a learning-rate edit only training's.
"""

from __future__ import annotations

from mileage.layout import Layout

# What miles' converter tools depend on: the checkouts and the interpreter.
MILES_TOOL_KEYS = ("miles_dir", "megatron_dir", "python")

# What a miles eval-only run reads of `rollout` and `train` (argv.eval_only_groups): the reward, the required
# --rollout-batch-size and the micro-batch size. Not num_rollout, the optimizer hyperparameters (argv._eval_optimizer)
# or the GRPO knobs: extending a run or a learning-rate variant must not rerun the base model's evaluation.
MILES_EVAL_ROLLOUT_KEYS = ("reward", "rollout_batch_size")
MILES_EVAL_TRAIN_KEYS = ("micro_batch_size",)

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
        train_inputs["preflight"] = layout.exp(name, "preflight.txt")  # the memory plan, recorded
    paths["train_inputs"] = train_inputs
    base_inputs = {"model": paths["start_model"], "data": paths["eval_data"]}
    paths["final_eval_inputs"] = {"done": layout.exp(name, "train", "done.json"), "data": paths["eval_data"]}
    if exp["engine"] == "miles":  # miles evaluates torch_dist checkpoints and reads the HF dir for the tokenizer
        for inputs in (base_inputs, paths["final_eval_inputs"]):
            inputs.update(model=paths["start_model"], torch_dist=paths["torch_dist"])
    base_params = eval_params(None, exp, "base", layout.card(exp))
    paths["base_eval"] = layout.base_eval(exp["engine"], base_params, base_inputs, exp["resources"]["gpus"])
    return paths


# Sections the local engine never reads: a `defaults.miles` edit must not rerun (or restart) a local run.
LOCAL_UNUSED_SECTIONS = ("miles", "tracking")


def train_params(name: str, exp: dict, card: dict | None) -> dict:
    unused = LOCAL_UNUSED_SECTIONS if exp["engine"] == "local" else ()
    params = {key: exp[key] for key in TRAIN_SECTIONS if key not in unused}
    # The experiment's shape, minus what the input files already pin (dataset and model contents).
    params["data"] = {
        "apply_chat_template": exp["data"]["apply_chat_template"],
        "train": {"name": exp["data"]["train"]["name"]},
        "eval": {"name": exp["data"]["eval"]["name"]},
    }
    params.update(name=name, card=card)
    return params


def eval_params(name: str | None, exp: dict, which: str, card: dict | None) -> dict:
    """The base or final evaluation: its own section (base_eval / final_eval) plus what sampling needs.

    `name` is None for the base evaluation, which experiments share (see Layout.base_eval)."""
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
            rollout={key: exp["rollout"][key] for key in MILES_EVAL_ROLLOUT_KEYS},
            train={key: exp["train"][key] for key in MILES_EVAL_TRAIN_KEYS},
            seed=exp["seed"], rollout_seed=exp["rollout_seed"],
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


# What the memory plan reads of `rollout` and `train` (miles.plan.estimate_memory). The preflight's output orders
# the model download, so a rerun of it refetches and reconverts the model: a learning-rate or num_rollout edit
# must not rerun it.
PREFLIGHT_ROLLOUT_KEYS = ("rollout_batch_size", "n_samples_per_prompt", "max_response_len")
PREFLIGHT_TRAIN_KEYS = ("global_batch_size", "num_steps_per_rollout", "micro_batch_size", "use_kl_loss", "kl_loss_coef")


def preflight_params(exp: dict, card: dict | None) -> dict:
    if exp["engine"] != "miles":  # no memory plan: the preflight only says so
        return {"engine": exp["engine"]}
    return {
        **{key: exp[key] for key in ("engine", "resources", "miles", "model")},
        "rollout": {key: exp["rollout"][key] for key in PREFLIGHT_ROLLOUT_KEYS},
        "train": {key: exp["train"][key] for key in PREFLIGHT_TRAIN_KEYS},
        "card": card,
    }


def convert_params(layout: Layout, key: str, experiments: dict, paths: dict) -> dict:
    """Conversion depends on the card and the miles/Megatron checkouts of the first experiment using the model."""
    for name in sorted(experiments):
        if paths[name].get("hf_model_key") == key and experiments[name]["engine"] == "miles":
            exp = experiments[name]
            return {"card": layout.card(exp), "miles": {k: exp["miles"][k] for k in MILES_TOOL_KEYS}}
    raise KeyError(f"no miles experiment uses model {key}")


def export_params(exp: dict) -> dict:
    return {"miles": {k: exp["miles"][k] for k in MILES_TOOL_KEYS}, "engine": exp["engine"]}
