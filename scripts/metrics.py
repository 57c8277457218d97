"""Rule metrics: canonical metric events -> rollout/train/perf/eval TSVs."""
from pathlib import Path

from mileage.logs import logged
from mileage.stages.report import metric_tables

with logged(snakemake.log[0]):
    metric_tables(snakemake.input.events, str(Path(snakemake.output.rollout).parent))
