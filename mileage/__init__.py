"""mileage: a reproducible Snakemake pipeline for RL of language models with miles."""

__version__ = "0.1.0"
