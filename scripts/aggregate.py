"""Rule aggregate: one evaluation set of a replicated experiment, over its seeds (statistics only)."""
from mileage.logs import logged
from mileage.stages.aggregate import aggregate_set

with logged(snakemake.log[0]):
    aggregate_set(snakemake.wildcards.agg, snakemake.params.seeds, list(snakemake.input.summaries),
                  snakemake.output[0], snakemake.params.summary)
