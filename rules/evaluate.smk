# Stand-alone evaluation of the starting model and of the final checkpoint, each with its own params, every
# sample kept; then the summary (avg@k, pass@1..k, maj@k with bootstrap intervals).


rule eval_base_local:
    input:
        unpack(lambda w: LAYOUT.base_evals[w.key]["inputs"]),
    output:
        f"{R}/cache/base-eval/{{key}}.samples.jsonl",
    log:
        f"{R}/cache/logs/{{key}}.log",
    wildcard_constraints:
        key="base-local-[0-9a-f]+",
    conda:
        ENV_LOCAL
    resources:
        gpu=lambda w: LAYOUT.base_evals[w.key]["gpus"],
    params:
        evaluation=lambda w: LAYOUT.base_evals[w.key]["params"],
    script:
        "../scripts/evaluate.py"


rule eval_base_miles:
    input:
        unpack(lambda w: LAYOUT.base_evals[w.key]["inputs"]),
    output:
        f"{R}/cache/base-eval/{{key}}.samples.jsonl",
    log:
        f"{R}/cache/logs/{{key}}.log",
    wildcard_constraints:
        key="base-miles-[0-9a-f]+",
    conda:
        ENV_MILES
    container:
        MILES_CONTAINER_IMAGE
    resources:
        gpu=lambda w: LAYOUT.base_evals[w.key]["gpus"],
    params:
        evaluation=lambda w: LAYOUT.base_evals[w.key]["params"],
    script:
        "../scripts/evaluate.py"


rule base_samples:
    input:
        path_of("base_eval"),
    output:
        f"{R}/{{exp}}/eval/base.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/base_samples.log",
    # The shared base evaluation, under the experiment's name (a copy: the samples are small).
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


rule eval_final_local:
    input:
        unpack(lambda w: PATHS[w.exp]["final_eval_inputs"]),
    output:
        f"{R}/{{exp}}/eval/final.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/eval_final.log",
    wildcard_constraints:
        exp=LOCAL_EXPS,
    conda:
        ENV_LOCAL
    resources:
        gpu=gpus_of,
    params:
        evaluation=lambda w: stage_params.eval_params(
            w.exp, EXPERIMENTS[w.exp], "final", None
        ),
    script:
        "../scripts/evaluate.py"


rule eval_final_miles:
    input:
        unpack(lambda w: PATHS[w.exp]["final_eval_inputs"]),
    output:
        f"{R}/{{exp}}/eval/final.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/eval_final.log",
    wildcard_constraints:
        exp=MILES_EXPS,
    conda:
        ENV_MILES
    container:
        MILES_CONTAINER_IMAGE
    resources:
        gpu=gpus_of,
    params:
        evaluation=lambda w: stage_params.eval_params(
            w.exp, EXPERIMENTS[w.exp], "final", LAYOUT.card(EXPERIMENTS[w.exp])
        ),
    script:
        "../scripts/evaluate.py"


rule summarize:
    input:
        base=f"{R}/{{exp}}/eval/base.samples.jsonl",
        final=f"{R}/{{exp}}/eval/final.samples.jsonl",
    output:
        f"{R}/{{exp}}/report/summary.json",
    log:
        f"{R}/{{exp}}/logs/summarize.log",
    conda:
        ENV_ANALYSIS
    params:
        summary=lambda w: stage_params.summary_params(
            w.exp, EXPERIMENTS[w.exp], CFG["report"]
        ),
    script:
        "../scripts/summarize.py"
