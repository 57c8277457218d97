"""Rule file_dataset: a local dataset file, checked and normalised to miles' JSONL schema."""
from mileage.logs import logged
from mileage.stages.data import normalise_file_dataset

with logged(snakemake.log[0]):
    normalise_file_dataset(snakemake.input[0], snakemake.output[0], snakemake.params.dataset)
