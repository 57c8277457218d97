"""The whole demo through real Snakemake, Ray and TRL, then what reruns after each kind of edit.

One module-scoped run of the shipped demo config (a few minutes on 2 cores); the staleness tests edit a
copy of its config and ask Snakemake's own dry run what it would do.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from pipeline_helpers import copy_repo, edit_config, planned_jobs, snakemake

pytestmark = pytest.mark.slow

SECRET_TOKEN = "hf_mileageTestSecret0123456789"
SECRET_WANDB = "wandbMileageTestSecret9876543210"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("demo"))
    os.environ["HF_TOKEN"], os.environ["WANDB_API_KEY"] = SECRET_TOKEN, SECRET_WANDB
    try:
        snakemake(repo, "--resources", "gpu=1")
    finally:
        del os.environ["HF_TOKEN"], os.environ["WANDB_API_KEY"]
    return repo


@pytest.fixture
def config_restored(demo):
    path = demo / "config" / "config.yaml"
    original = path.read_text()
    yield demo
    path.write_text(original)


def read_tsv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return list(rows[0].keys()) if rows else path.read_text().split("\n")[0].split("\t"), rows


def test_metric_tables_use_miles_names(demo):
    metrics = demo / "results" / "demo" / "metrics"
    columns, rows = read_tsv(metrics / "rollout.tsv")
    assert columns[0] == "rollout/step" and "rollout/raw_reward" in columns and "rollout/response_lengths" in columns
    assert [int(r["rollout/step"]) for r in rows] == list(range(len(rows))) and len(rows) >= 2
    columns, rows = read_tsv(metrics / "train.tsv")
    assert columns[0] == "train/step" and {"train/loss", "train/grad_norm"} <= set(columns)
    columns, rows = read_tsv(metrics / "eval.tsv")
    assert columns[0] == "eval/step" and "eval/arith" in columns
    columns, _ = read_tsv(metrics / "perf.tsv")
    assert columns[0] == "rollout/step" and any(c.startswith("perf/") for c in columns[1:])
    assert columns[1:] == sorted(columns[1:])


def test_demo_really_learns(demo):
    summary = json.loads((demo / "results" / "demo" / "report" / "summary.json").read_text())
    k = summary["final"]["k"]
    base = summary["base"]["metrics"][f"avg@{k}"]["value"]
    final = summary["final"]["metrics"][f"avg@{k}"]["value"]
    assert final >= base + 0.20, f"GRPO did not learn enough: base avg@{k} {base:.3f}, final {final:.3f}"
    for side in ("base", "final"):
        names = set(summary[side]["metrics"])
        assert {f"avg@{k}", f"maj@{k}"} | {f"pass@{j}" for j in range(1, k + 1)} <= names
        assert all(len(m["ci95"]) == 2 for m in summary[side]["metrics"].values())


def test_every_eval_sample_is_kept(demo):
    summary = json.loads((demo / "results" / "demo" / "report" / "summary.json").read_text())
    for side in ("base", "final"):
        lines = (demo / "results" / "demo" / "eval" / f"{side}.samples.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        assert len(records) == summary[side]["n_samples"]
        assert {"problem_id", "sample_index", "label", "extracted_answer", "reward", "response_length", "truncated"} <= set(records[0])


def test_report_figures_and_comparison(demo):
    report_dir = demo / "results" / "demo" / "report"
    report = (report_dir / "report.md").read_text()
    summary = json.loads((report_dir / "summary.json").read_text())
    assert all(p["problem_id"] in report for p in summary["final"]["per_problem"])
    figures = {p.name for p in (report_dir / "figures").iterdir()}
    for name in ("reward", "eval", "loss", "response_length", "pass_at_k"):
        assert {f"{name}.pdf", f"{name}.png"} <= figures, figures
    _, rows = read_tsv(demo / "results" / "compare" / "final_scores.tsv")
    assert [r[next(iter(r))] for r in rows] == ["demo"]


def test_snakemake_report_embeds_the_figures(demo):
    snakemake(demo, "--report", "report.html")
    html = (demo / "report.html").read_text(errors="replace")
    assert "reward.png" in html and "report.md" in html


def test_secrets_never_reach_results(demo):
    for path in (demo / "results").rglob("*"):
        if path.is_file() and path.stat().st_size < 50_000_000:
            data = path.read_bytes()
            assert SECRET_TOKEN.encode() not in data and SECRET_WANDB.encode() not in data, path


def test_nothing_edited_nothing_runs(demo):
    assert planned_jobs(demo) == {}


def test_plot_style_edit_reruns_plots_only(config_restored):
    edit_config(config_restored, lambda c: c["plots"].update(palette="deep"))
    assert set(planned_jobs(config_restored)) == {"plots", "compare", "all"}


def test_final_eval_samples_edit_reruns_final_eval_report_and_plots(config_restored):
    edit_config(config_restored, lambda c: c["experiments"]["demo"]["final_eval"].update(n_samples_per_prompt=4))
    assert set(planned_jobs(config_restored)) == {"eval_final", "summarize", "report", "plots", "compare", "all"}


def test_learning_rate_edit_reruns_training_and_what_follows_only(config_restored):
    edit_config(config_restored, lambda c: c["experiments"]["demo"]["train"].update(lr=0.001))
    jobs = set(planned_jobs(config_restored))
    assert jobs == {"train", "metrics", "eval_final", "summarize", "report", "plots", "compare", "all"}


def test_new_experiment_builds_only_its_jobs(config_restored):
    edit_config(
        config_restored, lambda c: c["experiments"].update({"demo-lr": {"extends": "demo", "train": {"lr": 0.001}}})
    )
    jobs = planned_jobs(config_restored)
    # Its own chain and the comparison; the demo model, datasets, warm start and the base evaluation of the
    # shared warm-started model are reused (base_samples only copies it under the new name).
    assert set(jobs) == {"train", "metrics", "base_samples", "eval_final", "summarize", "report", "plots", "compare", "all"}
    assert all(count == 1 for count in jobs.values())
