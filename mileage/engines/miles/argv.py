"""The miles `train.py` command line of an experiment, grouped the way miles' own launchers group it.

This module (with the model card's Megatron arguments) is the only place in mileage that spells miles'
training flags. Flags whose value equals miles' default and that miles' reference recipe does not spell
(`--seed 1234`, `--rollout-seed 42`, `--clip-grad 1`, `--rollout-top-p 1`, `--micro-batch-size 1`) are left
out, so the reference experiment's argv is the recipe's argv, token for token (miles/FACTS.md section 1).

Two training backends (miles.train_backend). megatron: the recipe's argv (no --train-backend: miles' default).
fsdp: `--train-backend fsdp` and only miles' own flags and FSDP's arguments (flags/fsdp.txt, FACTS section 9): no
parallelism, recompute, Megatron kernels or model-architecture flags, the HF snapshot as --hf-checkpoint and
--ref-load, FSDP's CPU offload and fp32 master switches.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Mapping, Sequence

from mileage.batch import BatchIdentityError, batch_identity as _batch_identity
from mileage.engines.contract import FreeFormKey
from mileage.engines.miles.flags import validate_flags
from mileage.engines.miles.reward_hook import HOOK_PATH as REWARD_HOOK
from mileage.rewards import registered
from mileage.secrets import secret_config_problems

# Defaults of miles' parser that the recipe relies on without spelling them (FACTS sections 1 and 8).
MILES_DEFAULT_SEED = 1234
MILES_DEFAULT_ROLLOUT_SEED = 42
MILES_DEFAULT_CLIP_GRAD = 1.0
MILES_DEFAULT_TOP_P = 1.0
MILES_DEFAULT_MICRO_BATCH_SIZE = 1
FSDP_DEFAULT_CPU_BACKEND = "gloo"  # FSDPArgs.fsdp_cpu_backend (FACTS section 9)

EVAL_HOOK = "mileage.engines.miles.eval_hook.log_eval_samples"
# Passed on to miles and SGLang unread: a credential there is refused (mileage.secrets), at load and here.
FREE_FORM_KEYS = (FreeFormKey("miles.extra_args", "argv"), FreeFormKey("miles.sglang.extra", "options"))

Groups = list[tuple[str, list[str]]]


class MilesConfigError(ValueError):
    """An experiment that miles would reject or that cannot run as configured (names the config key)."""


@dataclass(frozen=True)
class MilesPaths:
    """Filesystem paths that go on the command line (absolute paths: the Ray job runs elsewhere)."""

    hf_checkpoint: str  # HF snapshot (tokenizer, config, SGLang weights; FSDP's training weights too)
    ref_load: str  # starting and reference weights: the torch_dist conversion (megatron) or the HF snapshot (fsdp)
    run_dir: str  # checkpoint directory for --load and --save (holds latest_checkpointed_iteration.txt)
    prompt_data: str | None  # training prompts (JSONL)
    eval_data: list[tuple[str, str]] = field(default_factory=list)  # (dataset name, JSONL path)
    tensorboard_dir: str | None = None  # TENSORBOARD_DIR of the job (set by runtime_env, not a flag)
    debug_event_dir: str | None = None  # --save-debug-event-data
    eval_samples_dir: str | None = None  # where the eval hook writes per-sample records


def format_value(value: Any) -> str:
    """A config value as a command-line token: integral floats without '.0', others by repr (1e-06)."""
    if isinstance(value, bool):
        raise TypeError("booleans are flags, not values")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def _opt(args: list[str], flag: str, value: Any) -> None:
    args += [flag, format_value(value)]


def batch_identity(experiment: Mapping[str, Any]) -> tuple[int, int]:
    """(global_batch_size, num_steps_per_rollout) of an experiment (mileage.batch), as a MilesConfigError."""
    try:
        return _batch_identity(experiment["rollout"], experiment["train"])
    except BatchIdentityError as err:
        raise MilesConfigError(f"{err.key}: {err}") from None


def actor_gpus(miles: Mapping[str, Any]) -> int:
    placement = miles["placement"]
    return placement["actor_num_nodes"] * placement["actor_num_gpus_per_node"]


def rollout_gpus(miles: Mapping[str, Any]) -> int:
    placement = miles["placement"]
    return actor_gpus(miles) if placement["colocate"] else placement["rollout_num_gpus"]


def total_gpus(miles: Mapping[str, Any]) -> int:
    """GPUs the job needs: the trainer's, plus the engines' unless colocated."""
    placement = miles["placement"]
    return actor_gpus(miles) + (0 if placement["colocate"] else placement["rollout_num_gpus"])


def is_fsdp(experiment: Mapping[str, Any]) -> bool:
    """Whether the experiment trains with miles' FSDP backend (else Megatron)."""
    return experiment["miles"]["train_backend"] == "fsdp"


def model_parallel_sizes(experiment: Mapping[str, Any]) -> tuple[int, int]:
    """(tensor, context) parallel sizes the trainer runs with: FSDP has neither (its miles.parallelism keys are
    unused schema defaults)."""
    if is_fsdp(experiment):
        return 1, 1
    par = experiment["miles"]["parallelism"]
    return par["tensor"], par["context"]


def check_layout(experiment: Mapping[str, Any], card: Mapping[str, Any]) -> None:
    """Raise MilesConfigError for a parallel layout Megatron or miles would refuse."""
    if experiment.get("engine") != "miles":
        raise MilesConfigError(f"engine is {experiment.get('engine')!r}; the miles argv needs engine: miles")
    if is_fsdp(experiment):
        _check_common_layout(experiment)
        return
    miles = experiment["miles"]
    par = miles["parallelism"]
    shapes = card["shapes"]
    tp, pp, cp = par["tensor"], par["pipeline"], par["context"]
    if shapes["num_kv_heads"] % tp or shapes["num_attention_heads"] % tp:
        raise MilesConfigError(
            f"miles.parallelism.tensor={tp} must divide the model's {shapes['num_kv_heads']} KV heads and "
            f"{shapes['num_attention_heads']} attention heads (card {card['name']})")
    if shapes["num_layers"] % pp:
        raise MilesConfigError(f"miles.parallelism.pipeline={pp} must divide the model's {shapes['num_layers']} layers")
    trainers = actor_gpus(miles)
    if trainers % (tp * pp * cp):
        raise MilesConfigError(
            f"trainer GPUs ({trainers} = miles.placement.actor_num_nodes x actor_num_gpus_per_node) must be a "
            f"multiple of tensor x pipeline x context = {tp * pp * cp}")
    _check_common_layout(experiment)


def _check_common_layout(experiment: Mapping[str, Any]) -> None:
    """What miles checks of the placement under either backend."""
    miles = experiment["miles"]
    placement = miles["placement"]
    per_engine = placement["rollout_num_gpus_per_engine"]
    if rollout_gpus(miles) % per_engine:
        raise MilesConfigError(f"rollout GPUs ({rollout_gpus(miles)}) must be a multiple of "
                               f"miles.placement.rollout_num_gpus_per_engine={per_engine}")
    if placement["num_gpus_per_node"] is not None and placement["actor_num_gpus_per_node"] > placement["num_gpus_per_node"]:
        raise MilesConfigError(f"miles.placement.actor_num_gpus_per_node={placement['actor_num_gpus_per_node']} "
                               f"exceeds num_gpus_per_node={placement['num_gpus_per_node']}")
    offload = miles["offload"]
    if (offload["offload_train"] or offload["offload_rollout"]) and not placement["colocate"]:
        raise MilesConfigError("miles.offload.offload_train/offload_rollout only make sense with "
                               "miles.placement.colocate: true")
    sglang_backend = miles["sglang"]["attention_backend"]
    if miles["deterministic"] and sglang_backend not in (None, "flashinfer"):
        raise MilesConfigError(f"miles.deterministic needs SGLang's flashinfer backend, but "
                               f"miles.sglang.attention_backend is {sglang_backend!r}")
    if is_fsdp(experiment) and miles["fsdp"]["cpu_offload"] and offload["offload_train"]:
        # With --fsdp-cpu-offload the actor turns its own train offload off (FACTS section 9 hazard b).
        raise MilesConfigError("miles.offload.offload_train: FSDP with miles.fsdp.cpu_offload keeps the trainer's "
                               "state in host memory and passes --no-offload-train; set offload_train: false")


# --- the groups, in the order of miles' launcher -------------------------------------------------------

def _placement(miles: Mapping[str, Any]) -> list[str]:
    placement, offload = miles["placement"], miles["offload"]
    fsdp_cpu_offload = miles["train_backend"] == "fsdp" and miles["fsdp"]["cpu_offload"]
    args: list[str] = []
    _opt(args, "--actor-num-nodes", placement["actor_num_nodes"])
    _opt(args, "--actor-num-gpus-per-node", placement["actor_num_gpus_per_node"])
    if placement["colocate"]:
        args.append("--colocate")
    else:
        _opt(args, "--rollout-num-gpus", placement["rollout_num_gpus"])
    if placement["num_gpus_per_node"] is not None:
        _opt(args, "--num-gpus-per-node", placement["num_gpus_per_node"])
    if offload["offload_train"]:
        args.append("--offload-train")
    elif placement["colocate"] and fsdp_cpu_offload:
        # FACTS section 9 hazard (b): otherwise the trainer may keep its CUDA cache while SGLang reloads.
        args.append("--no-offload-train")
    if offload["offload_rollout"]:
        args.append("--offload-rollout")
    return args


def _backend(experiment: Mapping[str, Any]) -> list[str]:
    return ["--train-backend", "fsdp"] if is_fsdp(experiment) else []  # megatron is miles' default


def _model(experiment: Mapping[str, Any], card: Mapping[str, Any]) -> list[str]:
    """Megatron's model-architecture flags (the card's); FSDP reads the architecture from the HF config.json."""
    return [] if is_fsdp(experiment) else list(card["megatron_args"])


def _checkpoints(experiment: Mapping[str, Any], paths: MilesPaths) -> list[str]:
    args = ["--hf-checkpoint", paths.hf_checkpoint, "--ref-load", paths.ref_load,
            "--load", paths.run_dir, "--save", paths.run_dir]
    _opt(args, "--save-interval", experiment["train"]["save_interval"])
    return args


def _data_and_reward(experiment: Mapping[str, Any]) -> list[str]:
    """Prompt columns, chat template and reward: shared by training and eval-only runs."""
    args = ["--input-key", "prompt", "--label-key", "label"]
    if experiment["data"]["apply_chat_template"]:
        args.append("--apply-chat-template")
    return args


def _reward(experiment: Mapping[str, Any]) -> list[str]:
    """miles' own --rm-type where it ships the rule (the registry's engine_builtin), else the one generic hook,
    which reads the rule's name from the job's environment (runtime_env)."""
    try:
        rule = registered(experiment["rollout"]["reward"])
    except ValueError as err:
        raise MilesConfigError(f"rollout.reward: {err}") from None
    if "miles" in rule.engine_builtin:
        return ["--rm-type", rule.engine_builtin["miles"]]
    return ["--custom-rm-path", REWARD_HOOK]


def _rollout(experiment: Mapping[str, Any], paths: MilesPaths) -> list[str]:
    rollout, miles = experiment["rollout"], experiment["miles"]
    if not paths.prompt_data:
        raise MilesConfigError("MilesPaths.prompt_data is required for training (data.train)")
    args = ["--prompt-data", paths.prompt_data, *_data_and_reward(experiment)]
    if rollout["shuffle"]:
        args.append("--rollout-shuffle")
    args += _reward(experiment)
    _opt(args, "--num-rollout", rollout["num_rollout"])
    _opt(args, "--rollout-batch-size", rollout["rollout_batch_size"])
    _opt(args, "--n-samples-per-prompt", rollout["n_samples_per_prompt"])
    _opt(args, "--rollout-max-response-len", rollout["max_response_len"])
    _opt(args, "--rollout-temperature", rollout["temperature"])
    if rollout["top_p"] != MILES_DEFAULT_TOP_P:
        _opt(args, "--rollout-top-p", rollout["top_p"])
    global_batch_size, _ = batch_identity(experiment)
    _opt(args, "--global-batch-size", global_batch_size)
    if miles["balance_data"]:
        args.append("--balance-data")
    if experiment["rollout_seed"] != MILES_DEFAULT_ROLLOUT_SEED:
        _opt(args, "--rollout-seed", experiment["rollout_seed"])
    return args


def _eval(experiment: Mapping[str, Any], paths: MilesPaths, *, explicit_temperature: bool = False) -> list[str]:
    evaluation, miles = experiment["eval"], experiment["miles"]
    if evaluation["interval"] is None:
        return []
    if not paths.eval_data:
        raise MilesConfigError("eval.interval is set but MilesPaths.eval_data is empty (data.eval)")
    args: list[str] = []
    _opt(args, "--eval-interval", evaluation["interval"])
    args.append("--eval-prompt-data")
    for name, path in paths.eval_data:
        args += [name, path]
    _opt(args, "--n-samples-per-eval-prompt", evaluation["n_samples_per_prompt"])
    _opt(args, "--eval-max-response-len", evaluation["max_response_len"])
    _opt(args, "--eval-top-p", evaluation["top_p"])
    # ASSUMPTION (not read from miles): an unset --eval-temperature falls back to the rollout temperature.
    if explicit_temperature or evaluation["temperature"] != experiment["rollout"]["temperature"]:
        _opt(args, "--eval-temperature", evaluation["temperature"])
    if miles["skip_eval_before_train"]:
        args.append("--skip-eval-before-train")
    if miles["log_passrate"]:
        args.append("--log-passrate")
    return args


def _parallelism(experiment: Mapping[str, Any]) -> list[str]:
    if is_fsdp(experiment):
        return _fsdp_batching(experiment)
    miles = experiment["miles"]
    par, recompute = miles["parallelism"], miles["recompute"]
    args: list[str] = []
    _opt(args, "--tensor-model-parallel-size", par["tensor"])
    if par["sequence_parallel"]:
        args.append("--sequence-parallel")
    _opt(args, "--pipeline-model-parallel-size", par["pipeline"])
    _opt(args, "--context-parallel-size", par["context"])
    _opt(args, "--expert-model-parallel-size", par["expert"])
    _opt(args, "--expert-tensor-parallel-size", par["expert_tensor"])
    if recompute["granularity"] is not None:
        args += ["--recompute-granularity", recompute["granularity"]]
        if recompute["granularity"] == "full":
            args += ["--recompute-method", recompute["method"]]
            _opt(args, "--recompute-num-layers", recompute["num_layers"])
    if miles["dynamic_batch_size"]:
        args.append("--use-dynamic-batch-size")
        _opt(args, "--max-tokens-per-gpu", miles["max_tokens_per_gpu"])
    if experiment["train"]["micro_batch_size"] != MILES_DEFAULT_MICRO_BATCH_SIZE:
        _opt(args, "--micro-batch-size", experiment["train"]["micro_batch_size"])
    return args


def _fsdp_batching(experiment: Mapping[str, Any]) -> list[str]:
    """FSDP's batching group: dynamic batching as with Megatron, plus the log-prob token budget (FACTS section 9)."""
    miles, fsdp = experiment["miles"], experiment["miles"]["fsdp"]
    args: list[str] = []
    if miles["dynamic_batch_size"]:
        args.append("--use-dynamic-batch-size")
        _opt(args, "--max-tokens-per-gpu", miles["max_tokens_per_gpu"])
    if fsdp["log_probs_max_tokens_per_gpu"] is not None:
        _opt(args, "--log-probs-max-tokens-per-gpu", fsdp["log_probs_max_tokens_per_gpu"])
    if experiment["train"]["micro_batch_size"] != MILES_DEFAULT_MICRO_BATCH_SIZE:
        _opt(args, "--micro-batch-size", experiment["train"]["micro_batch_size"])
    return args


def _fsdp(experiment: Mapping[str, Any]) -> list[str]:
    """FSDP's own arguments (flags/fsdp.txt): CPU offload, precision, activation checkpointing, attention kernels.
    Flags at FSDP's default are left out, except the attention implementation (a choice per GPU generation)."""
    if not is_fsdp(experiment):
        return []
    fsdp = experiment["miles"]["fsdp"]
    args: list[str] = []
    if fsdp["cpu_offload"]:
        args.append("--fsdp-cpu-offload")
        if fsdp["cpu_backend"] != FSDP_DEFAULT_CPU_BACKEND:
            args += ["--fsdp-cpu-backend", fsdp["cpu_backend"]]
    if not fsdp["keep_fp32_master"]:
        args.append("--no-keep-fp32-master")
    if fsdp["gradient_checkpointing"]:
        args.append("--gradient-checkpointing")
    args += ["--attn-implementation", fsdp["attn_implementation"]]
    return args


def uses_kl_loss(experiment: Mapping[str, Any]) -> bool:
    """Whether the run loads the reference model (--use-kl-loss does, even at coefficient 0)."""
    train = experiment["train"]
    if not train["use_kl_loss"]:
        return False
    return not (experiment["miles"]["skip_kl_when_zero"] and train["kl_loss_coef"] == 0)


def _grpo(experiment: Mapping[str, Any]) -> list[str]:
    train = experiment["train"]
    args = ["--advantage-estimator", "grpo"]
    if uses_kl_loss(experiment):
        args.append("--use-kl-loss")
        _opt(args, "--kl-loss-coef", train["kl_loss_coef"])
        args += ["--kl-loss-type", train["kl_loss_type"]]
    _opt(args, "--entropy-coef", train["entropy_coef"])
    _opt(args, "--eps-clip", train["eps_clip"])
    _opt(args, "--eps-clip-high", train["eps_clip_high"])
    return args


def _optimizer(experiment: Mapping[str, Any]) -> list[str]:
    train = experiment["train"]
    args = ["--optimizer", "adam"]
    _opt(args, "--lr", train["lr"])
    args += ["--lr-decay-style", train["lr_decay_style"]]
    _opt(args, "--weight-decay", train["weight_decay"])
    _opt(args, "--adam-beta1", train["adam_beta1"])
    _opt(args, "--adam-beta2", train["adam_beta2"])
    if train["clip_grad"] != MILES_DEFAULT_CLIP_GRAD:
        _opt(args, "--clip-grad", train["clip_grad"])
    return args + _cpu_adam(experiment)


def _eval_optimizer(experiment: Mapping[str, Any]) -> list[str]:
    """The optimizer group of an eval-only run. Megatron still builds the optimizer (CPU Adam is what makes the
    run fit), but its hyperparameters cannot change an evaluation: leaving them out lets experiments that differ
    only in them share one base evaluation. The schedule is pinned to constant, which needs no decay horizon."""
    return ["--optimizer", "adam", "--lr-decay-style", "constant", *_cpu_adam(experiment)]


def _cpu_adam(experiment: Mapping[str, Any]) -> list[str]:
    """Megatron's CPU Adam trio (FACTS section 7); FSDP offloads with --fsdp-cpu-offload instead."""
    offload = experiment["miles"]["offload"]
    if is_fsdp(experiment) or not offload["optimizer_cpu_offload"]:
        return []
    args = ["--optimizer-cpu-offload"]
    if offload["overlap_cpu_optimizer_d2h_h2d"]:
        args.append("--overlap-cpu-optimizer-d2h-h2d")
    if offload["use_precision_aware_optimizer"]:
        args.append("--use-precision-aware-optimizer")
    return args


def sglang_flag(key: str) -> str:
    """`--sglang-<key>` for an SGLang server argument named with '_' or '-'."""
    return "--sglang-" + key.replace("_", "-")


def _sglang(miles: Mapping[str, Any]) -> list[str]:
    sglang = miles["sglang"]
    args: list[str] = []
    _opt(args, "--rollout-num-gpus-per-engine", miles["placement"]["rollout_num_gpus_per_engine"])
    if sglang["mem_fraction_static"] is not None:
        _opt(args, "--sglang-mem-fraction-static", sglang["mem_fraction_static"])
    backend = sglang["attention_backend"]
    if miles["deterministic"]:
        backend = "flashinfer"  # the only backend with deterministic inference (FACTS section 8)
    if backend is not None:
        args += ["--sglang-attention-backend", backend]
    if miles["deterministic"]:
        args.append("--sglang-enable-deterministic-inference")
    for key, value in sorted(sglang["extra"].items()):
        flag = sglang_flag(key)
        if flag in args:
            raise MilesConfigError(f"miles.sglang.extra.{key} repeats {flag}, which another miles.sglang key sets")
        if value is True:
            args.append(flag)
        elif value is False or value is None:
            continue
        else:
            _opt(args, flag, value)
    return args


def _misc(experiment: Mapping[str, Any]) -> list[str]:
    miles = experiment["miles"]
    args: list[str] = []
    if not is_fsdp(experiment):  # Megatron's kernels and precision: not FSDP arguments
        _opt(args, "--attention-dropout", float(miles["attention_dropout"]))
        _opt(args, "--hidden-dropout", float(miles["hidden_dropout"]))
        if miles["accumulate_allreduce_grads_in_fp32"]:
            args.append("--accumulate-allreduce-grads-in-fp32")
        if miles["attention_softmax_in_fp32"]:
            args.append("--attention-softmax-in-fp32")
        args += ["--attention-backend", miles["attention_backend"]]
    if experiment["seed"] != MILES_DEFAULT_SEED:
        _opt(args, "--seed", experiment["seed"])
    if miles["deterministic"]:
        args.append("--deterministic-mode")
    if miles["mfu_peak_tflops"] is not None:
        _opt(args, "--mfu-peak-tflops", miles["mfu_peak_tflops"])
    return args


def _metrics_capture(experiment: Mapping[str, Any], paths: MilesPaths, *, eval_hook: bool) -> list[str]:
    """What the pipeline needs to read the run's metrics and per-sample eval results back."""
    miles = experiment["miles"]
    args: list[str] = []
    if miles["tensorboard"] and paths.tensorboard_dir:
        args.append("--use-tensorboard")  # writes to $TENSORBOARD_DIR (runtime_env sets it)
    if miles["debug_events"] and paths.debug_event_dir:
        args += ["--save-debug-event-data", paths.debug_event_dir]
    if eval_hook and paths.eval_samples_dir:
        args += ["--custom-eval-rollout-log-function-path", EVAL_HOOK]
    return args


def _tracking(experiment: Mapping[str, Any]) -> list[str]:
    tracking = experiment["tracking"]
    if not tracking["wandb"]:
        return []
    args = ["--use-wandb"]  # the key comes from WANDB_API_KEY in the job's environment, never from argv
    if tracking["wandb_project"]:
        args += ["--wandb-project", tracking["wandb_project"]]
    if tracking["wandb_group"]:
        args += ["--wandb-group", tracking["wandb_group"]]
    return args


def _extra_args(miles: Mapping[str, Any]) -> list[str]:
    for key, problem in secret_config_problems({"miles": miles}, FREE_FORM_KEYS):
        raise MilesConfigError(f"{key}: {problem}")
    return list(miles["extra_args"])


def argv_groups(experiment: Mapping[str, Any], card: Mapping[str, Any], paths: MilesPaths) -> Groups:
    """The training argv as (group name, tokens) in the order of miles' launcher; empty groups are dropped."""
    check_layout(experiment, card)
    miles = experiment["miles"]
    groups: Groups = [
        ("backend", _backend(experiment)),
        ("placement", _placement(miles)),
        ("model", _model(experiment, card)),
        ("checkpoints", _checkpoints(experiment, paths)),
        ("rollout", _rollout(experiment, paths)),
        ("eval", _eval(experiment, paths)),
        ("parallelism/performance", _parallelism(experiment)),
        ("GRPO", _grpo(experiment)),
        ("optimizer", _optimizer(experiment)),
        ("FSDP", _fsdp(experiment)),
        ("SGLang", _sglang(miles)),
        ("misc", _misc(experiment)),
        ("metrics capture", _metrics_capture(experiment, paths, eval_hook=experiment["eval"]["interval"] is not None)),
        ("tracking", _tracking(experiment)),
        ("extra", _extra_args(miles)),
    ]
    return [(name, tokens) for name, tokens in groups if tokens]


def flatten(groups: Groups) -> list[str]:
    return [token for _, tokens in groups for token in tokens]


def build_argv(experiment: Mapping[str, Any], card: Mapping[str, Any], paths: MilesPaths) -> list[str]:
    """The training argv of `train.py` (without the program), checked against miles' flag lists."""
    argv = flatten(argv_groups(experiment, card, paths))
    validate_flags(argv, experiment["miles"]["train_backend"])
    return argv


_ITER_DIR = re.compile(r"^iter_(\d{7})$")


def load_args(checkpoint: str) -> list[str]:
    """`--load` for a checkpoint directory (its tracker picks the iteration), or for one `iter_NNNNNNN`
    directory: Megatron loads from the parent, so the iteration is pinned with `--ckpt-step`."""
    path = PurePath(checkpoint)
    match = _ITER_DIR.match(path.name)
    if match:
        return ["--load", str(path.parent), "--ckpt-step", str(int(match.group(1)))]
    return ["--load", str(checkpoint)]


def fsdp_load_args(checkpoint: str, paths: MilesPaths) -> list[str]:
    """`--load` of an FSDP evaluation. FSDP has no --ckpt-step nor --no-load-optim: it loads what the root's tracker
    names, and the optimizer and RNG state when present. One `iter_NNNNNNN` directory is therefore loaded from a
    weights-only root in the evaluation's own checkpoint directory (paths.run_dir), which the engine fills with
    checkpoints.pin_fsdp_weights before the job starts; a checkpoint root is loaded as it is."""
    if _ITER_DIR.match(PurePath(checkpoint).name):
        return ["--load", paths.run_dir]
    return ["--load", str(checkpoint)]


def eval_only_groups(
    experiment: Mapping[str, Any],
    card: Mapping[str, Any],
    paths: MilesPaths,
    checkpoint_dir: str | None,
    n_samples: int,
    max_response_len: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
) -> Groups:
    """Groups of an evaluation without training (FACTS section 6): `--num-rollout 0 --eval-interval 1`.

    `checkpoint_dir` is a miles checkpoint directory (its tracker names the iteration loaded) or one
    `iter_NNNNNNN` directory inside it; None evaluates the starting weights (`--ref-load`). Nothing is saved.
    The optimizer group keeps only the CPU Adam settings (what makes the run fit); see _eval_optimizer.
    """
    check_layout(experiment, card)
    miles = experiment["miles"]
    if not paths.eval_data:
        raise MilesConfigError("an eval-only run needs MilesPaths.eval_data (data.eval)")
    evaluation = {"interval": 1, "n_samples_per_prompt": n_samples, "max_response_len": max_response_len,
                  "temperature": temperature, "top_p": top_p}
    scoped = {**experiment, "eval": evaluation}
    checkpoints = ["--hf-checkpoint", paths.hf_checkpoint, "--ref-load", paths.ref_load]
    if checkpoint_dir is not None and is_fsdp(experiment):
        checkpoints += fsdp_load_args(checkpoint_dir, paths)
    elif checkpoint_dir is not None:
        # Weights only: an evaluation needs neither the Adam state (100+ GB for 9B) nor the RNG state.
        checkpoints += [*load_args(checkpoint_dir), "--no-load-optim", "--no-load-rng"]
    rollout = [*_data_and_reward(experiment), *_reward(experiment), "--num-rollout", "0"]
    _opt(rollout, "--rollout-batch-size", experiment["rollout"]["rollout_batch_size"])
    _opt(rollout, "--rollout-seed", experiment["rollout_seed"] if seed is None else seed)
    eval_args = _eval({**scoped, "miles": {**miles, "skip_eval_before_train": False}}, paths,
                      explicit_temperature=True)
    groups: Groups = [
        ("backend", _backend(experiment)),
        ("placement", _placement(miles)),
        ("model", _model(experiment, card)),
        ("checkpoints", checkpoints),
        ("rollout", rollout),
        ("eval", eval_args),
        ("parallelism/performance", _parallelism(experiment)),
        ("optimizer", _eval_optimizer(experiment)),
        ("FSDP", _fsdp(experiment)),
        ("SGLang", _sglang(miles)),
        ("misc", _misc(experiment)),
        ("metrics capture", _metrics_capture(experiment, paths, eval_hook=True)),
        ("extra", _extra_args(miles)),
    ]
    return [(name, tokens) for name, tokens in groups if tokens]


def eval_only_argv(experiment: Mapping[str, Any], *args: Any, **kwargs: Any) -> list[str]:
    """The argv of an evaluation-only `train.py` run (arguments as eval_only_groups), checked against the flag lists."""
    argv = flatten(eval_only_groups(experiment, *args, **kwargs))
    validate_flags(argv, experiment["miles"]["train_backend"])
    return argv


def format_groups(groups: Sequence[tuple[str, Sequence[str]]]) -> str:
    """The argv as a readable, copy-pasteable listing: one `# group` line, then one flag (and its values) per line."""
    lines: list[str] = []
    for name, tokens in groups:
        lines.append(f"# {name}")
        current: list[str] = []
        for token in tokens:
            if token.startswith("--") and current:
                lines.append("  " + " ".join(current))
                current = []
            current.append(token)
        if current:
            lines.append("  " + " ".join(current))
    return "\n".join(lines) + "\n"
