"""Rule preflight: the memory plan of an experiment, recorded beside its results."""
from mileage.logs import logged
from mileage.stages.models import preflight

with logged(snakemake.log[0]):
    preflight(snakemake.output[0], snakemake.wildcards.exp, snakemake.params.plan)
