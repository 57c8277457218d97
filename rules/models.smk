# Models: the tiny demo model and its warm start, Hugging Face snapshots at pinned revisions, and their
# Megatron torch_dist conversion (miles). All cached under results/cache, shared by experiments.


rule demo_model:
    output:
        directory(f"{R}/cache/demo-models/{{key}}"),
    log:
        f"{R}/cache/logs/demo-model-{{key}}.log",
    wildcard_constraints:
        key="demo-[0-9a-f]+",
    conda:
        ENV_LOCAL_MODELS
    params:
        model=emit(lambda w: LAYOUT.demo_models[w.key]),
    script:
        "../scripts/demo_model.py"


rule warm_start:
    input:
        base=lambda w: LAYOUT.warm_models[w.key]["base"],
    output:
        directory(f"{R}/cache/warm-models/{{key}}"),
    log:
        f"{R}/cache/logs/warm-start-{{key}}.log",
    wildcard_constraints:
        key="warm-[0-9a-f]+",
    conda:
        ENV_LOCAL_MODELS
    params:
        warm=emit(lambda w: stage_params.warm_start_params(LAYOUT.warm_models[w.key])),
    script:
        "../scripts/warm_start.py"


rule preflight:
    output:
        f"{R}/{{exp}}/preflight.txt",
    log:
        f"{R}/{{exp}}/logs/preflight.log",
    conda:
        ENV_ANALYSIS
    resources:
        gpu=lambda w: cluster.preflight_gpus(EXPERIMENTS[w.exp]),
    params:
        plan=params_of("preflight"),
    script:
        "../scripts/preflight.py"


rule fetch_model:
    output:
        f"{R}/cache/hf-models/{{key}}/snapshot.json",
    log:
        f"{R}/cache/logs/hf-model/{{key}}.log",
    wildcard_constraints:
        key="[^/]+/[^/]+",
    conda:
        ENV_ANALYSIS
    params:
        model=emit(lambda w: LAYOUT.hf_models[w.key]),
        lock=emit(CFG["hf_lock"]),
        cache_dir=emit(f"{R}/cache/hf-hub"),
    script:
        "../scripts/fetch_model.py"


rule convert_model:
    input:
        snapshot=f"{R}/cache/hf-models/{{key}}/snapshot.json",
    output:
        # miles writes this tracker last, reading `release`: its presence means the conversion finished.
        f"{R}/cache/torch_dist/{{key}}/latest_checkpointed_iteration.txt",
    log:
        f"{R}/cache/logs/convert/{{key}}.log",
    wildcard_constraints:
        key="[^/]+/[^/]+",
    conda:
        lambda w: env_of(CONVERSIONS(w.key))
    container:
        lambda w: container_of(CONVERSIONS(w.key))
    resources:
        gpu=1,
    params:
        convert=emit(lambda w: CONVERSIONS(w.key)),
    script:
        "../scripts/convert_model.py"
