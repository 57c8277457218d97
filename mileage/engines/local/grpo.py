"""The local engine: GRPO with TRL's GRPOTrainer, writing the engine output contract.

Run directory (docs/contracts.md): `checkpoints/checkpoint-<optimizer step>/` (TRL's), `events.jsonl`
(canonical metric events), `eval_samples/<name>/rollout_<N>.jsonl`, `final_model/` (HF dir).

Knob mapping (miles -> TRL, see `build_grpo_config`):
- a rollout = rollout_batch_size prompts x n_samples_per_prompt samples = TRL's generation batch;
  num_generations = n_samples_per_prompt; generation_batch_size = rollout_batch_size x n_samples_per_prompt.
- an optimizer step = global_batch_size samples = per_device_train_batch_size (micro_batch_size) x
  gradient_accumulation_steps; TRL then derives steps_per_generation = generation batch / micro batch, i.e.
  num_steps_per_rollout optimizer steps per rollout. num_iterations = 1 (each sample is used once, as in miles).
- max_steps = num_rollout x num_steps_per_rollout; checkpoints every save_interval rollouts and at the end.
- epsilon / epsilon_high = eps_clip / eps_clip_high; loss_type "grpo"; beta = kl_loss_coef when use_kl_loss
  (TRL's estimator is k3, i.e. miles' low_var_kl without the clamp), else 0 (no reference model);
  entropy_coef = entropy_coef (TRL's entropy bonus); max_grad_norm = clip_grad.
- seed = seed; the prompt order (shuffle) uses rollout_seed, like miles' --rollout-seed.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

from mileage.batch import BatchIdentityError, batch_identity
from mileage.data.problems import Problem, prompt_text, read_problems
from mileage.engines.local.checkpoints import complete_checkpoints, export_model, manifest_callback
from mileage.engines.local.metric_names import split_logs
from mileage.engines.local.sampling import resolve_device, sample_records
from mileage.evaluation.records import write_records
from mileage.metrics.events import MetricEvent, append_event, drop_after
from mileage.rewards import get_reward

LR_SCHEDULES = {"constant": "constant", "linear": "linear", "cosine": "cosine"}
TRL_KL_ESTIMATORS = ("k3", "low_var_kl")  # what TRL's per-token KL computes


class LocalEngineError(ValueError):
    """A job spec the local engine cannot run (names the offending key)."""


# ---------------------------------------------------------------------------------------------------
# Spec -> GRPOConfig


def _section(spec: dict, name: str) -> dict:
    value = spec.get(name)
    if not isinstance(value, dict):
        raise LocalEngineError(f"job spec: key {name!r} must be an object, got {value!r}")
    return value


def _need(section: dict, section_name: str, key: str):
    if key not in section or section[key] is None:
        raise LocalEngineError(f"job spec: key '{section_name}.{key}' is missing")
    return section[key]


def batch_layout(rollout: dict, train: dict) -> dict[str, int]:
    """Check miles' batch identity and derive TRL's batch sizes from it."""
    prompts = int(_need(rollout, "rollout", "rollout_batch_size"))
    group = int(_need(rollout, "rollout", "n_samples_per_prompt"))
    global_batch = int(_need(train, "train", "global_batch_size"))
    steps = int(_need(train, "train", "num_steps_per_rollout"))
    micro = int(train.get("micro_batch_size") or 1)
    if group < 2:
        raise LocalEngineError(f"job spec: key 'rollout.n_samples_per_prompt' must be >= 2 for GRPO, got {group}")
    try:
        filled = batch_identity(rollout, train)
    except BatchIdentityError as err:
        raise LocalEngineError(f"job spec: key '{err.key}': {err}") from None
    if filled != (global_batch, steps):
        raise LocalEngineError(
            f"job spec: train.global_batch_size x train.num_steps_per_rollout ({global_batch} x {steps}) is not "
            f"the batch identity's {filled[0]} x {filled[1]}"
        )
    if global_batch % micro:
        raise LocalEngineError(
            f"job spec: key 'train.global_batch_size' ({global_batch}) must be a multiple of train.micro_batch_size ({micro})"
        )
    return {
        "generation_batch_size": prompts * group,
        "num_generations": group,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": global_batch // micro,
        "steps_per_rollout": steps,
    }


def build_grpo_config(spec: dict, output_dir: str | os.PathLike):
    """The GRPOConfig for a job spec (see the module docstring for the mapping)."""
    import torch
    from trl import GRPOConfig

    rollout, train = _section(spec, "rollout"), _section(spec, "train")
    resources = spec.get("resources") or {}
    layout = batch_layout(rollout, train)
    device = resolve_device(resources.get("device", "auto"))
    use_kl = bool(train.get("use_kl_loss", False))
    if use_kl and train.get("kl_loss_type", "low_var_kl") not in TRL_KL_ESTIMATORS:
        raise LocalEngineError(
            f"job spec: key 'train.kl_loss_type' = {train['kl_loss_type']!r} is not available in the local engine "
            f"(TRL computes {' / '.join(TRL_KL_ESTIMATORS)})"
        )
    style = train.get("lr_decay_style", "constant")
    if style not in LR_SCHEDULES:
        raise LocalEngineError(f"job spec: key 'train.lr_decay_style' must be one of {sorted(LR_SCHEDULES)}, got {style!r}")
    save_interval = int(train.get("save_interval") or 1)
    num_rollout = int(_need(rollout, "rollout", "num_rollout"))
    steps = layout["steps_per_rollout"]
    bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    return GRPOConfig(
        output_dir=str(output_dir),
        # batches
        num_generations=layout["num_generations"],
        generation_batch_size=layout["generation_batch_size"],
        per_device_train_batch_size=layout["per_device_train_batch_size"],
        gradient_accumulation_steps=layout["gradient_accumulation_steps"],
        num_iterations=1,
        max_steps=num_rollout * steps,
        shuffle_dataset=bool(rollout.get("shuffle", True)),
        # generation
        max_completion_length=int(_need(rollout, "rollout", "max_response_len")),
        temperature=float(rollout.get("temperature", 1.0)),
        top_p=float(rollout.get("top_p", 1.0)),
        top_k=0,
        # loss
        loss_type="grpo",
        epsilon=float(train.get("eps_clip", 0.2)),
        epsilon_high=float(train.get("eps_clip_high", train.get("eps_clip", 0.2))),
        beta=float(train.get("kl_loss_coef", 0.0)) if use_kl else 0.0,
        entropy_coef=float(train.get("entropy_coef", 0.0)),
        scale_rewards="group",
        # optimizer
        learning_rate=float(_need(train, "train", "lr")),
        lr_scheduler_type=LR_SCHEDULES[style],
        warmup_steps=0,
        weight_decay=float(train.get("weight_decay", 0.0)),
        adam_beta1=float(train.get("adam_beta1", 0.9)),
        adam_beta2=float(train.get("adam_beta2", 0.98)),
        max_grad_norm=float(train.get("clip_grad", 1.0)),
        optim="adamw_torch",
        # precision and device
        use_cpu=device == "cpu",
        bf16=bf16,
        fp16=False,
        activation_checkpointing=False,  # transformers 5: the name gradient_checkpointing is a deprecated alias
        model_init_kwargs={"dtype": "float32" if not bf16 else "bfloat16"},
        # checkpoints: every save_interval rollouts, and at the last step (Trainer does that for "steps")
        save_strategy="steps",
        save_steps=save_interval * steps,
        save_total_limit=None,
        save_only_model=False,
        # logging: every optimizer step, to our callback only
        logging_strategy="steps",
        logging_steps=1,
        logging_first_step=True,
        report_to="none",
        disable_tqdm=True,  # one line per rollout instead (events_callback); TRL's dicts go to the details log
        log_completions=False,
        eval_strategy="no",
        push_to_hub=False,
        # reproducibility
        seed=int(spec.get("seed", 1234)),
        full_determinism=device == "cpu",
        dataloader_num_workers=0,
    )


# ---------------------------------------------------------------------------------------------------
# Data and reward


def training_rows(problems: list[Problem], apply_chat_template: bool) -> list[dict]:
    """TRL dataset rows: a message list (rendered with the chat template) or the plain prompt text."""
    rows = []
    for p in problems:
        if apply_chat_template:
            prompt: Any = p.prompt if isinstance(p.prompt, list) else [{"role": "user", "content": p.prompt}]
        else:
            prompt = prompt_text(p)
        rows.append({"prompt": prompt, "label": p.label, "problem_id": p.id})
    return rows


def make_reward_func(name: str) -> Callable[..., list[float]]:
    """A TRL reward function that grades each completion's text with our reward rule `name`."""
    rule = get_reward(name)

    def reward(prompts, completions, label, **kwargs) -> list[float]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        return [rule(text, lab) for text, lab in zip(texts, label)]

    reward.__name__ = name
    return reward


# ---------------------------------------------------------------------------------------------------
# Resume


def prepare_resume(run_dir: Path, steps_per_rollout: int) -> Path | None:
    """Latest finished checkpoint (or None), after dropping events and eval samples of later rollouts."""
    checkpoints = complete_checkpoints(run_dir / "checkpoints")
    latest = checkpoints[-1] if checkpoints else None
    last_rollout = latest[0] // steps_per_rollout - 1 if latest else -1
    drop_after(run_dir / "events.jsonl", last_rollout, steps_per_rollout)
    for stale in (run_dir / "eval_samples").glob("*/rollout_*.jsonl"):
        m = re.match(r"rollout_(\d+)\.jsonl$", stale.name)
        if m and int(m.group(1)) > last_rollout:
            stale.unlink()
    return latest[1] if latest else None


# ---------------------------------------------------------------------------------------------------
# Trainer and callback


def trainer_class():
    """GRPOTrainer plus rollout timing and a rollout-seeded prompt order (imported lazily: TRL is heavy)."""
    from trl import GRPOTrainer
    from trl.trainer.grpo_trainer import RepeatSampler

    class MileageGRPOTrainer(GRPOTrainer):
        def __init__(self, *args, rollout_seed: int, **kwargs):
            self.rollout_seed = rollout_seed
            self.rollout_time = 0.0  # generation + scoring time of the current rollout
            super().__init__(*args, **kwargs)

        def _get_train_sampler(self, dataset=None):
            # Same sampler as TRL's, seeded by rollout_seed (miles' --rollout-seed orders the prompts).
            return RepeatSampler(
                data_source=dataset if dataset is not None else self.train_dataset,
                mini_repeat_count=self.num_generations,
                batch_size=self.args.generation_batch_size // self.num_generations,
                repeat_count=self.num_iterations * self.args.steps_per_generation,
                shuffle=self.shuffle_dataset,
                seed=self.rollout_seed,
            )

        def _generate_and_score_completions(self, inputs):
            start = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            self.rollout_time += time.perf_counter() - start
            return out

    return MileageGRPOTrainer


def event_writer(run_dir: Path, trackers=None) -> Callable[[MetricEvent], None]:
    """Append a canonical event to the run's events.jsonl, and hand it to the trackers (TensorBoard, W&B)."""
    events_path = run_dir / "events.jsonl"

    def emit(event: MetricEvent) -> None:
        append_event(events_path, event)
        if trackers is not None:
            trackers.log(event)

    return emit


def events_callback(run_dir: Path, steps_per_rollout: int, num_rollout: int,
                    eval_fn: Callable[[int], dict | None] | None, eval_interval: int | None, trackers=None,
                    details=None):
    """A TrainerCallback writing canonical events (and running in-training eval at rollout ends), printing one
    line per rollout, and TRL's metric dicts to the `details` log (mileage.engines.local.console)."""
    from transformers import TrainerCallback

    from mileage.engines.local.console import rollout_line

    emit = event_writer(run_dir, trackers)

    class CanonicalEvents(TrainerCallback):
        def __init__(self):
            self.trainer = None
            self.rollout_start = None
            self.rewards: dict[int, float] = {}
            self.evals: dict[int, dict] = {}
            self.printed: set[int] = set()
            self.last_line = time.perf_counter()

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_line = time.perf_counter()

        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step % steps_per_rollout == 0:  # first optimizer step of a rollout
                self.rollout_start = time.perf_counter()
                self.trainer.rollout_time = 0.0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % steps_per_rollout:
                return
            rollout_id = state.global_step // steps_per_rollout - 1
            step_time = time.perf_counter() - self.rollout_start
            rollout_time = self.trainer.rollout_time
            emit(MetricEvent("perf", rollout_id, {
                "perf/step_time": step_time,
                "perf/rollout_time": rollout_time,
                "perf/actor_train_time": step_time - rollout_time,
            }))
            last = rollout_id == num_rollout - 1
            if eval_fn is not None and eval_interval and ((rollout_id + 1) % eval_interval == 0 or last):
                self.evals[rollout_id] = eval_fn(rollout_id) or {}

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or state.global_step < 1:
                return
            if details is not None:
                details.metrics(state.global_step, logs)
            step = state.global_step - 1  # 0-based: rollout_id x steps_per_rollout + step_id
            grouped = split_logs(logs)
            if grouped["rollout"]:
                emit(MetricEvent("rollout", step // steps_per_rollout, grouped["rollout"]))
                if "rollout/raw_reward" in grouped["rollout"]:
                    self.rewards[step // steps_per_rollout] = grouped["rollout"]["rollout/raw_reward"]
            if grouped["train"] and any(k != "train/epoch" for k in grouped["train"]):
                emit(MetricEvent("train", step, grouped["train"]))
            # The rollout's last step was logged (after its evaluation, in on_step_end): its one line.
            rollout_id = step // steps_per_rollout
            if state.global_step % steps_per_rollout == 0 and rollout_id not in self.printed:
                self.printed.add(rollout_id)
                now = time.perf_counter()
                scores = {name.removeprefix("eval/"): value for name, value in self.evals.pop(rollout_id, {}).items()
                          if name.count("/") == 1}
                line = rollout_line(rollout_id, num_rollout, self.rewards.pop(rollout_id, None), scores,
                                    now - self.last_line)
                self.last_line = now
                if details is not None:
                    details.say(line)
                else:
                    print(line, flush=True)

        def on_train_end(self, args, state, control, **kwargs):
            if trackers is not None:
                trackers.close()

    return CanonicalEvents()


def eval_sampling(eval_cfg: dict) -> dict:
    """The sampling settings of the in-training evaluation (the `eval` section)."""
    return {
        "n_samples": int(eval_cfg.get("n_samples_per_prompt", 1)),
        "max_new_tokens": int(eval_cfg.get("max_response_len", 1024)),
        "temperature": float(eval_cfg.get("temperature", 1.0)),
        "top_p": float(eval_cfg.get("top_p", 1.0)),
    }


def in_training_eval(run_dir: Path, trainer, tokenizer, eval_data: dict | list, eval_cfg: dict, reward: str,
                     apply_chat_template: bool, seed: int, trackers=None) -> Callable[[int], None]:
    """Evaluate the live policy on each eval set ({"name", "path"}, or a list of them): eval/<name> = mean reward
    (avg@k), every sample to eval_samples/<name>/."""
    sets = [(d["name"], read_problems(d["path"])) for d in (eval_data if isinstance(eval_data, list) else [eval_data])]
    emit = event_writer(run_dir, trackers)
    sampling = eval_sampling(eval_cfg)

    def run(rollout_id: int) -> None:
        metrics = {}
        for name, problems in sets:
            records = sample_records(
                trainer.model, tokenizer, problems, **sampling, seed=seed, reward=reward,
                apply_chat_template=apply_chat_template, progress=False,
            )
            write_records(run_dir / "eval_samples" / name / f"rollout_{rollout_id}.jsonl", records)
            n = len(records)
            metrics.update({
                f"eval/{name}": sum(r["reward"] for r in records) / n,
                f"eval/{name}/response_lengths": sum(r["response_length"] for r in records) / n,
                f"eval/{name}/truncated": sum(r["truncated"] for r in records) / n,
            })
        emit(MetricEvent("eval", rollout_id, metrics))
        return metrics

    return run


# ---------------------------------------------------------------------------------------------------
# The job


def build_trainer(spec: dict, *, with_events: bool = True, details=None):
    """(trainer, tokenizer, config) for a spec; `with_events=False` gives the bare TRL setup (benchmarks).
    `details` (mileage.engines.local.console.Details): where TRL's per-step dicts go instead of the terminal."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    run_dir = Path(_need(spec, "job spec", "run_dir"))
    config = build_grpo_config(spec, run_dir / "checkpoints")
    data, rollout = spec.get("data") or {}, _section(spec, "rollout")
    apply_chat_template = bool(data.get("apply_chat_template", True))
    problems = read_problems(_need(spec, "job spec", "train_data"))
    model_path = str(_need(spec, "job spec", "model_path"))
    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left", truncation_side="left")
    trainer_cls = trainer_class()
    trainer = trainer_cls(
        model=model_path,  # a path: with beta > 0 TRL reloads the reference model from it
        reward_funcs=make_reward_func(rollout.get("reward", "deepscaler")),
        args=config,
        train_dataset=Dataset.from_list(training_rows(problems, apply_chat_template)),
        processing_class=tokenizer,
        rollout_seed=int(spec.get("rollout_seed", 42)),
    )
    if with_events:
        from mileage.engines.local.tracking import Trackers

        trackers = Trackers(run_dir, spec.get("tracking") or {}, str(spec.get("experiment", "")),
                            {k: spec[k] for k in ("rollout", "train", "eval", "seed", "rollout_seed") if k in spec})
        steps = config.max_steps // int(rollout["num_rollout"])
        eval_data, eval_cfg = spec.get("eval_data"), spec.get("eval") or {}
        eval_fn = None
        if eval_data and eval_cfg.get("interval"):
            eval_fn = in_training_eval(run_dir, trainer, tokenizer, eval_data, eval_cfg, rollout.get("reward", "deepscaler"),
                                       apply_chat_template, int(spec.get("rollout_seed", 42)), trackers)
        callback = events_callback(run_dir, steps, int(rollout["num_rollout"]), eval_fn, eval_cfg.get("interval"),
                                   trackers, details)
        callback.trainer = trainer
        trainer.add_callback(callback)
    quiet_trainer(trainer)
    return trainer, tokenizer, config


def quiet_trainer(trainer) -> None:
    """Without the Trainer's own console callbacks: they print every step's metric dict (and a progress bar)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def run_grpo(spec: dict, details=None) -> Path:
    """Run (or resume) a GRPO job; return the final model directory. `details`: the run's details log
    (mileage.engines.local.console.route_output), which takes TRL's per-step metric dicts."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    run_dir = Path(_need(spec, "job spec", "run_dir"))
    run_dir.mkdir(parents=True, exist_ok=True)
    steps = batch_layout(_section(spec, "rollout"), _section(spec, "train"))["steps_per_rollout"]
    resume_from = prepare_resume(run_dir, steps)
    trainer, tokenizer, _ = build_trainer(spec, details=details)
    trainer.add_callback(manifest_callback())  # each checkpoint's sizes and digests, checked before a resume
    if resume_from is not None:
        print(f"[mileage] resuming from {resume_from}", flush=True)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    # The final model is the checkpoint of the last step (the trainer always saves it), as on a rerun that finds
    # the run complete: one source for both paths.
    checkpoints = complete_checkpoints(run_dir / "checkpoints")
    if not checkpoints:
        raise LocalEngineError(f"training ended without a checkpoint in {run_dir / 'checkpoints'}")
    return export_model(checkpoints[-1][1], spec["model_path"], run_dir / "final_model")


def load_spec(path: str | os.PathLike) -> dict:
    try:
        spec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise LocalEngineError(f"job spec {path}: cannot read ({err})") from None
    if not isinstance(spec, dict):
        raise LocalEngineError(f"job spec {path}: must be a JSON object")
    return spec
