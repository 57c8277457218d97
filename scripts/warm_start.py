"""Rule warm_start: a short supervised step so the tiny model gets some reward signal."""
from mileage.logs import logged
from mileage.stages.models import warm_start

with logged(snakemake.log[0]):
    warm_start(snakemake.input.base, snakemake.output[0], snakemake.params.warm)
