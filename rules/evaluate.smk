# Stand-alone evaluation of the starting model and of the final checkpoint, each with its own params, every
# sample kept; then the summary (avg@k, pass@1..k, maj@k with bootstrap intervals). One rule per stage for every
# evaluation set, by name: results/<run>/eval/<set>/.


rule eval_base:
    input:
        unpack(lambda w: LAYOUT.base_evals[w.key]["inputs"]),
    output:
        f"{R}/cache/base-eval/{{key}}.samples.jsonl",
    log:
        f"{R}/cache/logs/{{key}}.log",
    wildcard_constraints:
        key="base-[a-z]+-[0-9a-f]+",
    conda:
        lambda w: env_of(LAYOUT.base_evals[w.key]["params"])
    container:
        lambda w: container_of(LAYOUT.base_evals[w.key]["params"])
    resources:
        gpu=lambda w: LAYOUT.base_evals[w.key]["gpus"],
        runtime=lambda w: cluster.eval_runtime_minutes(base_eval_exp(w.key)),
        mem_mb=lambda w: cluster.mem_mb(base_eval_exp(w.key)),
        cpus_per_task=lambda w: cluster.cpus_per_task(base_eval_exp(w.key)),
    params:
        evaluation=emit(lambda w: LAYOUT.base_evals[w.key]["params"]),
    script:
        "../scripts/evaluate.py"


rule base_samples:
    input:
        lambda w: PATHS[w.exp]["eval_sets"][w.set]["base_eval"],
    output:
        f"{R}/{{exp}}/eval/{{set}}/base.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/base_samples-{{set}}.log",
    # The shared base evaluation, under the run's name (a copy: the samples are small).
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


rule eval_final:
    input:
        unpack(lambda w: PATHS[w.exp]["eval_sets"][w.set]["final_eval_inputs"]),
    output:
        f"{R}/{{exp}}/eval/{{set}}/final.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/eval_final-{{set}}.log",
    conda:
        exp_env
    container:
        exp_container
    resources:
        gpu=gpus_of,
        runtime=cluster_of("eval_runtime_minutes"),
        mem_mb=cluster_of("mem_mb"),
        cpus_per_task=cluster_of("cpus_per_task"),
    params:
        evaluation=params_of("eval_final"),
    script:
        "../scripts/evaluate.py"


rule summarize:
    input:
        base=f"{R}/{{exp}}/eval/{{set}}/base.samples.jsonl",
        final=f"{R}/{{exp}}/eval/{{set}}/final.samples.jsonl",
    output:
        f"{R}/{{exp}}/eval/{{set}}/summary.json",
    log:
        f"{R}/{{exp}}/logs/summarize-{{set}}.log",
    conda:
        ENV_ANALYSIS
    params:
        summary=params_of("summarize"),
    script:
        "../scripts/summarize.py"


rule headline:
    input:
        lambda w: f"{R}/{w.result}/eval/{HEADLINE[w.result]}/summary.json",
    output:
        f"{R}/{{result}}/report/summary.json",
    log:
        f"{R}/{{result}}/logs/headline.log",
    # The headline set's summary (data.headline_eval) as the result's own: what its report and the comparison lead
    # with. Changing the headline reruns this copy and what reads it, never an evaluation.
    localrule: True
    conda:
        ENV_ANALYSIS
    params:
        headline=params_of("headline", wildcard="result"),
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
