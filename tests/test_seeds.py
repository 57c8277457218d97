"""Replicate seeds: config errors naming the key, the job graph sharing what does not depend on the RL seed, the
aggregate of real per-seed summaries. Two seeds end to end: tests/test_short_runs_e2e.py."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml

from mileage.config import ConfigError, ExperimentResolver, fingerprint
from mileage.evaluation.replicates import ReplicateError, aggregate_summaries
from mileage.evaluation.stats import summary_document
from mileage.layout import Layout, expand_replicates, replicate_name
from pipeline_helpers import ROOT, copy_repo, edit_config, planned_jobs, snakemake

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def resolve_all(**demo_keys) -> dict:
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo"].update(demo_keys)
    return ExperimentResolver(config, base_dir=ROOT).resolve_all()


@pytest.mark.parametrize("seeds, message", [
    ([], "experiments.demo.seeds: an empty list"),
    ([1, 2, 1], "experiments.demo.seeds: 1 given more than once"),
])
def test_an_empty_or_repeated_seed_list_is_an_error_naming_the_key(seeds, message):
    with pytest.raises(ConfigError, match=message):
        resolve_all(seeds=seeds)


def test_a_label_used_twice_is_an_error_naming_both_experiments():
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo"]["label"] = "GRPO"
    config["experiments"]["lr"] = {"extends": "demo", "train": {"lr": 0.001}}
    assert ExperimentResolver(config, base_dir=ROOT).resolve_all()["lr"]["label"] is None  # not inherited
    config["experiments"]["lr"]["label"] = "GRPO"
    with pytest.raises(ConfigError, match=r"experiments\.lr\.label: 'GRPO' is also the label of experiments\.demo"):
        ExperimentResolver(config, base_dir=ROOT).resolve_all()


def test_replicates_differ_only_in_their_seeds_and_share_the_demo_model():
    declared = resolve_all(seeds=[1, 2, 3])
    runs, replicated = expand_replicates(declared)
    assert replicated == {"demo": {"seeds": [1, 2, 3], "runs": ["demo/seeds/1", "demo/seeds/2", "demo/seeds/3"]}}
    assert [runs[r]["seed"] for r in replicated["demo"]["runs"]] == [1, 2, 3]
    assert [runs[r]["rollout_seed"] for r in replicated["demo"]["runs"]] == [1, 2, 3]
    layout = Layout(results="results", base_dir=ROOT)
    models = {layout.start_model(runs[r]) for r in replicated["demo"]["runs"]}
    assert len(models) == 1 and len(layout.demo_models) == 1 and len(layout.warm_models) == 1
    # The single-seed demo keeps its cache keys: the demo model is keyed by model.demo.seed (1234 = `seed` today).
    single = Layout(results="results", base_dir=ROOT)
    demo = resolve_all()["demo"]
    single.start_model(demo)
    assert set(single.demo_models) == set(layout.demo_models)
    shape = {k: v for k, v in demo["model"]["demo"].items() if k != "seed"}
    assert set(single.demo_models) == {f"demo-{fingerprint({'shape': shape, 'seed': demo['seed']})}"}  # as before
    assert replicate_name("demo", 2) == "demo/seeds/2"


def test_a_three_seed_demo_plans_one_model_one_warm_start_one_base_eval_and_three_trainings(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_config(repo, lambda c: c["experiments"]["demo"].update(seeds=[1, 2, 3]))
    jobs = planned_jobs(repo)
    assert jobs["demo_model"] == 1 and jobs["warm_start"] == 1 and jobs["eval_base"] == 1
    assert jobs["train"] == 3 and jobs["eval_final"] == 3 and jobs["aggregate"] == 1 and jobs["compare"] == 1
    assert jobs["aggregate_metrics"] == 1 and jobs["report"] == jobs["plots"] == 4  # 3 seeds + the aggregate
    proc = snakemake(repo, "--dry-run", "--quiet", "all")
    assert proc.returncode == 0
    # A single seed keeps today's layout: no aggregate, results/demo/ holds the run.
    edit_config(repo, lambda c: c["experiments"]["demo"].pop("seeds"))
    jobs = planned_jobs(repo)
    assert jobs["train"] == 1 and "aggregate" not in jobs


# ---- the aggregate, from real summaries ------------------------------------------------------------------------

def records(rewards: np.ndarray) -> list[dict]:
    """Per-sample records of problems x samples binary rewards (answers: right or a wrong '0')."""
    out = []
    for p, row in enumerate(rewards):
        for i, r in enumerate(row):
            out.append({"problem_id": f"p{p}", "sample_index": i, "label": str(p + 1), "reward": float(r),
                        "extracted_answer": str(p + 1) if r else "0",
                        "response": "\\boxed{%s}" % (p + 1 if r else 0)})
    return out


def seed_summaries(seeds, problems=12, k=4, p_base=0.2, p_final=0.7):
    rng = np.random.default_rng(0)
    base = records(rng.random((problems, k)) < p_base)
    return [summary_document("demo/seeds/%d" % s, "arith", base,
                             records(np.random.default_rng(s).random((problems, k)) < p_final), n_boot=200)
            for s in seeds]


def test_the_aggregate_is_the_across_seed_mean_with_a_two_level_interval_and_a_paired_test():
    summaries = seed_summaries([1, 2, 3])
    agg = aggregate_summaries("demo", [1, 2, 3], summaries, n_resamples=500)
    values = [s["final"]["metrics"]["avg@4"]["value"] for s in summaries]
    entry = agg["final"]["metrics"]["avg@4"]
    assert entry["value"] == pytest.approx(np.mean(values))
    assert entry["per_seed"] == values
    # Seeds then problems resampled: an interval of mean scores, inside [0, 1] and around the mean.
    assert 0 <= entry["ci95"][0] < entry["value"] < entry["ci95"][1] <= 1
    assert entry["interval"].startswith("95% two-level bootstrap")
    assert agg["seeds"] == [1, 2, 3] and set(agg["per_seed"]) == {"1", "2", "3"}
    assert agg["base"] == summaries[0]["base"]  # one base model, evaluated once
    paired = agg["paired"]["avg@4"]
    assert paired["n_problems"] == 12
    assert paired["estimate"] == pytest.approx(np.mean(values) - summaries[0]["base"]["metrics"]["avg@4"]["value"])
    assert paired["ci95"][0] > 0 and paired["p_value"] < 0.05  # 0.2 -> 0.7 on 12 problems x 3 seeds
    # Correct/n per problem is summed over the seeds.
    first = agg["final"]["per_problem"][0]
    assert first["n"] == 12 and first["n_correct"] == sum(s["final"]["per_problem"][0]["n_correct"] for s in summaries)


def test_replicates_on_different_problems_are_refused_naming_the_seeds():
    summaries = seed_summaries([1, 2])
    summaries[1]["final"]["per_problem"][0]["problem_id"] = "other"
    with pytest.raises(ReplicateError, match="seed 1 and seed 2"):
        aggregate_summaries("demo", [1, 2], summaries)
