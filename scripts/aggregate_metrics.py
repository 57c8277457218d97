"""Rule aggregate_metrics: the across-seed mean of each metric table of a replicated experiment."""
from pathlib import Path

from mileage.logs import logged
from mileage.stages.aggregate import aggregate_metrics

with logged(snakemake.log[0]):
    aggregate_metrics([str(Path(t).parent.parent) for t in snakemake.input.tables[::4]],
                      str(Path(snakemake.output.rollout).parent))
