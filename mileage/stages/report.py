"""Report steps: metric tables from events, the Markdown report, figures, and the comparison."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from mileage.atomic import atomic_dir
from mileage.metrics.events import read_events
from mileage.metrics.tables import write_tables
from mileage.report.compare import compare_experiments
from mileage.report.markdown import write_report
from mileage.report.plots import load_summary, plot_summary, plot_training

FIGURES = ("reward", "eval", "loss", "response_length", "step_time", "pass_at_k")


def metric_tables(events: str, outdir: str) -> None:
    written = write_tables(read_events(events), outdir)
    print(f"mileage: wrote {', '.join(str(p) for p in written.values())}")


def report(summary: str, metrics_dir: str, out: str, params: dict) -> None:
    """`params`: the report rule's keys (mileage.keys); an empty title means "<experiment> on <eval dataset>"."""
    title = params["report"]["title"] or f"{params['name']} on {params['data']['eval']['name']}"
    figures = [f"figures/{name}.png" for name in FIGURES if "png" in params["plots"]["formats"]]
    write_report(load_summary(summary), metrics_dir, out, [str(Path(out).parent / f) for f in figures], title)


def figures(summary: str, metrics_dir: str, outdir: str, params: dict) -> None:
    """`params`: the plots rule's keys. The in-training eval's samples per prompt (`eval.n_samples_per_prompt`)
    label the eval figure; it is not the summary's k, which counts the stand-alone base/final evaluations."""
    style, eval_k = params["plots"], params["eval"]["n_samples_per_prompt"]
    data = load_summary(summary)
    with atomic_dir(outdir) as tmp:
        written = plot_training(metrics_dir, tmp, style, eval_k=eval_k)
        written += plot_summary(data, tmp, style)
    print(f"mileage: {len(written)} figure files in {outdir}")


def compare(experiments: dict, scores: str, figures_dir: str, style: dict, eval_ks: dict | None = None) -> None:
    """Overlay all experiments; tables next to `scores`, figures in `figures_dir`. `eval_ks`: each experiment's
    in-training eval samples per prompt (labels the eval overlay)."""
    outdir = Path(scores).parent
    with tempfile.TemporaryDirectory(dir=outdir.parent if outdir.parent.exists() else None) as tmp:
        compare_experiments({name: Path(path) for name, path in experiments.items()}, tmp, style, eval_ks)
        with atomic_dir(figures_dir) as figs:
            for file in Path(tmp).iterdir():
                if file.suffix not in (".tsv", ".md"):
                    shutil.copy2(file, figs / file.name)
        for name in ("final_scores.md", "final_scores.tsv"):  # the declared output last
            shutil.copy2(Path(tmp) / name, outdir / f".{name}.tmp")
            (outdir / f".{name}.tmp").replace(outdir / name)
