"""Memory preflight of a miles experiment on the FSDP backend (miles.train_backend: fsdp).

Arithmetic, not measurement (miles/FACTS.md section 9; nothing here has run on a GPU). Per GPU, in GiB:

- rollout: SGLang's static share (mem_fraction_static x GPU: its bf16 weights, the rest KV cache) plus its runtime
  (context, CUDA graphs), beside what the trainer keeps meanwhile (its CUDA context; all its state when neither
  fsdp.cpu_offload nor offload_train moves it off).
- initialisation: rank 0 moves its whole shard to the GPU to load the state dict (FACTS 9 hazard a), in fp32 with
  keep_fp32_master: on one GPU that is the whole model.
- training, at its three moments: the loss and output-layer backward (logits of max_tokens_per_gpu x vocab, their
  fp32 copy and gradient), a decoder layer's recomputed backward, and the end of backward (the root unit's
  gradients reduced in fp32). FSDP2 keeps the root unit (embeddings, output head, final norm) gathered for the whole
  step and gathers decoder layers one at a time plus one prefetched; gradient checkpointing keeps one bf16 hidden
  state per layer. Under colocate a released SGLang keeps its context.
- log-probs: the no-grad forward of log_probs_max_tokens_per_gpu tokens (logits bf16 + fp32).
Host RAM: parameters, gradients and AdamW's two moments (4+4+8 = 16 B/param with the fp32 master, 2+2+4 = 8 in
bf16) when cpu_offload or offload_train puts them there, the bf16 reference model (always CPU-offloaded) when
use_kl_loss builds one, and Ray with its processes.
"""

from __future__ import annotations

from typing import Any, Mapping

from mileage.engines.miles.argv import MilesConfigError, actor_gpus, batch_identity, rollout_gpus, uses_kl_loss
from mileage.engines.miles.memory import (FRAGMENTATION, GIB, HOST_BASE_GIB, HOST_PER_GPU_GIB, MIN_KV_CACHE_GIB,
                                        PROMPT_TOKENS_ASSUMED, SGLANG_RESIDUAL_GIB,
                                        SGLANG_RUNTIME_GIB, TRAINER_RESIDUAL_GIB, TRAINER_RUNTIME_GIB, MemoryPlan,
                                        Phase, sglang_fraction)

BF16_SIGNIFICAND_BITS = 8  # 7 stored + the implicit bit: an update below |w| / 2^8 (half an ulp) rounds away
LOGITS_TRAIN_BYTES = 10  # per token x vocab entry: bf16 logits, their fp32 copy for the log-softmax, its fp32 gradient
LOGITS_FORWARD_BYTES = 6  # no-grad log-probs: bf16 logits and the fp32 copy
LAYER_BACKWARD_FACTOR = 2.0  # a recomputed layer's intermediates and the gradients of them
EAGER_SCORE_BYTES = 8  # eager attention: bf16 scores, fp32 softmax, bf16 probabilities per (token, token, head)
TRAINING_MOMENTS = ("train: loss + output-layer backward", "train: decoder-layer backward (recompute)",
                    "train: end of backward (root gradients reduced)")


def _shape_terms(card: Mapping[str, Any], params: float) -> tuple[float, float]:
    """(root-unit parameters, parameters of one decoder layer): embeddings (+ untied head) are the root unit."""
    s = card["shapes"]
    root = s["vocab_size"] * s["hidden_size"] * (1 if s["tie_word_embeddings"] else 2) + s["hidden_size"]
    return root, max(params - root, 0.0) / s["num_layers"]


def _layer_activation_bytes(card: Mapping[str, Any], tokens: float) -> float:
    """One decoder layer's forward intermediates for `tokens` tokens, bf16: norms, q/k/v, attention out, MLP."""
    s = card["shapes"]
    h, i = s["hidden_size"], s["intermediate_size"]
    q, kv = s["num_attention_heads"] * s["head_dim"], s["num_kv_heads"] * s["head_dim"]
    return tokens * (5 * h + 2 * q + 2 * kv + 3 * i) * 2


def kv_bytes_per_token(card: Mapping[str, Any]) -> float:
    s = card["shapes"]
    return 2 * s["num_layers"] * s["num_kv_heads"] * s["head_dim"] * 2  # K and V, bf16


def bf16_rounding_threshold(lr: float) -> float:
    """The weight magnitude above which an update of size lr rounds away in bf16 (roughly lr x 2^8)."""
    return lr * 2**BF16_SIGNIFICAND_BITS


def train_tokens(experiment: Mapping[str, Any]) -> tuple[float, str]:
    miles = experiment["miles"]
    if miles["dynamic_batch_size"]:
        return float(miles["max_tokens_per_gpu"]), "miles.max_tokens_per_gpu"
    tokens = experiment["train"]["micro_batch_size"] * (experiment["rollout"]["max_response_len"] + PROMPT_TOKENS_ASSUMED)
    return float(tokens), "train.micro_batch_size x (rollout.max_response_len + 1024)"


def _with_overheads(items: list[tuple[str, float]], residents: list[tuple[str, float]]) -> list[tuple[str, float]]:
    tensors = sum(v for _, v in items)
    return items + [("allocator fragmentation (5%)", FRAGMENTATION * tensors),
                    ("CUDA context, cuBLAS workspace, NCCL", TRAINER_RUNTIME_GIB)] + residents


def bf16_master_check(experiment: Mapping[str, Any], card: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, warnings) of a bf16 master at train.lr: AdamW steps that round away in bf16 need the explicit
    opt-in miles.fsdp.bf16_master_reason. Not part of the memory plan: the preflight (which orders the download)
    must not rerun on an lr edit; config loading and `mileage plan` ask this."""
    fsdp = experiment["miles"]["fsdp"]
    if experiment["miles"]["train_backend"] != "fsdp" or fsdp["keep_fp32_master"]:
        return [], []
    params, s = float(card["parameter_count"]), card["shapes"]
    n = actor_gpus(experiment["miles"])
    lr = experiment["train"]["lr"]
    threshold = bf16_rounding_threshold(lr)
    typical = s["hidden_size"] ** -0.5
    if threshold >= typical:
        return [], []
    lost = (f"AdamW steps of about train.lr = {lr:g} round away in bf16 (8 significant bits) for every weight "
            f"with |w| > {lr:g} x 2^{BF16_SIGNIFICAND_BITS} = {threshold:.2g}, i.e. for typical weights of this "
            f"model (|w| ~ 1/sqrt(hidden {s['hidden_size']}) = {typical:.2g}; norm weights ~1): the run may not learn")
    reason = fsdp["bf16_master_reason"]
    if reason:
        return [], [f"miles.fsdp.keep_fp32_master false: {lost}. Accepted: {reason}"]
    return [f"miles.fsdp.keep_fp32_master false: {lost}. Set miles.fsdp.bf16_master_reason to say why to run "
            f"anyway, or keep the fp32 master (init {params * 4 / n / GIB:.1f} GiB per GPU, host "
            f"{params * 16 / GIB:.0f} GiB of state with cpu_offload)"], []


def estimate_fsdp(experiment: Mapping[str, Any], card: Mapping[str, Any], gpus: int, gpu_gib: float,
                  host_gib: float, name: str, tokens: float | None = None, fraction: float | None = None) -> MemoryPlan:
    """The FSDP plan; `tokens` / `fraction` override the experiment's (used to say what would fit)."""
    miles, fsdp, placement = experiment["miles"], experiment["miles"]["fsdp"], experiment["miles"]["placement"]
    params = float(card["parameter_count"])
    n = actor_gpus(miles)
    colocate = placement["colocate"]
    plan = MemoryPlan(experiment=name, applicable=True, gpus=gpus, gpus_needed=n + (0 if colocate else rollout_gpus(miles)),
                      gpu_memory_gib=gpu_gib, host_memory_gib=host_gib, parameter_count=int(params), backend="fsdp")
    try:
        batch_identity(experiment)
    except MilesConfigError as err:
        plan.problems.append(str(err))
    if plan.gpus_needed > gpus:
        plan.problems.append(f"the placement needs {plan.gpus_needed} GPUs, resources.gpus is {gpus}")
    fp32 = fsdp["keep_fp32_master"]
    state_bytes = 16 if fp32 else 8  # params + grads + 2 AdamW moments, fp32 or bf16
    precision = "fp32 master" if fp32 else "bf16, no fp32 master"
    offload_state = fsdp["cpu_offload"]
    root, per_layer = _shape_terms(card, params)
    s = card["shapes"]

    # ---- rollout: SGLang ---------------------------------------------------------------------------------------
    if fraction is None:
        fraction = sglang_fraction(miles, plan)
    engine_tp = placement["rollout_num_gpus_per_engine"]
    weights = params * 2 / engine_tp / GIB
    static = fraction * gpu_gib
    kv = static - weights
    sequence = experiment["rollout"]["max_response_len"] + PROMPT_TOKENS_ASSUMED
    kv_tokens = max(kv, 0.0) * GIB / (kv_bytes_per_token(card) / engine_tp)
    engine = [(f"SGLang weights bf16 / {engine_tp} GPU(s) per engine", weights),
              (f"SGLang KV cache ({fraction} x {gpu_gib:.1f} - weights; {kv_tokens / 1e3:.0f}k tokens = "
               f"{kv_tokens / sequence:.1f} x {sequence})", max(kv, 0.0)),
              ("SGLang runtime (context, CUDA graphs)", SGLANG_RUNTIME_GIB)]
    if kv < MIN_KV_CACHE_GIB or kv_tokens < sequence:
        plan.problems.append(
            f"miles.sglang.mem_fraction_static {fraction}: SGLang's share ({static:.1f} GiB of {gpu_gib:.1f}) holds "
            f"its bf16 weights ({weights:.1f} GiB) but only {max(kv, 0):.1f} GiB of KV cache, less than one sequence of "
            f"rollout.max_response_len {experiment['rollout']['max_response_len']} + {PROMPT_TOKENS_ASSUMED} prompt "
            f"tokens ({sequence * kv_bytes_per_token(card) / engine_tp / GIB:.2f} GiB)")
    sharded = params * state_bytes / n / GIB
    if colocate:
        if offload_state or miles["offload"]["offload_train"]:
            keeps = [("trainer's CUDA context (its state in host RAM)", TRAINER_RESIDUAL_GIB)]
        else:
            keeps = [(f"trainer while SGLang runs: its sharded state ({state_bytes} B/param / {n})", sharded),
                     ("trainer's CUDA context", TRAINER_RESIDUAL_GIB)]
        plan.phases.append(Phase("rollout phase", f"{n} shared GPU(s)", engine + keeps))
    else:
        plan.phases.append(Phase("SGLang engines", f"{rollout_gpus(miles)} GPU(s)", engine))

    # ---- initialisation: rank 0 loads its whole shard on the GPU (hazard a) ---------------------------------------
    init_bytes = 4 if fp32 else 2
    init_shard = params * init_bytes / n / GIB
    sglang_released = [("released SGLang engine (context)", SGLANG_RESIDUAL_GIB)] if colocate else []
    init = Phase("initialisation (rank 0 loads its shard on the GPU)", f"{n} GPU(s)",
                 [(f"model shard {'fp32' if fp32 else 'bf16'} ({init_bytes} B/param / {n} GPU(s))", init_shard),
                  ("CUDA context, NCCL", TRAINER_RUNTIME_GIB)] + sglang_released)
    plan.phases.append(init)
    if init.total > gpu_gib:
        plan.problems.append(
            f"miles.fsdp.keep_fp32_master {str(fp32).lower()}: at initialisation rank 0 moves its whole shard to the "
            f"GPU (FACTS section 9, hazard a): {params / 1e9:.2f}e9 params x {init_bytes} B / {n} GPU(s) = "
            f"{init_shard:.1f} GiB, {init.total:.1f} GiB with the context > {gpu_gib:.1f} GiB per GPU"
            + (f"; bf16 (keep_fp32_master false, with a bf16_master_reason) needs {params * 2 / n / GIB:.1f} GiB"
               if fp32 else ""))

    # ---- training -------------------------------------------------------------------------------------------------
    if tokens is None:
        tokens, tokens_key = train_tokens(experiment)
    else:
        tokens_key = "miles.max_tokens_per_gpu"
    released = ([("released SGLang engine (offload_rollout)", SGLANG_RESIDUAL_GIB)]
                if miles["offload"]["offload_rollout"] else
                [(f"idle SGLang engine (offload_rollout false): {label}", v) for label, v in engine]) if colocate else []
    common = [(f"root unit gathered bf16 (embeddings{'' if s['tie_word_embeddings'] else ' + output head'})", root * 2 / GIB),
              ("2 decoder layers gathered bf16 (current + prefetched)", 2 * per_layer * 2 / GIB)]
    if not offload_state:
        common.append((f"sharded state on the GPU: {precision} ({state_bytes} B/param / {n})", sharded))
    elif fp32:
        common.append(("fp32 copy of the layer being gathered from host RAM", per_layer * 4 / GIB))
    layer_act = _layer_activation_bytes(card, tokens) / GIB
    if fsdp["gradient_checkpointing"]:
        kept = (f"checkpointed hidden states ({tokens:.0f} x {s['hidden_size']} x bf16 x {s['num_layers']} layers)",
                tokens * s["hidden_size"] * 2 * s["num_layers"] / GIB)
    else:
        kept = (f"activations of all {s['num_layers']} layers (gradient_checkpointing false)", layer_act * s["num_layers"])
    attention = []
    if fsdp["attn_implementation"] == "eager":
        attention = [(f"eager attention scores ({tokens:.0f}^2 tokens x {s['num_attention_heads']} heads x "
                      f"{EAGER_SCORE_BYTES} B)", tokens * tokens * s["num_attention_heads"] * EAGER_SCORE_BYTES / GIB)]
    head_grad = s["vocab_size"] * s["hidden_size"] * 2 / GIB
    logits = (f"logits + fp32 copy + gradient ({tokens:.0f} tokens x {s['vocab_size']} x {LOGITS_TRAIN_BYTES} B)", tokens * s["vocab_size"] * LOGITS_TRAIN_BYTES / GIB)
    moments = [
        common + [kept, logits, ("output-head gradient bf16", head_grad)],
        common + [kept, (f"one layer recomputed: intermediates + gradients ({tokens:.0f} tokens)",
                         layer_act * LAYER_BACKWARD_FACTOR)] + attention
        + [("one layer's gradients bf16 + fp32 reduction (6 B/param)", per_layer * 6 / GIB),
           ("output-head gradient bf16", head_grad)],
        common + [("root-unit gradients bf16 + fp32 reduction (6 B/param)", root * 6 / GIB)],
    ]
    for label, items in zip(TRAINING_MOMENTS, moments):
        plan.phases.append(Phase(label, f"{n} GPU(s)", _with_overheads(items, released)))
    lp_tokens = fsdp["log_probs_max_tokens_per_gpu"] or tokens
    plan.phases.append(Phase("log-probs (no grad)", f"{n} GPU(s)", _with_overheads(
        common + [(f"one layer's intermediates ({lp_tokens:.0f} tokens)", _layer_activation_bytes(card, lp_tokens) / GIB),
                  (f"logits bf16 + fp32 ({lp_tokens:.0f} tokens x {s['vocab_size']} x {LOGITS_FORWARD_BYTES} B)",
                   lp_tokens * s["vocab_size"] * LOGITS_FORWARD_BYTES / GIB)], released)))
    for phase in plan.phases:
        if phase.total > gpu_gib and phase is not init:
            driver = (f" at {tokens:.0f} tokens ({tokens_key})" if phase.name in TRAINING_MOMENTS else
                      f" (miles.sglang.mem_fraction_static {fraction})" if phase is plan.phases[0] else "")
            plan.problems.append(f"{phase.name} needs {phase.total:.1f} GiB per GPU{driver}, "
                                 f"resources.gpu_memory_gb is {gpu_gib:.1f}")

    # ---- host RAM -----------------------------------------------------------------------------------------------
    if offload_state or (colocate and miles["offload"]["offload_train"]):
        where = "miles.fsdp.cpu_offload" if offload_state else "offload_train, while SGLang runs"
        p, g, m = (4, 4, 8) if fp32 else (2, 2, 4)
        plan.host_items += [(f"parameters, {precision} ({p} B/param; {where})", params * p / GIB),
                            (f"gradients ({g} B/param)", params * g / GIB),
                            (f"AdamW moments ({m} B/param)", params * m / GIB)]
    if uses_kl_loss(experiment):
        plan.host_items.append(("reference model bf16 (use_kl_loss; FSDP2 CPU offload)", params * 2 / GIB))
    plan.host_items.append((f"Ray, driver, {plan.gpus_needed} GPU process(es)",
                            HOST_BASE_GIB + HOST_PER_GPU_GIB * plan.gpus_needed))
    if plan.host_total_gib > host_gib:
        other = params * (8 if fp32 else 16) / GIB - params * state_bytes / GIB
        plan.problems.append(
            f"host RAM: needs {plan.host_total_gib:.0f} GiB, resources.host_memory_gb is {host_gib:.0f}"
            + (f" (keep_fp32_master {'false' if fp32 else 'true'} would need {plan.host_total_gib + other:.0f})"
               if offload_state else ""))

    if colocate and offload_state:
        plan.warnings.append(
            "FACTS section 9 hazard (b): with fsdp.cpu_offload the trainer does not offload itself; the rollout "
            "phase above assumes its CUDA cache is emptied before SGLang reloads (if it is not, add the largest "
            f"training moment, {max(p.total for p in plan.phases if p.name in TRAINING_MOMENTS) - TRAINER_RUNTIME_GIB:.1f} GiB, "
            "to it)")
    plan.assumptions += [
        "arithmetic from the shapes (FACTS section 9), not calibrated on a GPU: the FSDP terms have not run on hardware",
        f"logits cost {LOGITS_TRAIN_BYTES} B per token x vocab entry in training, {LOGITS_FORWARD_BYTES} B without grad",
        "FSDP2 keeps the root unit (embeddings, output head) gathered for the step, gathers one layer + one prefetched",
        "SGLang's released weights are discarded, not backed up in host RAM (the trainer re-sends them over CUDA IPC)",
        f"runtime shares: trainer {TRAINER_RUNTIME_GIB} GiB, SGLang {SGLANG_RUNTIME_GIB} GiB, fragmentation "
        f"{FRAGMENTATION:.0%}, host base {HOST_BASE_GIB:.0f} + {HOST_PER_GPU_GIB:.0f} GiB per GPU process",
    ]
    return plan


def suggest_fsdp(experiment: Mapping[str, Any], card: Mapping[str, Any], plan: MemoryPlan) -> list[str]:
    """What would fit: the largest token budget and SGLang fraction, cpu_offload, the host RAM needed."""
    out: list[str] = []
    fsdp = experiment["miles"]["fsdp"]
    args = (experiment, card, plan.gpus, plan.gpu_memory_gib, float("inf"), plan.experiment)
    phase_fits = lambda p, names: all(ph.total <= p.gpu_memory_gib for ph in p.phases if ph.name in names)  # noqa: E731
    if not fsdp["cpu_offload"]:
        trial = estimate_fsdp({**experiment, "miles": {**experiment["miles"], "fsdp": {**fsdp, "cpu_offload": True}}},
                              *args[1:])
        if trial.gpu_peak_gib <= plan.gpu_memory_gib:
            out.append(f"miles.fsdp.cpu_offload: true (peak {trial.gpu_peak_gib:.1f} GiB per GPU, host RAM "
                       f"{trial.host_total_gib:.0f} GiB)")
    train_names = set(TRAINING_MOMENTS)
    if not phase_fits(plan, train_names):
        best = 0
        for tokens in range(256, 65536 + 1, 256):
            if not phase_fits(estimate_fsdp(*args, tokens=float(tokens)), train_names):
                break
            best = tokens
        out.append(f"miles.max_tokens_per_gpu at most {best}" if best else
                   "no token budget fits the training phase on this GPU")
    rollout = next((p for p in plan.phases if p.name == "rollout phase"), None)
    if rollout is not None and (rollout.total > plan.gpu_memory_gib or any("mem_fraction_static" in p for p in plan.problems)):
        fits = [f / 100 for f in range(5, 96) if not any(
            "mem_fraction_static" in p or "rollout phase" in p for p in estimate_fsdp(*args, fraction=f / 100).problems)]
        out.append(f"miles.sglang.mem_fraction_static between {fits[0]} and {fits[-1]}" if fits else
                   "no SGLang memory fraction fits the rollout phase on this GPU")
    if plan.host_total_gib > plan.host_memory_gib:
        out.append(f"resources.host_memory_gb of at least {plan.host_total_gib:.0f}")
    return out
