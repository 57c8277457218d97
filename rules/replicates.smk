# Replicate seeds: the aggregate of an experiment with `seeds` (mean and 95% interval across seeds), from its
# runs' own summaries and metric tables (results/<exp>/seeds/<n>/), in results/<exp>/.


rule aggregate:
    input:
        summaries=lambda w: [
            f"{R}/{run}/report/summary.json" for run in REPLICATED[w.agg]["runs"]
        ],
        tables=lambda w: [
            f"{R}/{run}/metrics/{kind}.tsv"
            for run in REPLICATED[w.agg]["runs"]
            for kind in ("rollout", "train", "perf", "eval")
        ]
        + [
            f"{R}/{run}/eval/{s}/summary.json"
            for run in REPLICATED[w.agg]["runs"]
            for s in EVAL_SETS[w.agg]
        ],
    output:
        summary=f"{R}/{{agg}}/report/summary.json",
        tables=[
            f"{R}/{{agg}}/metrics/{kind}.tsv"
            for kind in ("rollout", "train", "perf", "eval")
        ],
        sets=directory(f"{R}/{{agg}}/eval"),
        report=f"{R}/{{agg}}/report/report.md",
        scores_tex=f"{R}/{{agg}}/report/final_scores.tex",
        hyperparameters_tex=f"{R}/{{agg}}/report/hyperparameters.tex",
        # The same report as one HTML page: Snakemake's report shows HTML inline, Markdown only as a download.
        html=report(
            f"{R}/{{agg}}/report/report.html",
            caption="../report/report.rst",
            category="{agg}",
        ),
        figures=report(
            directory(f"{R}/{{agg}}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="{agg}",
        ),
    log:
        f"{R}/{{agg}}/logs/aggregate.log",
    conda:
        ENV_ANALYSIS
    params:
        seeds=lambda w: REPLICATED[w.agg]["seeds"],
        runs=lambda w: [f"{R}/{run}" for run in REPLICATED[w.agg]["runs"]],
        color_index=lambda w: COLOR_INDEX[w.agg],
        sets=lambda w: EVAL_SETS[w.agg],
        aggregate=lambda w: {
            stage: stage_params.rule_params(stage, w.agg, DECLARED[w.agg], CFG, LAYOUT)
            for stage in ("summarize", "report", "plots")
        },
    script:
        "../scripts/aggregate.py"
