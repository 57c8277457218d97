"""Rule export_hf: the final miles checkpoint converted back to Hugging Face format."""
from mileage.logs import logged
from mileage.stages.export import export_hf

with logged(snakemake.log[0]):
    export_hf(snakemake.input.done, snakemake.input.snapshot, snakemake.output[0], snakemake.params.export)
