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
from mileage.report.style import (
    apply_style,
    is_number,
    new_figure,
    palette_colors,
    save_figure,
    smooth,
    smooth_std,
)

log = logging.getLogger(__name__)

# First column of each table, per docs/contracts.md.
STEP_KEYS: dict[str, str] = {
    "rollout": "rollout/step",
    "train": "train/step",
    "perf": "rollout/step",
    "eval": "eval/step",
}

LOSS_PANELS: tuple[tuple[str, str], ...] = (
    ("train/loss", "loss"),
    ("train/kl_loss", "KL loss"),
    ("train/entropy_loss", "entropy loss"),
    ("train/grad_norm", "grad norm"),
)

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
    ax: Axes, series: pd.Series, style: dict[str, Any], color: Any, label: str | None = None, band: bool = True
) -> None:
    """Raw values as a thin faint line, the EMA on top, and +-1 EMA std as a band."""
    x = series.index.to_numpy(dtype=float)
    y = series.to_numpy(dtype=float)
    smoothed = smooth(series, style["smoothing"]).to_numpy(dtype=float)
    marker = "o" if len(series) == 1 else None  # a single point would draw nothing as a line
    ax.plot(x, y, color=color, linewidth=0.6, alpha=0.35, marker=marker, markersize=2.5)
    if band and len(series) > 1:
        spread = smooth_std(series, style["smoothing"]).to_numpy(dtype=float)
        ax.fill_between(x, smoothed - spread, smoothed + spread, color=color, alpha=0.18, linewidth=0)
    ax.plot(x, smoothed, color=color, linewidth=1.4, label=label, marker=marker, markersize=2.5)


def _tint(color: Any, amount: float = 0.45) -> tuple[float, float, float]:
    """`color` mixed with white by `amount`: a light but opaque fill."""
    r, g, b = to_rgb(color)
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount)


def _draw_not_logged(ax: Axes, title: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="0.45")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _skip(name: str, reason: str) -> list[Path]:
    log.info("figure %r skipped: %s", name, reason)
    return []


def plot_reward(tables: dict[str, pd.DataFrame], outdir: Path, style: dict[str, Any]) -> list[Path]:
    series = metric_series(tables["rollout"], "rollout/raw_reward")
    if series.empty:
        return _skip("reward", "rollout/raw_reward not logged")
    fig, ax = new_figure(style)
    color = style["_colors"][0]
    draw_raw_and_smoothed(ax, series, style, color, label="smoothed")
    ax.plot([], [], color=color, linewidth=0.6, alpha=0.35, label="raw")
    ax.set_xlabel("rollout")
    ax.set_ylabel("reward (mean)")
    _integer_steps(ax)
    ax.legend(loc="best")
    return save_figure(fig, outdir, "reward", style["formats"])


def plot_eval(tables: dict[str, pd.DataFrame], outdir: Path, style: dict[str, Any], eval_k: int | None) -> list[Path]:
    table = tables["eval"]
    columns = eval_score_columns(table)
    if not columns:
        return _skip("eval", "no eval/<dataset> column logged")
    fig, ax = new_figure(style)
    for color, column in zip(style["_colors"], columns):
        series = metric_series(table, column)
        ax.plot(series.index, series.values, color=color, marker="o", markersize=3, linewidth=1.2,
                label=column.removeprefix("eval/"))
    ax.set_xlabel("rollout")
    ax.set_ylabel(f"avg@{eval_k}" if eval_k else "avg@k")
    _integer_steps(ax)
    ax.legend(loc="best", title="dataset" if len(columns) > 1 else None)
    return save_figure(fig, outdir, "eval", style["formats"])


def plot_loss(tables: dict[str, pd.DataFrame], outdir: Path, style: dict[str, Any]) -> list[Path]:
    table = tables["train"]
    present = [col for col, _ in LOSS_PANELS if not metric_series(table, col).empty]
    if not present:
        return _skip("loss", "none of " + ", ".join(c for c, _ in LOSS_PANELS) + " logged")
    fig, axes = new_figure(style, nrows=2, ncols=2, height_scale=1.6, sharex=False)
    color = style["_colors"][0]
    for ax, (column, title) in zip(axes.flat, LOSS_PANELS):
        series = metric_series(table, column)
        if series.empty:
            _draw_not_logged(ax, title)
            continue
        draw_raw_and_smoothed(ax, series, style, color, band=False)
        ax.set_title(title)
        _integer_steps(ax)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=3))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    for ax in axes[1]:
        ax.set_xlabel("train step")
    return save_figure(fig, outdir, "loss", style["formats"])


def plot_response_length(tables: dict[str, pd.DataFrame], outdir: Path, style: dict[str, Any]) -> list[Path]:
    series = metric_series(tables["rollout"], "rollout/response_lengths")
    if series.empty:
        return _skip("response_length", "rollout/response_lengths not logged")
    fig, ax = new_figure(style)
    draw_raw_and_smoothed(ax, series, style, style["_colors"][1 % len(style["_colors"])])
    ax.set_xlabel("rollout")
    ax.set_ylabel("response length (tokens)")
    _integer_steps(ax)
    return save_figure(fig, outdir, "response_length", style["formats"])


def plot_step_time(tables: dict[str, pd.DataFrame], outdir: Path, style: dict[str, Any]) -> list[Path]:
    table = tables["perf"]
    total = metric_series(table, "perf/step_time")
    rollout = metric_series(table, "perf/rollout_time")
    train = metric_series(table, "perf/actor_train_time")
    if total.empty and rollout.empty and train.empty:
        return _skip("step_time", "none of perf/step_time, perf/rollout_time, perf/actor_train_time logged")
    fig, ax = new_figure(style)
    colors = style["_colors"]
    if not rollout.empty and not train.empty:
        # Stack the two phases on the steps where both were timed; step_time on top shows the overhead.
        both = pd.concat({"rollout": rollout, "train": train}, axis=1).dropna()
        x = both.index.to_numpy(dtype=float)
        # Opaque tints (not alpha) so the legend swatches match the areas they name.
        ax.stackplot(x, both["rollout"], both["train"], colors=[_tint(colors[0]), _tint(colors[1])],
                     labels=["rollout", "train"], linewidth=0)
    else:
        for series, label, color in ((rollout, "rollout", colors[0]), (train, "train", colors[1])):
            if not series.empty:
                ax.plot(series.index, series.values, color=color, linewidth=1.2, label=label)
    if not total.empty:
        ax.plot(total.index, total.values, color="0.15", linewidth=1.0, label="step")
    ax.set_xlabel("rollout")
    ax.set_ylabel("time (seconds)")
    ax.set_ylim(bottom=0)
    _integer_steps(ax)
    # Above the axes: the stacked areas fill the plot, so a legend inside would hide data.
    ax.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncols=3, borderaxespad=0.2, handlelength=1.5)
    return save_figure(fig, outdir, "step_time", style["formats"])


def plot_training(
    metrics_dir: str | os.PathLike,
    outdir: str | os.PathLike,
    style: dict[str, Any] | None = None,
    eval_k: int | None = None,
) -> list[Path]:
    """Write reward, eval, loss, response_length and step_time figures; returns the files written.

    `eval_k` (samples per eval prompt) only labels the eval axis as avg@k; figures whose metrics were never
    logged are skipped, so an empty run gives an empty list.
    """
    resolved = apply_style(style)
    resolved["_colors"] = palette_colors(resolved, 8)
    tables = read_metrics(metrics_dir)
    outdir = Path(outdir)
    written: list[Path] = []
    written += plot_reward(tables, outdir, resolved)
    written += plot_eval(tables, outdir, resolved, eval_k)
    written += plot_loss(tables, outdir, resolved)
    written += plot_response_length(tables, outdir, resolved)
    written += plot_step_time(tables, outdir, resolved)
    return written


# ---------------------------------------------------------------------------------------------- summary


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
    summary: dict[str, Any], outdir: str | os.PathLike, style: dict[str, Any] | None = None
) -> list[Path]:
    """Write `pass_at_k.<fmt>`: base vs final unbiased pass@k over k with 95% CI error bars."""
    check_summary(summary)
    resolved = apply_style(style)
    colors = palette_colors(resolved, 2)
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
                    capsize=2, elinewidth=0.8, label=side)
        all_k.update(int(k) for k in ks)
    ks_sorted = sorted(all_k)
    if len(ks_sorted) > 1 and ks_sorted[-1] / ks_sorted[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ks_sorted if len(ks_sorted) <= 8 else _thin_ticks(ks_sorted))
    ax.set_xticklabels([str(k) for k in (ks_sorted if len(ks_sorted) <= 8 else _thin_ticks(ks_sorted))])
    ax.minorticks_off()
    ax.set_xlabel("k (samples per problem)")
    ax.set_ylabel("pass@k")
    ax.legend(loc="best")
    return save_figure(fig, Path(outdir), "pass_at_k", resolved["formats"])


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
