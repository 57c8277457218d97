# Stand-alone evaluation of the starting model and of the final checkpoint, each with its own params, every
# sample kept; then the summary (avg@k, pass@1..k, maj@k with bootstrap intervals).


rule eval_base:
    input:
        unpack(lambda w: PATHS[w.exp]["base_eval_inputs"]),
    output:
        f"{R}/{{exp}}/eval/base.samples.jsonl",
    params:
        evaluation=lambda w: stage_params.eval_params(w.exp, EXPERIMENTS[w.exp], "base", LAYOUT.card(EXPERIMENTS[w.exp])),
    resources:
        gpu=gpus_of,
    log:
        f"{R}/{{exp}}/logs/eval_base.log",
    script:
        "../scripts/evaluate.py"


rule eval_final:
    input:
        unpack(lambda w: PATHS[w.exp]["final_eval_inputs"]),
    output:
        f"{R}/{{exp}}/eval/final.samples.jsonl",
    params:
        evaluation=lambda w: stage_params.eval_params(w.exp, EXPERIMENTS[w.exp], "final", LAYOUT.card(EXPERIMENTS[w.exp])),
    resources:
        gpu=gpus_of,
    log:
        f"{R}/{{exp}}/logs/eval_final.log",
    script:
        "../scripts/evaluate.py"


rule summarize:
    input:
        base=f"{R}/{{exp}}/eval/base.samples.jsonl",
        final=f"{R}/{{exp}}/eval/final.samples.jsonl",
    output:
        f"{R}/{{exp}}/report/summary.json",
    params:
        summary=lambda w: stage_params.summary_params(w.exp, EXPERIMENTS[w.exp], CFG["report"]),
    log:
        f"{R}/{{exp}}/logs/summarize.log",
    script:
        "../scripts/summarize.py"
