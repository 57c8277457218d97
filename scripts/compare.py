"""Rule compare: every experiment of the config overlaid, and a table of final scores."""
from mileage.logs import logged
from mileage.stages.report import compare

with logged(snakemake.log[0]):
    params = snakemake.params.compare
    compare(snakemake.params.experiments, snakemake.output.scores, snakemake.output.figures, params["plots"],
            params["eval_ks"], params["labels"], sweeps=params["sweeps"], baseline=params["baseline"],
            pairs=params["pairs"], changes=params["changes"])
