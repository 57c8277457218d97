"""The aggregate of an experiment's replicate seeds: statistics only. Its report and figures come from the same
rules and code as a single run's (mileage.stages.report), drawing the seeds' curves with a band."""

from __future__ import annotations

from pathlib import Path

from mileage.atomic import write_json, write_text
from mileage.evaluation.replicates import aggregate_summaries, mean_tables
from mileage.metrics.tables import table_text
from mileage.report.plots import STEP_KEYS, load_summary, read_metrics


def aggregate_set(name: str, seeds: list[int], summaries: list[str], out: str, params: dict) -> None:
    """One evaluation set of experiment `name` over its seeds (`summaries`: each seed's
    results/<exp>/seeds/<n>/eval/<set>/summary.json, in `seeds`' order) into `out`. `params`: the summarize rule's."""
    settings = params["report"]
    document = aggregate_summaries(name, seeds, [load_summary(path) for path in summaries],
                                   n_resamples=settings["bootstrap_samples"], seed=settings["bootstrap_seed"])
    home = Path(out).parents[2]  # results/<exp>/eval/<set>/summary.json -> results/<exp>
    document["replicates"] = {str(seed): str(Path(path).parents[2].relative_to(home))
                              for seed, path in zip(seeds, summaries)}
    write_json(out, document)
    interval = document["final"]["metrics"][f"avg@{document['k']}"]
    print(f"mileage: {name} on {document.get('dataset', '?')}: final avg@{document['k']} over seeds {seeds} = "
          f"{interval['value']:.3f} (95% CI across seeds {interval['ci95']})")


def aggregate_metrics(run_dirs: list[str], outdir: str) -> None:
    """The across-seed mean per step of each metric table (what the comparison reads as one experiment's curve)."""
    tables = [read_metrics(Path(d) / "metrics") for d in run_dirs]
    for kind in STEP_KEYS:
        mean = mean_tables([t[kind] for t in tables])
        steps = {int(row[0]): {c: v for c, v in zip(mean.columns[1:], row[1:]) if v == v}
                 for row in mean.itertuples(index=False)}
        write_text(Path(outdir) / f"{kind}.tsv", table_text(kind, steps))
