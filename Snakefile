# mileage: raw Hugging Face downloads -> torch_dist -> RL training -> metric TSVs -> AIME eval -> report.
# The rules wire; scripts/ unpack; the mileage library decides. See README.md and ../docs/contracts.md.


# The landing page of `snakemake --report`: what the workflow is and its experiments.
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/models.smk"
include: "rules/train.smk"
include: "rules/metrics.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/replicates.smk"


rule all:
    default_target: True
    input:
        all_targets(),
