"""A sweep's figure: the headline metric of each sweep point against the swept value.

`sweeps` is the comparison's {experiment: {"of": sweep, "values": {dotted.key: value}}} (the points of every sweep,
mileage.sweeps). The x axis is the key with the most distinct values; further swept keys give one line each. A
learning rate (a key whose last part names one, such as `train.lr`) and positive values spanning two decades or
more go on a log axis. y is the final avg@k in percent with its 95% interval (bootstrap over problems for one run,
across seeds for replicates), beside the base model's score as a dashed line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.lines import Line2D

from mileage.report.plots import interval_note
from mileage.report.style import is_number, legend_outside, new_figure, palette_colors, save_figure, score_axis


def sweep_points(sweeps: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """{sweep: [point experiment, ...]} in the order given."""
    groups: dict[str, list[str]] = {}
    for name, point in sweeps.items():
        if point:
            groups.setdefault(str(point["of"]), []).append(name)
    return groups


def is_learning_rate(key: str) -> bool:
    last = key.split(".")[-1].lower()
    return last == "lr" or last.endswith("_lr") or last.startswith("lr_") or "learning_rate" in last


def use_log_axis(key: str, values: list[Any]) -> bool:
    numeric = [float(v) for v in values if is_number(v)]
    if len(numeric) != len(values) or not numeric or min(numeric) <= 0:
        return False
    return is_learning_rate(key) or max(numeric) / min(numeric) >= 100


def _score(summary: dict[str, Any], side: str) -> tuple[float, float, float] | None:
    entry = ((summary.get(side) or {}).get("metrics") or {}).get(f"avg@{summary['k']}")
    if entry is None:
        return None
    low, high = entry.get("ci95") or (entry["value"], entry["value"])
    return float(entry["value"]), float(low), float(high)


def _value_text(value: Any) -> str:
    return f"{value:g}" if is_number(value) else str(value)


def plot_sweep(of: str, names: list[str], sweeps: dict[str, dict[str, Any]], summaries: dict[str, dict[str, Any]],
               outdir: Path, style: dict[str, Any]) -> list[Path]:
    """`sweep_<of>.<fmt>`: final avg@k of each point of sweep `of` against its swept value."""
    names = [n for n in names if n in summaries and _score(summaries[n], "final") is not None]
    if not names:
        return []
    keys = sorted({key for n in names for key in sweeps[n]["values"]})
    x_key = max(keys, key=lambda key: (len({repr(sweeps[n]["values"].get(key)) for n in names}), key))
    rest = [key for key in keys if key != x_key]
    lines: dict[tuple, list[str]] = {}
    for n in names:
        lines.setdefault(tuple(repr(sweeps[n]["values"].get(key)) for key in rest), []).append(n)
    xs = [sweeps[n]["values"][x_key] for n in names]
    log = use_log_axis(x_key, xs)
    numeric = all(is_number(v) for v in xs)
    categories = list(dict.fromkeys(_value_text(v) for v in xs))
    colors = palette_colors(style, max(len(lines), 1))
    fig, ax = new_figure(style)
    handles, labels = [], []
    ks = {int(summaries[n]["k"]) for n in names}
    for color, members in zip(colors, lines.values()):
        members = sorted(members, key=lambda n: (sweeps[n]["values"][x_key] if numeric
                                                 else categories.index(_value_text(sweeps[n]["values"][x_key]))))
        x = [float(sweeps[n]["values"][x_key]) if numeric else categories.index(_value_text(sweeps[n]["values"][x_key]))
             for n in members]
        points = [_score(summaries[n], "final") for n in members]
        y = [p[0] for p in points]
        err = [[max(p[0] - p[1], 0.0) for p in points], [max(p[2] - p[0], 0.0) for p in points]]
        ax.errorbar(x, y, yerr=err, color=color, marker="o", markersize=4, linewidth=1.3, capsize=2.5,
                    elinewidth=0.9)
        handles.append(Line2D([], [], color=color, marker="o", markersize=4, linewidth=1.3))
        labels.append(", ".join(f"{key} = {_value_text(sweeps[members[0]]['values'].get(key))}" for key in rest)
                      or "final checkpoint")
    bases = {round(p[0], 9) for n in names if (p := _score(summaries[n], "base")) is not None}
    if len(bases) == 1:  # one shared base model: its score is the line every point starts from
        ax.axhline(bases.pop(), color="0.45", linewidth=1.0, linestyle="--", zorder=1)
        handles.append(Line2D([], [], color="0.45", linewidth=1.0, linestyle="--"))
        labels.append("base model")
    if log:
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(range(len(categories)))
        ax.set_xticklabels(categories)
        ax.set_xlim(-0.5, len(categories) - 0.5)
    elif len(set(xs)) <= 8:
        ax.set_xticks(sorted({float(v) for v in xs}))
        ax.set_xticklabels([_value_text(v) for v in sorted({float(v) for v in xs})])
        ax.minorticks_off()
    ax.set_xlabel(x_key + (" (log scale)" if log else ""))
    ax.set_ylabel(f"final avg@{ks.pop()} (%)" if len(ks) == 1 else "final avg@k (%)")
    dataset = {summaries[n]["dataset"] for n in names}
    ax.set_title(f"sweep {of} on {', '.join(sorted(dataset))}", loc="left")
    score_axis(ax)
    note = interval_note([summaries[n] for n in names])
    legend_outside(fig, handles, labels, title=f"error bars: {note}")
    return save_figure(fig, outdir, f"sweep_{of}", style["formats"])


def plot_sweeps(sweeps: dict[str, dict[str, Any]], summaries: dict[str, dict[str, Any]], outdir: Path,
                style: dict[str, Any]) -> list[Path]:
    written: list[Path] = []
    for of, names in sweep_points(sweeps).items():
        written += plot_sweep(of, names, sweeps, summaries, outdir, style)
    return written

