"""Rule summarize: avg@k, pass@1..k, maj@k with bootstrap intervals, base and final, final minus base paired,
and the provenance of the run."""
from pathlib import Path

from mileage.logs import logged
from mileage.provenance import for_experiment
from mileage.stages.evaluate import summarize

with logged(snakemake.log[0]):
    provenance = for_experiment(snakemake.config, snakemake.params.summary["name"], Path(snakemake.scriptdir).parent)
    summarize(snakemake.params.summary, snakemake.input.base, snakemake.input.final, snakemake.output[0], provenance)
