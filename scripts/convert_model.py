"""Rule convert_model: HF -> Megatron torch_dist with miles' converter (GPU)."""
from mileage.logs import logged
from mileage.stages.models import convert_model

with logged(snakemake.log[0]):
    convert_model(snakemake.input.snapshot, snakemake.output[0], snakemake.params.convert)
