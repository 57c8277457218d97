# Training: one Ray job per experiment, by its engine (mileage.engines). Checkpoints live in {exp}/run/, which is
# not a declared output, so a failed or interrupted job never loses them and the same command resumes.


rule train:
    input:
        unpack(path_of("train_inputs")),
    output:
        done=f"{R}/{{exp}}/train/done.json",
        events=f"{R}/{{exp}}/train/events.jsonl",
        eval_samples=f"{R}/{{exp}}/train/eval_samples.jsonl",
    log:
        f"{R}/{{exp}}/logs/train.log",
    conda:
        exp_env
    container:
        exp_container
    resources:
        gpu=gpus_of,
        runtime=cluster_of("train_runtime_minutes"),
        mem_mb=cluster_of("mem_mb"),
        cpus_per_task=cluster_of("cpus_per_task"),
    params:
        train=params_of("train"),
        run_dir=emit(lambda w: f"{R}/{w.exp}/run"),
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
        exp=EXPORT_EXPS,
    conda:
        exp_env
    container:
        exp_container
    params:
        export=params_of("export_hf"),
    script:
        "../scripts/export_hf.py"
