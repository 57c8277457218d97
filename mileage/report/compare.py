"""All experiments side by side: overlaid reward and eval curves, and one table of final scores.

Each experiment keeps one colour from the style's palette in every comparison figure, in the order the
mapping gives. Works for a single experiment too.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mileage.atomic import write_text
from mileage.evaluation.paired import PairingError, check_paired, paired_scores, paired_tests
from mileage.evaluation.stats import StatsError, headline_metrics, per_problem_scores
from mileage.report import latex
from mileage.report.markdown import MISSING, format_ci, format_percent, report_html
from mileage.report.plots import (
    draw_raw_and_smoothed,
    eval_score_columns,
    load_summary,
    metric_series,
    read_metrics,
)
from mileage.report.style import apply_style, is_number, new_figure, palette_colors, save_figure

log = logging.getLogger(__name__)

# Score columns of the comparison; `k` is each experiment's own samples-per-problem.
SCORE_METRICS: tuple[str, ...] = ("avg@k", "pass@1", "maj@k")
_LINESTYLES = ("-", "--", ":", "-.")
_INSIDE_LEGEND_MAX = 3


class CompareError(ValueError):
    """The experiments to compare are not usable (none given, or a name is empty)."""


def _metric_name(generic: str, k: int) -> str:
    return generic.replace("@k", f"@{k}")


def score_row(name: str, summary: dict[str, Any]) -> dict[str, Any]:
    """One flat row: experiment, dataset, k, then `<side>_<metric>` value and `_ci_lo` / `_ci_hi`."""
    k = int(summary["k"])
    row: dict[str, Any] = {"experiment": name, "dataset": summary["dataset"], "k": k}
    for side in ("base", "final"):
        metrics = (summary.get(side) or {}).get("metrics", {})
        for generic in SCORE_METRICS:
            entry = metrics.get(_metric_name(generic, k)) or {}
            ci = entry.get("ci95") or (None, None)
            row[f"{side}_{generic}"] = entry.get("value")
            row[f"{side}_{generic}_ci_lo"] = ci[0]
            row[f"{side}_{generic}_ci_hi"] = ci[1]
    return row


def _tsv_cell(value: Any) -> str:
    if value is None:
        return ""
    if is_number(value):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return str(value).replace("\t", " ").replace("\n", " ")


def scores_tsv(rows: list[dict[str, Any]]) -> str:
    columns = list(rows[0])
    lines = ["\t".join(columns)]
    lines += ["\t".join(_tsv_cell(row[c]) for c in columns) for row in rows]
    return "\n".join(lines) + "\n"


def scores_markdown(rows: list[dict[str, Any]], summaries: dict[str, dict[str, Any]]) -> str:
    header = ["experiment", "dataset", "k"]
    for generic in SCORE_METRICS:
        header += [f"{generic} base", f"{generic} final"]
    lines = [
        "# Final scores",
        "",
        "Percent, 95% bootstrap CI over problems in brackets; k = samples per problem of each experiment.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---", "---", "---:"] + ["---:"] * (len(header) - 3)) + " |",
    ]
    for row in rows:
        summary = summaries[row["experiment"]]
        cells = [f"`{row['experiment']}`", f"`{row['dataset']}`", str(row["k"])]
        for generic in SCORE_METRICS:
            name = _metric_name(generic, row["k"])
            for side in ("base", "final"):
                entry = (summary.get(side) or {}).get("metrics", {}).get(name)
                if entry is None:
                    cells.append(MISSING)
                else:
                    cells.append(f"{format_percent(entry.get('value'))} {format_ci(entry)}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


PAIRED_COLUMNS = ("a", "b", "dataset", "metric", "estimate", "ci95_low", "ci95_high", "p_value", "prob_improvement")


def replicate_sides(directory: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The final side of each seed's own summary (`seeds/<n>/report/summary.json`), or the summary's own."""
    seeds = summary.get("seeds")
    if not seeds:
        return [summary["final"]]
    return [load_summary(directory / "seeds" / str(seed) / "report" / "summary.json")["final"] for seed in seeds]


def _scores(sides: list[dict[str, Any]], metric: str) -> tuple[list[str], np.ndarray]:
    ids = [str(r["problem_id"]) for r in sides[0]["per_problem"]]
    for side in sides[1:]:
        check_paired(ids, [str(r["problem_id"]) for r in side["per_problem"]], "two seeds of one experiment")
    return ids, np.array([per_problem_scores(side["per_problem"], metric) for side in sides])


def paired_rows(names: list[str], summaries: dict[str, dict[str, Any]], sides: dict[str, list[dict[str, Any]]],
                **test_kw: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Every pair (a, b) of experiments, a listed first: b minus a per shared headline metric over the same problems
    (and seeds; with different seed counts each problem's mean over seeds). Returns (rows, refusals)."""
    jobs: list[tuple[str, str, str, np.ndarray, np.ndarray]] = []  # (a, b, metric, scores a, scores b)
    refusals: list[str] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if summaries[a]["dataset"] != summaries[b]["dataset"]:
                refusals.append(f"`{a}` and `{b}`: evaluated on different datasets "
                                f"({summaries[a]['dataset']!r} vs {summaries[b]['dataset']!r}), so no paired test")
                continue
            metrics = [m for m in headline_metrics(int(summaries[a]["k"]))
                       if m in headline_metrics(int(summaries[b]["k"]))]
            pair_jobs = []
            try:
                for metric in metrics:
                    try:
                        ids_a, scores_a = _scores(sides[a], metric)
                        ids_b, scores_b = _scores(sides[b], metric)
                    except StatsError as exc:  # an older summary without this metric's per-problem counts
                        log.info("compare: %s and %s: %s; left out", a, b, exc)
                        continue
                    check_paired(ids_a, ids_b, f"`{a}` and `{b}`")
                    if scores_a.shape != scores_b.shape:
                        scores_a, scores_b = scores_a.mean(axis=0), scores_b.mean(axis=0)
                    paired_scores(scores_a, scores_b)  # scores that do not pair refuse this pair only
                    pair_jobs.append((a, b, metric, scores_a, scores_b))
            except PairingError as exc:
                refusals.append(str(exc))
                continue
            jobs += pair_jobs
    # All tests in one batch: the same numbers as one paired_test each, without scipy's per-call overhead.
    tests = paired_tests([(scores_a, scores_b) for *_, scores_a, scores_b in jobs], **test_kw)
    rows = [{"a": a, "b": b, "dataset": summaries[a]["dataset"], "metric": metric, "estimate": test["estimate"],
             "ci95_low": test["ci95"][0], "ci95_high": test["ci95"][1], "p_value": test["p_value"],
             "prob_improvement": test["prob_improvement"]}
            for (a, b, metric, _, _), test in zip(jobs, tests)]
    return rows, refusals


def paired_markdown(rows: list[dict[str, Any]], refusals: list[str]) -> list[str]:
    lines = ["## Paired differences", "",
             "b − a over the same problems (and seeds), percentage points; paired bootstrap 95% CI, two-sided",
             "sign-flip p-value, probability of improvement P(b > a) per problem (rliable).", ""]
    if rows:
        lines += ["| metric | a | b | b − a | 95% CI | p | P(b > a) |", "| --- | --- | --- | ---: | :---: | ---: | ---: |"]
        lines += [f"| {r['metric']} | `{r['a']}` | `{r['b']}` | {100 * r['estimate']:+.1f} | "
                  f"[{100 * r['ci95_low']:+.1f}, {100 * r['ci95_high']:+.1f}] | {r['p_value']:.2g} | "
                  f"{r['prob_improvement']:.2f} |" for r in rows]
    else:
        lines.append("No pair of experiments to compare.")
    if refusals:
        lines += ["", "Not compared:", "", *(f"- {why}" for why in refusals)]
    return lines


def _legend_height_scale(n_entries: int) -> float:
    """Taller figure when the legend goes below the axes, so the plot area keeps its size."""
    if n_entries <= _INSIDE_LEGEND_MAX:
        return 1.0
    return 1.0 + 0.1 * math.ceil(n_entries / 2)


def _legend(fig: Figure, ax: Axes, handles: list[Any]) -> None:
    """A few entries inside the axes; more go below them in two columns, where they hide no data."""
    if len(handles) <= _INSIDE_LEGEND_MAX:
        ax.legend(handles=handles, loc="best")
    else:
        fig.legend(handles=handles, loc="outside lower center", ncols=2, handlelength=1.8)


def plot_compare_reward(
    tables: dict[str, dict[str, pd.DataFrame]], colors: dict[str, Any], outdir: Path, style: dict[str, Any],
    labels: dict[str, str] | None = None,
) -> list[Path]:
    curves = {name: metric_series(t["rollout"], "rollout/raw_reward") for name, t in tables.items()}
    curves = {name: s for name, s in curves.items() if not s.empty}
    for name in tables.keys() - curves.keys():
        log.info("compare/reward: experiment %r has no rollout/raw_reward; left out", name)
    if not curves:
        log.info("figure 'compare/reward' skipped: no experiment logged rollout/raw_reward")
        return []
    fig, ax = new_figure(style, height_scale=_legend_height_scale(len(curves)))
    for name, series in curves.items():
        # No band here: overlapping bands of several runs hide more than they show.
        draw_raw_and_smoothed(ax, series, style, colors[name], label=(labels or {}).get(name, name))
    ax.set_xlabel("rollout")
    ax.set_ylabel("reward (mean)")
    _legend(fig, ax, ax.get_legend_handles_labels()[0])
    return save_figure(fig, outdir, "reward", style["formats"])


def plot_compare_eval(
    tables: dict[str, dict[str, pd.DataFrame]],
    colors: dict[str, Any],
    outdir: Path,
    style: dict[str, Any],
    eval_ks: dict[str, int] | None = None,
    labels: dict[str, str] | None = None,
) -> list[Path]:
    columns = {name: eval_score_columns(t["eval"]) for name, t in tables.items()}
    datasets = list(dict.fromkeys(c for cols in columns.values() for c in cols))
    if not datasets:
        log.info("figure 'compare/eval' skipped: no experiment logged an eval/<dataset> column")
        return []
    with_eval = [name for name in columns if columns[name]]
    # Colour names the experiment, line style the dataset: one legend entry each, not one per pair.
    handles = [Line2D([], [], color=colors[name], linewidth=1.2, label=(labels or {}).get(name, name))
               for name in with_eval]
    if len(datasets) > 1:
        handles += [
            Line2D([], [], color="0.3", linewidth=1.2, linestyle=_LINESTYLES[i % len(_LINESTYLES)],
                   label=column.removeprefix("eval/"))
            for i, column in enumerate(datasets)
        ]
    fig, ax = new_figure(style, height_scale=_legend_height_scale(len(handles)))
    for name in with_eval:
        for column in columns[name]:
            series = metric_series(tables[name]["eval"], column)
            linestyle = _LINESTYLES[datasets.index(column) % len(_LINESTYLES)]
            ax.plot(series.index, series.values, color=colors[name], linestyle=linestyle, marker="o",
                    markersize=2.5, linewidth=1.2)
    # The in-training eval's samples per prompt, not the summary's k (that counts the final evaluation).
    ks = {(eval_ks or {}).get(name) for name in with_eval}
    ax.set_xlabel("rollout")
    ax.set_ylabel(f"avg@{ks.pop()}" if len(ks) == 1 and None not in ks else "avg@k")
    _legend(fig, ax, handles)
    return save_figure(fig, outdir, "eval", style["formats"])


def compare_experiments(
    experiments: dict[str, str | os.PathLike],
    outdir: str | os.PathLike,
    style: dict[str, Any] | None = None,
    eval_ks: dict[str, int] | None = None,
    labels: dict[str, str] | None = None,
) -> list[Path]:
    """Overlay experiments and tabulate their final scores; returns the files written. `labels`: the display
    name of each experiment in the figures' legends (its `label:`; the tables keep the experiment names).

    `experiments` maps a name to its results directory (`<dir>/metrics/*.tsv`, `<dir>/report/summary.json`).
    Files go straight into `outdir` (the `results/compare/` directory): `reward.*`, `eval.*`,
    `final_scores.tsv`, `final_scores.md`, `final_scores.html`, `final_scores.tex`, `paired.tsv`.
    """
    if not experiments:
        raise CompareError("compare_experiments: no experiments given")
    for name in experiments:
        if not isinstance(name, str) or not name.strip():
            raise CompareError(f"compare_experiments: experiment name {name!r} must be a non-empty string")
    outdir = Path(outdir)
    resolved = apply_style(style)
    names = list(experiments)
    colors = dict(zip(names, palette_colors(resolved, len(names))))
    dirs = {name: Path(path) for name, path in experiments.items()}
    summaries = {name: load_summary(d / "report" / "summary.json") for name, d in dirs.items()}
    tables = {name: read_metrics(d / "metrics") for name, d in dirs.items()}

    written: list[Path] = []
    written += plot_compare_reward(tables, colors, outdir, resolved, labels)
    written += plot_compare_eval(tables, colors, outdir, resolved, eval_ks, labels)

    rows = [score_row(name, summaries[name]) for name in names]
    pairs, refusals = paired_rows(names, summaries, {n: replicate_sides(dirs[n], summaries[n]) for n in names})
    for why in refusals:
        log.warning("compare: %s", why)
    write_text(outdir / "paired.tsv", scores_tsv(pairs) if pairs else "\t".join(PAIRED_COLUMNS) + "\n")
    write_text(outdir / "final_scores.tex", final_scores_latex(names, summaries))
    write_text(outdir / "final_scores.tsv", scores_tsv(rows))
    tables_md = scores_markdown(rows, summaries) + "\n" + "\n".join(paired_markdown(pairs, refusals)) + "\n"
    write_text(outdir / "final_scores.md", tables_md)
    # The same tables as a page of their own: Snakemake's report shows HTML inline, TSV and Markdown as downloads.
    write_text(outdir / "final_scores.html", report_html(tables_md, outdir, "Final scores and paired differences"))
    written += [outdir / "paired.tsv", outdir / "final_scores.tex", outdir / "final_scores.tsv",
                outdir / "final_scores.md", outdir / "final_scores.html"]
    return written


def final_scores_latex(names: list[str], summaries: dict[str, dict[str, Any]]) -> str:
    """Final scores of every experiment (rows) per generic metric, estimate with interval, best in bold."""
    entries = {}
    for name in names:
        k = int(summaries[name]["k"])
        metrics = (summaries[name].get("final") or {}).get("metrics", {})
        entries[name] = {generic: metrics.get(_metric_name(generic, k)) for generic in SCORE_METRICS}
    return latex.final_scores_table(entries, list(SCORE_METRICS),
                                    "Final scores: percent, 95% interval (over problems; across seeds for replicates).")
