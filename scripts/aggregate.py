"""Rule aggregate: the across-seed summary, metric tables, figures and report of a replicated experiment."""
from pathlib import Path

from mileage.logs import logged
from mileage.stages.report import aggregate

with logged(snakemake.log[0]):
    outdir = str(Path(snakemake.output.summary).parent.parent)
    aggregate(snakemake.wildcards.agg, snakemake.params.seeds, snakemake.params.runs, outdir,
              snakemake.params.aggregate, color_index=snakemake.params.color_index, eval_sets=snakemake.params.sets)
