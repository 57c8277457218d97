"""Rule report: the AIME-style Markdown report."""
from pathlib import Path

from mileage.logs import logged
from mileage.stages.report import report

with logged(snakemake.log[0]):
    metrics_dir = str(Path(snakemake.input.metrics).parent)
    report(snakemake.input.summary, metrics_dir, snakemake.output[0], snakemake.params.report,
           set_summaries=snakemake.params.sets)
