"""LaTeX (booktabs) tables beside the Markdown ones: final scores (estimate with its 95% interval, the best of each
column in bold) and hyperparameters. Each table is a complete `table` environment; `\\usepackage{booktabs}`."""

from __future__ import annotations

from typing import Any, Sequence

from mileage.report.style import is_number

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text: Any) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str, label: str, align: str) -> str:
    """A booktabs table; cells are LaTeX already (escape plain text with `escape`)."""
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{escape(caption)}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def _percent(value: Any) -> str:
    return f"{100.0 * float(value):.1f}" if is_number(value) else "--"


def score_cell(entry: dict[str, Any] | None, bold: bool) -> str:
    """`41.2 [35.0, 47.3]` in percent, the estimate bold when it is the column's best."""
    if not entry or not is_number(entry.get("value")):
        return "--"
    value = _percent(entry["value"])
    value = rf"\textbf{{{value}}}" if bold else value
    ci = entry.get("ci95")
    if ci and all(is_number(v) for v in ci):
        return rf"{value} {{\small [{_percent(ci[0])}, {_percent(ci[1])}]}}"
    return value


def final_scores_table(entries: dict[str, dict[str, dict[str, Any] | None]], metrics: Sequence[str],
                       caption: str, label: str = "tab:final-scores") -> str:
    """`entries`: row name -> metric -> {"value", "ci95"}. The highest estimate of each column is bold (all ties)."""
    best = {}
    for metric in metrics:
        values = [float(e[metric]["value"]) for e in entries.values() if e.get(metric) and is_number(e[metric].get("value"))]
        best[metric] = max(values) if values else None
    rows = [
        [escape(name)] + [score_cell(e.get(metric), bold=best[metric] is not None and e.get(metric) is not None
                                     and is_number(e[metric].get("value"))
                                     and float(e[metric]["value"]) == best[metric]) for metric in metrics]
        for name, e in entries.items()
    ]
    return table(["run"] + [escape(m) for m in metrics], rows, caption, label, "l" + "r" * len(metrics))


def hyperparameter_table(rows: Sequence[tuple[str, Any]], caption: str, label: str = "tab:hyperparameters") -> str:
    return table(["hyperparameter", "value"], [[rf"\texttt{{{escape(k)}}}", escape(v)] for k, v in rows], caption,
                 label, "ll")
