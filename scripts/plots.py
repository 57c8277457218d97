"""Rule plots: paper-ready figures (PDF and PNG) of one experiment."""
from pathlib import Path

from mileage.logs import logged
from mileage.stages.report import figures

with logged(snakemake.log[0]):
    metrics_dir = str(Path(snakemake.input.tables[0]).parent)
    figures(snakemake.input.summary, metrics_dir, snakemake.output[0], snakemake.params.plots,
            color_index=snakemake.params.color_index, eval_samples=snakemake.input.eval_samples,
            set_summaries=snakemake.params.sets)
