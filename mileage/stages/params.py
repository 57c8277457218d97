"""Each rule's inputs and `params`, from the experiment, its engine and mileage.keys (the one declaration of
which config keys each rule reads). Snakemake reruns a job when its params change, so each rule gets exactly
the leaves its work reads, canonical: a plot-style edit changes only the plots' params, a learning-rate edit
only training's, and rewriting the YAML without changing a value changes nothing.
"""

from __future__ import annotations

from mileage.engines import engine_of
from mileage.eval_sets import all_sets, headline_view, set_view, training_names, training_view
from mileage.keys import canonical, stage_params
from mileage.layout import Layout

# Which view of the experiment each rule reads (mileage.eval_sets): a per-set rule sees its set as data.eval,
# training sees the sets it evaluates in the run, the report and figures lead with the headline set.
TRAINING_STAGES = ("train", "preflight", "convert_model", "export_hf")
HEADLINE_STAGES = ("report", "plots", "compare", "headline")


def experiment_paths(layout: Layout, name: str, exp: dict, config: dict, declared: dict | None = None) -> dict:
    """Paths of one experiment's inputs; registers every shared cache entry it needs with `layout`. `declared`: the
    experiment as configured when `exp` is one of its replicate seeds (the base evaluation is built from it, so
    the replicates share one). Every evaluation set, by name, in `eval_sets`: its data, the inputs of its final
    evaluation and its shared base evaluation."""
    engine = engine_of(exp)
    paths = {"train_data": layout.dataset(exp, "train"), "start_model": layout.start_model(exp)}
    if exp["model"]["source"] == "hf":
        paths["hf_model_key"] = layout.hf_model_key(exp)[0]
    model = {"model": paths["start_model"], **engine.model_inputs(layout, exp)}
    done = layout.exp(name, "train", "done.json")
    paths["eval_sets"] = {}
    for data in all_sets(exp):
        view = set_view(exp, data["name"])
        eval_data = layout.dataset(view, "eval")
        paths["eval_sets"][data["name"]] = {
            "data": eval_data,
            "final_eval_inputs": {**model, "done": done, "data": eval_data},
            "base_eval": layout.base_eval(
                exp["engine"], rule_params("eval_base", None, set_view(declared or exp, data["name"]), config, layout),
                {**model, "data": eval_data}, exp["resources"]["gpus"],
            ),
        }
    # Training reads the sets it evaluates in the run (eval.sets): `eval_data` the first, `eval_data_<i>` the others
    # in eval.sets' order; the names every run's identity was made with.
    in_training = [paths["eval_sets"][n]["data"] for n in training_names(exp)]
    paths["train_inputs"] = {
        **model, "train_data": paths["train_data"], "eval_data": in_training[0],
        **{f"eval_data_{i}": path for i, path in enumerate(in_training[1:], start=1)},
        **engine.train_inputs(layout, name, exp),
    }
    return paths


def view_of(stage: str, exp: dict, eval_set: str | None = None) -> dict:
    """The experiment as rule `stage` reads it (for a per-set rule, as set `eval_set`)."""
    if eval_set is not None:
        return set_view(exp, eval_set)
    if stage in TRAINING_STAGES:
        return training_view(exp)
    if stage in HEADLINE_STAGES:
        return headline_view(exp)
    return exp


def rule_params(stage: str, name: str | None, exp: dict, config: dict, layout: Layout,
                eval_set: str | None = None) -> dict:
    """The params of rule `stage` for experiment `name` (and evaluation set `eval_set` for the per-set rules): the
    keys it reads, the model card where the engine's stages need one (its shapes and Megatron arguments), and which
    evaluation an eval rule runs."""
    view = view_of(stage, exp, eval_set)
    extra = {}
    if stage in ("train", "eval_base", "eval_final", "preflight", "convert_model", "export_hf"):
        extra["card"] = layout.card(view)
    if stage in ("eval_base", "eval_final"):
        extra["which"] = stage.removeprefix("eval_")
    return stage_params(stage, name, view, config, **extra)


def compare_params(experiments: dict, config: dict) -> dict:
    """The comparison reads each experiment's in-training eval k, its display label, the figure style and, for the
    points of a sweep, the values that make each point (`sweeps`: {name: {"of", "values"}})."""
    per_exp = {name: stage_params("compare", name, view_of("compare", exp), config)
               for name, exp in sorted(experiments.items())}
    style = next(iter(per_exp.values()))["plots"] if per_exp else config["plots"]
    return {"plots": style, "eval_ks": {name: p["eval"]["n_samples_per_prompt"] for name, p in per_exp.items()},
            "labels": {name: p["label"] or name for name, p in per_exp.items()},
            "sweeps": canonical({name: exp["sweep_point"] for name, exp in sorted(experiments.items())
                                 if exp.get("sweep_point")}),
            **comparison_design(experiments, config)}


def comparison_design(experiments: dict, config: dict) -> dict:
    """The comparison's baseline (`compare.baseline`; empty: the first experiment by name that is not a sweep point,
    else the first by name: never the YAML's order, which a formatter may change), which pairs it tests
    (`compare.pairs`) and what each experiment changes relative to the baseline (mileage.report.changes)."""
    from mileage.errors import ConfigError
    from mileage.report.changes import changes_against

    settings = config.get("compare") or {}
    by_name = sorted(experiments, key=lambda name: (bool(experiments[name].get("sweep_point")), name))
    baseline = settings.get("baseline") or next(iter(by_name), "")
    if experiments and baseline not in experiments:
        raise ConfigError(f"compare.baseline: no experiment {baseline!r} to compare with "
                          f"(experiments: {', '.join(experiments)})")
    return {"baseline": baseline, "pairs": settings.get("pairs", "baseline"),
            "changes": changes_against(baseline, experiments) if experiments else {}}


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
