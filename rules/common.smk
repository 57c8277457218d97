# Config loading and checking, experiment expansion, path helpers. Everything a rule needs from the config
# reaches it as `params` of plain values, so Snakemake reruns exactly what an edit made stale.
import re
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

from mileage import cluster
from mileage.cluster import gpu_size_known_here
from mileage.config import ConfigError, ExperimentResolver
from mileage.environment import prepend_pythonpath
from mileage.layout import Layout, expand_replicates
from mileage.engines import engine_of
from mileage.eval_sets import headline_name, set_names
from mileage.keys import canonical
from mileage.layout import migrate_eval_layout
from mileage.pins import ENV_FILES
from mileage.stages import params as stage_params
from mileage.stages.models import memory_refusal
from mileage.yaml_strict import DuplicateKeyError, check_files

min_version("9.0")


configfile: "config/config.yaml"


# Snakemake's loader keeps the last of two equal keys: re-read the files it loaded with one that refuses them.
try:
    check_files(workflow.configfiles)
except DuplicateKeyError as err:
    sys.exit(f"mileage: configuration error: {err}")

try:
    RESOLVER = ExperimentResolver(config, base_dir=Path(workflow.basedir))
    DECLARED = RESOLVER.resolve_all()
except ConfigError as err:
    sys.exit(f"mileage: configuration error: {err}")

validate(config, "../config/schema.yaml")

prepend_pythonpath(workflow.basedir)

CFG = RESOLVER.config
R = CFG["results_dir"]
LAYOUT = Layout(results=R, base_dir=Path(workflow.basedir))
# The training runs: an experiment with `seeds` is one run per seed, `<exp>/seeds/<n>` (mileage.layout), each laid
# out exactly as a single-seed experiment; REPLICATED maps such an experiment to its seeds and runs.
EXPERIMENTS, REPLICATED = expand_replicates(DECLARED)
DECLARED_OF = {run: name for name, group in REPLICATED.items() for run in group["runs"]}
# Paths of every run, computed once; computing them registers the shared cache entries (replicates share them).
PATHS = {
    name: stage_params.experiment_paths(
        LAYOUT, name, exp, CFG, DECLARED.get(DECLARED_OF.get(name))
    )
    for name, exp in EXPERIMENTS.items()
}
EXP_NAMES = sorted(EXPERIMENTS)
# What the comparison lists (a replicated experiment once, by its aggregate). A result's own figures use the
# palette's first colour: they never depend on which other experiments exist, so adding one reruns none of them.
TOP_NAMES = sorted(DECLARED)
# Every evaluation set of each run and experiment, by name, and the one that heads its report (mileage.eval_sets).
EVAL_SETS = {
    name: set_names(exp) for name, exp in [*EXPERIMENTS.items(), *DECLARED.items()]
}
HEADLINE = {
    name: headline_name(exp) for name, exp in [*EXPERIMENTS.items(), *DECLARED.items()]
}
# What gets a report and figures: every run, and the aggregate of each replicated experiment.
RESULT_NAMES = [*EXP_NAMES, *REPLICATED]
# Results laid out before evaluation sets were an axis: their evaluations move once under eval/<set>/.
if workflow.is_main_process:
    migrate_eval_layout(R, {name: EVAL_SETS[name][0] for name in EXP_NAMES})


def emit(value):
    """Every rule's params reach Snakemake through here: canonical (mileage.keys.canonical: mappings sorted at every
    depth), so rewriting the YAML with the same values in another order or style makes no job stale.
    """
    if callable(value):
        return lambda w: canonical(value(w))
    return canonical(value)


def experiment_of(name):
    """A training run (a seed, a sweep point, an experiment) or a replicated experiment, by its results name."""
    return EXPERIMENTS[name] if name in EXPERIMENTS else DECLARED[name]


def params_of(stage, wildcard="exp"):
    """The params of rule `stage` (mileage.keys) for the run or experiment the wildcard names, canonical; a
    per-set rule's for the set of the `set` wildcard."""
    return emit(
        lambda w: stage_params.rule_params(
            stage,
            w[wildcard],
            experiment_of(w[wildcard]),
            CFG,
            LAYOUT,
            eval_set=w.get("set"),
        )
    )


# The memory preflight, before any job: an experiment that cannot fit stops the whole run before any download.
# Judged once, where the run starts (jobs re-read this file on their own node), and only where the GPU size is
# known (declared, resources.gpu_model, or a GPU here); otherwise its preflight job judges it on the GPU node.
REFUSALS = [
    refusal
    for name in TOP_NAMES  # the seed does not change what fits
    if workflow.is_main_process
    and gpu_size_known_here(DECLARED[name]["resources"])
    and (
        refusal := memory_refusal(
            name,
            stage_params.rule_params("preflight", name, DECLARED[name], CFG, LAYOUT),
        )
    )
]
if REFUSALS:
    sys.exit("mileage plan: refused before any download.\n" + "\n\n".join(REFUSALS))


def names_regex(names):
    """A wildcard constraint matching exactly these experiment names (and nothing when empty)."""
    return "|".join(re.escape(n) for n in names) or "(?!x)x"


# Experiments whose engine converts the final checkpoint back to HF format (rule export_hf).
EXPORT_EXPS = names_regex(
    n for n in EXP_NAMES if engine_of(EXPERIMENTS[n]).exports(EXPERIMENTS[n])
)
ENV_ANALYSIS = f"../{ENV_FILES['analysis']}"
# The demo model and its warm start need torch and transformers: the local engine's env has them.
ENV_LOCAL_MODELS = f"../{ENV_FILES['local']}"


def CONVERSIONS(key):
    """The params of the shared conversion of model `key` (the first experiment that trains from one)."""
    return stage_params.convert_params(LAYOUT, key, EXPERIMENTS, PATHS, CFG)


def env_of(params):
    """The conda env (snakemake --sdm conda) of the engine a rule's params name."""
    return f"../{ENV_FILES[engine_of(params).env]}"


def container_of(params):
    """The image (snakemake --sdm apptainer) of the engine a rule's params name; None: the current env."""
    return engine_of(params).container(params)


def exp_env(w):
    return env_of(EXPERIMENTS[w.exp])


def exp_container(w):
    return container_of(EXPERIMENTS[w.exp])


wildcard_constraints:
    exp=names_regex(EXP_NAMES),
    agg=names_regex(REPLICATED),
    result=names_regex(RESULT_NAMES),
    set=names_regex(sorted({s for sets in EVAL_SETS.values() for s in sets})),


def path_of(key):
    """An input function: the path `key` of the experiment named by the wildcards."""
    return lambda wildcards: PATHS[wildcards.exp][key]


def set_summaries_of(name):
    """{set: summary.json} of the evaluation sets of run or aggregate `name` other than its headline."""
    return {
        s: f"{R}/{name}/eval/{s}/summary.json"
        for s in EVAL_SETS[name]
        if s != HEADLINE[name]
    }


def runs_of(name):
    """The training runs whose curves a result draws: a run itself, or every seed of a replicated experiment."""
    return REPLICATED[name]["runs"] if name in REPLICATED else [name]


def gpus_of(wildcards):
    return EXPERIMENTS[wildcards.exp]["resources"]["gpus"]


def cluster_of(what):
    """A resource function: mileage.cluster's `what` (runtime, mem_mb, cpus) for the experiment of the wildcards."""
    return lambda wildcards: getattr(cluster, what)(EXPERIMENTS[wildcards.exp])


def base_eval_exp(key):
    """An experiment whose base evaluation is the shared one `key` (they share model, data and eval settings)."""
    path = f"{R}/cache/base-eval/{key}.samples.jsonl"
    return EXPERIMENTS[next(n for n in EXP_NAMES if path in base_evals_of(n))]


def base_evals_of(name):
    """The shared base evaluations run `name` reads: one per evaluation set."""
    return [s["base_eval"] for s in PATHS[name]["eval_sets"].values()]


def all_targets():
    targets = []
    for name in EXP_NAMES:
        targets += [
            f"{R}/{name}/metrics/{kind}.tsv"
            for kind in ("rollout", "train", "perf", "eval")
        ]
    for name in RESULT_NAMES:
        targets += [f"{R}/{name}/eval/{s}/summary.json" for s in EVAL_SETS[name]]
        targets += [
            f"{R}/{name}/report/summary.json",
            f"{R}/{name}/report/report.md",
            f"{R}/{name}/report/figures",
        ]
    targets += [f"{R}/compare/final_scores.tsv", f"{R}/compare/figures"]
    return targets
