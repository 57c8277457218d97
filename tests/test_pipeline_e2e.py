"""The whole demo through real Snakemake, Ray and TRL, then what reruns after each kind of edit.

The demo runs once per test session (tests/conftest.py: `finished_demo`, the shipped config, sentinel credentials
in its environment); the checks read that tree, and each staleness test edits the config of its own copy of it
(`demo_copy`) and asks Snakemake's own dry run what it would do.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from pipeline_helpers import DEMO_SECRETS, edit_config, planned_jobs, snakemake
from run_checks import assert_status_done, assert_terminal_informs

pytestmark = pytest.mark.slow


@pytest.fixture
def demo(finished_demo: Path) -> Path:
    """The session's finished demo, for the checks that only read it."""
    return finished_demo


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
        lines = (demo / "results" / "demo" / "eval" / "arith" / f"{side}.samples.jsonl").read_text().splitlines()
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


def test_snakemake_report_embeds_the_figures(demo_copy):
    snakemake(demo_copy, "--report", "report.html")
    html = (demo_copy / "report.html").read_text(errors="replace")
    assert "reward.png" in html and "report.md" in html


def test_secrets_never_reach_results(demo):
    needles = [value.encode() for value in DEMO_SECRETS.values()]
    for root in ("results", ".snakemake"):
        for path in (demo / root).rglob("*"):
            if path.is_file() and not path.is_symlink() and path.stat().st_size < 50_000_000:
                data = path.read_bytes()
                assert not any(needle in data for needle in needles), path


def test_a_copy_of_the_finished_demo_plans_nothing(demo_copy):
    """What every test starting from `demo_copy` relies on: the copy is as finished as the original."""
    assert planned_jobs(demo_copy) == {}


def test_plot_style_edit_reruns_figures_and_the_pages_showing_them_only(demo_copy):
    edit_config(demo_copy, lambda c: c["plots"].update(palette="deep"))
    assert set(planned_jobs(demo_copy)) == {"plots", "report", "compare", "all"}


def test_final_eval_samples_edit_reruns_final_eval_report_and_plots(demo_copy):
    edit_config(demo_copy, lambda c: c["experiments"]["demo"]["final_eval"].update(n_samples_per_prompt=4))
    assert set(planned_jobs(demo_copy)) == {"eval_final", "summarize", "headline", "report", "plots", "compare", "all"}


def test_learning_rate_edit_reruns_training_and_what_follows_only(demo_copy):
    edit_config(demo_copy, lambda c: c["experiments"]["demo"]["train"].update(lr=0.001))
    jobs = set(planned_jobs(demo_copy))
    assert jobs == {"train", "metrics", "eval_final", "summarize", "headline", "report", "plots", "compare", "all"}


def test_new_experiment_builds_only_its_jobs(demo_copy):
    edit_config(
        demo_copy, lambda c: c["experiments"].update({"demo-lr": {"extends": "demo", "train": {"lr": 0.001}}})
    )
    jobs = planned_jobs(demo_copy)
    # Its own chain and the comparison; the demo model, datasets, warm start and the base evaluation of the
    # shared warm-started model are reused (base_samples only copies it under the new name).
    assert set(jobs) == {"train", "metrics", "base_samples", "eval_final", "summarize", "headline", "report", "plots",
                         "compare", "all"}
    assert all(count == 1 for count in jobs.values())


def test_a_yaml_rewritten_with_the_same_values_plans_nothing(demo_copy):
    path = demo_copy / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(config, sort_keys=True, default_flow_style=True, width=80))  # another order, style
    assert planned_jobs(demo_copy) == {}


def test_adding_an_evaluation_set_evaluates_it_and_trains_nothing(demo_copy):
    sub = {"name": "sub", "source": "demo", "demo": {"n_problems": 8, "seed": 3, "operations": ["-"]}}
    edit_config(demo_copy, lambda c: c["experiments"]["demo"]["data"].update(
        eval=[c["experiments"]["demo"]["data"]["eval"], sub]))
    assert planned_jobs(demo_copy) == {"demo_dataset": 1, "eval_base": 1, "base_samples": 1, "eval_final": 1,
                                       "summarize": 1, "report": 1, "plots": 1, "all": 1}


def test_the_demo_run_prints_one_line_per_rollout_and_at_most_200_lines(demo):
    terminal = demo.parent / "terminal.txt"
    if not terminal.is_file():
        pytest.skip("MILEAGE_FINISHED_DEMO names a tree built outside this session: its output was not kept")
    assert_terminal_informs(terminal.read_text(), rollouts=range(30), max_lines=200)
    assert_status_done(demo)
