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
# What the comparison lists (a replicated experiment once, by its aggregate); colours follow this order.
TOP_NAMES = sorted(DECLARED)
# The other evaluation sets of each run and experiment (data.extra_eval), by name.
EVAL_SETS = {
    name: [data["name"] for data in exp["data"]["extra_eval"]]
    for name, exp in [*EXPERIMENTS.items(), *DECLARED.items()]
}
COLOR_INDEX = {
    name: TOP_NAMES.index(DECLARED_OF.get(name, name))
    for name in [*EXP_NAMES, *REPLICATED]
}


def params_of(stage):
    """An input function: the params of rule `stage` (mileage.keys) for the experiment of the wildcards."""
    return lambda w: stage_params.rule_params(
        stage, w.exp, EXPERIMENTS[w.exp], CFG, LAYOUT
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
    set=names_regex(sorted({s for sets in EVAL_SETS.values() for s in sets})),


def path_of(key):
    """An input function: the path `key` of the experiment named by the wildcards."""
    return lambda wildcards: PATHS[wildcards.exp][key]


def set_summaries_of(exp):
    """{set: summary.json} of the other evaluation sets of run or aggregate `exp` (data.extra_eval)."""
    return {s: f"{R}/{exp}/eval/{s}/summary.json" for s in EVAL_SETS[exp]}


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
    """The shared base evaluations run `name` reads: data.eval's and each other evaluation set's."""
    return [
        PATHS[name]["base_eval"],
        *(s["base_eval"] for s in PATHS[name]["eval_sets"].values()),
    ]


def all_targets():
    targets = []
    for name in EXP_NAMES:
        targets += [
            f"{R}/{name}/metrics/{kind}.tsv"
            for kind in ("rollout", "train", "perf", "eval")
        ]
        targets += [f"{R}/{name}/eval/{s}/summary.json" for s in EVAL_SETS[name]]
        targets += [
            f"{R}/{name}/report/summary.json",
            f"{R}/{name}/report/report.md",
            f"{R}/{name}/report/figures",
        ]
    for name in REPLICATED:
        targets += [
            f"{R}/{name}/report/{out}"
            for out in ("summary.json", "report.md", "figures")
        ]
    targets += [f"{R}/compare/final_scores.tsv", f"{R}/compare/figures"]
    return targets
