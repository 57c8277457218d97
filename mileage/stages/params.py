"""Each rule's inputs and `params`, from the experiment, its engine and mileage.keys (the one declaration of
which config keys each rule reads). Snakemake reruns a job when its params change, so each rule gets exactly
the leaves its work reads, canonical: a plot-style edit changes only the plots' params, a learning-rate edit
only training's, and rewriting the YAML without changing a value changes nothing.
"""

from __future__ import annotations

from mileage.engines import engine_of
from mileage.keys import stage_params
from mileage.layout import Layout, eval_set_view


def experiment_paths(layout: Layout, name: str, exp: dict, config: dict, declared: dict | None = None) -> dict:
    """Paths of one experiment's inputs; registers every shared cache entry it needs with `layout`. `declared`: the
    experiment as configured when `exp` is one of its replicate seeds (the base evaluation is built from it, so
    the replicates share one)."""
    engine = engine_of(exp)
    paths = {
        "train_data": layout.dataset(exp, "train"),
        "eval_data": layout.dataset(exp, "eval"),
        "start_model": layout.start_model(exp),
    }
    if exp["model"]["source"] == "hf":
        paths["hf_model_key"] = layout.hf_model_key(exp)[0]
    model = {"model": paths["start_model"], **engine.model_inputs(layout, exp)}
    paths["train_inputs"] = {
        **model, "train_data": paths["train_data"], "eval_data": paths["eval_data"],
        **engine.train_inputs(layout, name, exp),
    }
    paths["final_eval_inputs"] = {**model, "done": layout.exp(name, "train", "done.json"), "data": paths["eval_data"]}
    base_inputs = {**model, "data": paths["eval_data"]}
    paths["base_eval"] = layout.base_eval(
        exp["engine"], rule_params("eval_base", None, declared or exp, config, layout), base_inputs,
        exp["resources"]["gpus"],
    )
    # More evaluation sets (data.extra_eval): each evaluated like data.eval, on its own data (eval_set_view);
    # training evaluates them too (inputs eval_data_<i>, i as in the data.eval list).
    paths["eval_sets"] = {}
    for i, data in enumerate(exp["data"]["extra_eval"], start=1):
        view = eval_set_view(exp, data["name"])
        eval_data = layout.dataset(view, "eval")
        paths["train_inputs"][f"eval_data_{i}"] = eval_data
        paths["eval_sets"][data["name"]] = {
            "final_eval_inputs": {**paths["final_eval_inputs"], "data": eval_data},
            "base_eval": layout.base_eval(
                exp["engine"], rule_params("eval_base", None, eval_set_view(declared or exp, data["name"]), config,
                                           layout),
                {**model, "data": eval_data}, exp["resources"]["gpus"],
            ),
        }
    return paths


def eval_set_params(stage: str, name: str, exp: dict, eval_set: str, config: dict, layout: Layout) -> dict:
    """The params of rule `stage` (eval_final, summarize) for evaluation set `eval_set` of experiment `name`."""
    return rule_params(stage, name, eval_set_view(exp, eval_set), config, layout)


def rule_params(stage: str, name: str | None, exp: dict, config: dict, layout: Layout) -> dict:
    """The params of rule `stage` for experiment `name`: the keys it reads, the model card where the engine's
    stages need one (its shapes and Megatron arguments), and which evaluation an eval rule runs."""
    extra = {}
    if stage in ("train", "eval_base", "eval_final", "preflight", "convert_model", "export_hf"):
        extra["card"] = layout.card(exp)
    if stage in ("eval_base", "eval_final"):
        extra["which"] = stage.removeprefix("eval_")
    return stage_params(stage, name, exp, config, **extra)


def compare_params(experiments: dict, config: dict) -> dict:
    """The comparison reads each experiment's in-training eval k, its display label and the figure style."""
    per_exp = {name: stage_params("compare", name, exp, config) for name, exp in sorted(experiments.items())}
    style = next(iter(per_exp.values()))["plots"] if per_exp else config["plots"]
    return {"plots": style, "eval_ks": {name: p["eval"]["n_samples_per_prompt"] for name, p in per_exp.items()},
            "labels": {name: p["label"] or name for name, p in per_exp.items()}}


def warm_start_params(entry: dict) -> dict:
    keys = ("epochs", "lr", "batch_size", "n_examples", "seed", "max_operand", "operations", "boxed_fraction")
    return {key: entry[key] for key in keys}


def convert_params(layout: Layout, key: str, experiments: dict, paths: dict, config: dict) -> dict:
    """A shared conversion depends on the card and the tool keys of the first experiment (by name) that trains
    from a conversion of model `key`."""
    for name in sorted(experiments):
        exp = experiments[name]
        if paths[name].get("hf_model_key") == key and engine_of(exp).converts(exp):
            return rule_params("convert_model", name, exp, config, layout)
    raise KeyError(f"no experiment trains from a conversion of model {key}")
