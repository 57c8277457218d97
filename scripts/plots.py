"""Rule plots: paper-ready figures (PDF and PNG) of one run, or of a replicated experiment over its seeds."""
from mileage.logs import logged
from mileage.stages.report import figures

with logged(snakemake.log[0]):
    runs = [f"{run}/metrics" for run in snakemake.params.runs]
    figures(snakemake.input.summary, runs[0] if len(runs) == 1 else runs, snakemake.output[0],
            snakemake.params.plots,
            eval_samples=snakemake.input.eval_samples[0] if snakemake.input.eval_samples else None,
            set_summaries=snakemake.params.sets)
