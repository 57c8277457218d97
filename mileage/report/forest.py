"""The forest plot: every experiment's paired difference against the baseline, per headline metric.

Reads the comparison's paired rows (paired.tsv: `a`, `b`, `metric`, `estimate`, `ci95_low`, `ci95_high`, `p_value`
and, where the statistics give them, `p_holm` and `mde80`). A row against the baseline is drawn as b minus a with
the baseline as a (a row with the baseline as b is turned around), in percentage points with its 95% interval.
The marker is filled when the difference is significant after Holm's adjustment over the family of comparisons
(hollow otherwise; with no `p_holm` column the unadjusted p-value decides and the legend says so), and a grey bar
spans +-`mde80`, the smallest difference the design detects with 80% power.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.lines import Line2D

from mileage.report.markdown import format_p
from mileage.report.style import is_number, legend_outside, new_figure, save_figure

ALPHA = 0.05


class ForestError(ValueError):
    """Paired rows without the columns a forest plot needs."""


def against_baseline(pairs: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """The rows that compare an experiment with `baseline`, as `other` minus baseline: {other, metric, estimate,
    low, high, p, adjusted (bool), mde}."""
    rows = []
    for row in pairs:
        for key in ("a", "b", "metric", "estimate", "ci95_low", "ci95_high"):
            if key not in row:
                raise ForestError(f"paired row {row!r} lacks column {key!r}")
        if baseline not in (row["a"], row["b"]) or row["a"] == row["b"]:
            continue
        sign = 1.0 if row["a"] == baseline else -1.0
        low, high = sorted((sign * float(row["ci95_low"]), sign * float(row["ci95_high"])))
        adjusted = is_number(row.get("p_holm"))
        rows.append({
            "other": row["b"] if sign > 0 else row["a"], "metric": str(row["metric"]),
            "estimate": sign * float(row["estimate"]), "low": low, "high": high,
            "p": float(row["p_holm"]) if adjusted else float(row.get("p_value", math.nan)), "adjusted": adjusted,
            "mde": float(row["mde80"]) if is_number(row.get("mde80")) else None,
            # The statistics' own verdict where they give one (Holm-adjusted p below alpha).
            "significant": (bool(row["significant"]) if isinstance(row.get("significant"), bool)
                            else is_number(row.get("p_holm")) and float(row["p_holm"]) < ALPHA if adjusted
                            else is_number(row.get("p_value")) and float(row["p_value"]) < ALPHA),
            "p_text": format_p(row["p_holm"] if adjusted else row.get("p_value"), row.get("p_exact"),
                               row.get("p_floor")),  # at its resolution, as the tables print it
        })
    return rows


def plot_forest(pairs: list[dict[str, Any]], baseline: str, names: list[str], labels: dict[str, str],
                colors: dict[str, Any], outdir: Path, style: dict[str, Any], dataset: str | None = None,
                name: str = "forest") -> list[Path]:
    """One panel per metric (in the rows' order, stacked), one row per experiment compared with `baseline` (in
    `names`' order, labelled by `labels`), x = difference in percentage points; beside each row its estimate,
    interval and p-value as text. Nothing is drawn without such rows."""
    rows = against_baseline(pairs, baseline)
    if not rows:
        return []
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    others = [n for n in names if any(r["other"] == n for r in rows)]
    panel_in = 0.3 + 0.24 * len(others)  # a panel: its title, axis and one line per comparison
    wide = {**style, "width_in": style["page_width_in"]}
    fig, axes = new_figure(wide, nrows=len(metrics), ncols=1, squeeze=False, sharex=False,
                           height_scale=(len(metrics) * (panel_in + 0.3) + 0.3) / float(style["height_in"]))
    adjusted = all(r["adjusted"] for r in rows)
    test = "p_holm" if adjusted else "p"
    for ax, metric in zip(axes[:, 0], metrics):
        ax.axvline(0.0, color="0.4", linewidth=0.8, zorder=1)
        span = 0.0
        for y, other in enumerate(others):
            row = next((r for r in rows if r["other"] == other and r["metric"] == metric), None)
            if row is None:
                continue
            color = colors.get(other, "0.2")
            if row["mde"] is not None:
                ax.plot([-100 * row["mde"], 100 * row["mde"]], [y, y], color="0.6", alpha=0.35, linewidth=7,
                        solid_capstyle="butt", zorder=0)
                span = max(span, 100 * row["mde"])
            significant = row["significant"]
            x = 100 * row["estimate"]
            ax.errorbar([x], [y], xerr=[[x - 100 * row["low"]], [100 * row["high"] - x]], color=color, marker="o",
                        markersize=5, markerfacecolor=color if significant else "white", markeredgewidth=1.1,
                        capsize=2.5, elinewidth=1.0, linestyle="none", zorder=3)
            span = max(span, abs(100 * row["low"]), abs(100 * row["high"]))
            # The numbers beside the plot, in axes coordinates: a column a reader can quote.
            ax.annotate(f"{x:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]  "
                        f"{test} {row['p_text']}", (1.02, y), xycoords=("axes fraction", "data"),
                        ha="left", va="center", fontsize=float(matplotlib.rcParams["legend.fontsize"]),
                        annotation_clip=False)
        span = span * 1.08 or 1.0
        ax.set_xlim(-span, span)  # zero in the middle: gains right, losses left
        ax.set_title(f"{metric}: difference (pp) minus baseline", loc="left")
        ax.set_yticks(range(len(others)))
        ax.set_yticklabels([labels.get(o, o) for o in others])
        ax.set_ylim(len(others) - 0.5, -0.5)  # the first experiment on top
        ax.grid(False, axis="y")
    axes[-1, 0].set_xlabel("difference b − a (percentage points), a = baseline")
    handles = [Line2D([], [], color="0.2", marker="o", markersize=5, linestyle="none"),
               Line2D([], [], color="0.2", marker="o", markersize=5, markerfacecolor="white", linestyle="none")]
    what = "Holm-adjusted p" if adjusted else "unadjusted p"
    labels_ = [f"significant ({what} < {ALPHA:g})", f"not significant ({what} >= {ALPHA:g})"]
    if any(r["mde"] is not None for r in rows):
        handles.append(Line2D([], [], color="0.6", alpha=0.35, linewidth=7))
        labels_.append("±MDE80: smallest difference detectable with 80% power")
    where = f" on {dataset}" if dataset else ""
    legend_outside(fig, handles, labels_, title=f"paired differences against baseline {baseline}{where}; "
                                                 "bars: 95% CI")
    return save_figure(fig, outdir, name, style["formats"])
