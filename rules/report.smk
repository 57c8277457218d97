# The AIME-style report, paper-ready figures, and the comparison of all experiments.


rule report:
    input:
        summary=f"{R}/{{result}}/report/summary.json",
        metrics=f"{R}/{{result}}/metrics/rollout.tsv",
        sets=lambda w: list(set_summaries_of(w.result).values()),
        # The report lists the figures drawn and its HTML page embeds them (snakemake --report resolves no path).
        figures=f"{R}/{{result}}/report/figures",
    output:
        f"{R}/{{result}}/report/report.md",
        # The same report as one HTML page: Snakemake's report shows HTML inline, Markdown only as a download.
        html=report(
            f"{R}/{{result}}/report/report.html",
            caption="../report/report.rst",
            category="{result}",
        ),
        scores_tex=f"{R}/{{result}}/report/final_scores.tex",
        hyperparameters_tex=f"{R}/{{result}}/report/hyperparameters.tex",
    log:
        f"{R}/{{result}}/logs/report.log",
    conda:
        ENV_ANALYSIS
    params:
        report=params_of("report", wildcard="result"),
        sets=emit(lambda w: set_summaries_of(w.result)),
    script:
        "../scripts/report.py"


# One rule for a run and for the aggregate of seeds: an aggregate draws its seeds' curves with a band.
rule plots:
    input:
        summary=f"{R}/{{result}}/report/summary.json",
        tables=lambda w: [
            f"{R}/{run}/metrics/{kind}.tsv"
            for run in runs_of(w.result)
            for kind in ("rollout", "train", "perf", "eval")
        ],
        # A single run's in-training eval records give its eval curve's error bars; seeds give a band instead.
        eval_samples=lambda w: (
            []
            if w.result in REPLICATED
            else [f"{R}/{w.result}/train/eval_samples.jsonl"]
        ),
        sets=lambda w: list(set_summaries_of(w.result).values()),
    output:
        report(
            directory(f"{R}/{{result}}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",  # one caption per figure, chosen by its {name}
            category="{result}",
        ),
    log:
        f"{R}/{{result}}/logs/plots.log",
    conda:
        ENV_ANALYSIS
    params:
        plots=params_of("plots", wildcard="result"),
        sets=emit(lambda w: set_summaries_of(w.result)),
        runs=emit(lambda w: [f"{R}/{run}" for run in runs_of(w.result)]),
    script:
        "../scripts/plots.py"


rule compare:
    input:
        summaries=expand(f"{R}/{{exp}}/report/summary.json", exp=TOP_NAMES),
        tables=expand(f"{R}/{{exp}}/metrics/rollout.tsv", exp=TOP_NAMES),
        # The paired tests read every seed's own summary of a replicated experiment.
        seed_summaries=[
            f"{R}/{run}/report/summary.json"
            for name in REPLICATED
            for run in REPLICATED[name]["runs"]
        ],
    output:
        scores=report(
            f"{R}/compare/final_scores.tsv",
            caption="../report/compare.rst",
            category="compare",
        ),
        # The tables as one page: Snakemake's report shows HTML inline, TSV and Markdown only as downloads.
        scores_html=report(
            f"{R}/compare/final_scores.html",
            caption="../report/compare_tables.rst",
            category="compare",
        ),
        figures=report(
            directory(f"{R}/compare/figures"),
            patterns=["{name}.png"],
            caption="../report/compare.rst",
            category="compare",
        ),
        paired=report(
            f"{R}/compare/paired.tsv",
            caption="../report/paired.rst",
            category="compare",
        ),
        scores_md=f"{R}/compare/final_scores.md",
        scores_tex=f"{R}/compare/final_scores.tex",
    log:
        f"{R}/compare/compare.log",
    conda:
        ENV_ANALYSIS
    params:
        experiments=emit({name: f"{R}/{name}" for name in TOP_NAMES}),
        compare=emit(stage_params.compare_params(DECLARED, CFG)),
    script:
        "../scripts/compare.py"
