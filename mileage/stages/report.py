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

FIGURES = ("reward", "eval", "loss", "response_length", "step_time", "pass_at_k", "final_scores")


def metric_tables(events: str, outdir: str) -> None:
    written = write_tables(read_events(events), outdir)
    print(f"mileage: wrote {', '.join(str(p) for p in written.values())}")


def report(summary: str, metrics_dir: str, out: str, params: dict, set_summaries: dict | None = None) -> None:
    """`params`: the report rule's keys (mileage.keys); an empty title means "<label or experiment> on <eval dataset>".
    `set_summaries`: {name: summary.json} of the other evaluation sets (data.extra_eval), a section each."""
    title = params["report"]["title"] or f"{params['label'] or params['name']} on {params['data']['eval']['name']}"
    # Every format of the figures the plots rule drew (a figure whose metric was never logged is not there): the
    # PNG shown, the others (PDF) linked beside it.
    figures = [str(Path(out).parent / "figures" / f"{name}.{fmt}") for name in FIGURES
               for fmt in params["plots"]["formats"]]
    data = load_summary(summary)
    write_report(data, metrics_dir, out, [f for f in figures if Path(f).is_file()], title)
    note, sets = replicates_note(data), eval_sets_section(set_summaries or {}, Path(out).parent / "figures")
    if note or sets:
        from mileage.atomic import write_text
        from mileage.report.markdown import report_html

        text = Path(out).read_text(encoding="utf-8")
        if note:  # under the header, before the first section
            head, sep, rest = text.partition("\n## ")
            text = head.rstrip("\n") + "\n\n" + "\n".join(note) + "\n" + sep + rest
        text = text.rstrip("\n") + "\n" + "\n".join(sets) + ("\n" if sets else "")
        # The HTML page (what `snakemake --report` shows) carries the same sections; the Markdown, the output, last.
        write_text(Path(out).with_suffix(".html"), report_html(text, Path(out).parent, title))
        write_text(out, text)


def replicates_note(summary: dict) -> list[str]:
    """What the numbers of an aggregate over replicate seeds are (its tables read like one run's)."""
    seeds = summary.get("seeds")
    if not seeds or "per_seed" not in summary:
        return []
    from mileage.report.plots import interval_note

    avg = f"avg@{summary['k']}"
    per_seed = ", ".join(f"seed {s}: {summary['per_seed'][str(s)]['final'][avg]:.3f}" for s in seeds)
    return [
        f"**Replicates**: {len(seeds)} seeds ({', '.join(map(str, seeds))}), each in `seeds/<n>/` with its own report.",
        f"Here the final scores are the mean over seeds with a {interval_note([summary])};",
        "base is the one shared base model's evaluation (bootstrap over problems); Δ is paired over problems x seeds.",
        f"Final avg@{summary['k']} per seed: {per_seed}.",
    ]


def eval_sets_section(set_summaries: dict, figures_dir: Path) -> list[str]:
    """A section per other evaluation set: its scores and the pass@k figure the plots rule drew of it."""
    from mileage.report.markdown import scores_table

    lines: list[str] = []
    for name, path in set_summaries.items():
        data = load_summary(path)
        lines += ["", f"## Evaluation set `{name}`", "", *scores_table(data), ""]
        if (figures_dir / f"pass_at_k_{name}.png").is_file():
            lines += [f"![pass@k on {name}](figures/pass_at_k_{name}.png)", ""]
    return lines


def stand_alone_points(summary: dict, side: str) -> dict[str, tuple]:
    """{dataset: (avg@k, low, high)} of one side's stand-alone evaluation (k: the summary's): the base model is the
    eval curve's step 0, the final checkpoint its last step."""
    entry = ((summary.get(side) or {}).get("metrics") or {}).get(f"avg@{summary.get('k')}")
    if entry is None:
        return {}
    low, high = entry.get("ci95") or (entry["value"], entry["value"])
    return {summary["dataset"]: (entry["value"], low, high)}


def base_points(summary: dict) -> dict[str, tuple]:
    return stand_alone_points(summary, "base")


def summary_figures(data: dict, outdir: Path, style: dict, color_index: int, suffix: str = "") -> list[Path]:
    """pass@k and the final-scores figure (base in grey, final in the experiment's colour) of one summary, named
    `pass_at_k<suffix>`, `final_scores<suffix>`."""
    from mileage.report.plots import experiment_color, final_score_points, plot_final_scores, summary_interval_note
    from mileage.report.style import resolve_style

    color = experiment_color(resolve_style(style), color_index)
    written = plot_summary(data, outdir, style, color_index=color_index, name=f"pass_at_k{suffix}")
    note = summary_interval_note(data)
    entries = [("base model", "0.55", final_score_points(data, "base")),
               ("final checkpoint", color, final_score_points(data))]
    return written + plot_final_scores(entries, outdir, style, name=f"final_scores{suffix}", note=note,
                                       dataset=data["dataset"])


def figures(summary: str, metrics_dir: str | list, outdir: str, params: dict, color_index: int = 0,
            eval_samples: str | None = None, set_summaries: dict | None = None) -> None:
    """`params`: the plots rule's keys. The in-training eval's samples per prompt (`eval.n_samples_per_prompt`)
    label the eval figure; it is not the summary's k, which counts the stand-alone base/final evaluations.
    `metrics_dir`: a list for replicate seeds (mean and across-seed interval); `eval_samples`: one run's in-training
    eval records (its eval error bars); `color_index`: the experiment's place in the experiments' order;
    `set_summaries`: {name: summary.json} of the other evaluation sets (their base points, pass@k and scores)."""
    style, eval_k = params["plots"], params["eval"]["n_samples_per_prompt"]
    data = load_summary(summary)
    sets = {name: load_summary(path) for name, path in (set_summaries or {}).items()}
    samples = None
    if eval_samples and Path(eval_samples).stat().st_size:
        samples = [dict(r) for r in iter_jsonl_rows(eval_samples)]
    base, final = base_points(data), stand_alone_points(data, "final")
    final_k = {data["dataset"]: data["k"]} if final else {}
    for other in sets.values():
        base.update(base_points(other))
        final.update(stand_alone_points(other, "final"))
        final_k[other["dataset"]] = other["k"]
    train_set = ((data.get("provenance") or {}).get("config") or {}).get("data", {}).get("train", {}).get("name")
    with atomic_dir(outdir) as tmp:
        written = plot_training(metrics_dir, tmp, style, eval_k=eval_k, color_index=color_index,
                                base=base, eval_samples=samples, final=final, final_k=final_k,
                                train_dataset=train_set)
        written += summary_figures(data, tmp, style, color_index)
        for name, other in sets.items():
            written += summary_figures(other, tmp, style, color_index, suffix=f"_{name}")
    print(f"mileage: {len(written)} figure files in {outdir}")


def iter_jsonl_rows(path: str):
    from mileage.jsonl import iter_jsonl

    return (row for _, row in iter_jsonl(Path(path)))


def compare(experiments: dict, scores: str, figures_dir: str, style: dict, eval_ks: dict | None = None,
            labels: dict | None = None, **design) -> None:
    """Overlay all experiments; tables next to `scores`, figures in `figures_dir`. `eval_ks`: each experiment's
    in-training eval samples per prompt (labels the eval overlay); `labels`: the name each figure's legend shows;
    `design`: the comparison's `baseline`, `pairs`, `changes` and `sweeps` (compare_experiments' keywords)."""
    outdir = Path(scores).parent
    with tempfile.TemporaryDirectory(dir=outdir.parent if outdir.parent.exists() else None) as tmp:
        compare_experiments({name: Path(path) for name, path in experiments.items()}, tmp, style, eval_ks, labels,
                            **design)
        with atomic_dir(figures_dir) as figs:
            for file in Path(tmp).iterdir():
                if file.suffix not in (".tsv", ".md", ".tex", ".html"):
                    shutil.copy2(file, figs / file.name)
        # Tables beside `scores`, the declared `scores` itself last.
        for name in ("paired.tsv", "final_scores.tex", "final_scores.md", "final_scores.html", "final_scores.tsv"):
            shutil.copy2(Path(tmp) / name, outdir / f".{name}.tmp")
            (outdir / f".{name}.tmp").replace(outdir / name)
