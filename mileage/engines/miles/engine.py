"""The miles engine (train.py on GPUs: SGLang rollouts, Megatron or FSDP training, placed by Ray) as an
implementation of the engine contract.

miles.train_backend picks the trainer. megatron trains a torch_dist conversion of the HF snapshot and saves
Megatron checkpoints; fsdp trains the HF snapshot itself (no conversion job; --ref-load is the snapshot) and saves
FSDP's layout (checkpoints.py). An FSDP experiment may not set a Megatron-only key, nor a Megatron one an FSDP key.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Mapping

from mileage.engines.contract import EVAL_SAMPLES_DIR, Checkpoint, DoctorNeeds, Engine, JobSpec, ProgramCheck
from mileage.engines.miles import checkpoints as ckpt
from mileage.engines.miles import env_lock
from mileage.engines.miles import evals as miles_evals
from mileage.engines.miles.extra_args import extra_args_problems
from mileage.engines.miles import doctor
from mileage.engines.miles.argv import FREE_FORM_KEYS, MilesPaths, build_argv
from mileage.engines.miles.launch import convert_command, eval_entrypoint, export_command, train_entrypoint
from mileage.engines.miles.pins import MILES_CONTAINER_IMAGE
from mileage.engines.miles.runtime_env import runtime_env
from mileage.errors import ConfigError
from mileage.metrics.events import MetricEvent, collapse_events
from mileage.models.cards import CardError, check_hf_config
from mileage.paths import absolute, final_model, model_dir

# What the converter tools depend on: the engine that runs them, its image, the checkouts and the interpreter.
TOOL_KEYS = ("engine", "miles.container", "miles.miles_dir", "miles.megatron_dir", "miles.python")
# What the training and evaluation jobs read of `miles`: all of it but the plan's opt-in for a bf16 master (the
# preflight's concern: a reworded reason must not restart a run).
MILES_JOB_KEYS = tuple(f"miles.{key}" for key in (
    "miles_dir", "megatron_dir", "python", "container", "train_backend", "placement", "parallelism", "recompute",
    "dynamic_batch_size", "max_tokens_per_gpu", "offload", "attention_backend", "accumulate_allreduce_grads_in_fp32",
    "attention_softmax_in_fp32", "attention_dropout", "hidden_dropout", "balance_data", "skip_kl_when_zero",
    "skip_eval_before_train", "log_passrate", "sglang", "nvlink", "tensorboard", "debug_events", "mfu_peak_tflops",
    "deterministic", "extra_args", "fsdp.cpu_offload", "fsdp.keep_fp32_master", "fsdp.gradient_checkpointing",
    "fsdp.attn_implementation", "fsdp.cpu_backend", "fsdp.log_probs_max_tokens_per_gpu",
))

# Config keys only one backend reads (FACTS section 9): set for the other, they are refused at load, by name.
MEGATRON_ONLY_KEYS = (
    "miles.parallelism", "miles.recompute", "miles.attention_backend", "miles.attention_softmax_in_fp32",
    "miles.accumulate_allreduce_grads_in_fp32", "miles.attention_dropout", "miles.hidden_dropout",
    "miles.offload.optimizer_cpu_offload", "miles.offload.overlap_cpu_optimizer_d2h_h2d",
    "miles.offload.use_precision_aware_optimizer",
)
FSDP_ONLY_KEYS = ("miles.fsdp",)

# Keys of its own a training run may change under it: the run continues from its checkpoints (mileage.keys).
RESUME_SAFE = {
    "miles.miles_dir": "where the miles checkout is",
    "miles.megatron_dir": "where the Megatron-LM checkout is",
    "miles.python": "which interpreter runs train.py",
    "miles.container": "which image runs the rules",
}

# What each stage reads. An eval-only run reads of `rollout` and `train` only the reward, the required
# --rollout-batch-size and the micro-batch size (argv.eval_only_groups): extending a run or a learning-rate
# variant never reruns the base model's evaluation. The preflight orders the model download, so it reads only what
# the memory plan sizes.
READS = {
    "train": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name", "data.extra_eval",
        "rollout", "train", "eval", "resources.gpus", "ray", "tracking", *MILES_JOB_KEYS,
    ),
    "eval_base": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name", "rollout.reward",
        "rollout.rollout_batch_size", "train.micro_batch_size", "resources.gpus", "ray", *MILES_JOB_KEYS, "base_eval",
    ),
    "eval_final": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name", "rollout.reward",
        "rollout.rollout_batch_size", "train.micro_batch_size", "resources.gpus", "ray", *MILES_JOB_KEYS, "final_eval",
    ),
    "preflight": (
        "engine", "resources.gpus", "resources.gpu_memory_gb", "resources.host_memory_gb",
        "rollout.rollout_batch_size", "rollout.n_samples_per_prompt", "rollout.max_response_len",
        "train.global_batch_size", "train.num_steps_per_rollout", "train.micro_batch_size", "train.use_kl_loss",
        "train.kl_loss_coef", "miles.placement", "miles.parallelism.tensor", "miles.parallelism.pipeline",
        "miles.parallelism.context", "miles.parallelism.sequence_parallel", "miles.recompute.granularity",
        "miles.dynamic_batch_size", "miles.max_tokens_per_gpu", "miles.offload.offload_train",
        "miles.offload.offload_rollout", "miles.offload.optimizer_cpu_offload",
        "miles.accumulate_allreduce_grads_in_fp32", "miles.deterministic", "miles.skip_kl_when_zero",
        "miles.sglang.attention_backend", "miles.sglang.mem_fraction_static",
        # the FSDP plan (mileage/engines/miles/plan_fsdp.py); the dispatch on the backend is in plan.py. Not
        # train.lr nor fsdp.bf16_master_reason: the bf16-master learning check is made at config load instead.
        "miles.train_backend", "miles.fsdp.cpu_offload", "miles.fsdp.keep_fp32_master",
        "miles.fsdp.gradient_checkpointing", "miles.fsdp.attn_implementation",
        "miles.fsdp.log_probs_max_tokens_per_gpu",
    ),
    "convert_model": TOOL_KEYS,
    "export_hf": TOOL_KEYS,
}


def _tools(params: Mapping[str, Any]) -> dict:
    """The converter tools' keyword arguments: the checkouts and the interpreter."""
    miles = params["miles"]
    return {"miles_dir": miles["miles_dir"], "megatron_dir": miles["megatron_dir"], "python": miles["python"]}


def _backend(exp: Mapping[str, Any]) -> str:
    return exp["miles"]["train_backend"]


def miles_paths(params: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path) -> MilesPaths:
    hf = absolute(model_dir(inputs["model"]))
    return MilesPaths(
        hf_checkpoint=hf,
        # FSDP loads HF weights, the reference model's too (FACTS section 9); Megatron the torch_dist conversion.
        ref_load=hf if _backend(params) == "fsdp" else absolute(Path(inputs["torch_dist"]).parent),
        run_dir=absolute(run_dir / "checkpoints"),
        prompt_data=absolute(inputs["train_data"]),
        # Every evaluation set, as miles' --eval-prompt-data NAME PATH pairs; the eval rules' params hold only their
        # own set (data.extra_eval is not theirs to read: .get), training's all of data.extra_eval.
        eval_data=[(params["data"]["eval"]["name"], absolute(inputs["eval_data"]))]
        + [(data["name"], absolute(inputs[f"eval_data_{i}"]))
           for i, data in enumerate(params["data"].get("extra_eval", []), start=1)],
        tensorboard_dir=absolute(run_dir / "tensorboard"),
        debug_event_dir=absolute(run_dir / "debug_events"),
        eval_samples_dir=absolute(run_dir / EVAL_SAMPLES_DIR),
    )


class MilesEngine(Engine):
    name = "miles"
    env = "miles"
    reads = READS
    resume_safe = RESUME_SAFE
    free_form_keys = FREE_FORM_KEYS
    stack_modules = doctor.STACK_MODULES

    # ---- what it declares --------------------------------------------------------------------------------
    def container(self, exp):
        return exp["miles"]["container"] or MILES_CONTAINER_IMAGE

    def check_config(self, exp, where):
        model = exp["model"]
        if model["source"] != "hf" or not model["card"]:
            raise ConfigError(
                f"{where}.model.card: engine 'miles' needs a model card (model.source: hf, model.card: NAME) "
                "for the Megatron model arguments"
            )
        if exp["warm_start"]["enabled"]:
            raise ConfigError(f"{where}.warm_start.enabled: the warm start exists for the local engine only")
        for problem in extra_args_problems(exp):
            raise ConfigError(f"{where}.{problem}")
        from mileage.engines.miles.plan import learning_checks  # the memory plan: loaded when an experiment asks

        try:
            problems, _ = learning_checks(exp)  # refused at load, before any download; the plan prints the warning
        except CardError:
            problems = []  # an unknown or broken card is reported by the card's own check
        if problems:
            raise ConfigError(f"{where}.{problems[0]}")

    def check_explicit_keys(self, exp, explicit, where):
        """Refuse a key of the other backend that the config sets (a schema default is not refused), naming every
        such key at its deepest (`miles.parallelism.tensor`)."""
        backend = _backend(exp)
        foreign = MEGATRON_ONLY_KEYS if backend == "fsdp" else FSDP_ONLY_KEYS
        leaves = [key for key in explicit if not any(other.startswith(key + ".") for other in explicit)]
        found = sorted(key for key in leaves if any(key == f or key.startswith(f + ".") for f in foreign))
        if not found:
            return
        more = f" (also {', '.join(f'{where}.{key}' for key in found[1:])})" if found[1:] else ""
        if backend == "fsdp":
            raise ConfigError(
                f"{where}.{found[0]}: a Megatron-only key, but miles.train_backend is fsdp{more}. FSDP has no "
                "parallelism sizes, recompute, Megatron kernels or Megatron CPU Adam (miles/FACTS.md section 9): "
                "remove them (from this experiment or what it extends), or train with the megatron backend")
        raise ConfigError(f"{where}.{found[0]}: an FSDP setting, but miles.train_backend is megatron{more}: remove "
                          "it or set miles.train_backend: fsdp")

    def stack_findings(self, facts):
        return doctor.stack_findings(facts) + env_lock.probe_and_check(facts)  # the modules, then the lock

    def doctor_needs(self, exp):
        resources = exp.get("resources") or {}
        return DoctorNeeds(
            gpus=max(resources.get("gpus", 1), 1),
            needs_cuda=True,
            min_free_disk_gb=200.0,
            python=(3, 12),
            light_env_required=False,
            needs_nccl=True,
        )

    def memory_plan(self, plan, name=None, gpus=None, gpu_memory_gb=None):
        from mileage.engines.miles.plan import estimate_memory

        return estimate_memory(plan, plan.get("card"), name=name, gpus=gpus, gpu_memory_gb=gpu_memory_gb)

    def plan_main(self, exp, gpus, gpu_memory_gb, name):
        from mileage.engines.miles.plan import plan_main

        return plan_main(exp, gpus, gpu_memory_gb, name=name)

    # ---- the jobs it runs -----------------------------------------------------------------------------------
    def training_job(self, train, inputs, run_dir):
        paths = miles_paths(train, inputs, run_dir)

        def check_card() -> None:
            # miles checks the card's shape against config.json at start-up; fail here, before any GPU time.
            config_json = Path(paths.hf_checkpoint) / "config.json"
            check_hf_config(train["card"], json.loads(config_json.read_text()), where=str(config_json))

        return JobSpec(
            entrypoint=train_entrypoint(train, train["card"], paths),
            runtime_env=runtime_env(train, paths),
            prepare=(check_card,),
            argv=build_argv(train, train["card"], paths),
            program=ProgramCheck(doctor.PARSER_LABEL, train["miles"]["python"], train["miles"]["miles_dir"],
                                 doctor.PARSER_MODULE, doctor.PARSER_FUNCTION, "train.py"),
        )

    def evaluation_job(self, evaluation, inputs, work_dir):
        """A miles eval-only run (no --eval-only flag: --num-rollout 0 --eval-interval 1) of one checkpoint."""
        which = evaluation["which"]
        inputs = {**inputs, "train_data": inputs["data"], "eval_data": inputs["data"]}
        paths = miles_paths(evaluation, inputs, work_dir)
        checkpoint = None if which == "base" else final_model(inputs["done"])
        prepare = ()
        if checkpoint is not None and _backend(evaluation) == "fsdp":
            # what argv.fsdp_load_args points --load at
            prepare = (lambda: ckpt.pin_fsdp_weights(checkpoint, paths.run_dir),)
        entrypoint = eval_entrypoint(evaluation, evaluation["card"], paths, checkpoint, evaluation[f"{which}_eval"])
        return JobSpec(entrypoint=entrypoint, runtime_env=runtime_env(evaluation, paths), prepare=prepare,
                       argv=entrypoint[2:])

    def model_inputs(self, layout, exp):
        if _backend(exp) == "fsdp":
            return {}  # FSDP trains the HF snapshot itself
        return {"torch_dist": layout.torch_dist(exp)}  # Megatron loads torch_dist; the HF dir gives the tokenizer

    def train_inputs(self, layout, name, exp):
        return {"preflight": layout.exp(name, "preflight.txt")}  # the memory plan, recorded

    def converts(self, exp):
        return _backend(exp) != "fsdp"

    def exports(self, exp):
        return True

    def convert_model(self, params, hf_dir, marker):
        """HF -> Megatron torch_dist with miles' converter; finished only when the tracker reads `release`."""
        out_dir = Path(marker).parent
        cmd = convert_command(params["card"], hf_dir, str(out_dir), **_tools(params))
        print("mileage: converting:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=params["miles"]["miles_dir"])
        if not ckpt.is_converted(out_dir):
            raise RuntimeError(f"conversion ended but {marker} does not read 'release': the conversion did not finish")

    def export_hf(self, params, checkpoint, origin_hf_dir, out_dir):
        # The save's own layout picks the converter: an FSDP save holds model/ (checkpoints.py).
        backend = "fsdp" if (Path(checkpoint) / ckpt.FSDP_MODEL).is_dir() else "megatron"
        cmd = export_command(checkpoint, out_dir, origin_hf_dir, **_tools(params), backend=backend)
        print("mileage: exporting:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=params["miles"]["miles_dir"])

    # ---- how its runs are read -------------------------------------------------------------------------
    def checkpoints(self, train, run_dir):
        # Every save up to the tracker's iteration is complete (the tracker is written after each save);
        # a directory past it is a save that was cut off.
        root = run_dir / "checkpoints"
        latest = ckpt.latest_iteration(root)
        if latest is None:
            return []
        found = []
        for child in root.glob("iter_*"):
            iteration = ckpt.iteration_of(child)
            if iteration is not None and iteration <= latest and child.is_dir():
                found.append(Checkpoint(ckpt.rollouts_trained(iteration, _backend(train)), child))
        return sorted(found, key=lambda c: c.rollouts)

    def set_aside_unusable(self, train, run_dir, log):
        ckpt.set_aside_unusable(run_dir / "checkpoints", _backend(train), log)  # DCP shards checked (checkpoints.py)

    def collect_events(self, run_dir: Path) -> list[MetricEvent]:
        from mileage.metrics.debug_events import read_debug_events
        from mileage.metrics.tensorboard_events import read_tensorboard_dir

        reports = []
        events = []
        if (run_dir / "tensorboard").is_dir():
            events, report = read_tensorboard_dir(run_dir / "tensorboard")
            reports.append(report)
        if (run_dir / "debug_events").is_dir():
            debug, report = read_debug_events(run_dir / "debug_events")
            reports.append(report)
            # The debug events win; TensorBoard fills the gaps. On resume miles restores the debug-event snapshot
            # of the checkpoint, which was taken before that rollout's eval, so the eval at a save point is only
            # in TensorBoard (its files keep every attempt's scalars).
            logged = {(e.kind, e.step) for e in debug}
            events = [e for e in events if (e.kind, e.step) not in logged] + debug
        for report in reports:
            for warning in report.warnings():
                print(f"mileage: metrics: {warning}")
        return collapse_events(events)

    def in_training_evals(self, train, num_rollout):
        # miles' own rule (evals.py); mileage passes --num-rollout, so miles knows no epoch length (None).
        return miles_evals.in_training_evals(train["eval"]["interval"], num_rollout,
                                             train["miles"]["skip_eval_before_train"])

    def final_model(self, train, inputs, run_dir, checkpoint):
        return absolute(checkpoint.path), ckpt.iteration_of(checkpoint.path)  # the save's own number

    def expected_final_model(self, train, run_dir):
        # miles always saves after the last rollout; Megatron numbers a save by rollout id, FSDP by rollouts trained.
        num_rollout = train["rollout"]["num_rollout"]
        return ckpt.iter_dir(Path(run_dir) / "checkpoints", num_rollout if _backend(train) == "fsdp" else num_rollout - 1)
