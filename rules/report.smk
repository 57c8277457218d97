# The AIME-style report, paper-ready figures, and the comparison of all experiments.


rule report:
    input:
        summary=f"{R}/{{exp}}/report/summary.json",
        metrics=f"{R}/{{exp}}/metrics/rollout.tsv",
    output:
        report(
            f"{R}/{{exp}}/report/report.md",
            caption="../report/report.rst",
            category="{exp}",
        ),
    log:
        f"{R}/{{exp}}/logs/report.log",
    conda:
        ENV_ANALYSIS
    params:
        title=lambda w: CFG["report"]["title"]
        or f"{w.exp} on {EXPERIMENTS[w.exp]['data']['eval']['name']}",
        formats=CFG["plots"]["formats"],
    script:
        "../scripts/report.py"


rule plots:
    input:
        summary=f"{R}/{{exp}}/report/summary.json",
        tables=expand(
            f"{R}/{{{{exp}}}}/metrics/{{kind}}.tsv",
            kind=("rollout", "train", "perf", "eval"),
        ),
    output:
        report(
            directory(f"{R}/{{exp}}/report/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="{exp}",
        ),
    log:
        f"{R}/{{exp}}/logs/plots.log",
    conda:
        ENV_ANALYSIS
    params:
        style=CFG["plots"],
        eval_k=lambda w: EXPERIMENTS[w.exp]["eval"]["n_samples_per_prompt"],
    script:
        "../scripts/plots.py"


rule compare:
    input:
        summaries=expand(f"{R}/{{exp}}/report/summary.json", exp=EXP_NAMES),
        tables=expand(f"{R}/{{exp}}/metrics/rollout.tsv", exp=EXP_NAMES),
    output:
        scores=report(
            f"{R}/compare/final_scores.tsv",
            caption="../report/compare.rst",
            category="compare",
        ),
        figures=report(
            directory(f"{R}/compare/figures"),
            patterns=["{name}.png"],
            caption="../report/compare.rst",
            category="compare",
        ),
    log:
        f"{R}/compare/compare.log",
    conda:
        ENV_ANALYSIS
    params:
        experiments={name: f"{R}/{name}" for name in EXP_NAMES},
        eval_ks={
            name: EXPERIMENTS[name]["eval"]["n_samples_per_prompt"]
            for name in EXP_NAMES
        },
        style=CFG["plots"],
    script:
        "../scripts/compare.py"
