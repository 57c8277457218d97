"""SLURM: the job graph builds on a submit host without GPUs, every job asks the cluster for what its experiment
needs (runtime, memory, CPUs, GPUs), and the profile names only rules that exist.

The dry runs use the real SLURM executor plugin (pyproject's dev extra). `snakemake -n` with `executor: slurm`
needs no sbatch, sinfo, squeue or sacct on PATH (this machine has none), so no stand-ins for them are used."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mileage import cluster
from mileage.config import load_experiment
from mileage.stages.models import memory_refusal
from mileage.stages.params import rule_params
from pipeline_helpers import ROOT, copy_repo, edit_config, snakemake

pytest.importorskip("snakemake_executor_plugin_slurm")
pytestmark = pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                                reason="these model a submit host without GPUs (nvidia-smi is on PATH here)")

EXPERIMENT_FILES = sorted((ROOT / "config" / "experiments").glob("*.yaml"))
CONFIG = ROOT / "config" / "config.yaml"
PROFILES = sorted((ROOT / "profiles").glob("*/config.yaml"))
PER_RULE_KEYS = ("set-resources", "set-threads", "set-resource-scopes")


def resolved(file: Path) -> dict:
    return load_experiment(str(file), CONFIG)[1]


def fits(file: Path) -> bool:
    from mileage.config import ExperimentResolver, load_yaml
    from mileage.layout import Layout

    exp = resolved(file)
    config = ExperimentResolver(load_yaml(CONFIG), base_dir=ROOT).config
    return memory_refusal(file.stem, rule_params("preflight", file.stem, exp, config, Layout("results", ROOT))) is None


def dry_run_jobs(repo: Path) -> list[dict]:
    """Each job of `snakemake -n --workflow-profile profiles/slurm`: rule, wildcards and resources."""
    proc = snakemake(repo, "-n", "--workflow-profile", "profiles/slurm")
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", proc.stdout + proc.stderr):
        rule = re.match(r"rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res:
            wildcards = re.search(r"^\s+wildcards: (.*)$", block, re.M)
            jobs.append({"rule": rule.group(1),
                         "wildcards": dict(kv.split("=", 1) for kv in wildcards.group(1).split(", ")) if wildcards else {},
                         "resources": dict(kv.split("=", 1) for kv in res.group(1).split(", "))})
    return jobs


def jobs_of(jobs: list[dict], rule: str, exp: str) -> list[dict]:
    return [j for j in jobs if j["rule"] == rule and j["wildcards"].get("exp") == exp]


def test_every_shipped_experiment_dry_runs_on_slurm_with_its_own_requests(tmp_path):
    # Enumerated, not named: each shipped experiment that fits its declared hardware (the others are refused before
    # any download, which tests/test_workflow_checks.py shows) is in one dry run through the SLURM profile.
    runnable = [f for f in EXPERIMENT_FILES if fits(f)]
    assert runnable, "no shipped experiment fits its hardware"
    repo = copy_repo(tmp_path)
    edit_config(repo, lambda c: c["experiments"].update({f.stem: {"extends": f"config/experiments/{f.name}"}
                                                         for f in runnable}))
    jobs = dry_run_jobs(repo)
    for file in runnable:
        exp = resolved(file)
        (train,) = jobs_of(jobs, "train", file.stem)
        assert train["resources"]["runtime"] == str(cluster.train_runtime_minutes(exp))
        assert train["resources"]["mem_mb"] == str(cluster.mem_mb(exp))
        assert train["resources"]["cpus_per_task"] == str(cluster.cpus_per_task(exp))
        assert train["resources"]["gpu"] == str(exp["resources"]["gpus"])
        (final,) = jobs_of(jobs, "eval_final", file.stem)
        assert final["resources"]["runtime"] == str(exp["resources"]["eval_runtime_minutes"])
        assert final["resources"]["gpu"] == str(exp["resources"]["gpus"])
        if exp["rollout"]["num_rollout"] >= 1000:  # a long recipe asks for days, not the profile's 4 hours
            assert int(train["resources"]["runtime"]) > 2 * 24 * 60
    # CPU rules keep the profile's defaults and ask for no GPU.
    defaults = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())["default-resources"]
    (compare,) = [j for j in jobs if j["rule"] == "compare"]
    assert compare["resources"]["gpu"] == "0" and compare["resources"]["runtime"] == str(defaults["runtime"])


def test_unknown_gpu_size_is_judged_by_the_preflight_job_on_the_gpu_node(tmp_path):
    big = next(f for f in EXPERIMENT_FILES if fits(f) and resolved(f)["resources"]["gpus"] >= 2)
    repo = copy_repo(tmp_path)
    unsized = {"extends": f"config/experiments/{big.name}", "resources": {"gpu_memory_gb": None}}
    edit_config(repo, lambda c: c["experiments"].update({"unsized": unsized}))
    jobs = dry_run_jobs(repo)  # no nvidia-smi here: the graph still builds
    (preflight,) = jobs_of(jobs, "preflight", "unsized")
    assert preflight["resources"]["gpu"] == "1"  # it runs where a GPU answers
    sized = [j for j in jobs if j["rule"] == "preflight" and j["wildcards"]["exp"] != "unsized"]
    assert all(j["resources"]["gpu"] == "0" for j in sized)


def test_a_gpu_model_gives_the_size_so_a_submit_host_still_refuses(tmp_path):
    # The largest-GPU recipe re-declared for the smallest named GPU model, its size left to the model's default.
    from mileage.config import ExperimentResolver, load_yaml
    from mileage.layout import Layout

    file = max(EXPERIMENT_FILES, key=lambda f: resolved(f)["resources"]["gpu_memory_gb"] or 0)
    model = min(cluster.GPU_MEMORY_GIB, key=cluster.GPU_MEMORY_GIB.get)
    entry = {"extends": f"config/experiments/{file.name}", "resources": {"gpu_memory_gb": None, "gpu_model": model}}
    raw = load_yaml(CONFIG)
    raw["experiments"] = {"by-model": entry}
    resolver = ExperimentResolver(raw, base_dir=ROOT)
    exp = resolver.resolve("by-model")
    assert exp["resources"]["gpu_memory_gb"] == cluster.GPU_MEMORY_GIB[model]
    params = rule_params("preflight", "by-model", exp, resolver.config, Layout("results", ROOT))
    if memory_refusal("by-model", params) is None:
        pytest.skip(f"{file.stem} fits {model} GPUs too")
    repo = copy_repo(tmp_path)
    edit_config(repo, lambda c: c["experiments"].update({"by-model": entry}))
    proc = snakemake(repo, "-n", "--workflow-profile", "profiles/slurm", check=False)
    assert proc.returncode != 0 and "experiments.by-model: does not fit" in proc.stdout + proc.stderr


def _commented_example(text: str) -> dict:
    """The profile's commented-out per-rule block (what users uncomment), parsed."""
    lines, inside = [], False
    for line in text.splitlines():
        if re.match(r"^# (set-resources|set-threads):", line):
            inside = True
        elif inside and not line.startswith("#   "):
            inside = False
        if inside:
            lines.append(line[2:])
    return yaml.safe_load("\n".join(lines)) or {}


def test_profiles_name_only_rules_that_exist(tmp_path):
    proc = snakemake(copy_repo(tmp_path), "--list-rules")
    rules = set(proc.stdout.split())
    assert {"train", "eval_final", "eval_base", "preflight", "convert_model"} <= rules
    named = {}
    for profile in PROFILES:
        text = profile.read_text()
        for part in (yaml.safe_load(text) or {}, _commented_example(text)):
            for key in PER_RULE_KEYS:
                for rule in part.get(key) or {}:
                    named[rule] = profile.relative_to(ROOT)
    assert named, "the SLURM profile shows no per-rule example"
    assert {r: p for r, p in named.items() if r not in rules} == {}


def test_runtime_is_declared_once_and_can_be_set():
    exp = resolved(next(f for f in EXPERIMENT_FILES if "8xh100" in f.name))
    minutes = cluster.train_runtime_minutes(exp)
    assert minutes == cluster.STARTUP_MINUTES + exp["rollout"]["num_rollout"] * exp["resources"]["minutes_per_rollout"]
    exp["resources"]["runtime_minutes"] = 4320
    assert cluster.train_runtime_minutes(exp) == 4320


def test_gpu_models_of_the_schema_are_the_ones_with_a_size():
    schema = yaml.safe_load((ROOT / "config/schema.yaml").read_text())
    props = schema["$defs"]["experiment"]["properties"]["resources"]["properties"]
    assert set(props["gpu_model"]["enum"]) - {None} == set(cluster.GPU_MEMORY_GIB)
