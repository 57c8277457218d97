"""Captions of `snakemake --report` (report/*.rst): rendered as Snakemake renders them (Jinja with trim_blocks and
lstrip_blocks, then docutils to HTML), each figure gets its own caption naming its experiment.
(benchmarks/paired_demo.py --report checks a real report of a finished pipeline.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docutils.core import publish_parts
from jinja2 import Environment
from snakemake.iocontainers import Wildcards

ROOT = Path(__file__).resolve().parents[1]
# Every figure the plots and compare rules write, by the {name} of the report pattern "{name}.png".
EXPERIMENT_FIGURES = ("reward", "eval", "loss", "response_length", "step_time", "pass_at_k", "final_scores",
                      "pass_at_k_sub", "final_scores_sub")
COMPARE_FIGURES = ("reward", "eval", "final_scores", "forest", "sweep_demo-lr")


class _Snakemake:
    def __init__(self, **wildcards: str) -> None:
        self.wildcards = Wildcards(fromdict=wildcards)


def render(caption: str, **wildcards: str) -> str:
    env = Environment(trim_blocks=True, lstrip_blocks=True)  # as snakemake.report renders captions
    text = env.from_string((ROOT / "report" / caption).read_text()).render(snakemake=_Snakemake(**wildcards))
    html = publish_parts(text, writer_name="html", settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()


@pytest.mark.parametrize("wildcard", ["result", "exp", "agg"])  # the plots rule's wildcard (older rules: exp, agg)
def test_every_experiment_figure_has_its_own_caption(wildcard):
    captions = {name: render("figures.rst", **{wildcard: "demo", "name": name}) for name in EXPERIMENT_FIGURES}
    for name, text in captions.items():
        assert "demo" in text and not text.startswith("Figure"), (name, text)  # not the fallback
    assert len(set(captions.values())) == len(captions)  # no two figures share a caption
    assert "sub" in captions["pass_at_k_sub"] and "main evaluation set" in captions["pass_at_k"]
    assert "entropy" in captions["loss"] and "nats per token" in captions["loss"] and "thin" in captions["loss"]
    assert "base model (hollow circle at step 0)" in captions["eval"] and "percent" in captions["final_scores"]


def test_comparison_figures_and_tables_have_their_own_captions():
    figures = {name: render("compare.rst", name=name) for name in COMPARE_FIGURES}
    assert not any(text.startswith("Comparison figure") for text in figures.values())
    assert len(set(figures.values())) == len(figures)
    assert "Holm" in figures["forest"] and "MDE80" in figures["forest"]
    assert "demo-lr" in figures["sweep_demo-lr"] and "log axis" in figures["sweep_demo-lr"]
    assert render("compare.rst").startswith("Final scores of every experiment")  # final_scores.tsv
    assert "paired differences" in render("compare_tables.rst")
    assert "b minus a" in render("paired.rst") and "Holm" in render("paired.rst")
    for wildcard in ("result", "exp", "agg"):
        assert render("report.rst", **{wildcard: "demo"}).startswith("AIME-style report of experiment demo")


def test_the_landing_page_says_what_the_workflow_is_and_lists_the_experiments():
    """report/workflow.rst, Snakemake's report description, rendered with a config as `snakemake --report` does."""
    class Workflow:
        config = {"experiments": {
            "demo": {"description": "Tiny GLM-4 model.", "seeds": [1, 2]},
            "demo-lr": {"extends": "demo", "label": "higher lr", "sweep": {"train.lr": [0.001, 0.002]}}},
            "compare": {"baseline": "demo"}}

    env = Environment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string((ROOT / "report" / "workflow.rst").read_text()).render(snakemake=Workflow,
                                                                                categories={}, files=[])
    html = publish_parts(text, writer_name="html", settings_overrides={"report_level": 2, "halt_level": 2})["body"]
    plain = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))
    assert "reinforcement learning of language models with miles" in plain
    assert "Experiments of this configuration (2; the comparison's baseline is demo)" in plain
    assert "demo: Tiny GLM-4 model. Seeds 1, 2, aggregated." in plain
    assert "demo-lr (higher lr): Starts from demo." in plain and "train.lr = [0.001, 0.002]" in plain
    snakefile = (ROOT / "Snakefile").read_text()
    assert 'report: "report/workflow.rst"' in snakefile
