"""Paper-ready figures of one experiment: training curves from `metrics/*.tsv`, pass@k from `summary.json`.

Every figure is written as each of the style's formats (PDF + PNG by default) through `style.save_figure`.
A metric that was never logged skips its figure (with a logged note) rather than failing the rule: a run
without KL loss or without in-training eval is normal.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgb
from matplotlib.ticker import MaxNLocator

from mileage.metrics.tables import MetricTableError, load_table
from mileage.report.seed_bands import across_seeds, band_label  # noqa: F401 (re-exported)
from mileage.report.style import (
    apply_style,
    is_number,
    legend_outside,
    new_figure,
    palette_colors,
    save_figure,
    score_axis,
    smooth,
)

log = logging.getLogger(__name__)

# First column of each table, per docs/contracts.md.
STEP_KEYS: dict[str, str] = {
    "rollout": "rollout/step",
    "train": "train/step",
    "perf": "rollout/step",
    "eval": "eval/step",
}

# miles logs the policy's entropy as train/entropy_loss: the panel says what it shows. (column, title, y label):
# losses and entropy are per-token means (natural log, so nats); the gradient norm is the global L2 norm.
LOSS_PANELS: tuple[tuple[str, str, str], ...] = (
    ("train/loss", "loss", "policy loss (per token)"),
    ("train/kl_loss", "KL loss", "KL to reference (nats/token)"),
    ("train/entropy_loss", "entropy", "entropy (nats/token)"),
    ("train/grad_norm", "grad norm", "gradient L2 norm"),
)
# A loss panel whose |value| stays below this is not drawn (it would show float noise at a 1e-8 scale).
NUMERICALLY_ZERO = 1e-6
ZERO_CHECKED = frozenset({"train/loss", "train/kl_loss"})

# `eval/<dataset>` is avg@k; `eval/<dataset>-pass@N` and `eval/<dataset>/...` are other statistics.
_EVAL_SCORE_COLUMN = re.compile(r"^eval/[^/@]+$")
_PASS_AT = re.compile(r"^pass@(\d+)$")


# A metrics TSV that does not follow docs/contracts.md (wrong step column, non-numeric cell).
MetricsTableError = MetricTableError


class SummaryError(ValueError):
    """A summary.json does not have the shape docs/contracts.md gives."""


# ---------------------------------------------------------------------------------------------- tables


def read_metric_table(path: str | os.PathLike, step_key: str | None = None) -> pd.DataFrame:
    """Read a wide metrics TSV (NaN = not logged), sorted by its step column.

    Parsing is `mileage.metrics.tables.load_table`'s; on top, a missing or zero-byte file reads as an empty
    table (a log import may lack a kind), and `step_key`, when given, must be the first column.
    """
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame(columns=[step_key] if step_key else [])
    if step_key is not None:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline().rstrip("\n").split("\t")[0]
        if first != step_key:
            raise MetricsTableError(f"{path}:1: first column must be {step_key!r}, found {first!r}")
    table = load_table(path)
    if len(table.columns):
        table = table.sort_values(table.columns[0], kind="stable").reset_index(drop=True)
    return table


def read_metrics(metrics_dir: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """The four tables of a `metrics/` directory, keyed by kind (`rollout`, `train`, `perf`, `eval`)."""
    metrics_dir = Path(metrics_dir)
    return {kind: read_metric_table(metrics_dir / f"{kind}.tsv", key) for kind, key in STEP_KEYS.items()}


def metric_series(table: pd.DataFrame, column: str) -> pd.Series:
    """`column` indexed by the table's step, with never-logged steps dropped (empty if absent)."""
    if column not in table.columns or len(table.columns) == 0:
        return pd.Series(dtype=float)
    step = table.columns[0]
    series = table.set_index(step)[column].dropna()
    series.index = series.index.astype(float)
    return series


def eval_score_columns(table: pd.DataFrame) -> list[str]:
    """The `eval/<dataset>` columns (avg@k per dataset) that hold at least one value."""
    return [c for c in table.columns[1:] if _EVAL_SCORE_COLUMN.match(c) and table[c].notna().any()]


# ---------------------------------------------------------------------------------------------- drawing


def _integer_steps(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))


def draw_raw_and_smoothed(
    ax: Axes, series: pd.Series, style: dict[str, Any], color: Any, label: str | None = None
) -> None:
    """Raw values as a thin faint line and the EMA on top (no band: one run has no interval to show)."""
    x = series.index.to_numpy(dtype=float)
    y = series.to_numpy(dtype=float)
    smoothed = smooth(series, style["smoothing"]).to_numpy(dtype=float)
    marker = "o" if len(series) == 1 else None  # a single point would draw nothing as a line
    ax.plot(x, y, color=color, linewidth=0.6, alpha=0.35, marker=marker, markersize=2.5)
    ax.plot(x, smoothed, color=color, linewidth=1.4, label=label, marker=marker, markersize=2.5)


def draw_curve(ax: Axes, series: list[pd.Series], style: dict[str, Any], color: Any, label: str | None = None,
               smoothed: bool = True) -> bool:
    """One run: raw and smoothed. Several seeds: the mean of the seeds' (smoothed) curves with a band of the 95%
    interval across seeds. Returns whether a band was drawn (the caller's legend names it)."""
    series = [s for s in series if not s.empty]
    if len(series) == 1:
        if smoothed:
            draw_raw_and_smoothed(ax, series[0], style, color, label=label)
        else:
            ax.plot(series[0].index, series[0].values, color=color, linewidth=1.2, label=label)
        return False
    curves = [smooth(s, style["smoothing"]) if smoothed else s.astype(float) for s in series]
    stats = across_seeds(curves)
    x = stats.index.to_numpy(dtype=float)
    ax.fill_between(x, stats["low"].to_numpy(dtype=float), stats["high"].to_numpy(dtype=float), color=color,
                    alpha=0.22, linewidth=0)
    ax.plot(x, stats["mean"].to_numpy(dtype=float), color=color, linewidth=1.4, label=label)
    return True


def _tint(color: Any, amount: float = 0.45) -> tuple[float, float, float]:
    """`color` mixed with white by `amount`: a light but opaque fill."""
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _skip(name: str, reason: str) -> list[Path]:
    log.info("figure %r skipped: %s", name, reason)
    return []


def _series(runs: list[dict[str, pd.DataFrame]], kind: str, column: str) -> list[pd.Series]:
    return [s for s in (metric_series(tables[kind], column) for tables in runs) if not s.empty]


def _band_handle(color: Any) -> Any:
    from matplotlib.patches import Patch

    return Patch(facecolor=color, alpha=0.22, linewidth=0)


def curve_key(series: list[pd.Series], style: dict[str, Any], color: Any) -> tuple[list[Any], list[str]]:
    """Legend entries that say what the lines of draw_curve are: thin raw and thick smoothed for one run, the mean
    and its across-seed band for several."""
    from matplotlib.lines import Line2D

    ema = f"EMA, smoothing {style['smoothing']:g}" if style["smoothing"] > 0 else "no smoothing"
    if len([s for s in series if not s.empty]) > 1:
        n = len([s for s in series if not s.empty])
        return ([Line2D([], [], color=color, linewidth=1.4), _band_handle(color)],
                [f"mean of {n} seeds ({ema})", band_label(n)])
    return ([Line2D([], [], color=color, linewidth=0.6, alpha=0.35), Line2D([], [], color=color, linewidth=1.4)],
            ["thin: raw, per step", f"thick: {ema}"])


def plot_reward(runs: list[dict[str, pd.DataFrame]], outdir: Path, style: dict[str, Any], color: Any,
                dataset: str | None = None) -> list[Path]:
    series = _series(runs, "rollout", "rollout/raw_reward")
    if not series:
        return _skip("reward", "rollout/raw_reward not logged")
    fig, ax = new_figure(style)
    draw_curve(ax, series, style, color)
    ax.set_xlabel("rollout")
    ax.set_ylabel("reward (mean over samples)")
    if dataset:
        ax.set_title(f"training set {dataset}", loc="left")
    _integer_steps(ax)
    legend_outside(fig, *curve_key(series, style, color))
    return save_figure(fig, outdir, "reward", style["formats"])


def eval_intervals(samples: list[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, dict[int, tuple]]:
    """{dataset: {rollout: (avg, low, high)}}: each in-training evaluation's mean reward with a 95% bootstrap
    interval over problems (mileage.evaluation.stats.bootstrap_ci), from its per-sample records."""
    from mileage.evaluation.stats import bootstrap_ci

    groups: dict[tuple[str, int], dict[str, list[float]]] = {}
    for row in samples:
        key = (str(row["dataset"]), int(row["rollout"]))
        groups.setdefault(key, {}).setdefault(str(row["problem_id"]), []).append(float(row["reward"]))
    out: dict[str, dict[int, tuple]] = {}
    for (dataset, rollout), problems in sorted(groups.items()):
        per_problem = np.array([np.mean(v) for v in problems.values()])
        low, high = bootstrap_ci(per_problem, n_boot=n_boot, seed=seed)[0]
        out.setdefault(dataset, {})[rollout] = (float(per_problem.mean()), float(low), float(high))
    return out


def last_step(runs: list[dict[str, pd.DataFrame]]) -> float | None:
    """The last rollout any table of the runs logged: where the final checkpoint sits on a curve's step axis."""
    steps = [float(t[kind].iloc[:, 0].max()) for t in runs for kind in ("rollout", "eval")
             if len(t[kind].columns) and len(t[kind])]
    return max(steps) if steps else None


def eval_panels(runs: list[dict[str, pd.DataFrame]], color: Any, eval_k: int | None,
                base: dict[str, tuple] | None = None, final: dict[str, tuple] | None = None,
                final_k: int | dict[str, int] | None = None, intervals: dict[str, dict[int, tuple]] | None = None,
                label: str | None = None) -> dict[str, Any]:
    """{dataset: EvalCurve} of one experiment: its in-training eval per dataset with the stand-alone base and final
    evaluations of that dataset (`base`, `final`: {dataset: (value, low, high)}; their k `final_k`, one or per
    dataset). A dataset evaluated only stand-alone still gets its axis (base and final points)."""
    from mileage.report.curves import EvalCurve

    columns = sorted({c for tables in runs for c in eval_score_columns(tables["eval"])})
    datasets = [c.removeprefix("eval/") for c in columns]
    datasets += [d for d in dict.fromkeys([*(base or {}), *(final or {})]) if d not in datasets]
    end = last_step(runs)
    return {dataset: EvalCurve(color=color, series=_series(runs, "eval", f"eval/{dataset}"), k=eval_k,
                               base=(base or {}).get(dataset), final=(final or {}).get(dataset),
                               final_k=final_k.get(dataset) if isinstance(final_k, dict) else final_k,
                               final_step=end, intervals=(intervals or {}).get(dataset, {}), label=label)
            for dataset in datasets}


def plot_eval(runs: list[dict[str, pd.DataFrame]], outdir: Path, style: dict[str, Any], eval_k: int | None,
              color: Any, base: dict[str, tuple] | None = None,
              intervals: dict[str, dict[int, tuple]] | None = None, final: dict[str, tuple] | None = None,
              final_k: int | dict[str, int] | None = None) -> list[Path]:
    """The learning curve (mileage.report.curves): in-training avg@`eval_k` per dataset in the experiment's colour,
    the stand-alone base (step 0) and final evaluations (avg@`final_k`) as hollow markers. Error bars: one run's 95%
    bootstrap interval over problems (`intervals`); seeds: a band of the 95% interval across seeds."""
    from mileage.report.curves import plot_learning_curves

    if not any(eval_score_columns(tables["eval"]) for tables in runs):
        return _skip("eval", "no eval/<dataset> column logged")
    panels = eval_panels(runs, color, eval_k, base, final, final_k, intervals)
    return plot_learning_curves({dataset: [curve] for dataset, curve in panels.items()}, outdir, style)


def loss_panels(runs: list[dict[str, pd.DataFrame]]) -> list[tuple[str, str, str]]:
    """The panels worth drawing: logged, and for a loss not numerically zero throughout (an on-policy GRPO loss
    is ~1e-8 by construction; a KL loss at coefficient 0 is 0)."""
    panels = []
    for column, title, ylabel in LOSS_PANELS:
        series = _series(runs, "train", column)
        if not series:
            continue
        if column in ZERO_CHECKED and all((s.abs() < NUMERICALLY_ZERO).all() for s in series):
            log.info("panel %r of figure 'loss' left out: |%s| < %g throughout", title, column, NUMERICALLY_ZERO)
            continue
        panels.append((column, title, ylabel))
    return panels


def plot_loss(runs: list[dict[str, pd.DataFrame]], outdir: Path, style: dict[str, Any], color: Any) -> list[Path]:
    panels = loss_panels(runs)
    if not panels:
        return _skip("loss", "none of " + ", ".join(c for c, *_ in LOSS_PANELS) + " logged (or all numerically 0)")
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    wide = {**style, "width_in": style["page_width_in"]} if ncols == 2 else style
    fig, axes = new_figure(wide, nrows=nrows, ncols=ncols, height_scale=0.85 * nrows if nrows > 1 else 1.0,
                           sharex=False, squeeze=False)
    for ax, (column, title, ylabel) in zip(axes.flat, panels):
        draw_curve(ax, _series(runs, "train", column), style, color)
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=4))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()  # an odd number of panels: no empty axes
    for ax in axes[-1]:
        ax.set_xlabel("train step")
    first = _series(runs, "train", panels[0][0])
    legend_outside(fig, *curve_key(first, style, color))
    return save_figure(fig, outdir, "loss", style["formats"])


def plot_response_length(runs: list[dict[str, pd.DataFrame]], outdir: Path, style: dict[str, Any],
                         color: Any) -> list[Path]:
    series = _series(runs, "rollout", "rollout/response_lengths")
    if not series:
        return _skip("response_length", "rollout/response_lengths not logged")
    fig, ax = new_figure(style)
    draw_curve(ax, series, style, color)
    ax.set_xlabel("rollout")
    ax.set_ylabel("response length (tokens, mean)")
    _integer_steps(ax)
    legend_outside(fig, *curve_key(series, style, color))
    return save_figure(fig, outdir, "response_length", style["formats"])


def _mean_series(series: list[pd.Series]) -> pd.Series:
    if not series:
        return pd.Series(dtype=float)
    return series[0] if len(series) == 1 else across_seeds(series)["mean"]


def plot_step_time(runs: list[dict[str, pd.DataFrame]], outdir: Path, style: dict[str, Any], color: Any) -> list[Path]:
    total = _mean_series(_series(runs, "perf", "perf/step_time"))
    rollout = _mean_series(_series(runs, "perf", "perf/rollout_time"))
    train = _mean_series(_series(runs, "perf", "perf/actor_train_time"))
    if total.empty and rollout.empty and train.empty:
        return _skip("step_time", "none of perf/step_time, perf/rollout_time, perf/actor_train_time logged")
    fig, ax = new_figure(style)
    # Two tints of the experiment's colour: the phases are parts of one experiment, not other experiments.
    shades = (_tint(color, 0.65), _tint(color, 0.25))
    if not rollout.empty and not train.empty:
        # Stack the two phases on the steps where both were timed; step_time on top shows the overhead.
        both = pd.concat({"rollout": rollout, "train": train}, axis=1).dropna()
        x = both.index.to_numpy(dtype=float)
        ax.stackplot(x, both["rollout"], both["train"], colors=list(shades), labels=["rollout", "train"], linewidth=0)
    else:
        for series, label, shade in ((rollout, "rollout", shades[0]), (train, "train", shades[1])):
            if not series.empty:
                ax.plot(series.index, series.values, color=shade, linewidth=1.2, label=label)
    if not total.empty:
        ax.plot(total.index, total.values, color="0.15", linewidth=1.0, label="step")
    ax.set_xlabel("rollout" if len(runs) == 1 else f"rollout (mean of {len(runs)} seeds)")
    ax.set_ylabel("time (seconds)")
    ax.set_ylim(bottom=0)
    _integer_steps(ax)
    # Above the axes: the stacked areas fill the plot, so a legend inside would hide data.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, borderaxespad=0.2, handlelength=1.5)
    return save_figure(fig, outdir, "step_time", style["formats"])


def experiment_color(style: dict[str, Any], index: int) -> Any:
    """The colour of the experiment at `index` in the experiments' order: the same in every figure (the comparison
    takes colour i of the same palette for its i-th experiment)."""
    return palette_colors(style, index + 1)[index]


def plot_training(
    metrics_dir: str | os.PathLike | list,
    outdir: str | os.PathLike,
    style: dict[str, Any] | None = None,
    eval_k: int | None = None,
    color_index: int = 0,
    base: dict[str, tuple] | None = None,
    eval_samples: list[dict] | None = None,
    final: dict[str, tuple] | None = None,
    final_k: int | dict[str, int] | None = None,
    train_dataset: str | None = None,
) -> list[Path]:
    """Write reward, eval, loss, response_length and step_time figures; returns the files written.

    `metrics_dir`: one run's metrics directory, or a list of them (replicate seeds: curves are the mean with a
    band of the 95% interval across seeds). `eval_k` (samples per in-training eval prompt) labels the eval
    curve as avg@k; `base` and `final` ({dataset: (value, low, high)}, the stand-alone evaluations, avg@`final_k`)
    are its points at step 0 and at the last step; `eval_samples` (one run's in-training eval records) give its
    error bars; `train_dataset` names the reward figure's data. Figures whose metrics were never logged are
    skipped, so an empty run gives an empty list.
    """
    resolved = apply_style(style)
    color = experiment_color(resolved, color_index)
    dirs = metrics_dir if isinstance(metrics_dir, list) else [metrics_dir]
    runs = [read_metrics(d) for d in dirs]
    intervals = eval_intervals(eval_samples) if eval_samples and len(runs) == 1 else None
    outdir = Path(outdir)
    written: list[Path] = []
    written += plot_reward(runs, outdir, resolved, color, dataset=train_dataset)
    written += plot_eval(runs, outdir, resolved, eval_k, color, base=base, intervals=intervals, final=final,
                         final_k=final_k)
    written += plot_loss(runs, outdir, resolved, color)
    written += plot_response_length(runs, outdir, resolved, color)
    written += plot_step_time(runs, outdir, resolved, color)
    return written


def check_summary(summary: Any, source: str = "summary") -> dict[str, Any]:
    """Check the shape of a summary.json (docs/contracts.md); raises SummaryError naming the key."""
    if not isinstance(summary, dict):
        raise SummaryError(f"{source}: expected a JSON object, got {type(summary).__name__}")
    for key in ("experiment", "dataset", "k"):
        if key not in summary:
            raise SummaryError(f"{source}: missing key {key!r}")
    sides = [side for side in ("base", "final") if side in summary]
    if not sides:
        raise SummaryError(f"{source}: needs at least one of 'base', 'final'")
    for side in sides:
        block = summary[side]
        if not isinstance(block, dict):
            raise SummaryError(f"{source}: {side!r} must be an object")
        metrics = block.get("metrics")
        if not isinstance(metrics, dict):
            raise SummaryError(f"{source}: missing key '{side}.metrics'")
        for name, entry in metrics.items():
            if not isinstance(entry, dict) or not is_number(entry.get("value")):
                raise SummaryError(f"{source}: '{side}.metrics.{name}.value' must be a number")
            ci = entry.get("ci95")
            if ci is not None and (not isinstance(ci, (list, tuple)) or len(ci) != 2):
                raise SummaryError(f"{source}: '{side}.metrics.{name}.ci95' must be [low, high]")
        per_problem = block.get("per_problem", [])
        if not isinstance(per_problem, list):
            raise SummaryError(f"{source}: '{side}.per_problem' must be a list")
        for i, row in enumerate(per_problem):
            if not isinstance(row, dict) or "problem_id" not in row:
                raise SummaryError(f"{source}: '{side}.per_problem[{i}]' lacks 'problem_id'")
    return summary


def pass_at_k_points(block: dict[str, Any]) -> list[tuple[int, float, float, float]]:
    """(k, value, ci_low, ci_high) for every pass@k metric of one side, sorted by k."""
    points = []
    for name, entry in block.get("metrics", {}).items():
        match = _PASS_AT.match(name)
        if not match:
            continue
        value = float(entry["value"])
        low, high = entry.get("ci95") or (value, value)
        low = value if low is None else float(low)
        high = value if high is None else float(high)
        points.append((int(match.group(1)), value, low, high))
    return sorted(points)


def plot_summary(
    summary: dict[str, Any], outdir: str | os.PathLike, style: dict[str, Any] | None = None, color_index: int = 0,
    name: str = "pass_at_k",
) -> list[Path]:
    """Write `<name>.<fmt>` (pass_at_k): base (grey) vs final (the experiment's colour) unbiased pass@k (percent)
    over k with their 95% intervals as error bars, titled with the dataset."""
    check_summary(summary)
    resolved = apply_style(style)
    colors = ["0.55", experiment_color(resolved, color_index)]
    sides = [(side, pass_at_k_points(summary[side])) for side in ("base", "final") if side in summary]
    sides = [(side, points) for side, points in sides if points]
    if not sides:
        return _skip("pass_at_k", "summary has no pass@k metrics")
    fig, ax = new_figure(resolved)
    all_k: set[int] = set()
    for color, (side, points) in zip(colors, sides):
        ks = np.array([p[0] for p in points], dtype=float)
        values = np.array([p[1] for p in points])
        errors = np.array([[p[1] - p[2] for p in points], [p[3] - p[1] for p in points]]).clip(min=0)
        ax.errorbar(ks, values, yerr=errors, color=color, marker="o", markersize=3, linewidth=1.2,
                    capsize=2, elinewidth=0.8, label=_SIDE_LABELS[side])
        all_k.update(int(k) for k in ks)
    ks_sorted = sorted(all_k)
    if len(ks_sorted) > 1 and ks_sorted[-1] / ks_sorted[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ks_sorted if len(ks_sorted) <= 8 else _thin_ticks(ks_sorted))
    ax.set_xticklabels([str(k) for k in (ks_sorted if len(ks_sorted) <= 8 else _thin_ticks(ks_sorted))])
    ax.minorticks_off()
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k (%)")
    ax.set_title(f"{summary['dataset']}", loc="left")
    score_axis(ax)
    handles, labels = ax.get_legend_handles_labels()
    legend_outside(fig, handles, labels, title=f"error bars: {summary_interval_note(summary)}")
    return save_figure(fig, Path(outdir), name, resolved["formats"])


_SIDE_LABELS = {"base": "base model", "final": "final checkpoint"}


def interval_note(summaries: list[dict[str, Any]], side: str = "final") -> str:
    """What the intervals of `side` in these summaries are: a replicate aggregate's own `interval` text (its
    final scores: a two-level bootstrap over seeds and problems), otherwise one run's bootstrap over problems."""
    notes = []
    for summary in summaries:
        entry = ((summary.get(side) or {}).get("metrics") or {}).get(f"avg@{summary.get('k')}") or {}
        seeds = summary.get("seeds") or []
        text = entry.get("interval") if side == "final" and len(seeds) > 1 else None
        text = text or ("95% CI across seeds" if side == "final" and len(seeds) > 1
                        else "95% bootstrap CI over problems")
        if text not in notes:
            notes.append(text)
    if len(notes) == 1:
        return notes[0]
    return "; ".join(f"{note} ({'seeds' if 'seed' in note else 'one run'})" for note in notes)


def summary_interval_note(summary: dict[str, Any]) -> str:
    """The intervals of one summary's figures: the same for both sides, or each side's."""
    final, base = interval_note([summary], "final"), interval_note([summary], "base")
    return final if final == base else f"final: {final}; base: {base}"


def final_score_points(summary: dict[str, Any], side: str = "final") -> list[tuple[str, float, float | None, float | None]]:
    """(metric, value, low, high) of the headline metrics (mileage.evaluation.stats.headline_metrics) that one side
    of a summary has."""
    from mileage.evaluation.stats import headline_metrics

    out = []
    for metric in headline_metrics(int(summary["k"])):
        entry = (summary.get(side) or {}).get("metrics", {}).get(metric)
        if entry is None:
            continue
        low, high = entry.get("ci95") or (None, None)
        out.append((metric, float(entry["value"]), low, high))
    return out


def plot_final_scores(entries: list[tuple[str, Any, list[tuple[str, float, Any, Any]]]], outdir: str | os.PathLike,
                      style: dict[str, Any] | None = None, name: str = "final_scores",
                      note: str = "95% CI", dataset: str | None = None) -> list[Path]:
    """Estimate and interval (percent, as the tables) per entry and metric: `entries` are (label, colour,
    final_score_points(...)), one group of points per metric along x, one colour per entry (an experiment, or
    base and final of one). The legend sits below the axes; `dataset` titles the figure."""
    resolved = apply_style(style)
    entries = [e for e in entries if e[2]]
    if not entries:
        return _skip(name, "no final scores")
    metrics = list(dict.fromkeys(m for _, _, points in entries for m, *_ in points))
    wide = len(entries) > 3 or len(metrics) > 4  # two columns when one would crowd the labels
    fig, ax = new_figure({**resolved, "width_in": resolved["page_width_in"]} if wide else resolved)
    width = 0.7 / len(entries)
    for i, (label, color, points) in enumerate(entries):
        offset = (i - (len(entries) - 1) / 2) * width
        for metric, value, low, high in points:
            x = metrics.index(metric) + offset
            err = None if low is None else [[max(value - low, 0.0)], [max(high - value, 0.0)]]
            ax.errorbar([x], [value], yerr=err, color=color, marker="o", markersize=3.5, capsize=2,
                        elinewidth=0.9, linestyle="none", label=label if metric == points[0][0] else None)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics)
    ax.set_xlim(-0.5, len(metrics) - 0.5)
    ax.set_ylabel("score (%)")
    if dataset:
        ax.set_title(dataset, loc="left")
    ax.grid(False, axis="x")
    score_axis(ax)
    handles, labels = ax.get_legend_handles_labels()
    legend_outside(fig, handles, labels, title=f"error bars: {note}")
    return save_figure(fig, Path(outdir), name, resolved["formats"])


def _thin_ticks(ks: list[int]) -> list[int]:
    """Powers of two (and the last k) when there are too many k values to label."""
    chosen = [k for k in ks if k & (k - 1) == 0]
    if ks[-1] not in chosen:
        chosen.append(ks[-1])
    return chosen if len(chosen) <= 8 else chosen[:: math.ceil(len(chosen) / 8)]


def load_summary(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a summary.json; raises SummaryError naming the file."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SummaryError(f"{path}: summary file not found") from exc
    except json.JSONDecodeError as exc:
        raise SummaryError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from exc
    return check_summary(summary, source=str(path))
