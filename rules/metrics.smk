# Canonical metric events -> wide TSVs, one per kind (miles' metric names; first column the step key).


rule metrics:
    input:
        events=f"{R}/{{exp}}/train/events.jsonl",
    output:
        **{
            kind: f"{R}/{{exp}}/metrics/{kind}.tsv"
            for kind in ("rollout", "train", "perf", "eval")
        },
    log:
        f"{R}/{{exp}}/logs/metrics.log",
    conda:
        ENV_ANALYSIS
    script:
        "../scripts/metrics.py"
