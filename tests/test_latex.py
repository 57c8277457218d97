"""The LaTeX tables drop into a paper: every table of a comparison (a two-seed baseline, a learning-rate variant,
a three-point sweep) and of each run compiles in one two-column article with no overfull box, the labels are
unique, and bold marks only a best that is significant after Holm's adjustment. Compiling needs pdflatex
(Debian: texlive-latex-recommended; .ci/run installs it); without it those tests skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from mileage.evaluation.comparison import comparison_rows, significantly_best
from mileage.report import latex
from mileage.report.changes import changes_against
from mileage.report.compare import final_scores_latex, replicate_sides
from mileage.report.markdown import latex_tables
from synthetic_results import make_comparison

# An IEEE-like two-column page: \columnwidth 252 pt, \textwidth 516 pt.
ARTICLE = r"""\documentclass[10pt,twocolumn]{article}
\usepackage{booktabs}
\setlength{\textwidth}{516pt}\setlength{\columnsep}{12pt}\setlength{\oddsidemargin}{-30pt}
\setlength{\evensidemargin}{-30pt}\setlength{\textheight}{650pt}\setlength{\topmargin}{-40pt}
\begin{document}
%s
\end{document}
"""


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> dict[str, str]:
    """{file name: LaTeX} of the comparison and of every run in it."""
    root = tmp_path_factory.mktemp("results")
    dirs = make_comparison(root)
    summaries = {name: json.loads((d / "report" / "summary.json").read_text()) for name, d in dirs.items()}
    names = list(dirs)
    configs = {name: s["provenance"]["config"] for name, s in summaries.items()}
    changes = changes_against("demo", configs)
    rows, refusals = comparison_rows(names, summaries, {n: replicate_sides(dirs[n], summaries[n]) for n in names},
                                     baseline="demo", changes=changes, n_resamples=999)
    assert not refusals
    out = {"compare/final_scores.tex": final_scores_latex(names, summaries, rows, "demo", changes)}
    for name, summary in summaries.items():
        for file, text in latex_tables(summary, f"{name} on {summary['dataset']}").items():
            out[f"{name}/{file}"] = text
    return out


def test_labels_are_unique_and_derived_from_experiment_and_table(tables):
    labels = [label for text in tables.values() for label in re.findall(r"\\label\{([^}]*)\}", text)]
    assert len(labels) == len(set(labels)) == len(tables) + 1  # the comparison file holds two tables
    assert "tab:compare:final-scores" in labels and "tab:compare:paired" in labels
    assert "tab:demo:arith:final-scores" in labels and "tab:demo-lr:arith:hyperparameters" in labels


def test_no_metric_is_repeated_and_packages_beyond_booktabs_are_named(tables):
    for name, text in tables.items():
        assert "pass@1" not in text, name  # pass@1 is avg@k on a binary reward
        uses = {"graphicx": r"\resizebox", "makecell": r"\makecell", "multirow": r"\multirow", "xcolor": r"\color"}
        for package, command in uses.items():
            if command in text:
                assert text.startswith("% needs:") and package in text.splitlines()[0], (name, package)


def test_bold_only_for_a_best_significant_after_adjustment():
    rows = [{"a": "base", "b": "x", "metric": "avg@8", "estimate": 0.1, "significant": True},
            {"a": "base", "b": "y", "metric": "avg@8", "estimate": 0.12, "significant": True}]
    # Both beat the baseline, but x and y were never compared: neither is called the best.
    assert significantly_best(rows, "base", "avg@8") is None
    rows.append({"a": "x", "b": "y", "metric": "avg@8", "estimate": 0.02, "significant": False})
    assert significantly_best(rows, "base", "avg@8") is None  # y is ahead of x, but not significantly
    rows[-1]["significant"] = True
    assert significantly_best(rows, "base", "avg@8") == "y"
    only = [{"a": "base", "b": "x", "metric": "avg@8", "estimate": -0.2, "significant": True}]
    assert significantly_best(only, "base", "avg@8") == "base"
    entries = {"base": {"avg@8": {"value": 0.5, "ci95": [0.4, 0.6]}}, "x": {"avg@8": {"value": 0.3}}}
    text = latex.final_scores_table(entries, ["avg@8"], "c", "tab:t", best={"avg@8": "base"})
    assert text.count(r"\textbf") == 1 and r"\textbf{50.0}" in text
    assert r"\textbf" not in latex.final_scores_table(entries, ["avg@8"], "c", "tab:t", best={"avg@8": None})


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (texlive-latex-recommended)")
def test_every_table_compiles_in_one_two_column_article_without_an_overfull_box(tables, tmp_path):
    body = "\n\\clearpage\n".join(f"% {name}\n{text}" for name, text in tables.items())
    (tmp_path / "paper.tex").write_text(ARTICLE % body, encoding="utf-8")
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    log = (tmp_path / "paper.log").read_text(encoding="utf-8", errors="replace")
    assert result.returncode == 0, log[-3000:]
    assert "Overfull \\hbox" not in log, "\n".join(line for line in log.splitlines() if "Overfull" in line)
    assert "multiply defined" not in log and "unavailable in encoding" not in log
    assert (tmp_path / "paper.pdf").stat().st_size > 0
