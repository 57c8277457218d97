"""What an edit makes stale, read off the whole DAG as Snakemake builds it (tests/dag_params.py): a job of the edited
config reruns on a finished pipeline when it is new, its params or inputs changed, or it reads what such a job
writes (Snakemake's rerun triggers are params, input, code and software env: profiles/default). So the jobs that
would run after each edit are computed here for every axis (evaluation sets, seeds, sweep points, experiments,
figure style, headline), without running the pipeline; tests/test_pipeline_e2e.py checks a few of them for real on
a finished demo."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_helpers import copy_repo

HERE = Path(__file__).resolve().parent
SUB = {"name": "sub", "source": "demo", "demo": {"n_problems": 8, "seed": 3, "operations": ["-"]}}

pytestmark = pytest.mark.slow  # each case builds two DAGs through Snakemake's API (about 10 s each here)


def dag(repo: Path, config: dict, tag: str) -> dict:
    (repo / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = repo.parent / f"{tag}.json"
    proc = subprocess.run([sys.executable, str(HERE / "dag_params.py"), str(repo), str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())["jobs"]


def stale(before: dict, after: dict) -> dict[str, int]:
    """{rule: jobs} that run after the edit on a pipeline finished before it (`all` left out)."""
    touched = {key for key, job in after.items()
               if key not in before or before[key]["params"] != job["params"] or before[key]["input"] != job["input"]}
    written = {out for key in touched for out in after[key]["output"]}
    grew = True
    while grew:  # everything downstream of a job that runs, runs
        grew = False
        for key, job in after.items():
            if key not in touched and any(path in written or any(path.startswith(w + "/") for w in written)
                                          for path in job["input"]):
                touched.add(key)
                written |= set(job["output"])
                grew = True
    counts: dict[str, int] = {}
    for key in touched:
        rule = key.split(" ")[0]
        if rule != "all":
            counts[rule] = counts.get(rule, 0) + 1
    return counts


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("edits") / "repo")
    config = yaml.safe_load((repo / "config" / "config.yaml").read_text())
    config["experiments"]["seeded"] = {"extends": "demo", "seeds": [1, 2], "label": "seeded"}
    config["experiments"]["demo-lr"] = {"extends": "demo", "sweep": {"train.lr": [0.0002, 0.001]}}
    return repo, config, dag(repo, config, "base")


def edited(base, edit) -> dict[str, int]:
    repo, config, before = base
    config = copy.deepcopy(config)
    edit(config)
    return stale(before, dag(repo, config, "edited"))


def test_nothing_edited_nothing_runs(base):
    assert edited(base, lambda c: None) == {}


def test_adding_an_evaluation_set_evaluates_it_and_trains_nothing(base):
    def add(c):
        c["experiments"]["demo"]["data"]["eval"] = [c["experiments"]["demo"]["data"]["eval"], SUB]
    jobs = edited(base, add)
    assert "train" not in jobs and "metrics" not in jobs
    # demo, and what inherits its sets: seeded (2 seeds + aggregate) and both sweep points
    assert jobs["eval_base"] == 1  # one shared base evaluation of the new set
    assert jobs["eval_final"] == jobs["summarize"] == jobs["base_samples"] == 5  # demo, 2 seeds, 2 points
    assert jobs["aggregate"] == 1 and "aggregate_metrics" not in jobs and "headline" not in jobs
    assert jobs["report"] == jobs["plots"] == 6 and "compare" not in jobs


def test_removing_an_evaluation_set_reruns_no_evaluation_of_the_others(base):
    repo, config, _ = base
    with_sub = copy.deepcopy(config)
    with_sub["experiments"]["demo"]["data"]["eval"] = [config["experiments"]["demo"]["data"]["eval"], SUB]
    before = dag(repo, with_sub, "with-sub")
    jobs = stale(before, dag(repo, config, "without-sub"))
    assert set(jobs) == {"report", "plots"}


def test_the_headline_set_is_a_report_setting(base):
    def head(c):
        c["experiments"]["demo"]["data"]["eval"] = [SUB, c["experiments"]["demo"]["data"]["eval"]]
        c["experiments"]["demo"]["data"]["headline_eval"] = "arith"
        c["experiments"]["demo"]["eval"]["sets"] = ["arith"]
    jobs = edited(base, head)
    assert "train" not in jobs and "eval_final" in jobs  # the new set's evaluations, only
    assert jobs["eval_final"] == 5 and "headline" not in jobs


def test_evaluating_another_set_in_training_retrains(base):
    def in_training(c):
        c["experiments"]["demo"]["data"]["eval"] = [c["experiments"]["demo"]["data"]["eval"], SUB]
        c["experiments"]["demo"]["eval"]["sets"] = ["arith", "sub"]
    assert edited(base, in_training)["train"] == 5


def test_adding_a_seed_trains_that_seed_only(base):
    jobs = edited(base, lambda c: c["experiments"]["seeded"].update(seeds=[1, 2, 3]))
    assert jobs["train"] == 1 and jobs["eval_final"] == 1 and jobs["metrics"] == 1 and "eval_base" not in jobs
    assert jobs["aggregate"] == 1 and jobs["aggregate_metrics"] == 1
    assert jobs["report"] == jobs["plots"] == 2  # the new seed's and the aggregate's
    assert jobs["compare"] == 1


def test_a_figure_edit_on_a_seeded_experiment_reruns_figures_and_the_pages_showing_them_only(base):
    jobs = edited(base, lambda c: c["plots"].update(palette="deep"))
    # the report pages embed their figures (snakemake --report resolves no relative path): no statistics, no
    # aggregate, no evaluation
    assert set(jobs) == {"plots", "report", "compare"}
    assert jobs["plots"] == jobs["report"] == 6  # demo, 2 seeds, the aggregate, 2 sweep points


def test_adding_a_sweep_value_runs_that_point_and_the_comparison(base):
    jobs = edited(base, lambda c: c["experiments"]["demo-lr"]["sweep"]["train.lr"].append(0.005))
    assert jobs["train"] == 1 and jobs["eval_final"] == 1 and "eval_base" not in jobs
    assert jobs["report"] == jobs["plots"] == 1 and jobs["compare"] == 1


def test_a_learning_rate_edit_of_one_point_retrains_only_what_it_changes(base):
    jobs = edited(base, lambda c: c["experiments"]["seeded"].setdefault("train", {}).update(lr=0.001))
    assert jobs["train"] == 2 and "eval_base" not in jobs and "demo_model" not in jobs and "warm_start" not in jobs
