# Training: one Ray job per experiment (engine miles or local). Checkpoints live in {exp}/run/, which is not a
# declared output, so a failed or interrupted job never loses them and the same command resumes.


rule train:
    input:
        unpack(lambda w: PATHS[w.exp]["train_inputs"]),
    output:
        done=f"{R}/{{exp}}/train/done.json",
        events=f"{R}/{{exp}}/train/events.jsonl",
        eval_samples=f"{R}/{{exp}}/train/eval_samples.jsonl",
    params:
        train=lambda w: stage_params.train_params(w.exp, EXPERIMENTS[w.exp], LAYOUT.card(EXPERIMENTS[w.exp])),
        run_dir=lambda w: f"{R}/{w.exp}/run",
    resources:
        gpu=gpus_of,
    log:
        f"{R}/{{exp}}/logs/train.log",
    script:
        "../scripts/train.py"


rule export_hf:
    input:
        done=f"{R}/{{exp}}/train/done.json",
        snapshot=path_of("start_model"),
    output:
        directory(f"{R}/{{exp}}/export/hf"),
    params:
        export=lambda w: stage_params.export_params(EXPERIMENTS[w.exp]),
    log:
        f"{R}/{{exp}}/logs/export_hf.log",
    script:
        "../scripts/export_hf.py"
