"""Rule preflight: the memory plan of an experiment; refuses one that cannot fit before any download."""
from mileage.logs import logged
from mileage.stages.models import preflight

with logged(snakemake.log[0]):
    preflight(snakemake.output[0], snakemake.params.plan)
