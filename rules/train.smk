# Training: one Ray job per experiment (engine miles or local). Checkpoints live in {exp}/run/, which is not a
# declared output, so a failed or interrupted job never loses them and the same command resumes.


rule train_local:
    input:
        unpack(path_of("train_inputs")),
    output:
        done=f"{R}/{{exp}}/train/done.json",
        events=f"{R}/{{exp}}/train/events.jsonl",
        eval_samples=f"{R}/{{exp}}/train/eval_samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/train.log",
    wildcard_constraints:
        exp=LOCAL_EXPS,
    conda:
        ENV_LOCAL
    resources:
        gpu=gpus_of,
    params:
        train=lambda w: stage_params.train_params(w.exp, EXPERIMENTS[w.exp], None),
        run_dir=lambda w: f"{R}/{w.exp}/run",
    script:
        "../scripts/train.py"


rule train_miles:
    input:
        unpack(path_of("train_inputs")),
    output:
        done=f"{R}/{{exp}}/train/done.json",
        events=f"{R}/{{exp}}/train/events.jsonl",
        eval_samples=f"{R}/{{exp}}/train/eval_samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/train.log",
    wildcard_constraints:
        exp=MILES_EXPS,
    conda:
        ENV_MILES
    container:
        MILES_CONTAINER_IMAGE
    resources:
        gpu=gpus_of,
    params:
        train=lambda w: stage_params.train_params(
            w.exp, EXPERIMENTS[w.exp], LAYOUT.card(EXPERIMENTS[w.exp])
        ),
        run_dir=lambda w: f"{R}/{w.exp}/run",
    script:
        "../scripts/train.py"


rule export_hf:
    input:
        done=f"{R}/{{exp}}/train/done.json",
        snapshot=path_of("start_model"),
    output:
        directory(f"{R}/{{exp}}/export/hf"),
    log:
        f"{R}/{{exp}}/logs/export_hf.log",
    wildcard_constraints:
        exp=MILES_EXPS,
    conda:
        ENV_MILES
    container:
        MILES_CONTAINER_IMAGE
    params:
        export=lambda w: stage_params.export_params(EXPERIMENTS[w.exp]),
    script:
        "../scripts/export_hf.py"
