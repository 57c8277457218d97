"""The AIME-style Markdown report of one experiment: base vs final scores, per problem, training, figures.

Scores are shown in percent with their 95% bootstrap interval over problems (from summary.json);
the difference column is final minus base in percentage points.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from mileage.atomic import write_text
from mileage.report.plots import check_summary, eval_score_columns, metric_series, read_metrics
from mileage.report.style import is_number

MISSING = "—"
_MAX_CELL_CHARS = 40


def headline_metrics(k: int) -> list[str]:
    """The score rows of the report, in order: avg@k, pass@1, pass@k, maj@k (pass@k dropped when k == 1)."""
    names = [f"avg@{k}", "pass@1", f"pass@{k}", f"maj@{k}"]
    return list(dict.fromkeys(names))


def format_percent(value: Any) -> str:
    return f"{100.0 * float(value):.1f}" if is_number(value) else MISSING


def format_ci(entry: dict[str, Any] | None) -> str:
    ci = (entry or {}).get("ci95")
    if not ci or not all(is_number(v) for v in ci):
        return MISSING
    return f"[{format_percent(ci[0])}, {format_percent(ci[1])}]"


def format_delta(base: Any, final: Any) -> str:
    if not (is_number(base) and is_number(final)):
        return MISSING
    return f"{100.0 * (float(final) - float(base)):+.1f} pp"


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, long answers cut."""
    if value is None:
        return MISSING
    text = " ".join(str(value).split())
    if len(text) > _MAX_CELL_CHARS:
        text = text[: _MAX_CELL_CHARS - 1] + "…"
    return text.replace("|", "\\|") or MISSING


def _metric(summary: dict[str, Any], side: str, name: str) -> dict[str, Any] | None:
    return summary.get(side, {}).get("metrics", {}).get(name)


def scores_table(summary: dict[str, Any]) -> list[str]:
    k = int(summary["k"])
    lines = [
        "| metric | base | base 95% CI | final | final 95% CI | Δ (final − base) |",
        "| --- | ---: | :---: | ---: | :---: | ---: |",
    ]
    for name in headline_metrics(k):
        base, final = _metric(summary, "base", name), _metric(summary, "final", name)
        base_v = (base or {}).get("value")
        final_v = (final or {}).get("value")
        lines.append(
            f"| {name} | {format_percent(base_v)} | {format_ci(base)} | {format_percent(final_v)} | "
            f"{format_ci(final)} | {format_delta(base_v, final_v)} |"
        )
    return lines


def _fraction(row: dict[str, Any] | None) -> float | None:
    if not row or not is_number(row.get("n_correct")) or not is_number(row.get("n")) or row["n"] <= 0:
        return None
    return float(row["n_correct"]) / float(row["n"])


def change_arrow(base_row: dict[str, Any] | None, final_row: dict[str, Any] | None) -> str:
    """↑ more samples correct after training, ↓ fewer, = same, — when one side is missing."""
    before, after = _fraction(base_row), _fraction(final_row)
    if before is None or after is None:
        return MISSING
    if math.isclose(before, after):
        return "="
    return "↑" if after > before else "↓"


def _correct_of_n(row: dict[str, Any] | None) -> str:
    if not row or not is_number(row.get("n_correct")) or not is_number(row.get("n")):
        return MISSING
    return f"{int(row['n_correct'])}/{int(row['n'])}"


def _majority(row: dict[str, Any] | None) -> str:
    if not row or row.get("majority_answer") is None:
        return MISSING
    mark = {True: " ✓", False: " ✗"}.get(row.get("majority_correct"), "")
    return f"{_cell(row['majority_answer'])}{mark}"


def per_problem_table(summary: dict[str, Any]) -> list[str]:
    base = {str(r["problem_id"]): r for r in summary.get("base", {}).get("per_problem", [])}
    final = {str(r["problem_id"]): r for r in summary.get("final", {}).get("per_problem", [])}
    # Final's order first (the evaluated set), then problems only the base run saw.
    ids = list(dict.fromkeys([*final, *base]))
    if not ids:
        return ["No per-problem results in the summary."]
    lines = [
        "| problem | label | base correct/n | final correct/n | final majority answer | change |",
        "| --- | --- | ---: | ---: | --- | :---: |",
    ]
    for pid in ids:
        b, f = base.get(pid), final.get(pid)
        label = (f or b or {}).get("label")
        lines.append(
            f"| {_cell(pid)} | {_cell(label)} | {_correct_of_n(b)} | {_correct_of_n(f)} | {_majority(f)} | "
            f"{change_arrow(b, f)} |"
        )
    counts = {arrow: sum(change_arrow(base.get(p), final.get(p)) == arrow for p in ids) for arrow in "↑↓="}
    lines += ["", f"Problems improved ↑ {counts['↑']}, worse ↓ {counts['↓']}, unchanged = {counts['=']}."]
    return lines


def _last(series: pd.Series) -> tuple[int, float] | None:
    if series.empty:
        return None
    return int(series.index[-1]), float(series.iloc[-1])


def format_duration(seconds: float) -> str:
    """A demo's 40 s and a 9B run's 30 h both readable: seconds, minutes or hours."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def training_section(metrics_dir: str | os.PathLike) -> list[str]:
    tables = read_metrics(metrics_dir)
    rollout = tables["rollout"]
    lines: list[str] = []
    if len(rollout.columns) > 1:
        logged = rollout[rollout.iloc[:, 1:].notna().any(axis=1)]
        lines.append(f"- rollouts logged: {logged.iloc[:, 0].nunique()}")
    else:
        lines.append("- rollouts logged: 0")
    reward = _last(metric_series(rollout, "rollout/raw_reward"))
    lines.append(
        f"- last raw reward: {reward[1]:.4f} (rollout {reward[0]})" if reward else "- last raw reward: not logged"
    )
    columns = eval_score_columns(tables["eval"])
    if not columns:
        lines.append("- last in-training eval: not logged")
    for column in columns:
        step, value = _last(metric_series(tables["eval"], column))  # type: ignore[misc]
        lines.append(f"- last in-training eval `{column}`: {value:.4f} (rollout {step})")
    step_time = metric_series(tables["perf"], "perf/step_time")
    if not step_time.empty:
        lines.append(f"- total step time: {format_duration(step_time.sum())} over {len(step_time)} rollouts")
    return lines


def figures_section(figures: Sequence[str | os.PathLike], out_path: Path) -> list[str]:
    """PNGs shown inline, other formats of the same figure linked beside them; paths relative to the report.

    `figures` are paths as the caller sees them (absolute or relative to the working directory, like
    `out_path`); a Markdown viewer resolves links against the report's own directory, so they are rewritten."""
    by_stem: dict[str, list[str]] = {}
    for figure in figures:
        rel = os.path.relpath(Path(figure).absolute(), out_path.absolute().parent)
        by_stem.setdefault(Path(rel).with_suffix("").as_posix(), []).append(Path(rel).as_posix())
    lines: list[str] = []
    for stem, paths in by_stem.items():
        name = Path(stem).name
        pngs = [p for p in paths if p.endswith(".png")]
        others = [p for p in paths if not p.endswith(".png")]
        links = ", ".join(f"[{Path(p).suffix.lstrip('.')}]({p})" for p in others)
        if pngs:
            lines.append(f"![{name}]({pngs[0]})" + (f" ({links})" if links else ""))
        else:
            lines.append(f"- {name}: {links}")
        lines.append("")
    return lines


def render_report(
    summary: dict[str, Any], metrics_dir: str | os.PathLike, out_path: Path, figures: Sequence[str], title: str
) -> str:
    check_summary(summary)
    k = int(summary["k"])
    header_counts = []
    for side in ("base", "final"):
        block = summary.get(side)
        if block:
            header_counts.append(
                f"{side}: {block.get('n_problems', MISSING)} problems, {block.get('n_samples', MISSING)} samples"
            )
    lines = [
        f"# {title}",
        "",
        f"- experiment: `{summary['experiment']}`",
        f"- dataset: `{summary['dataset']}`",
        f"- samples per problem: k = {k}",
    ]
    lines += [f"- {c}" for c in header_counts]
    lines += [
        "",
        "## Scores",
        "",
        "Percent; 95% bootstrap CI over problems. avg@k is the mean reward over all samples (miles' `eval/<dataset>`),",
        "pass@k the unbiased estimate, maj@k the majority-vote accuracy.",
        "",
        *scores_table(summary),
        "",
        "## Per problem",
        "",
        *per_problem_table(summary),
        "",
        "## Training",
        "",
        *training_section(metrics_dir),
        "",
    ]
    if figures:
        lines += ["## Figures", "", *figures_section(figures, out_path)]
    return "\n".join(lines).rstrip("\n") + "\n"


def write_report(
    summary: dict[str, Any],
    metrics_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    figures: Sequence[str],
    title: str,
) -> Path:
    """Write the Markdown report to `out_path` atomically; figure paths are made relative to it."""
    out_path = Path(out_path)
    write_text(out_path, render_report(summary, metrics_dir, out_path, figures, title))
    return out_path
