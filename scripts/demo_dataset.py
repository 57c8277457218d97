"""Rule demo_dataset: synthetic arithmetic problems in miles' JSONL schema."""
from mileage.logs import logged
from mileage.stages.data import build_demo_dataset

with logged(snakemake.log[0]):
    build_demo_dataset(snakemake.output[0], snakemake.params.dataset)
