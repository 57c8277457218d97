# Stand-alone evaluation of the starting model and of the final checkpoint, each with its own params, every
# sample kept; then the summary (avg@k, pass@1..k, maj@k with bootstrap intervals).


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


rule eval_final:
    input:
        unpack(path_of("final_eval_inputs")),
    output:
        f"{R}/{{exp}}/eval/final.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/eval_final.log",
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
        base=f"{R}/{{exp}}/eval/base.samples.jsonl",
        final=f"{R}/{{exp}}/eval/final.samples.jsonl",
    output:
        f"{R}/{{exp}}/report/summary.json",
    log:
        f"{R}/{{exp}}/logs/summarize.log",
    conda:
        ENV_ANALYSIS
    params:
        summary=params_of("summarize"),
    script:
        "../scripts/summarize.py"


# More evaluation sets (data.extra_eval, from a data.eval list): each evaluated, summarised and plotted like
# data.eval, under results/<exp>/eval/<set>/ (data.eval keeps results/<exp>/eval/ and report/summary.json).


rule base_samples_set:
    input:
        lambda w: PATHS[w.exp]["eval_sets"][w.set]["base_eval"],
    output:
        f"{R}/{{exp}}/eval/{{set}}/base.samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/base_samples-{{set}}.log",
    localrule: True
    conda:
        ENV_ANALYSIS
    shell:
        "cp {input:q} {output:q} 2> {log:q}"


rule eval_final_set:
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
        evaluation=lambda w: stage_params.eval_set_params(
            "eval_final", w.exp, EXPERIMENTS[w.exp], w.set, CFG, LAYOUT
        ),
    script:
        "../scripts/evaluate.py"


rule summarize_set:
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
        summary=lambda w: stage_params.eval_set_params(
            "summarize", w.exp, EXPERIMENTS[w.exp], w.set, CFG, LAYOUT
        ),
    script:
        "../scripts/summarize.py"
