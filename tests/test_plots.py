"""Figures: the files a paper uses exist, are valid, have the promised size, and survive missing metrics."""

from __future__ import annotations

import logging
import math
import struct
from pathlib import Path

import matplotlib
import pandas as pd
import pytest

from figure_capture import capture_figures
from mileage.report.plots import (
    MetricsTableError,
    SummaryError,
    plot_summary,
    plot_training,
    read_metric_table,
)
from mileage.report.style import StyleError, apply_style, resolve_style, smooth

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAINING_FIGURES = ("reward", "eval", "loss", "response_length", "step_time")


def write_tsv(path: Path, columns: list[str], rows: list[list[float | None]]) -> None:
    """A wide metrics TSV as docs/contracts.md describes it (None = empty cell)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(columns)]
    # The step is an int, metric values floats written with repr(), as the metrics writer does.
    lines += ["\t".join([str(int(row[0]))] + ["" if v is None else repr(float(v)) for v in row[1:]]) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_full_metrics(metrics: Path, n: int = 12) -> None:
    write_tsv(
        metrics / "rollout.tsv",
        ["rollout/step", "rollout/raw_reward", "rollout/response_lengths"],
        [[i, 0.1 + 0.05 * i + (0.03 if i % 2 else -0.03), 300 + 7 * i] for i in range(n)],
    )
    write_tsv(
        metrics / "train.tsv",
        ["train/step", "train/entropy_loss", "train/grad_norm", "train/kl_loss", "train/loss"],
        [[i, 0.6 - 0.01 * i, 0.2 + 0.01 * (i % 3), 0.001 * i, 0.01 * (-1) ** i] for i in range(2 * n)],
    )
    write_tsv(
        metrics / "perf.tsv",
        ["rollout/step", "perf/actor_train_time", "perf/rollout_time", "perf/step_time"],
        [[i, 10.0 + i % 2, 30.0 + i % 3, 42.0] for i in range(n)],
    )
    write_tsv(
        metrics / "eval.tsv",
        ["eval/step", "eval/aime", "eval/aime-pass@1"],
        [[i, 0.1 + 0.01 * i, 0.1 + 0.01 * i] for i in range(0, n, 4)],
    )


def write_header_only(metrics: Path) -> None:
    for kind, key in (("rollout", "rollout/step"), ("train", "train/step"), ("perf", "rollout/step"),
                      ("eval", "eval/step")):
        write_tsv(metrics / f"{kind}.tsv", [key], [])


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # IHDR follows the magic and chunk header
    return width, height


def make_summary(with_final: bool = True) -> dict:
    def side(p1: float) -> dict:
        metrics = {f"pass@{k}": {"value": min(1.0, p1 * k ** 0.5), "ci95": [p1 * 0.5, min(1.0, p1 * k ** 0.5 + 0.1)]}
                   for k in (1, 2, 4, 8)}
        metrics["avg@8"] = {"value": p1, "ci95": [p1 - 0.05, p1 + 0.05]}
        metrics["maj@8"] = {"value": p1 + 0.1, "ci95": [p1, p1 + 0.2]}
        return {"n_problems": 2, "n_samples": 16, "k": 8, "metrics": metrics, "per_problem": []}

    summary = {"experiment": "demo", "dataset": "arith-eval", "k": 8, "base": side(0.1)}
    if with_final:
        summary["final"] = side(0.25)
    return summary


def test_eval_figure_names_both_ks_when_the_in_training_k_differs_from_the_final_one(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    # summary.json's k (8) counts the stand-alone evaluations; the in-training eval sampled eval_k = 4 per prompt.
    import json

    from mileage.stages.report import figures

    captured = capture_figures(monkeypatch)
    write_full_metrics(tmp_path / "metrics")
    summary = make_summary()
    summary["dataset"] = "aime"  # the in-training eval's dataset (eval/aime): its axis gets the stand-alone points
    (tmp_path / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    params = {"plots": {"formats": ["png"]}, "eval": {"n_samples_per_prompt": 4}}
    figures(str(tmp_path / "summary.json"), str(tmp_path / "metrics"), str(tmp_path / "figs"), params)
    eval_fig = captured["eval"]
    assert eval_fig["ylabels"] == ["avg@k (%)"] and eval_fig["titles"] == ["aime"]
    legend = eval_fig["legends"]
    assert "in-training eval, avg@4" in legend
    assert "base model, stand-alone eval, avg@8" in legend and "final checkpoint, stand-alone eval, avg@8" in legend
    assert not eval_fig["overlaps"]
    # The same k on both: one k on the axis.
    params["eval"]["n_samples_per_prompt"] = 8
    figures(str(tmp_path / "summary.json"), str(tmp_path / "metrics"), str(tmp_path / "figs2"), params)
    assert captured["eval"]["ylabels"] == ["avg@8 (%)"]


def test_training_figures_are_valid_pdf_and_png_of_column_width(tmp_path: Path) -> None:
    write_full_metrics(tmp_path / "metrics")
    written = plot_training(tmp_path / "metrics", tmp_path / "out")
    expected = {tmp_path / "out" / f"{name}.{fmt}" for name in TRAINING_FIGURES for fmt in ("pdf", "png")}
    assert set(written) == expected
    for path in expected:
        data = path.read_bytes()
        if path.suffix == ".pdf":
            assert data.startswith(b"%PDF-")
            assert b"%%EOF" in data[-64:]
        else:
            width, _ = png_size(path)
            # The four loss panels take two columns of a two-column paper (page_width_in); the others one.
            assert abs(width - (6.9 if path.stem == "loss" else 3.3) * 300) <= 1
    # One-panel figures are height_in tall plus the legend below the axes; no temp files are left behind.
    assert 2.4 * 300 < png_size(tmp_path / "out" / "reward.png")[1] < 3.4 * 300
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]


def test_style_sets_size_dpi_and_formats(tmp_path: Path) -> None:
    write_full_metrics(tmp_path / "metrics")
    style = {"width_in": 3.0, "height_in": 2.0, "dpi": 100, "formats": ["png"]}
    written = plot_training(tmp_path / "metrics", tmp_path / "out", style)
    assert written and all(p.suffix == ".png" for p in written)
    width, height = png_size(tmp_path / "out" / "reward.png")
    assert width == pytest.approx(300, abs=1) and height > 200  # the legend adds to the height, not the width
    assert not list((tmp_path / "out").glob("*.pdf"))


def test_two_runs_give_identical_bytes(tmp_path: Path) -> None:
    write_full_metrics(tmp_path / "metrics")
    first = plot_training(tmp_path / "metrics", tmp_path / "a")
    second = plot_training(tmp_path / "metrics", tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two runs"


def test_missing_metrics_skip_figures_with_a_note(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = tmp_path / "metrics"
    write_header_only(metrics)
    write_tsv(metrics / "rollout.tsv", ["rollout/step", "rollout/raw_reward"], [[0, 0.1], [1, None], [2, 0.3]])
    # Only grad_norm of the four loss panels: the other three say "not logged", the figure is still drawn.
    write_tsv(metrics / "train.tsv", ["train/step", "train/grad_norm"], [[0, 1.0], [1, 0.5]])
    with caplog.at_level(logging.INFO, logger="mileage.report.plots"):
        written = plot_training(metrics, tmp_path / "out", {"formats": ["png"]})
    assert sorted(p.name for p in written) == ["loss.png", "reward.png"]
    notes = caplog.text
    for skipped in ("eval", "response_length", "step_time"):
        assert f"'{skipped}' skipped" in notes


@pytest.mark.parametrize("layout", ["header_only", "no_files", "zero_bytes"])
def test_empty_run_writes_nothing_and_does_not_crash(tmp_path: Path, layout: str) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    if layout == "header_only":
        write_header_only(metrics)
    elif layout == "zero_bytes":
        for kind in ("rollout", "train", "perf", "eval"):
            (metrics / f"{kind}.tsv").write_bytes(b"")
    assert plot_training(metrics, tmp_path / "out") == []


def test_only_rollout_and_train_times_are_stacked(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    write_header_only(metrics)
    write_tsv(metrics / "perf.tsv", ["rollout/step", "perf/rollout_time"], [[0, 3.0], [1, 4.0]])
    written = plot_training(metrics, tmp_path / "out", {"formats": ["png"]})
    assert [p.name for p in written] == ["step_time.png"]


def test_bad_tables_name_file_column_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rollout.tsv"
    path.write_text("step\trollout/raw_reward\n0\t0.5\n", encoding="utf-8")
    with pytest.raises(MetricsTableError, match=r"rollout\.tsv:1: .*'rollout/step'.*'step'"):
        read_metric_table(path, "rollout/step")
    path.write_text("rollout/step\trollout/raw_reward\n0\t0.5\n1\toops\n", encoding="utf-8")
    with pytest.raises(MetricsTableError, match=r"rollout\.tsv:3: .*'rollout/raw_reward'.*'oops'"):
        read_metric_table(path, "rollout/step")


def test_table_reader_keeps_empty_cells_as_nan_and_sorts_steps(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("train/step\ttrain/kl_loss\ttrain/loss\n2\t\t0.5\n0\t0.25\t\n", encoding="utf-8")
    table = read_metric_table(path, "train/step")
    assert table["train/step"].tolist() == [0.0, 2.0]
    assert table["train/kl_loss"].iloc[0] == 0.25 and math.isnan(table["train/kl_loss"].iloc[1])
    assert math.isnan(table["train/loss"].iloc[0]) and table["train/loss"].iloc[1] == 0.5


def test_unknown_or_bad_style_keys_are_rejected() -> None:
    with pytest.raises(StyleError, match="colour"):
        resolve_style({"colour": "red"})
    with pytest.raises(StyleError, match="smoothing"):
        resolve_style({"smoothing": 1.5})
    with pytest.raises(StyleError, match="formats"):
        resolve_style({"formats": ["jpg"]})
    with pytest.raises(StyleError, match="dpi"):
        resolve_style({"dpi": 0})


def test_fonts_stay_legible_at_small_scale() -> None:
    apply_style({"font_scale": 0.3})
    for key in ("axes.labelsize", "xtick.labelsize", "ytick.labelsize", "legend.fontsize", "axes.titlesize"):
        assert float(matplotlib.rcParams[key]) >= 7.0, key
    assert matplotlib.get_backend().lower() == "agg"


def test_smoothing_is_debiased_ema_and_zero_means_raw() -> None:
    values = pd.Series([0.0, 1.0, 1.0])
    raw = smooth(values, 0.0)
    assert raw.tolist() == [0.0, 1.0, 1.0]
    smoothed = smooth(values, 0.5).tolist()
    # Weights 0.5**age over the points seen so far, normalised: TensorBoard's debiased EMA.
    assert smoothed[0] == pytest.approx(0.0)
    assert smoothed[1] == pytest.approx((0.5 * 0 + 1 * 1) / 1.5)
    assert smoothed[2] == pytest.approx((0.25 * 0 + 0.5 * 1 + 1 * 1) / 1.75)


def test_pass_at_k_figure(tmp_path: Path) -> None:
    written = plot_summary(make_summary(), tmp_path)
    assert sorted(p.name for p in written) == ["pass_at_k.pdf", "pass_at_k.png"]
    assert abs(png_size(tmp_path / "pass_at_k.png")[0] - 990) <= 1
    assert (tmp_path / "pass_at_k.pdf").read_bytes().startswith(b"%PDF-")
    # A base-only summary (no training yet) still plots.
    assert plot_summary(make_summary(with_final=False), tmp_path / "base_only", {"formats": ["png"]})


def test_pass_at_k_rejects_summary_without_k(tmp_path: Path) -> None:
    summary = make_summary()
    del summary["k"]
    with pytest.raises(SummaryError, match="'k'"):
        plot_summary(summary, tmp_path)


def test_tables_from_the_metrics_writer_plot(tmp_path: Path) -> None:
    # The producer of metrics/*.tsv (docs/contracts.md); guards against the two parts drifting apart.
    from mileage.metrics.events import MetricEvent
    from mileage.metrics.tables import write_tables

    events = []
    for rollout in range(4):
        events.append(MetricEvent(kind="rollout", step=rollout,
                                  metrics={"rollout/raw_reward": 0.1 * rollout, "rollout/response_lengths": 50}))
        events.append(MetricEvent(kind="train", step=rollout, metrics={"train/loss": 0.5, "train/grad_norm": 1}))
        events.append(MetricEvent(kind="perf", step=rollout, metrics={"perf/step_time": 3.0}))
    events.append(MetricEvent(kind="eval", step=3, metrics={"eval/aime": 0.25}))
    write_tables(events, tmp_path / "metrics")
    written = plot_training(tmp_path / "metrics", tmp_path / "out", {"formats": ["png"]})
    assert sorted(p.name for p in written) == [f"{name}.png" for name in sorted(TRAINING_FIGURES)]


# ---- figures a reader trusts ------------------------------------------------------------------------------------

def test_a_single_run_draws_no_band_and_the_loss_figure_names_entropy(tmp_path: Path, monkeypatch) -> None:
    figures = capture_figures(monkeypatch)
    write_full_metrics(tmp_path / "metrics")
    plot_training(tmp_path / "metrics", tmp_path / "out", {"formats": ["png"]})
    assert figures["reward"]["axes"][0][3] == 0  # no fill: one run has no interval (the old EMA std band is gone)
    titles = [title for title, *_ in figures["loss"]["axes"]]
    assert titles == ["loss", "KL loss", "entropy", "grad norm"]


def test_numerically_zero_losses_and_unlogged_metrics_get_no_panel(tmp_path: Path, monkeypatch) -> None:
    figures = capture_figures(monkeypatch)
    metrics = tmp_path / "metrics"
    write_header_only(metrics)
    # An on-policy GRPO loss (~1e-8) and a KL loss at coefficient 0: float noise, not a curve.
    write_tsv(metrics / "train.tsv", ["train/step", "train/entropy_loss", "train/grad_norm", "train/kl_loss", "train/loss"],
              [[i, 3.0 - 0.1 * i, 0.5, 0.0, 1e-8 * (-1) ** i] for i in range(6)])
    written = plot_training(metrics, tmp_path / "out", {"formats": ["png"]})
    assert [title for title, *_ in figures["loss"]["axes"]] == ["entropy", "grad norm"]
    assert [p.name for p in written] == ["loss.png"]
    # Only zero losses: no loss figure at all.
    write_tsv(metrics / "train.tsv", ["train/step", "train/loss"], [[0, 1e-9], [1, -2e-9]])
    assert plot_training(metrics, tmp_path / "out2", {"formats": ["png"]}) == []


def test_the_eval_curve_starts_at_the_base_model_with_bootstrap_error_bars(tmp_path: Path, monkeypatch) -> None:
    figures = capture_figures(monkeypatch)
    write_full_metrics(tmp_path / "metrics")
    samples = [{"dataset": "aime", "rollout": r, "problem_id": f"p{p}", "reward": float((p + r) % 3 == 0)}
               for r in (0, 4, 8) for p in range(10) for _ in range(2)]
    plot_training(tmp_path / "metrics", tmp_path / "out", {"formats": ["png"]}, base={"aime": (0.05, 0.0, 0.12)},
                  final={"aime": (0.4, 0.3, 0.5)}, final_k=8, eval_k=2, eval_samples=samples)
    title, xlabel, lines, _ = figures["eval"]["axes"][0]
    curve = lines[0]
    # The in-training eval's own points (rollout 0 logged too); the base model is its own hollow marker at step 0
    # and the final checkpoint's at the last step (11, the last rollout logged).
    assert list(curve[:, 0]) == [0.0, 4.0, 8.0]
    points = {tuple(line[0]) for line in lines if line.shape == (1, 2)}
    assert (0.0, 0.05) in points and (11.0, 0.4) in points
    assert title == "aime" and "base model" in xlabel
    assert "95% bootstrap CI over problems" in figures["eval"]["legends"]
    assert figures["eval"]["yticklabels"][0][0] == "0" and figures["eval"]["ylims"][0][0] == 0.0  # percent, from 0
    # Without an eval at rollout 0, the base model still marks step 0.
    write_tsv(tmp_path / "metrics" / "eval.tsv", ["eval/step", "eval/aime"], [[4, 0.2], [8, 0.3]])
    plot_training(tmp_path / "metrics", tmp_path / "out2", {"formats": ["png"]}, base={"aime": (0.05, 0.0, 0.12)})
    lines = figures["eval"]["axes"][0][2]
    assert [tuple(p) for p in lines[0]] == [(4.0, 0.2), (8.0, 0.3)]
    assert any(line.shape == (1, 2) and tuple(line[0]) == (0.0, 0.05) for line in lines)


def test_seeds_draw_the_mean_with_a_labelled_across_seed_band(tmp_path: Path, monkeypatch) -> None:
    figures = capture_figures(monkeypatch)
    dirs = []
    for seed in range(3):
        metrics = tmp_path / f"seed{seed}"
        write_full_metrics(metrics)
        write_tsv(metrics / "rollout.tsv", ["rollout/step", "rollout/raw_reward"],
                  [[i, 0.1 * i + 0.05 * seed] for i in range(6)])
        dirs.append(str(metrics))
    plot_training(dirs, tmp_path / "out", {"formats": ["png"], "smoothing": 0.0})
    reward = figures["reward"]
    assert reward["axes"][0][3] == 1  # one band
    assert "95% CI across 3 seeds" in reward["legends"]
    mean_line = reward["axes"][0][2][0]
    assert mean_line[:, 1] == pytest.approx([0.1 * i + 0.05 for i in range(6)])


def test_two_seeds_draw_their_range_not_a_student_t_interval(tmp_path: Path, monkeypatch) -> None:
    figures = capture_figures(monkeypatch)
    dirs = []
    for seed in range(2):
        metrics = tmp_path / f"seed{seed}"
        write_tsv(metrics / "rollout.tsv", ["rollout/step", "rollout/raw_reward"], [[i, 0.1 * seed] for i in range(4)])
        dirs.append(str(metrics))
    from mileage.report.plots import across_seeds, read_metric_table

    stats = across_seeds([read_metric_table(Path(d) / "rollout.tsv").set_index("rollout/step")["rollout/raw_reward"]
                          for d in dirs])
    assert stats["low"].tolist() == pytest.approx([0.0] * 4) and stats["high"].tolist() == pytest.approx([0.1] * 4)
    plot_training(dirs, tmp_path / "out", {"formats": ["png"], "smoothing": 0.0})
    assert "range of 2 seeds (too few for a CI)" in figures["reward"]["legends"]


def test_seed_figures_and_the_final_scores_figure_are_byte_stable(tmp_path: Path) -> None:
    from mileage.report.plots import final_score_points, plot_final_scores

    dirs = []
    for seed in range(2):
        write_full_metrics(tmp_path / f"s{seed}", n=8 + seed)
        dirs.append(str(tmp_path / f"s{seed}"))
    entries = [("base", "0.55", final_score_points(make_summary(), "base")),
               ("final", (0.1, 0.4, 0.7), final_score_points(make_summary()))]
    runs = []
    for out in ("a", "b"):
        written = plot_training(dirs, tmp_path / out) + plot_final_scores(entries, tmp_path / out)
        runs.append(written)
    assert {p.name for p in runs[0]} >= {"final_scores.pdf", "final_scores.png", "reward.pdf"}
    for a, b in zip(*runs):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between two runs"
    pdf = (tmp_path / "a" / "final_scores.pdf").read_bytes()
    assert b"/CreationDate" not in pdf and b"/FontFile2" in pdf  # no date; TrueType (Type 42) fonts embedded


def test_every_experiment_keeps_its_colour(tmp_path: Path, monkeypatch) -> None:
    from mileage.report.plots import experiment_color
    from mileage.report.style import palette_colors, resolve_style

    style = resolve_style({})
    assert [experiment_color(style, i) for i in range(4)] == palette_colors(style, 4)
    import mileage.report.plots as plots_module

    seen = []
    real = plots_module.draw_curve
    monkeypatch.setattr(plots_module, "draw_curve", lambda ax, s, st, color, **kw: seen.append(color) or real(ax, s, st, color, **kw))
    write_full_metrics(tmp_path / "metrics")
    plot_training(tmp_path / "metrics", tmp_path / "out", {"formats": ["png"]}, color_index=2)
    assert seen and set(seen) == {experiment_color(style, 2)}


def test_loss_panels_have_y_labels_with_units_and_a_key_to_their_lines(tmp_path: Path, monkeypatch) -> None:
    figures = capture_figures(monkeypatch)
    write_full_metrics(tmp_path / "metrics")
    plot_training(tmp_path / "metrics", tmp_path / "out", {"formats": ["png"]})
    loss = figures["loss"]
    assert loss["ylabels"] == ["policy loss (per token)", "KL to reference (nats/token)", "entropy (nats/token)",
                               "gradient L2 norm"]
    assert loss["legends"] == ["thin: raw, per step", "thick: EMA, smoothing 0.6"]


def test_every_figure_keeps_its_legend_off_the_data_and_scores_in_percent(tmp_path: Path, monkeypatch) -> None:
    from mileage.report.plots import final_score_points, plot_final_scores

    figures = capture_figures(monkeypatch)
    write_full_metrics(tmp_path / "metrics")
    samples = [{"dataset": "aime", "rollout": r, "problem_id": f"p{p}", "reward": float(p % 2)}
               for r in (0, 4, 8) for p in range(6)]
    plot_training(tmp_path / "metrics", tmp_path / "out", {"formats": ["png"]}, base={"aime": (0.1, 0.0, 0.2)},
                  final={"aime": (0.5, 0.4, 0.6)}, final_k=8, eval_k=4, eval_samples=samples)
    plot_summary(make_summary(), tmp_path / "out", {"formats": ["png"]})
    entries = [("base model", "0.55", final_score_points(make_summary(), "base")),
               ("final checkpoint", (0.1, 0.4, 0.7), final_score_points(make_summary()))]
    plot_final_scores(entries, tmp_path / "out", {"formats": ["png"]}, dataset="arith-eval")
    assert set(figures) == {*TRAINING_FIGURES, "pass_at_k", "final_scores"}
    for name, figure in figures.items():
        assert figure["legends"], f"{name}: no legend"
        assert not figure["overlaps"], f"{name}: a legend covers an axes"
    for name in ("eval", "pass_at_k", "final_scores"):  # scores as the tables print them: percent, from 0
        ticks = [t for t in figures[name]["yticklabels"][0] if t]
        assert ticks[0] == "0" and float(ticks[-1].replace("−", "-")) > 1, (name, ticks)
        assert figures[name]["ylims"][0][0] == 0.0 and figures[name]["ylims"][0][1] <= 1.02
        assert figures[name]["ylabels"][0].endswith("(%)")
    assert figures["pass_at_k"]["titles"] == ["arith-eval"] and figures["final_scores"]["titles"] == ["arith-eval"]

