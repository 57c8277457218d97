r"""LaTeX (booktabs) tables that drop into a paper: each a complete `table` (fits `\columnwidth` of a two-column
article) or `table*` (fits `\textwidth`, for the wide ones), with a label derived from the experiment and the
table (`tab:demo:aime-2024-final-scores`), so every label of a run and of the comparison is unique.

- Each estimate carries its 95% interval on a line of its own inside the cell (a nested `tabular`: no package),
  so a column is as wide as its widest number, not number plus interval.
- Bold marks a best only when it is significantly best after Holm's adjustment (`significant` cells); a higher
  estimate alone is never bold.
- Packages: booktabs only. A table that needs more says so in a leading `% needs: pkg, ...` comment
  (`table(needs=...)`).
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from mileage.report.style import is_number

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": "$<$", ">": "$>$"}
_BREAK_AFTER = set("~=./-_:,")


def escape(text: Any) -> str:
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def breakable(text: Any) -> str:
    """Escaped text that may wrap after `~ = . / - _ : ,` (names like `demo-lr~train.lr=0.001` have no spaces), never
    inside a number (`0.001` stays whole)."""
    text = str(text)

    def breaks_after(i: int) -> bool:
        inside_number = text[i] == "." and 0 < i < len(text) - 1 and text[i - 1].isdigit() and text[i + 1].isdigit()
        return text[i] in _BREAK_AFTER and not inside_number

    return "".join(escape(ch) + (r"\allowbreak{}" if breaks_after(i) else "") for i, ch in enumerate(text))


def change_note(text: Any) -> str:
    """What an experiment changes (`train.lr 0.0005 -> 0.001`) as LaTeX, the arrow an arrow."""
    return breakable(text).replace(r"-\allowbreak{}$>$", r"$\to$")


def label(*parts: str) -> str:
    """`tab:<part>:<part>...`: characters a label cannot hold become '-'."""
    return "tab:" + ":".join(re.sub(r"[^A-Za-z0-9.=/+-]", "-", str(p)) for p in parts if str(p))


def table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str, label: str, align: str,
          *, wide: bool = False, needs: Sequence[str] = (), notes: str = "", size: str = r"\small",
          colsep: str = "3pt") -> str:
    """A booktabs table; cells are LaTeX already (escape plain text with `escape`). `wide`: a `table*` over both
    columns; `needs`: packages beyond booktabs (the leading `% needs:` comment); `notes`: a footnote-size line
    under the table (LaTeX already)."""
    env = "table*" if wide else "table"
    lines = [f"% needs: {', '.join(needs)}"] if needs else []
    lines += [
        rf"\begin{{{env}}}[t]",
        r"\centering",
        size,
        rf"\setlength{{\tabcolsep}}{{{colsep}}}",
        rf"\caption{{{caption}}}",
        rf"\label{{{label}}}",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(header) + r" \\",
        r"\midrule",
        *(" & ".join(row) + r" \\" for row in rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    if notes:
        lines += [r"\par\smallskip", rf"\parbox{{\linewidth}}{{\footnotesize {notes}}}"]
    lines.append(rf"\end{{{env}}}")
    return "\n".join(lines) + "\n"


def stacked(top: str, bottom: str) -> str:
    """Two lines in one cell, the second small (an interval under its estimate)."""
    return rf"\begin{{tabular}}[t]{{@{{}}c@{{}}}}{top}\\{{\scriptsize {bottom}}}\end{{tabular}}"


def percent(value: Any, signed: bool = False) -> str:
    if not is_number(value):
        return "--"
    return f"{100.0 * float(value):+.1f}" if signed else f"{100.0 * float(value):.1f}"


def score_cell(entry: dict[str, Any] | None, bold: bool = False) -> str:
    """`41.2` over `[35.0, 47.3]` in percent; the estimate bold when it is significantly the best."""
    if not entry or not is_number(entry.get("value")):
        return "--"
    value = percent(entry["value"])
    value = rf"\textbf{{{value}}}" if bold else value
    ci = entry.get("ci95")
    if ci and all(is_number(v) for v in ci):
        return stacked(value, f"[{percent(ci[0])}, {percent(ci[1])}]")
    return value


def difference_cell(estimate: Any, low: Any, high: Any) -> str:
    """`+12.3` over `[+8.1, +16.0]`: a difference in percentage points with its interval."""
    if not is_number(estimate):
        return "--"
    if is_number(low) and is_number(high):
        return stacked(percent(estimate, True), f"[{percent(low, True)}, {percent(high, True)}]")
    return percent(estimate, True)


def p_cell(text: str) -> str:
    """A p-value as mileage.report.markdown.format_p writes it, in LaTeX (`< 0.001` -> `$<$0.001`)."""
    return text.replace("< ", "$<$").replace("≤ ", r"$\le$").replace("> ", "$>$")


def final_scores_table(entries: dict[str, dict[str, dict[str, Any] | None]], metrics: Sequence[str],
                       caption: str, label: str = "tab:final-scores", best: dict[str, str | None] | None = None,
                       notes: dict[str, str] | None = None, first: str = "run") -> str:
    """Rows of final scores: `entries` row name -> metric -> {"value", "ci95"}; `best`: metric -> the row that is
    significantly best (bold), None where none is; `notes`: a second, small line under a row's name (what it
    changes relative to the baseline). Fits one column up to three metrics, else spans both."""
    rows = []
    for name, entry in entries.items():
        head = rf"\texttt{{{breakable(name)}}}"
        if (notes or {}).get(name):
            head += rf"\newline{{\scriptsize {change_note(notes[name])}}}"
        rows.append([head] + [score_cell(entry.get(m), bold=(best or {}).get(m) == name) for m in metrics])
    wide = len(metrics) > 3
    name_width = "0.22\\textwidth" if wide else "0.28\\columnwidth"  # three score columns of "[100.0, 100.0]" beside it
    return table([escape(first)] + [escape(m) for m in metrics], rows, escape(caption), label,
                 f"@{{}}p{{{name_width}}}" + "c" * len(metrics) + "@{}", wide=wide)


def base_final_table(summary_metrics: dict[str, dict[str, Any]], caption: str, label: str) -> str:
    """One run: a row per metric with base, final, the paired difference and its p-value. `summary_metrics`:
    metric -> {"base", "final", "paired", "p_text", "bold"}, where `bold` is "base", "final" or None."""
    rows = []
    for metric, cell in summary_metrics.items():
        paired = cell.get("paired") or {}
        ci = paired.get("ci95") or (None, None)
        rows.append([escape(metric), score_cell(cell.get("base"), cell.get("bold") == "base"),
                     score_cell(cell.get("final"), cell.get("bold") == "final"),
                     difference_cell(paired.get("estimate"), ci[0], ci[1]), p_cell(cell.get("p_text") or "--")])
    # Three interval columns and a p beside the metric names: at \small and 3 pt column gaps, 9 pt too wide for one
    # column of a two-column article with intervals like [+24.6, +51.8] (compiled and measured).
    return table(["metric", "base", "final", r"$\Delta$ (pp)", "$p$"], rows, caption, label, "@{}lcccr@{}",
                 size=r"\footnotesize", colsep="2pt")


def hyperparameter_table(rows: Sequence[tuple[str, Any]], caption: str, label: str) -> str:
    cells = [[rf"\texttt{{\footnotesize {breakable(k)}}}", breakable(v)] for k, v in rows]
    return table(["hyperparameter", "value"], cells, escape(caption), label,
                 r"@{}p{0.52\columnwidth}p{0.44\columnwidth}@{}")


def paired_table(rows: Sequence[dict[str, Any]], p_texts: Sequence[tuple[str, str]], caption: str, label: str,
                 notes: str = "") -> str:
    """The comparison's differences (mileage.evaluation.comparison rows), one row per (a, b, metric), across both
    columns: b (and what it changes), a, metric, b - a with its interval, p, Holm-adjusted p, detectable gap.
    `p_texts`: (p, p_holm) of each row as mileage.report.markdown.format_p writes them."""
    cells = []
    for row, (p_text, holm_text) in zip(rows, p_texts):
        head = rf"\texttt{{{breakable(row['b'])}}}"
        if row.get("change"):
            head += rf"\newline{{\scriptsize {change_note(row['change'])}}}"
        holm = p_cell(holm_text)
        cells.append([head, rf"\texttt{{{breakable(row['a'])}}}", escape(row["metric"]),
                      difference_cell(row["estimate"], row["ci95_low"], row["ci95_high"]), p_cell(p_text),
                      rf"\textbf{{{holm}}}" if row.get("significant") else holm, percent(row.get("mde80"))])
    header = ["b", "a", "metric", r"$b - a$ (pp)", "$p$", r"$p_{\mathrm{Holm}}$", r"MDE$_{80}$ (pp)"]
    return table(header, cells, caption, label, r"@{}p{0.3\textwidth}p{0.14\textwidth}lcrrr@{}", wide=True,
                 notes=notes)
