"""Rule demo_model: the tiny GLM-4 model and its tokenizer, saved as a downloaded model would be."""
from mileage.logs import logged
from mileage.stages.models import build_demo_model

with logged(snakemake.log[0]):
    build_demo_model(snakemake.output[0], snakemake.params.model)
