"""Rules eval_base / eval_final: k samples per eval problem, every sample kept."""
from mileage.logs import logged
from mileage.stages.evaluate import evaluate

with logged(snakemake.log[0]):
    evaluate(snakemake.params.evaluation, dict(snakemake.input), snakemake.output[0])
