# The AIME-style report, paper-ready figures, and the comparison of all experiments.


rule report:
    input:
        summary=f"{R}/{{exp}}/report/summary.json",
        metrics=f"{R}/{{exp}}/metrics/rollout.tsv",
        sets=lambda w: list(set_summaries_of(w.exp).values()),
    output:
        f"{R}/{{exp}}/report/report.md",
        # The same report as one HTML page: Snakemake's report shows HTML inline, Markdown only as a download.
        html=report(
            f"{R}/{{exp}}/report/report.html",
            caption="../report/report.rst",
            category="{exp}",
        ),
        scores_tex=f"{R}/{{exp}}/report/final_scores.tex",
        hyperparameters_tex=f"{R}/{{exp}}/report/hyperparameters.tex",
    log:
        f"{R}/{{exp}}/logs/report.log",
    conda:
        ENV_ANALYSIS
    params:
        report=params_of("report"),
        sets=lambda w: set_summaries_of(w.exp),
    script:
        "../scripts/report.py"


rule plots:
    input:
        summary=f"{R}/{{exp}}/report/summary.json",
        tables=expand(
            f"{R}/{{{{exp}}}}/metrics/{{kind}}.tsv",
            kind=("rollout", "train", "perf", "eval"),
        ),
        eval_samples=f"{R}/{{exp}}/train/eval_samples.jsonl",
        sets=lambda w: list(set_summaries_of(w.exp).values()),
    output:
        report(
            directory(f"{R}/{{exp}}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",  # one caption per figure, chosen by its {name}
            category="{exp}",
        ),
    log:
        f"{R}/{{exp}}/logs/plots.log",
    conda:
        ENV_ANALYSIS
    params:
        plots=params_of("plots"),
        color_index=lambda w: COLOR_INDEX[w.exp],
        sets=lambda w: set_summaries_of(w.exp),
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
        experiments={name: f"{R}/{name}" for name in TOP_NAMES},
        compare=stage_params.compare_params(DECLARED, CFG),
    script:
        "../scripts/compare.py"
