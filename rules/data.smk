# Datasets, normalised to miles' JSONL schema (prompt, label, id) and cached for every experiment.


rule demo_dataset:
    output:
        f"{R}/cache/demo-data/{{key}}.jsonl",
    log:
        f"{R}/cache/logs/demo-data-{{key}}.log",
    wildcard_constraints:
        key="demo-[0-9a-f]+",
    conda:
        ENV_ANALYSIS
    params:
        dataset=emit(lambda w: LAYOUT.demo_data[w.key]),
    script:
        "../scripts/demo_dataset.py"


rule file_dataset:
    input:
        lambda w: LAYOUT.file_data[w.key]["path"],
    output:
        f"{R}/cache/file-data/{{key}}.jsonl",
    log:
        f"{R}/cache/logs/file-data-{{key}}.log",
    wildcard_constraints:
        key="file-[0-9a-f]+",
    conda:
        ENV_ANALYSIS
    params:
        dataset=emit(lambda w: LAYOUT.file_data[w.key]),
    script:
        "../scripts/file_dataset.py"


rule fetch_dataset:
    output:
        f"{R}/cache/hf-data/{{key}}.jsonl",
    log:
        f"{R}/cache/logs/hf-data/{{key}}.log",
    wildcard_constraints:
        key="[^/]+/[^/]+/[^/]+",
    conda:
        ENV_ANALYSIS
    params:
        dataset=emit(lambda w: LAYOUT.hf_data[w.key]),
        lock=emit(CFG["hf_lock"]),
        cache_dir=emit(f"{R}/cache/hf-hub"),
    script:
        "../scripts/fetch_dataset.py"
