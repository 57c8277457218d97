"""Rule summarize: avg@k, pass@1..k, maj@k with bootstrap intervals, base and final."""
from mileage.logs import logged
from mileage.stages.evaluate import summarize

with logged(snakemake.log[0]):
    summarize(snakemake.params.summary, snakemake.input.base, snakemake.input.final, snakemake.output[0])
