"""Memory preflight of a miles experiment: will it fit the GPUs and the host RAM, and if not, what would.

A coarse model, in GiB per GPU, calibrated on measured numbers (miles/FACTS.md section 7: GLM-Z1-9B shape on
one H100, gradient checkpointing, batch 1: weights 17.55 GiB, gradients 17.51 GiB, peak 35.75 / 36.40 /
38.51 GiB at 2048 / 4096 / 8192 tokens). Its terms:

- trainer (Megatron): bf16 weights and gradients (fp32 with accumulate_allreduce_grads_in_fp32) sharded by
  tensor x pipeline parallelism; Adam (fp32 master + 2 moments = 12 bytes/param) sharded over the rest of the
  trainer GPUs (miles always turns on Megatron's distributed optimizer), or in host RAM with CPU Adam;
  activations of one micro-batch from the calibration curve, divided by TP (sequence parallelism); a fixed
  runtime share (CUDA context, NCCL, cuBLAS workspace) and 5% allocator fragmentation.
- SGLang engines: `mem_fraction_static` x GPU memory (weights + KV cache) plus their own runtime share; the
  static share must hold the engine's weight shard with room for KV cache.
- colocated: trainer and engines take turns on the same GPUs. Offloading one (offload_train /
  offload_rollout) releases its memory while the other runs, leaving its CUDA context; without offload its
  state stays resident. Each phase's total must fit.
- host RAM: CPU Adam state (12 bytes/param) + its fp32 gradient copies (4 bytes/param), the trainer's
  weights backed up while offloaded, the reference model when use_kl_loss (ASSUMED kept in host RAM and
  swapped in for reference log-probs, so it costs no GPU memory), plus a base for Ray and the processes.
Memory sizes are GiB (nvidia-smi's MiB / 1024: an "80 GB" H100 has 79.6, a "32 GB" RTX 5090 31.8).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from typing import Any, Mapping

from mileage.engines.miles.argv import (MilesConfigError, actor_gpus, batch_identity, check_layout, rollout_gpus,
                                        total_gpus, uses_kl_loss)
from mileage.engines.miles.card_args import load_miles_card
from mileage.engines.miles.memory import (ACT_C0, ACT_C1, ACT_C2, CALIBRATION_SHAPE, FRAGMENTATION, GIB, HOST_BASE_GIB,
                                          HOST_PER_GPU_GIB, MIN_KV_CACHE_GIB, PROMPT_TOKENS_ASSUMED, REFERENCE_GPU,
                                          SGLANG_RESIDUAL_GIB, SGLANG_RUNTIME_GIB, SUGGESTION_HEADROOM,
                                          TRAINER_RESIDUAL_GIB, TRAINER_RUNTIME_GIB, MemoryPlan, Phase, PlanError,
                                          sglang_fraction)
from mileage.engines.miles.plan_fsdp import bf16_master_check, estimate_fsdp, suggest_fsdp



def activation_gib(tokens: float, card: Mapping[str, Any]) -> float:
    """Activations (plus logits) of one micro-batch of `tokens` tokens, unsharded, with full recomputation."""
    t = tokens / 1024.0
    hidden, layers = card["shapes"]["hidden_size"], card["shapes"]["num_layers"]
    scale = hidden * layers / (CALIBRATION_SHAPE[0] * CALIBRATION_SHAPE[1])
    return (ACT_C0 + ACT_C1 * t + ACT_C2 * t * t) * scale


def detect_gpu_memory_gib() -> float | None:
    """The smallest GPU's memory in GiB from nvidia-smi, or None without one."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        values = [float(line) for line in out.split() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return min(values) / 1024.0 if values else None


def host_memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB


def _trainer_terms(experiment: Mapping[str, Any], card: Mapping[str, Any], params: float) -> list[tuple[str, float]]:
    miles = experiment["miles"]
    par, offload = miles["parallelism"], miles["offload"]
    tp, pp, cp = par["tensor"], par["pipeline"], par["context"]
    model_shard = tp * pp
    dp_cp = max(1, actor_gpus(miles) // model_shard)
    grad_bytes = 4 if miles["accumulate_allreduce_grads_in_fp32"] else 2
    items = [
        (f"weights bf16 / (TP {tp} x PP {pp})", params * 2 / model_shard / GIB),
        (f"gradients {'fp32' if grad_bytes == 4 else 'bf16'} / (TP x PP)", params * grad_bytes / model_shard / GIB),
    ]
    if not offload["optimizer_cpu_offload"]:
        items.append((f"Adam fp32 master + 2 moments / {model_shard * dp_cp} GPUs", params * 12 / model_shard / dp_cp / GIB))
    if miles["dynamic_batch_size"]:
        tokens = miles["max_tokens_per_gpu"]
        label = f"activations, {tokens} tokens/GPU"
    else:
        tokens = experiment["train"]["micro_batch_size"] * (experiment["rollout"]["max_response_len"] + PROMPT_TOKENS_ASSUMED) / cp
        label = f"activations, {tokens:.0f} tokens/GPU (micro-batch)"
    act = activation_gib(tokens, card)
    if miles["recompute"]["granularity"] != "full":
        act *= 4.0  # without full recomputation every layer keeps its inputs and intermediates (rough)
        label += ", no full recompute (x4)"
    if par["sequence_parallel"] and tp > 1:
        act /= tp
        label += f" / TP {tp}"
    items.append((label, act))
    tensors = sum(v for _, v in items)
    items.append(("allocator fragmentation (5%)", FRAGMENTATION * tensors))
    items.append(("CUDA context, NCCL, workspaces", TRAINER_RUNTIME_GIB))
    return items


def _estimate(
    experiment: Mapping[str, Any], card: Mapping[str, Any], gpus: int, gpu_gib: float, host_gib: float,
    name: str, params: float | None = None,
) -> MemoryPlan:
    miles = experiment["miles"]
    params = float(card["parameter_count"]) if params is None else params
    plan = MemoryPlan(experiment=name, applicable=True, gpus=gpus, gpus_needed=total_gpus(miles),
                      gpu_memory_gib=gpu_gib, host_memory_gib=host_gib, parameter_count=int(params))
    try:
        check_layout(experiment, card)
        batch_identity(experiment)
    except MilesConfigError as err:
        plan.problems.append(str(err))
    if plan.gpus_needed > gpus:
        plan.problems.append(f"the placement needs {plan.gpus_needed} GPUs, only {gpus} available")
    placement, offload = miles["placement"], miles["offload"]
    fraction = sglang_fraction(miles, plan)
    engine_tp = placement["rollout_num_gpus_per_engine"]
    engine_weights = params * 2 / engine_tp / GIB
    engine_static = fraction * gpu_gib
    engine_items = [(f"SGLang static share ({fraction} x {gpu_gib:.1f}): weights {engine_weights:.2f} + KV cache",
                     engine_static), ("SGLang runtime (context, CUDA graphs)", SGLANG_RUNTIME_GIB)]
    if engine_static - engine_weights < MIN_KV_CACHE_GIB:
        plan.problems.append(
            f"SGLang's static share ({engine_static:.1f} GiB) cannot hold its weight shard ({engine_weights:.1f} GiB "
            f"at {engine_tp} GPU(s) per engine) plus {MIN_KV_CACHE_GIB:.0f} GiB of KV cache")
    trainer = _trainer_terms(experiment, card, params)
    n_actor, n_rollout = actor_gpus(miles), rollout_gpus(miles)
    if placement["colocate"]:
        resident = [(f"trainer state kept on GPU: {label}", v) for label, v in trainer
                    if label.startswith(("weights", "gradients", "Adam"))]
        train_items = list(trainer) + ([("released SGLang engine (offload_rollout)", SGLANG_RESIDUAL_GIB)]
                                       if offload["offload_rollout"] else
                                       [(f"idle SGLang engine: {label}", v) for label, v in engine_items])
        rollout_items = list(engine_items) + ([("offloaded trainer (offload_train)", TRAINER_RESIDUAL_GIB)]
                                              if offload["offload_train"] else
                                              resident + [("idle trainer runtime", TRAINER_RUNTIME_GIB)])
        plan.phases = [Phase("train phase", f"{n_actor} shared GPUs", train_items),
                       Phase("rollout phase", f"{n_actor} shared GPUs", rollout_items)]
    else:
        plan.phases = [Phase("trainer", f"{n_actor} GPUs", trainer), Phase("SGLang engines", f"{n_rollout} GPUs", engine_items)]
    for phase in plan.phases:
        if phase.total > gpu_gib:
            plan.problems.append(f"{phase.name} needs {phase.total:.1f} GiB per GPU, the GPUs have {gpu_gib:.1f}")

    replicas = max(1, n_actor // (miles["parallelism"]["tensor"] * miles["parallelism"]["pipeline"]))
    if offload["optimizer_cpu_offload"]:
        plan.host_items.append(("CPU Adam: fp32 master + 2 moments (12 B/param)", params * 12 / GIB))
        plan.host_items.append(("CPU Adam: fp32 gradient copies (4 B/param)", params * 4 / GIB))
    if placement["colocate"] and offload["offload_train"]:
        plan.host_items.append((f"trainer weights backed up while offloaded (x{replicas} replicas)", params * 2 * replicas / GIB))
    if uses_kl_loss(experiment):
        plan.host_items.append((f"reference model bf16 (x{replicas} replicas)", params * 2 * replicas / GIB))
        plan.assumptions.append("the reference model (use_kl_loss) lives in host RAM and is swapped in")
    plan.host_items.append((f"Ray, driver, {n_actor + (0 if placement['colocate'] else n_rollout)} GPU processes",
                            HOST_BASE_GIB + HOST_PER_GPU_GIB * plan.gpus_needed))
    if plan.host_total_gib > host_gib:
        plan.problems.append(f"host RAM: needs {plan.host_total_gib:.0f} GiB, the host has {host_gib:.0f}")
    plan.assumptions += [
        "activations calibrated on one H100 (FACTS section 7), scaled by model width x depth, / TP with sequence parallelism",
        "miles always uses Megatron's distributed optimizer (Adam state sharded over data x context parallel ranks)",
        f"runtime shares: trainer {TRAINER_RUNTIME_GIB} GiB, SGLang {SGLANG_RUNTIME_GIB} GiB, fragmentation {FRAGMENTATION:.0%}",
    ]
    return plan


def _fitting_layout(experiment: Mapping[str, Any], card: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    """The lightest layout on `n` GPUs: colocated, offloaded, CPU Adam, the widest valid TP, the rest PP."""
    shapes = card["shapes"]
    tp = max(t for t in range(1, n + 1) if n % t == 0 and shapes["num_kv_heads"] % t == 0
             and shapes["num_attention_heads"] % t == 0)
    pp = n // tp
    if shapes["num_layers"] % pp:
        return None
    variant = copy.deepcopy(dict(experiment))
    miles = variant["miles"]
    miles["placement"].update(actor_num_nodes=1, actor_num_gpus_per_node=n, colocate=True,
                              rollout_num_gpus_per_engine=tp, num_gpus_per_node=n)
    miles["parallelism"].update(tensor=tp, pipeline=pp, context=1, sequence_parallel=tp > 1)
    miles["offload"].update(offload_train=True, offload_rollout=True, optimizer_cpu_offload=True)
    miles["recompute"]["granularity"] = "full"
    if miles["sglang"]["mem_fraction_static"] is None:
        miles["sglang"]["mem_fraction_static"] = 0.6
    miles["skip_kl_when_zero"] = True
    return variant


def _layout_text(variant: Mapping[str, Any]) -> str:
    miles = variant["miles"]
    par = miles["parallelism"]
    grads = "fp32" if miles["accumulate_allreduce_grads_in_fp32"] else "bf16"
    return (f"colocate + offload, CPU Adam, TP {par['tensor']} x PP {par['pipeline']}, {grads} gradients, "
            f"SGLang mem_fraction_static {miles['sglang']['mem_fraction_static']}")


def _suggest_layout(experiment: Mapping[str, Any], card: Mapping[str, Any], name: str, n: int, gib: float,
                    label: str) -> str | None:
    """A layout on `n` GPUs of `gib` that fits with 10% headroom (fp32 gradients if they fit, else bf16)."""
    for fp32_grads in (True, False):
        variant = _fitting_layout(experiment, card, n)
        if variant is None:
            return None
        variant["miles"]["accumulate_allreduce_grads_in_fp32"] = fp32_grads
        trial = _estimate(variant, card, n, gib, float("inf"), name)
        if trial.fits and trial.gpu_peak_gib <= SUGGESTION_HEADROOM * gib:
            return (f"{n} x {gib:.1f} GiB{label} GPUs: {_layout_text(variant)}; peak {trial.gpu_peak_gib:.1f} "
                    f"GiB per GPU, host RAM {trial.host_total_gib:.0f} GiB")
    return None


def _suggest(experiment: Mapping[str, Any], card: Mapping[str, Any], plan: MemoryPlan) -> list[str]:
    out: list[str] = []
    gpu_gib, host_gib = plan.gpu_memory_gib, plan.host_memory_gib
    more_gpus = [(n, gpu_gib, "") for n in (2, 4, 8) if n > plan.gpus]
    bigger_gpus = [(max(plan.gpus, 1), REFERENCE_GPU[1], f" {REFERENCE_GPU[0]}")] if gpu_gib < REFERENCE_GPU[1] else []
    for candidates in (more_gpus, bigger_gpus):
        for n, gib, label in candidates:
            found = _suggest_layout(experiment, card, plan.experiment, n, gib, label)
            if found:
                out.append(found)
                break  # the fewest GPUs of this kind is enough to say
    # A smaller model with this layout: the largest parameter count that fits (bisection on the count).
    lo, hi = 0.0, float(plan.parameter_count)
    for _ in range(40):
        mid = (lo + hi) / 2
        if _estimate(experiment, card, plan.gpus, gpu_gib, host_gib, plan.experiment, params=mid).fits:
            lo = mid
        else:
            hi = mid
    if lo >= 0.05e9:
        out.append(f"a smaller model with this layout: at most about {lo / 1e9:.1f}B parameters")
    else:
        out.append("no model of useful size fits this layout on these GPUs")
    return out


def estimate_memory(
    experiment: Mapping[str, Any],
    card: Mapping[str, Any] | None = None,
    *,
    gpus: int | None = None,
    gpu_memory_gb: float | None = None,
    host_memory_gb: float | None = None,
    name: str | None = None,
) -> MemoryPlan:
    """The memory plan of a resolved experiment. GPU count and sizes default to the experiment's `resources`,
    then to this machine (nvidia-smi, /proc): sizes in GiB."""
    name = name or "experiment"
    if experiment.get("engine") != "miles":
        return MemoryPlan(experiment=name, applicable=False)
    if card is None:
        card_name = experiment["model"].get("card")
        if not card_name:
            raise PlanError("the preflight of a miles experiment needs model.card (parameter count and shapes)")
        card = load_miles_card(card_name)
    resources = experiment.get("resources", {})
    gpus = gpus if gpus is not None else resources.get("gpus")
    gpu_gib = gpu_memory_gb if gpu_memory_gb is not None else resources.get("gpu_memory_gb")
    if gpu_gib is None:
        gpu_gib = detect_gpu_memory_gib()
    if gpu_gib is None:
        raise PlanError("GPU memory unknown: no nvidia-smi here; set resources.gpu_memory_gb (GiB, e.g. 79.6 "
                        "for an H100 80GB, 31.8 for an RTX 5090)")
    host_gib = host_memory_gb if host_memory_gb is not None else resources.get("host_memory_gb")
    if host_gib is None:
        host_gib = host_memory_gib()
    if experiment["miles"]["train_backend"] == "fsdp":  # the dispatch on the backend lives here, not in the engine

        plan = estimate_fsdp(experiment, card, int(gpus), float(gpu_gib), float(host_gib), name)
        if not plan.fits:
            plan.suggestions = suggest_fsdp(experiment, card, plan)
        return plan
    plan = _estimate(experiment, card, int(gpus), float(gpu_gib), float(host_gib), name)
    if not plan.fits:
        plan.suggestions = _suggest(experiment, card, plan)
    return plan


def learning_checks(experiment: Mapping[str, Any], card: Mapping[str, Any] | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) about whether the configured precision can learn at train.lr: beside the memory plan,
    not in it, so that an lr edit does not rerun the preflight that orders the download."""
    miles = experiment["miles"] if experiment.get("engine") == "miles" else None
    if miles is None or miles["train_backend"] != "fsdp" or miles["fsdp"]["keep_fp32_master"]:
        return [], []
    return bf16_master_check(experiment, card if card is not None else load_miles_card(experiment["model"]["card"]))


def plan_main(experiment: Mapping[str, Any], gpus: int | None = None, gpu_memory_gb: float | None = None,
              name: str | None = None, host_memory_gb: float | None = None) -> int:
    """Print the plan (and the learning checks beside it); 0 when it fits, 1 when it does not."""
    plan = estimate_memory(experiment, gpus=gpus, gpu_memory_gb=gpu_memory_gb, host_memory_gb=host_memory_gb, name=name)
    if plan.applicable:
        problems, warnings = learning_checks(experiment)
        plan.problems += problems
        plan.warnings += warnings
    print(plan.summary, end="")
    return 0 if plan.fits else 1
