"""All experiments side by side: overlaid reward and eval curves, and one table of final scores.

Each experiment keeps one colour from the style's palette in every comparison figure, in the order the
mapping gives. Works for a single experiment too.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mileage.atomic import write_text
from mileage.evaluation.comparison import COLUMNS, comparison_rows, significantly_best
from mileage.report import latex
from mileage.report.comparison_figures import comparison_figures, legend_texts
from mileage.report.markdown import MISSING, format_ci, format_p, format_percent, report_html
from mileage.report.plots import load_summary
from mileage.report.style import apply_style, is_number, palette_colors

log = logging.getLogger(__name__)

# Score columns of the comparison; `k` is each experiment's own samples-per-problem.
# pass@1 is not among them: on a binary reward it repeats avg@k.
SCORE_METRICS: tuple[str, ...] = ("avg@k", "pass@k", "maj@k")


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


def scores_markdown(rows: list[dict[str, Any]], summaries: dict[str, dict[str, Any]],
                    changes: dict[str, str] | None = None) -> str:
    header = ["experiment", "change", "seeds", "dataset", "k"]
    for generic in SCORE_METRICS:
        header += [f"{generic} base", f"{generic} final"]
    lines = [
        "# Final scores",
        "",
        "Percent, 95% bootstrap interval in brackets: over problems for one run; for seeds, a two-level bootstrap",
        "(seeds, then problems within them), so it never leaves [0, 100]. k = samples per problem of each",
        "experiment; change: what the experiment changes relative to the baseline.",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---", "---", "---:", "---", "---:"] + ["---:"] * (len(header) - 5)) + " |",
    ]
    for row in rows:
        summary = summaries[row["experiment"]]
        change = (changes or {}).get(row["experiment"], "")
        cells = [f"`{row['experiment']}`", _cell_text(change) if change else MISSING,
                 str(len(summary.get("seeds") or []) or 1), f"`{row['dataset']}`", str(row["k"])]
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


def _cell_text(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


PAIRED_COLUMNS = COLUMNS  # paired.tsv: mileage.evaluation.comparison says what each column is


def replicate_sides(directory: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The final side of each seed's own summary (`seeds/<n>/report/summary.json`), or the summary's own."""
    seeds = summary.get("seeds")
    if not seeds:
        return [summary["final"]]
    return [load_summary(directory / "seeds" / str(seed) / "report" / "summary.json")["final"] for seed in seeds]


def paired_rows(names: list[str], summaries: dict[str, dict[str, Any]], sides: dict[str, list[dict[str, Any]]],
                **kw: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The comparison's rows and refusals (mileage.evaluation.comparison.comparison_rows: each experiment against
    the baseline, or every pair, with Holm-adjusted p-values and the detectable difference)."""
    return comparison_rows(names, summaries, sides, **kw)


def paired_markdown(rows: list[dict[str, Any]], refusals: list[str], baseline: str | None = None) -> list[str]:
    seeded = any(r["seeds_a"] > 1 or r["seeds_b"] > 1 for r in rows)
    lines = ["## Paired differences", "",
             (f"Each experiment b against the baseline a = `{baseline}`" if baseline else "Each pair (a, b)") +
             ", b − a over the same problems, in percentage points.",
             "The interval is a 95% percentile bootstrap " +
             ("(two-level where a side has seeds: its seeds, then the problems)" if seeded else "over problems") +
             "; p is a two-sided sign-flip test over problems"
             + (" of the seed-averaged differences" if seeded else "") + ".",
             "The interval and p come from different procedures (a bootstrap and a sign-flip test"
             + (", the latter treating the seeds as given" if seeded else "") + "), so near 5% one may exclude 0",
             "while the other is above 0.05; decide by p (Holm) and read the interval as the effect's size.",
             "p (Holm): adjusted over every row of this table (the family of comparisons); **bold** when < 0.05.",
             "MDE80: the smallest true difference this comparison's design detects with 80% power at alpha 0.05.",
             "P(b > a): probability of improvement per problem (rliable).", ""]
    if rows:
        lines += ["| b | change | a | metric | b − a | 95% CI | p | p (Holm) | MDE80 | P(b > a) | seeds a, b |",
                  "| --- | --- | --- | --- | ---: | :---: | ---: | ---: | ---: | ---: | :---: |"]
        for r in rows:
            holm_text = format_p(r["p_holm"], r["p_exact"], r["p_floor"])
            lines.append(
                f"| `{r['b']}` | {_cell_text(r['change']) if r.get('change') else MISSING} | `{r['a']}` | "
                f"{r['metric']} | {100 * r['estimate']:+.1f} | "
                f"[{100 * r['ci95_low']:+.1f}, {100 * r['ci95_high']:+.1f}] | "
                f"{format_p(r['p_value'], r['p_exact'], r['p_floor'])} | "
                f"{f'**{holm_text}**' if r['significant'] else holm_text} | {100 * r['mde80']:.1f} | "
                f"{r['prob_improvement']:.2f} | {r['seeds_a']}, {r['seeds_b']} |")
        floor = min((r["p_floor"] for r in rows if not r["p_exact"]), default=0.0)
        if floor * len(rows) >= 0.05:
            lines += ["", f"Note: {len(rows)} tests in the family and a resampling floor of p = {floor:.2g}: no "
                      "adjusted p-value can fall below 0.05. Compare against the baseline only (`compare.pairs: "
                      "baseline`) or use more resamples."]
    else:
        lines.append("No pair of experiments to compare.")
    if refusals:
        lines += ["", "Not compared:", "", *(f"- {why}" for why in refusals)]
    return lines


def compare_experiments(
    experiments: dict[str, str | os.PathLike],
    outdir: str | os.PathLike,
    style: dict[str, Any] | None = None,
    eval_ks: dict[str, int] | None = None,
    labels: dict[str, str] | None = None,
    sweeps: dict[str, dict[str, Any]] | None = None,
    baseline: str | None = None,
    pairs: str = "baseline",
    changes: dict[str, str] | None = None,
) -> list[Path]:
    """Overlay experiments and tabulate their final scores; returns the files written. `labels`: the display
    name of each experiment in the figures' legends (its `label:`; the tables keep the experiment names);
    `sweeps`: the sweep points' {"of", "values"} (their sweep figures); `baseline`: the experiment the forest plot
    compares against (default: the first).

    `experiments` maps a name to its results directory (`<dir>/metrics/*.tsv`, `<dir>/report/summary.json`).
    Files go straight into `outdir` (the `results/compare/` directory): the figures of
    mileage.report.comparison_figures (`reward.*`, `eval.*`, `final_scores.*`, `forest.*`, `sweep_<name>.*`),
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

    written: list[Path] = []
    rows = [score_row(name, summaries[name]) for name in names]
    baseline = baseline or names[0]
    comparisons, refusals = paired_rows(names, summaries, {n: replicate_sides(dirs[n], summaries[n]) for n in names},
                                        baseline=baseline, pairs=pairs, changes=changes)
    written += comparison_figures(dirs, summaries, comparisons, outdir, resolved, colors,
                                  legend_texts(names, labels, baseline, changes), baseline, eval_ks, sweeps)
    for why in refusals:
        log.warning("compare: %s", why)
    write_text(outdir / "paired.tsv", scores_tsv(comparisons) if comparisons else "\t".join(PAIRED_COLUMNS) + "\n")
    write_text(outdir / "final_scores.tex", final_scores_latex(names, summaries, comparisons, baseline, changes))
    write_text(outdir / "final_scores.tsv", scores_tsv(rows))
    tables_md = (scores_markdown(rows, summaries, changes) + "\n"
                 + "\n".join(paired_markdown(comparisons, refusals, baseline)) + "\n")
    write_text(outdir / "final_scores.md", tables_md)
    # The same tables as a page of their own: Snakemake's report shows HTML inline, TSV and Markdown as downloads.
    write_text(outdir / "final_scores.html", report_html(tables_md, outdir, "Final scores and paired differences"))
    written += [outdir / "paired.tsv", outdir / "final_scores.tex", outdir / "final_scores.tsv",
                outdir / "final_scores.md", outdir / "final_scores.html"]
    return written


def final_scores_latex(names: list[str], summaries: dict[str, dict[str, Any]],
                       comparisons: list[dict[str, Any]] | None = None, baseline: str | None = None,
                       changes: dict[str, str] | None = None) -> str:
    """The comparison's LaTeX: final scores of every experiment (rows, what each changes under its name) per
    generic metric, bold only for an experiment significantly best after Holm's adjustment; then the paired
    differences against the baseline (a table* across both columns)."""
    entries, best = {}, {}
    for name in names:
        k = int(summaries[name]["k"])
        metrics = (summaries[name].get("final") or {}).get("metrics", {})
        entries[name] = {generic: metrics.get(_metric_name(generic, k)) for generic in SCORE_METRICS}
    for generic in SCORE_METRICS:
        winners = {significantly_best(comparisons or [], baseline or names[0], _metric_name(generic, int(s["k"])))
                   for s in summaries.values()}
        best[generic] = winners.pop() if len(winners) == 1 else None
    seeded = any(len(s.get("seeds") or []) > 1 for s in summaries.values())
    caption = ("Final scores, percent, with 95% bootstrap intervals (over problems"
               + ("; for seeds, two-level: seeds, then problems" if seeded else "") + "). Bold: significantly best "
               "after Holm's adjustment over the comparisons.")
    text = latex.final_scores_table(entries, list(SCORE_METRICS), caption, latex.label("compare", "final-scores"),
                                    best=best, notes=changes, first="experiment")
    if comparisons:
        p_texts = [(format_p(r["p_value"], r["p_exact"], r["p_floor"]), format_p(r["p_holm"], r["p_exact"],
                                                                               r["p_floor"])) for r in comparisons]
        caption = (f"Paired differences b $-$ a against the baseline \\texttt{{{latex.breakable(baseline or names[0])}}}"
                   " in percentage points, 95\\% bootstrap interval under each"
                   + (" (two-level where a side has seeds)" if seeded else "") + r"; $p$: two-sided sign-flip test "
                   r"over problems; $p_{\mathrm{Holm}}$ adjusted over every row (bold: $<0.05$); MDE$_{80}$: the "
                   "difference each design detects with 80\\% power at $\\alpha = 0.05$.")
        notes = ("The interval and $p$ come from different procedures (a bootstrap and a sign-flip test), so near "
                 "the 5\\% level they can disagree.")
        text += "\n" + latex.paired_table(comparisons, p_texts, caption, latex.label("compare", "paired"), notes)
    return text
