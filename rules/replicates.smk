# Replicate seeds: the aggregate of an experiment with `seeds` is statistics only, per evaluation set and for the
# metric tables, in results/<exp>/; its report and figures are the report and plots rules' (rules/report.smk).


rule aggregate:
    input:
        summaries=lambda w: [
            f"{R}/{run}/eval/{w.set}/summary.json" for run in REPLICATED[w.agg]["runs"]
        ],
    output:
        f"{R}/{{agg}}/eval/{{set}}/summary.json",
    log:
        f"{R}/{{agg}}/logs/aggregate-{{set}}.log",
    conda:
        ENV_ANALYSIS
    params:
        seeds=emit(lambda w: REPLICATED[w.agg]["seeds"]),
        summary=params_of("summarize", wildcard="agg"),
    script:
        "../scripts/aggregate.py"


rule aggregate_metrics:
    input:
        tables=lambda w: [
            f"{R}/{run}/metrics/{kind}.tsv"
            for run in REPLICATED[w.agg]["runs"]
            for kind in ("rollout", "train", "perf", "eval")
        ],
    output:
        **{
            kind: f"{R}/{{agg}}/metrics/{kind}.tsv"
            for kind in ("rollout", "train", "perf", "eval")
        },
    log:
        f"{R}/{{agg}}/logs/aggregate_metrics.log",
    conda:
        ENV_ANALYSIS
    script:
        "../scripts/aggregate_metrics.py"
