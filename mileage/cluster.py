"""What each job asks a cluster scheduler for (Snakemake's standard resources `runtime`, `mem_mb`,
`cpus_per_task`, which the SLURM executor turns into `--time`, `--mem`, `--cpus-per-task`), derived from the
experiment's `resources`; and the GPU memory a named GPU model has, so a job graph can be built on a submit host
that has no GPU (config/schema.yaml `resources.gpu_model`).

The estimates are declared here and in the schema once: a training job asks for
`runtime_minutes`, else STARTUP_MINUTES + num_rollout x minutes_per_rollout (a 3000-rollout recipe at the default
6 minutes is 12.5 days: clusters whose partitions allow less cap it with set-resources, and each retry resumes
from the run's last checkpoint). These are requests to a scheduler, not measurements.
"""

from __future__ import annotations

import math
import shutil
from typing import Any, Mapping

# Memory per GPU in GiB, as nvidia-smi's memory.total reports it (what the preflight would detect on the node).
GPU_MEMORY_GIB: dict[str, float] = {
    "rtx5090": 31.8,  # 32607 MiB (RTX 5090, FACTS section 7)
    "h100": 79.6,  # 81559 MiB (H100 80GB HBM3)
    "h200": 140.4,  # 143771 MiB (H200, nvidia-smi on an H200 machine of this workplace)
}

STARTUP_MINUTES = 30  # Ray head, SGLang engines and model load, the first weight sync: once per job
HOST_MEMORY_PER_GPU_GIB = 64  # when resources.host_memory_gb is not declared
MIN_HOST_MEMORY_GIB = 16  # a CPU-only job (the demo) still loads a model, Ray and the data
CPUS_PER_GPU = 8  # rollout workers, Ray's own processes and the data loader per GPU
MIN_CPUS = 2


def gpu_memory_default(resources: Mapping[str, Any]) -> float | None:
    """resources.gpu_memory_gb, else the memory of resources.gpu_model, else None (ask the GPU)."""
    if resources.get("gpu_memory_gb") is not None:
        return resources["gpu_memory_gb"]
    model = resources.get("gpu_model")
    return GPU_MEMORY_GIB[model] if model is not None else None


def gpu_size_known_here(resources: Mapping[str, Any]) -> bool:
    """Whether the memory plan can be judged on this machine: the size is declared, or a GPU is here to ask."""
    return gpu_memory_default(resources) is not None or shutil.which("nvidia-smi") is not None


def preflight_gpus(exp: Mapping[str, Any]) -> int:
    """GPUs the preflight job holds: one when the GPU size is not declared (it asks the GPU of the node it runs on,
    the kind the training gets), none otherwise."""
    return 0 if gpu_memory_default(exp["resources"]) is not None else 1


def train_runtime_minutes(exp: Mapping[str, Any]) -> int:
    resources = exp["resources"]
    if resources.get("runtime_minutes") is not None:
        return int(resources["runtime_minutes"])
    return math.ceil(STARTUP_MINUTES + exp["rollout"]["num_rollout"] * resources["minutes_per_rollout"])


def eval_runtime_minutes(exp: Mapping[str, Any]) -> int:
    return int(exp["resources"]["eval_runtime_minutes"])


def mem_mb(exp: Mapping[str, Any]) -> int:
    """Host memory of a job that holds the experiment's GPUs: what the memory plan was judged against."""
    resources = exp["resources"]
    gib = resources.get("host_memory_gb")
    if gib is None:
        gib = max(MIN_HOST_MEMORY_GIB, HOST_MEMORY_PER_GPU_GIB * resources["gpus"])
    return int(gib * 1024)  # SLURM's --mem takes MiB ("M")


def cpus_per_task(exp: Mapping[str, Any]) -> int:
    resources = exp["resources"]
    if resources.get("cpus") is not None:
        return int(resources["cpus"])
    if (exp.get("ray") or {}).get("num_cpus") is not None:
        return int(exp["ray"]["num_cpus"])  # the Ray head offers exactly these
    return max(MIN_CPUS, CPUS_PER_GPU * resources["gpus"])
