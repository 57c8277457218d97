"""Rule compare: every experiment of the config overlaid, and a table of final scores."""
from mileage.logs import logged
from mileage.stages.report import compare

with logged(snakemake.log[0]):
    compare(snakemake.params.experiments, snakemake.output.scores, snakemake.output.figures,
            snakemake.params.compare["plots"], snakemake.params.compare["eval_ks"], snakemake.params.compare["labels"])
