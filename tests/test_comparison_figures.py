"""The comparison's figures from a small finished comparison (tests/synthetic_results.py: a two-seed baseline, a
learning-rate variant, a three-point learning-rate sweep): each kind is drawn, says what it shows, and shows the
numbers paired.tsv and the summaries hold."""

from __future__ import annotations

import csv
import json

import pytest

from figure_capture import capture_figures
from synthetic_results import SWEEPS, make_comparison


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return make_comparison(root)


@pytest.fixture
def drawn(comparison, tmp_path, monkeypatch):
    from mileage.report.changes import changes_against
    from mileage.report.compare import compare_experiments

    figures = capture_figures(monkeypatch)
    configs = {name: json.loads((d / "report" / "summary.json").read_text())["provenance"]["config"]
               for name, d in comparison.items()}
    written = compare_experiments(comparison, tmp_path / "compare", {"formats": ["png"]},
                                  {name: 4 for name in comparison}, None, sweeps=SWEEPS, baseline="demo",
                                  changes=changes_against("demo", configs))
    with open(tmp_path / "compare" / "paired.tsv", newline="") as fh:
        paired = list(csv.DictReader(fh, delimiter="\t"))
    return figures, written, paired


def test_every_comparison_figure_is_drawn_with_its_legend_off_the_data(drawn) -> None:
    figures, written, _ = drawn
    assert {"reward", "eval", "final_scores", "forest", "sweep_sweep"} <= set(figures)
    assert {p.name for p in written} >= {"reward.png", "eval.png", "final_scores.png", "forest.png",
                                         "sweep_sweep.png"}
    for name, figure in figures.items():
        assert not figure["overlaps"], f"{name}: a legend covers an axes"
    # Every legend names the experiments by what they change relative to the baseline.
    for name in ("reward", "eval", "final_scores"):
        assert "demo (baseline)" in figures[name]["legends"]
        assert "demo-lr: train.lr 0.0005 -> 0.001" in figures[name]["legends"], figures[name]["legends"]


def test_learning_curves_start_at_the_base_model_with_seed_bands_and_both_ks(drawn, comparison) -> None:
    figures, _, _ = drawn
    curves = figures["eval"]
    assert curves["titles"] == ["arith"] and curves["ylabels"] == ["avg@k (%)"]
    legend = curves["legends"]
    assert "in-training eval, avg@4 (mean of seeds)" in legend and "range of 2 seeds (too few for a CI)" in legend
    assert "base model, stand-alone eval, avg@8" in legend and "final checkpoint, stand-alone eval, avg@8" in legend
    assert curves["axes"][0][3] >= 1  # the baseline's band across its two seeds
    base = json.loads((comparison["demo"] / "report" / "summary.json").read_text())["base"]["metrics"]["avg@8"]
    at_zero = [y for x, y, hollow in curves["markers"][0] if abs(x) < 0.5 and hollow]
    assert at_zero and all(y == pytest.approx(base["value"]) for y in at_zero)  # one base model, every experiment


def test_the_forest_plot_shows_each_difference_against_the_baseline_with_holm_significance(drawn) -> None:
    figures, _, paired = drawn
    forest = figures["forest"]
    rows = [r for r in paired if r["a"] == "demo"]
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    assert [t.split(":")[0] for t in forest["titles"]] == metrics
    others = list(dict.fromkeys(r["b"] for r in rows))
    assert forest["yticklabels"][0] == [f"{b}: {next(r['change'] for r in rows if r['b'] == b)}" for b in others]
    for axis, metric in enumerate(metrics):
        points = [(x, y, hollow) for x, y, hollow in forest["markers"][axis]]
        for y, b in enumerate(others):
            row = next(r for r in rows if r["b"] == b and r["metric"] == metric)
            x, _, hollow = next(p for p in points if p[1] == y)
            assert x == pytest.approx(100 * float(row["estimate"]))
            assert hollow == (row["significant"] != "True")  # filled exactly when significant after Holm
    assert sum("p_holm" in t for t in forest["texts"]) == len(rows)
    assert any("MDE80" in t for t in forest["legends"]) and any("Holm-adjusted" in t for t in forest["legends"])


def test_the_sweep_figure_puts_the_learning_rate_on_a_log_axis(drawn, comparison) -> None:
    figures, _, _ = drawn
    sweep = figures["sweep_sweep"]
    assert sweep["xscales"] == ["log"] and sweep["ylabels"] == ["final avg@8 (%)"]
    line = sweep["axes"][0][2][0]  # the errorbar's data line comes first
    finals = [json.loads((comparison[name] / "report" / "summary.json").read_text())["final"]["metrics"]["avg@8"]["value"]
              for name in sorted(SWEEPS, key=lambda n: SWEEPS[n]["values"]["train.lr"])]
    assert list(line[:, 0]) == [0.0001, 0.001, 0.01] and list(line[:, 1]) == pytest.approx(finals)
    assert "base model" in sweep["legends"]


def test_log_axis_rule() -> None:
    from mileage.report.sweep_figure import use_log_axis

    assert use_log_axis("train.lr", [0.001, 0.002]) and use_log_axis("rollout.n_samples_per_prompt", [1, 100])
    assert not use_log_axis("rollout.temperature", [0.6, 1.0]) and not use_log_axis("train.lr", ["a", "b"])


def test_legend_texts_show_the_label_and_the_change() -> None:
    from mileage.report.comparison_figures import legend_texts

    texts = legend_texts(["a", "b", "c"], {"a": "GRPO", "b": "b"}, "a", {"b": "train.lr 0.0005 -> 0.001", "c": ""})
    assert texts == {"a": "GRPO (baseline)", "b": "b: train.lr 0.0005 -> 0.001", "c": "c"}
