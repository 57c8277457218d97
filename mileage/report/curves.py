"""Learning curves: the in-training evaluation score per step of one experiment or of several overlaid.

One metric and one k per axis: an axis per evaluation dataset, avg@k (percent) along y. The in-training evaluation
is drawn as a line (its own k, the eval's samples per prompt); the stand-alone evaluations of the base model (at
step 0) and of the final checkpoint (at the last step) as hollow markers with their own k, so a reader sees both
numbers and which is which when the two ks differ. Seeds give the mean curve with a band of the 95% interval
across seeds; one run gives error bars of the 95% bootstrap interval over problems where its per-sample records
are at hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mileage.report.seed_bands import across_seeds, band_label
from mileage.report.style import legend_outside, new_figure, save_figure, score_axis

BAND_ALPHA = 0.2


@dataclass
class EvalCurve:
    """What one experiment contributes to a learning-curve axis (one dataset)."""

    color: Any
    series: list[pd.Series]  # in-training avg@k per step, one per seed (one for a single run)
    k: int | None = None  # the in-training eval's samples per problem
    base: tuple[float, float, float] | None = None  # stand-alone evaluation of the base model: value, low, high
    final: tuple[float, float, float] | None = None  # stand-alone evaluation of the final checkpoint
    final_k: int | None = None  # samples per problem of the stand-alone evaluations
    final_step: float | None = None  # where the final checkpoint sits on the step axis
    intervals: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # one run's bootstrap CI per step
    label: str | None = None  # legend entry (the experiment), None in an experiment's own figure
    dodge: float = 0.0  # x offset of this experiment's points, so overlaid error bars stay apart


def curve_stats(curve: EvalCurve) -> pd.DataFrame:
    """Per step: `mean`, `low`, `high` (the across-seed 95% interval, or one run's bootstrap interval; NaN when
    unknown)."""

    series = [s for s in curve.series if not s.empty]
    if not series:
        return pd.DataFrame(columns=["mean", "low", "high"], dtype=float)
    if len(series) > 1:
        return across_seeds(series)[["mean", "low", "high"]]
    points = series[0].astype(float)
    low = [curve.intervals.get(int(s), (math.nan,) * 3)[1] for s in points.index]
    high = [curve.intervals.get(int(s), (math.nan,) * 3)[2] for s in points.index]
    return pd.DataFrame({"mean": points.to_numpy(), "low": low, "high": high}, index=points.index)


def _errorbars(ax: Axes, x: np.ndarray, stats: pd.DataFrame, **kwargs: Any) -> None:
    y = stats["mean"].to_numpy(dtype=float)
    err = np.array([y - stats["low"].to_numpy(dtype=float), stats["high"].to_numpy(dtype=float) - y])
    err = np.nan_to_num(err, nan=0.0).clip(min=0)
    ax.errorbar(x, y, yerr=err, capsize=2, elinewidth=0.8, **kwargs)


def _point(ax: Axes, x: float, value: tuple[float, float, float], color: Any, marker: str) -> None:
    v, lo, hi = value
    ax.errorbar([x], [v], yerr=[[max(v - lo, 0.0)], [max(hi - v, 0.0)]], color=color, marker=marker, markersize=5,
                markerfacecolor="white", markeredgewidth=1.1, linestyle="none", capsize=2, elinewidth=0.8, zorder=3)


def draw_eval_axis(ax: Axes, curves: list[EvalCurve]) -> dict[str, bool]:
    """Draw every experiment's curve on one dataset's axis; returns what was drawn (`band`, `bars`, `base`,
    `final`) so the legend keys only what is there."""
    drawn = {"band": False, "bars": False, "base": False, "final": False}
    for curve in curves:
        stats = curve_stats(curve)
        if not stats.empty:
            x = stats.index.to_numpy(dtype=float) + curve.dodge
            seeds = len([s for s in curve.series if not s.empty])
            if seeds > 1:
                ax.fill_between(x, stats["low"].to_numpy(dtype=float), stats["high"].to_numpy(dtype=float),
                                color=curve.color, alpha=BAND_ALPHA, linewidth=0)
                ax.plot(x, stats["mean"].to_numpy(dtype=float), color=curve.color, linewidth=1.3, marker="o",
                        markersize=2.5)
                drawn["band"] = True
            else:
                _errorbars(ax, x, stats, color=curve.color, linewidth=1.3, marker="o", markersize=2.5)
                drawn["bars"] |= bool(stats["low"].notna().any())
        if curve.base is not None:
            _point(ax, curve.dodge, curve.base, curve.color, "o")
            drawn["base"] = True
        if curve.final is not None and curve.final_step is not None:
            _point(ax, float(curve.final_step) + curve.dodge, curve.final, curve.color, "D")
            drawn["final"] = True
    return drawn


def _k_text(ks: set[int | None]) -> str:
    ks.discard(None)
    return f"avg@{ks.pop()}" if len(ks) == 1 else "avg@k"


def eval_key(curves: list[EvalCurve], drawn: dict[str, bool]) -> tuple[list[Any], list[str]]:
    """Legend entries for the line, its interval and the stand-alone points, each naming its k."""

    seed_counts = {len([s for s in c.series if not s.empty]) for c in curves}
    n_seeds = max(seed_counts, default=0)
    grey = "0.35"
    in_training = _k_text({c.k for c in curves})
    stand_alone = _k_text({c.final_k for c in curves})
    handles: list[Any] = [Line2D([], [], color=grey, marker="o", markersize=2.5, linewidth=1.3)]
    labels = [f"in-training eval, {in_training}" + (" (mean of seeds)" if drawn["band"] and len(seed_counts) > 1
                                                     else f" (mean of {n_seeds} seeds)" if drawn["band"] else "")]
    if drawn["band"]:
        handles.append(Patch(facecolor=grey, alpha=BAND_ALPHA + 0.1, linewidth=0))
        labels.append(band_label(seed_counts))
    if drawn["bars"]:
        handles.append(Line2D([], [], color=grey, marker="|", markersize=6, linewidth=0))
        labels.append("95% bootstrap CI over problems")
    if drawn["base"]:
        handles.append(Line2D([], [], color=grey, marker="o", markersize=5, markerfacecolor="white", linewidth=0))
        labels.append(f"base model, stand-alone eval, {stand_alone}")
    if drawn["final"]:
        handles.append(Line2D([], [], color=grey, marker="D", markersize=5, markerfacecolor="white", linewidth=0))
        labels.append(f"final checkpoint, stand-alone eval, {stand_alone}")
    return handles, labels


def plot_learning_curves(panels: dict[str, list[EvalCurve]], outdir: Path, style: dict[str, Any],
                         name: str = "eval") -> list[Path]:
    """`panels`: {dataset: curves}: one axis per dataset, titled with it; the legend (below the axes) names the
    experiments by colour and keys the line, interval and stand-alone markers with their ks."""
    panels = {dataset: curves for dataset, curves in panels.items() if curves}
    if not any(not s.empty for curves in panels.values() for c in curves for s in c.series):
        return []  # no in-training evaluation at all: no learning curve (the final scores are their own figure)
    ncols = min(len(panels), 2)
    nrows = math.ceil(len(panels) / ncols)
    experiments = {c.label: c.color for curves in panels.values() for c in curves if c.label}
    # Page width for several panels, or for many experiments (their legend would dwarf one column's plot).
    wide = {**style, "width_in": style["page_width_in"]} if ncols > 1 or len(experiments) > 3 else style
    fig, axes = new_figure(wide, nrows=nrows, ncols=ncols, squeeze=False, sharey=True,
                           height_scale=1.0 if nrows == 1 else 0.85 * nrows)
    drawn = {"band": False, "bars": False, "base": False, "final": False}
    for ax, (dataset, curves) in zip(axes.flat, panels.items()):
        span = max([c.final_step or 0.0 for c in curves] + [float(s.index.max()) for c in curves for s in c.series
                                                              if not s.empty] + [1.0])
        for i, curve in enumerate(curves):  # several experiments: each a little aside, centred on the step
            curve.dodge = (i - (len(curves) - 1) / 2) * 0.008 * span
        for key, value in draw_eval_axis(ax, curves).items():
            drawn[key] |= value
        ks = _k_text({c.k for c in curves} | {c.final_k for c in curves})
        ax.set_title(f"{dataset}", loc="left")
        ax.set_xlabel("rollout (0 = base model)" if drawn["base"] else "rollout")
        if list(axes.flat).index(ax) % ncols == 0:
            ax.set_ylabel(f"{ks} (%)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    for ax in list(axes.flat)[len(panels):]:
        ax.remove()
    for ax in list(axes.flat)[: len(panels)]:
        score_axis(ax)
    handles, labels = [], []
    for label, color in experiments.items():
        handles.append(Line2D([], [], color=color, linewidth=2.5))
        labels.append(label)
    key_handles, key_labels = eval_key([c for curves in panels.values() for c in curves], drawn)
    legend_outside(fig, handles + key_handles, labels + key_labels)
    return save_figure(fig, outdir, name, style["formats"])
