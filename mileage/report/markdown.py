"""The AIME-style Markdown report of one experiment: base vs final scores, per problem, training, figures,
hyperparameters and provenance; LaTeX (booktabs) copies of the score and hyperparameter tables beside it.

Scores are shown in percent with their 95% bootstrap interval over problems (from summary.json); the difference
column is final minus base in percentage points with its paired 95% interval and sign-flip p-value (summary.json's
`paired`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from mileage.atomic import write_text
from mileage.evaluation.stats import headline_metrics as _stats_headline
from mileage.report import latex
from mileage.report.plots import check_summary, eval_score_columns, metric_series, read_metrics
from mileage.report.style import is_number

MISSING = "—"
_MAX_CELL_CHARS = 40


def headline_metrics(k: int) -> list[str]:
    """The score rows of the report (mileage.evaluation.stats' headline metrics)."""
    return _stats_headline(k)


# The hyperparameters a paper states, in table order (key paths of the resolved experiment).
HYPERPARAMETERS: tuple[str, ...] = (
    "engine", "model.source", "model.repo", "model.revision", "rollout.reward", "rollout.num_rollout",
    "rollout.rollout_batch_size", "rollout.n_samples_per_prompt", "rollout.max_response_len",
    "rollout.temperature", "rollout.top_p", "train.lr", "train.lr_decay_style", "train.global_batch_size",
    "train.micro_batch_size", "train.num_steps_per_rollout", "train.adam_beta1", "train.adam_beta2",
    "train.weight_decay", "train.clip_grad", "train.eps_clip", "train.eps_clip_high", "train.use_kl_loss",
    "train.kl_loss_coef", "train.entropy_coef", "final_eval.n_samples_per_prompt", "final_eval.max_response_len",
    "final_eval.temperature", "seed", "rollout_seed", "seeds",
)


def hyperparameter_rows(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """(key, value) of every HYPERPARAMETERS key the resolved config has (unset values shown as such)."""
    rows = []
    for key in HYPERPARAMETERS:
        node: Any = config
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            rows.append((key, "unset" if node is None else node))
    return rows


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


def format_p(p: Any, exact: Any = None, floor: Any = None) -> str:
    """A p-value at its resolution: "< 0.001" below 0.001 (the sign-flip floor with 9,999 resamples is 0.0002),
    "≤ 0.002" at a coarser resampling floor (the true p may be lower), two significant digits otherwise, and never
    rounded up to 1 (0.9964 is "0.996"; only a p of exactly 1 prints "1"). `exact`: every sign pattern enumerated
    (the p-value is exact, shown as computed); `floor`: the smallest p the resampling can give."""
    if not is_number(p):
        return MISSING
    p = float(p)
    if not exact and is_number(floor) and p <= float(floor) * (1 + 1e-9) and float(floor) > 0.001:
        return f"≤ {float(floor):.2g}"
    if p < 0.001:
        return "< 0.001"
    if p >= 1.0:
        return "1"
    text = f"{p:.2g}"
    if float(text) >= 1.0 or text == "1":
        text = f"{p:.3f}" if p < 0.9995 else "> 0.999"
    return text


def format_test_p(test: dict[str, Any] | None, key: str = "p_value") -> str:
    """`format_p` of a paired test's p-value (`key` "p_holm" for the adjusted one), at the test's resolution."""
    test = test or {}
    return format_p(test.get(key), test.get("p_exact"), test.get("p_floor"))


def format_paired(test: dict[str, Any] | None) -> tuple[str, str]:
    """(`+12.3 pp [8.1, 16.0]`, `< 0.001`) of a paired test, or dashes."""
    if not test or not is_number(test.get("estimate")):
        return MISSING, MISSING
    ci = test.get("ci95") or (None, None)
    interval = (f" [{100.0 * float(ci[0]):+.1f}, {100.0 * float(ci[1]):+.1f}]"
                if all(is_number(v) for v in ci) else "")
    return f"{100.0 * float(test['estimate']):+.1f} pp{interval}", format_test_p(test)


def scores_table(summary: dict[str, Any]) -> list[str]:
    k = int(summary["k"])
    lines = [
        "| metric | base | base 95% CI | final | final 95% CI | Δ (final − base) [paired 95% CI] | p |",
        "| --- | ---: | :---: | ---: | :---: | ---: | ---: |",
    ]
    paired = summary.get("paired") or {}
    for name in headline_metrics(k):
        base, final = _metric(summary, "base", name), _metric(summary, "final", name)
        if base is None and final is None:
            continue
        base_v = (base or {}).get("value")
        final_v = (final or {}).get("value")
        delta, p = format_paired(paired.get(name))
        if delta == MISSING:
            delta = format_delta(base_v, final_v)
        lines.append(
            f"| {name} | {format_percent(base_v)} | {format_ci(base)} | {format_percent(final_v)} | "
            f"{format_ci(final)} | {delta} | {p} |"
        )
    return lines


def few_seeds_lines(summary: dict[str, Any]) -> list[str]:
    """A plain statement under the scores of an aggregate over too few seeds for an across-seed interval."""
    from mileage.evaluation.replicates import few_seeds_note

    note = few_seeds_note(len(summary.get("seeds") or []))
    return [note, ""] if note else []


def provenance_section(provenance: dict[str, Any] | None) -> list[str]:
    """What ran: commit, revisions, data hashes, packages, hardware, wall time and the seeds."""
    if not provenance:
        return ["No provenance in the summary."]
    dirty = {True: " (uncommitted changes)", False: " (clean)"}.get(provenance.get("git_dirty"), "")
    machine = provenance.get("hardware") or {}
    gpus = machine.get("gpu") or []
    lines = [
        f"- git commit: `{provenance.get('git_commit') or 'not a git checkout'}`{dirty}",
        f"- seeds: {', '.join(map(str, provenance.get('seeds') or [])) or MISSING}",
        f"- hardware (where this summary was made): {machine.get('cpu', MISSING)} x {machine.get('cpu_count', '?')} "
        f"CPUs; GPUs: {machine.get('gpu_count', 0)}" + (f" ({', '.join(gpus)})" if gpus else ""),
        f"- GPU-hours: {float(provenance.get('gpu_hours') or 0.0):.3f}",
    ]
    walls = provenance.get("wall_seconds") or {}
    if walls:
        lines.append("- wall time per stage: " + ", ".join(f"{k} {format_duration(v)}" for k, v in walls.items()))
    for key, sha in (provenance.get("hf_revisions") or {}).items():
        lines.append(f"- Hugging Face `{key}` at `{sha or 'unresolved'}`")
    for path, sha in (provenance.get("data_sha256") or {}).items():
        lines.append(f"- data `{path}` sha256 `{sha or 'missing'}`")
    packages = provenance.get("packages") or {}
    lines.append("- packages: " + ", ".join(f"{n} {v}" for n, v in packages.items() if v))
    return lines


def hyperparameter_table(config: dict[str, Any]) -> list[str]:
    rows = hyperparameter_rows(config)
    if not rows:
        return ["No resolved config in the summary."]
    return ["| hyperparameter | value |", "| --- | --- |", *(f"| `{k}` | {_cell(v)} |" for k, v in rows)]


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
        "pass@k the unbiased estimate, maj@k the majority-vote accuracy (votes pooled by the reward's equivalence).",
        "answer_avg@k is the accuracy of the last answer given anywhere, in any format (a box anywhere, else the last",
        "number), judged by the reward's equivalence; format@k the share of samples in the format the reward needs.",
        "A gain in avg@k without one in answer_avg@k is format learning, not better answers.",
        "Δ is final − base over the same problems: paired bootstrap 95% CI and two-sided sign-flip p-value.",
        "",
        *scores_table(summary),
        "",
        *few_seeds_lines(summary),
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
    provenance = summary.get("provenance") or {}
    lines += ["## Hyperparameters", "", *hyperparameter_table(provenance.get("config") or {}), "",
              "## Provenance", "", *provenance_section(provenance), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def significant_side(summary: dict[str, Any]) -> dict[str, str | None]:
    """metric -> "final" or "base" where final minus base is significant after Holm's adjustment over the summary's
    paired tests (the family of its headline metrics), the higher side; None elsewhere."""
    from mileage.evaluation.paired import holm

    paired = {m: t for m, t in (summary.get("paired") or {}).items() if is_number((t or {}).get("p_value"))}
    adjusted = dict(zip(paired, holm([float(t["p_value"]) for t in paired.values()])))
    return {m: ("final" if paired[m]["estimate"] > 0 else "base") if p < 0.05 and paired[m]["estimate"] != 0
            else None for m, p in adjusted.items()}


def latex_tables(summary: dict[str, Any], title: str) -> dict[str, str]:
    """`final_scores.tex` (a row per headline metric: base, final, the paired difference and its p-value; bold only
    for a side significantly better after Holm's adjustment) and `hyperparameters.tex`, labelled by the
    experiment and the dataset so that every run's and set's labels differ."""
    k = int(summary["k"])
    metrics = [m for m in headline_metrics(k) if _metric(summary, "final", m) or _metric(summary, "base", m)]
    paired = summary.get("paired") or {}
    bold = significant_side(summary)
    cells = {m: {"base": _metric(summary, "base", m), "final": _metric(summary, "final", m),
                 "paired": paired.get(m), "p_text": format_test_p(paired.get(m)) if paired.get(m) else None,
                 "bold": bold.get(m)} for m in metrics}
    config = (summary.get("provenance") or {}).get("config") or {}
    seeds = summary.get("seeds") or []
    final_interval = (f"final: two-level bootstrap over {len(seeds)} seeds and the problems" if len(seeds) > 1
                      else "bootstrap over problems")
    caption = (rf"{latex.escape(title)}: percent; 95\% intervals ({final_interval}; base: bootstrap over problems); "
               r"$\Delta$: final $-$ base, paired; $p$: sign-flip test over problems. Bold: significantly better "
               "after Holm's adjustment over these metrics.")
    name, dataset = str(summary["experiment"]), str(summary["dataset"])
    return {
        "final_scores.tex": latex.base_final_table(cells, caption, latex.label(name, dataset, "final-scores")),
        "hyperparameters.tex": latex.hyperparameter_table(hyperparameter_rows(config), f"{title}: hyperparameters.",
                                                          latex.label(name, dataset, "hyperparameters")),
    }


def report_html(markdown_text: str, base_dir: Path, title: str) -> str:
    """The report as one self-contained HTML page (mileage.report.html: figures and linked files inlined as data
    URIs): Snakemake's report shows HTML inline, Markdown only as a download."""
    from mileage.report.html import html_page

    return html_page(markdown_text, base_dir, title)


def write_report(
    summary: dict[str, Any],
    metrics_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    figures: Sequence[str],
    title: str,
) -> Path:
    """Write the Markdown report to `out_path` atomically; figure paths are made relative to it."""
    out_path = Path(out_path)
    text = render_report(summary, metrics_dir, out_path, figures, title)
    for name, table in latex_tables(summary, title).items():  # beside the report; the report last (the output)
        write_text(out_path.parent / name, table)
    write_text(out_path.with_suffix(".html"), report_html(text, out_path.parent, title))
    write_text(out_path, text)
    return out_path
