"""Rule fetch_dataset: a Hugging Face dataset at a pinned revision, normalised to miles' JSONL schema."""
from mileage.logs import logged
from mileage.stages.data import fetch_hf_dataset

with logged(snakemake.log[0]):
    fetch_hf_dataset(snakemake.output[0], snakemake.params.dataset, snakemake.params.lock, snakemake.params.cache_dir)
