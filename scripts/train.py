"""Rule train: the experiment's training as one Ray job (engine miles or local), resumable."""
from mileage.logs import logged
from mileage.stages.train import run_training

with logged(snakemake.log[0]):
    run_training(snakemake.params.train, dict(snakemake.input), dict(snakemake.output), snakemake.params.run_dir)
