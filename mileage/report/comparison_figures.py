"""The comparison's figures (results/compare/figures/): every experiment and sweep point side by side.

- `reward`: rollout reward per experiment; replicate seeds as their mean with a band of the 95% interval across
  seeds, one run as raw (thin) and smoothed (thick);
- `eval`: learning curves (mileage.report.curves): in-training avg@k per dataset, with the stand-alone base
  (step 0) and final evaluations, seed bands or one run's bootstrap error bars;
- `final_scores`: every experiment's final headline scores with their intervals;
- `forest`: paired differences against the baseline per headline metric (mileage.report.forest);
- `sweep_<name>`: for each sweep, final avg@k against the swept value (mileage.report.sweep_figure).

Each experiment keeps one colour (the style's palette, in the experiments' order) and one legend text (its label
and what it changes relative to the baseline) in every figure.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.lines import Line2D

from mileage.report.curves import plot_learning_curves
from mileage.report.forest import plot_forest
from mileage.report.plots import (
    across_seeds,
    band_label,
    draw_raw_and_smoothed,
    eval_intervals,
    eval_panels,
    final_score_points,
    interval_note,
    metric_series,
    plot_final_scores,
    read_metrics,
)
from mileage.report.style import legend_outside, new_figure, save_figure, smooth
from mileage.report.sweep_figure import plot_sweeps

log = logging.getLogger(__name__)


def legend_texts(names: list[str], labels: dict[str, str] | None, baseline: str | None,
                 changes: dict[str, str] | None = None) -> dict[str, str]:
    """Each experiment's legend text: its label, and what it changes relative to the baseline (`changes`, e.g.
    `train.lr 0.0005 -> 0.001`), the baseline marked as such."""
    out = {}
    for name in names:
        label = (labels or {}).get(name) or name
        change = (changes or {}).get(name)
        out[name] = (f"{label} (baseline)" if name == baseline else f"{label}: {change}" if change else label)
    return out


def run_dirs(directory: Path, summary: dict[str, Any]) -> list[Path]:
    """The runs behind an experiment's results: its seeds' directories (an aggregate's `replicates`), or itself."""
    replicates = summary.get("replicates") or {}
    return [directory / rel for rel in replicates.values()] if replicates else [directory]


def _stand_alone(summary: dict[str, Any], side: str) -> dict[str, tuple]:
    entry = ((summary.get(side) or {}).get("metrics") or {}).get(f"avg@{summary['k']}")
    if entry is None:
        return {}
    low, high = entry.get("ci95") or (entry["value"], entry["value"])
    return {summary["dataset"]: (float(entry["value"]), float(low), float(high))}


def _eval_samples(run: Path) -> list[dict] | None:
    path = run / "train" / "eval_samples.jsonl"
    if not path.is_file() or not path.stat().st_size:
        return None
    from mileage.jsonl import iter_jsonl

    return [dict(row) for _, row in iter_jsonl(path)]


def plot_reward_curves(runs: dict[str, list[dict[str, pd.DataFrame]]], colors: dict[str, Any],
                       legend: dict[str, str], outdir: Path, style: dict[str, Any]) -> list[Path]:
    """Rollout reward of every experiment: seeds as mean and band, one run as raw and smoothed."""
    series = {name: [s for s in (metric_series(t["rollout"], "rollout/raw_reward") for t in tables) if not s.empty]
              for name, tables in runs.items()}
    series = {name: s for name, s in series.items() if s}
    for name in runs.keys() - series.keys():
        log.info("compare/reward: experiment %r has no rollout/raw_reward; left out", name)
    if not series:
        log.info("figure 'compare/reward' skipped: no experiment logged rollout/raw_reward")
        return []
    # Page width for many experiments: their legend would dwarf one column's plot.
    fig, ax = new_figure({**style, "width_in": style["page_width_in"]} if len(series) > 3 else style)
    seeds: set[int] = set()
    for name, curves in series.items():
        if len(curves) == 1:
            draw_raw_and_smoothed(ax, curves[0], style, colors[name])
            continue
        seeds.add(len(curves))
        stats = across_seeds([smooth(s, style["smoothing"]) for s in curves])
        x = stats.index.to_numpy(dtype=float)
        ax.fill_between(x, stats["low"].to_numpy(dtype=float), stats["high"].to_numpy(dtype=float),
                        color=colors[name], alpha=0.2, linewidth=0)
        ax.plot(x, stats["mean"].to_numpy(dtype=float), color=colors[name], linewidth=1.4)
    ax.set_xlabel("rollout")
    ax.set_ylabel("reward (mean over samples)")
    handles = [Line2D([], [], color=colors[name], linewidth=2.5) for name in series]
    labels = [legend[name] for name in series]
    ema = f"EMA {style['smoothing']:g}" if style["smoothing"] > 0 else "no smoothing"
    if any(len(c) == 1 for c in series.values()):
        handles += [Line2D([], [], color="0.35", linewidth=0.6, alpha=0.5), Line2D([], [], color="0.35", linewidth=1.4)]
        labels += ["one run: thin raw", f"one run: thick {ema}"]
    if seeds:
        from matplotlib.patches import Patch

        handles.append(Patch(facecolor="0.35", alpha=0.3, linewidth=0))
        labels.append(f"seeds: mean ({ema}), band: {band_label(seeds)}")
    legend_outside(fig, handles, labels)
    return save_figure(fig, outdir, "reward", style["formats"])


def comparison_figures(dirs: dict[str, Path], summaries: dict[str, dict[str, Any]], pairs: list[dict[str, Any]],
                       outdir: Path, style: dict[str, Any], colors: dict[str, Any], legend: dict[str, str],
                       baseline: str | None, eval_ks: dict[str, int] | None = None,
                       sweeps: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    """Every comparison figure into `outdir`; returns the files written. `legend`: each experiment's legend text,
    `baseline`: the experiment the forest plot compares against (none: no forest plot), `eval_ks`: each
    experiment's in-training samples per problem, `sweeps`: the sweep points' values."""
    names = list(dirs)
    runs_by_name = {name: run_dirs(dirs[name], summaries[name]) for name in names}
    tables = {name: [read_metrics(run / "metrics") for run in runs] for name, runs in runs_by_name.items()}
    written = plot_reward_curves(tables, colors, legend, outdir, style)

    panels: dict[str, list[Any]] = {}
    for name in names:
        samples = _eval_samples(runs_by_name[name][0]) if len(runs_by_name[name]) == 1 else None
        summary = summaries[name]
        curves = eval_panels(tables[name], colors[name], (eval_ks or {}).get(name), _stand_alone(summary, "base"),
                             _stand_alone(summary, "final"), int(summary["k"]),
                             eval_intervals(samples) if samples else None, label=legend[name])
        for dataset, curve in curves.items():
            panels.setdefault(dataset, []).append(curve)
    written += plot_learning_curves(panels, outdir, style)

    datasets = sorted({s["dataset"] for s in summaries.values()})
    note = interval_note(list(summaries.values()))
    entries = [(legend[name], colors[name], final_score_points(summaries[name])) for name in names]
    written += plot_final_scores(entries, outdir, style, note=note, dataset=", ".join(datasets))
    if baseline is not None:
        written += plot_forest(pairs, baseline, names, legend, colors, outdir, style,
                               dataset=summaries[baseline]["dataset"])
    written += plot_sweeps(sweeps or {}, summaries, outdir, style)
    return written
