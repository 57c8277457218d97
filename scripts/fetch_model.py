"""Rule fetch_model: a Hugging Face model snapshot at a pinned revision, verified, then its marker."""
from mileage.logs import logged
from mileage.stages.models import fetch_hf_model

with logged(snakemake.log[0]):
    fetch_hf_model(snakemake.output[0], snakemake.params.model, snakemake.params.lock, snakemake.params.cache_dir)
