"""A stand-in for miles' train.py, for tests on machines without GPUs or miles.

It accepts exactly the flags miles' parser accepts (the shipped flag lists, plus generated --sglang-* /
--eval-sglang-* / --router-* flags), fails like argparse on anything else, checks what miles checks
(required flags, the batch identity), then fakes a run with miles' outputs: metric log lines with Ray actor
prefixes (`step` lines twice), TensorBoard scalars in $TENSORBOARD_DIR, debug-event JSONL, the eval hook
called with Sample-like objects, and checkpoints with the tracker file: real torch.distributed.checkpoint
directories (saves.py), read back on resume, so a truncated shard fails the run as it fails miles. Rewards rise
slowly.
FAKE_MILES_DIE_AT=<rollout> makes it die at the start of that rollout (resume tests);
FAKE_MILES_ARGV_LOG=<file> appends each invocation's argv there as one JSON line (what the pipeline really ran),
with the CUDA_DEVICE_MAX_CONNECTIONS of this process. `--train-backend fsdp` parses with FSDP's parser and saves
FSDP's checkpoint layout.
"""

from __future__ import annotations

import enum
import importlib
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

PID = os.getpid()

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the stand-in `miles` package next to this file
from miles.utils.arguments import parse_args, usage_error  # noqa: E402
from saves import load_save, save  # noqa: E402


def one(args, flag: str, default=None, kind=str):
    return args.one(flag, default, kind)


class Status(enum.Enum):
    PENDING = "pending"
    COMPLETED = "completed"
    TRUNCATED = "truncated"
    ABORTED = "aborted"


class Sample:
    Status = Status

    def __init__(self, **fields):
        self.__dict__.update(fields)


def stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S") + ".000"


def log_line(actor: str, where: str, kind: str, key: int, metrics: dict) -> None:
    print(f"({actor} pid={PID}) [{stamp()}] {where} - {kind} {key}: {metrics!r}", flush=True)


class Sinks:
    """TensorBoard scalars and debug-event JSONL, as miles writes them."""

    def __init__(self, debug_dir: str | None):
        self.tb = None
        tb_dir = os.environ.get("TENSORBOARD_DIR")
        if tb_dir:
            try:
                from tensorboard.compat.proto.event_pb2 import Event
                from tensorboard.compat.proto.summary_pb2 import Summary
                from tensorboard.summary.writer.event_file_writer import EventFileWriter
                self.tb = (EventFileWriter(tb_dir), Event, Summary)
            except ImportError:
                self.tb = None
        self.debug_dir = Path(debug_dir) if debug_dir else None
        if self.debug_dir:
            self.debug_dir.mkdir(parents=True, exist_ok=True)

    def scalars(self, metrics: dict, step: int) -> None:
        if self.tb is None:
            return
        writer, Event, Summary = self.tb
        for tag, value in metrics.items():
            writer.add_event(Event(wall_time=time.time(), step=step,
                                   summary=Summary(value=[Summary.Value(tag=tag, simple_value=float(value))])))
        writer.flush()

    def debug(self, process: str, metrics: dict) -> None:
        if self.debug_dir is None:
            return
        with open(self.debug_dir / f"{process}.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"type": "metric", "time": time.time(), "metrics": metrics}) + "\n")

    def close(self) -> None:
        if self.tb is not None:
            self.tb[0].close()


def read_jsonl(path: str) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def tracker(ckpt_dir: str | None) -> str | None:
    if not ckpt_dir:
        return None
    path = Path(ckpt_dir) / "latest_checkpointed_iteration.txt"
    return path.read_text().strip() if path.is_file() else None


def run_eval(args: dict, rollout_id: int, progress: float, rng: random.Random, sinks: Sinks) -> None:
    pairs = args.get("--eval-prompt-data", [])
    if len(pairs) % 2 or not pairs:
        usage_error("argument --eval-prompt-data: expected NAME PATH pairs")
    n = one(args, "--n-samples-per-eval-prompt", 1, int)
    max_len = one(args, "--eval-max-response-len", 1024, int)
    data = {}
    for name, path in zip(pairs[0::2], pairs[1::2]):
        samples, rewards, truncated = [], [], []
        for position, row in enumerate(read_jsonl(path)):
            for j in range(n):
                cut = rng.random() < 0.1 * (1 - progress)
                correct = not cut and rng.random() < 0.2 + 0.5 * progress
                answer = row["label"] if correct else f"{row['label']}1"
                response = ("<think>let me think" if cut else f"<think>work</think> The answer is \\boxed{{{answer}}}.")
                status = Status.TRUNCATED if cut else Status.COMPLETED
                sample = Sample(index=position * n + j, prompt=row["prompt"], label=str(row["label"]),
                                response=response, reward=1.0 if correct else 0.0, metadata={},
                                response_length=max_len if cut else 20 + rng.randrange(50), status=status)
                samples.append(sample)
                rewards.append(sample.reward)
                truncated.append(cut)
        data[name] = {"rewards": rewards, "truncated": truncated, "samples": samples}
    hook = one(args, "--custom-eval-rollout-log-function-path")
    suppressed = False
    if hook:
        module, func = hook.rsplit(".", 1)
        suppressed = bool(getattr(importlib.import_module(module), func)(rollout_id, FakeArgs(args), data, {}))
    metrics = {f"eval/{name}": sum(d["rewards"]) / max(1, len(d["rewards"])) for name, d in data.items()}
    metrics.update({f"eval/{name}-truncated_ratio": sum(d["truncated"]) / max(1, len(d["truncated"]))
                    for name, d in data.items()})
    if not suppressed:
        log_line("RolloutManager", "rollout.py:812", "eval", rollout_id, metrics)
    sinks.scalars(metrics, rollout_id)
    sinks.debug("rollout_manager", {**metrics, "eval/step": rollout_id})


class FakeArgs:
    """The parsed args as attributes, like miles' namespace (only what hooks read)."""

    def __init__(self, args: dict):
        self.eval_prompt_data = args.get("--eval-prompt-data")
        self.n_samples_per_eval_prompt = one(args, "--n-samples-per-eval-prompt", 1, int)
        self.rm_type = one(args, "--rm-type")


def log_argv(argv: list[str]) -> None:
    path = os.environ.get("FAKE_MILES_ARGV_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"pid": PID, "argv": argv,
                                 "env": {"CUDA_DEVICE_MAX_CONNECTIONS": os.environ.get("CUDA_DEVICE_MAX_CONNECTIONS")}})
                     + "\n")


def main(argv: list[str]) -> int:
    log_argv(argv)
    try:
        args = parse_args(argv)
    except AssertionError as err:  # what miles / Megatron assert while parsing
        print(f"AssertionError: {err}", file=sys.stderr)
        return 1
    rbs = one(args, "--rollout-batch-size", kind=int)
    n = one(args, "--n-samples-per-prompt", 1, int)
    gbs = one(args, "--global-batch-size", None, int)
    steps = one(args, "--num-steps-per-rollout", None, int)
    gbs = gbs if gbs is not None else rbs * n // (steps or 1)
    steps = steps if steps is not None else rbs * n // gbs
    num_rollout = one(args, "--num-rollout", 0, int)
    eval_interval = one(args, "--eval-interval", None, int)
    if num_rollout > 0 and "--prompt-data" not in args:
        usage_error("--prompt-data is required for training")
    if eval_interval is not None and "--eval-prompt-data" not in args:
        usage_error("--eval-interval needs --eval-prompt-data")
    load, save_dir = one(args, "--load"), one(args, "--save")
    save_interval = one(args, "--save-interval", None, int)
    debug_dir = one(args, "--save-debug-event-data")
    seed = one(args, "--rollout-seed", 42, int)
    backend = one(args, "--train-backend")
    trainer = "FSDPTrainRayActor" if backend == "fsdp" else "MegatronTrainRayActor"
    saved = tracker(load)
    if backend == "fsdp" and saved is not None and not (Path(load) / f"iter_{int(saved):07d}" / "model").is_dir():
        saved = None  # FSDP skips a load whose model/ is missing (and starts from --hf-checkpoint)
    ckpt_step = one(args, "--ckpt-step", None, int)
    if ckpt_step is not None and load:  # Megatron loads that iteration instead of the tracker's
        if not (Path(load) / f"iter_{ckpt_step:07d}").is_dir():
            print(f"FileNotFoundError: {Path(load) / f'iter_{ckpt_step:07d}'} (--ckpt-step {ckpt_step})",
                  file=sys.stderr)
            return 1
        saved = str(ckpt_step)
    start = 0 if saved in (None, "release") else int(saved) + (0 if backend == "fsdp" else 1)
    if saved not in (None, "release") and debug_dir:  # miles restores the debug-event snapshot on resume
        snapshot = Path(load) / f"iter_{int(saved):07d}" / "debug_event_data"
        if snapshot.is_dir():
            shutil.rmtree(debug_dir, ignore_errors=True)
            shutil.copytree(snapshot, debug_dir)
    source = load if saved is not None else one(args, "--ref-load")
    if backend == "fsdp" and saved is not None and not (Path(load) / f"iter_{int(saved):07d}" / "optimizer").is_dir():
        print(f"({trainer} pid={PID}) [{stamp()}] checkpoint.py:120 - [FSDP] Optimizer checkpoint not found, "
              "skipping optimizer load.", flush=True)
    print(f"({trainer} pid={PID}) [{stamp()}] checkpoint.py:88 - loading {source}, start rollout {start}",
          flush=True)
    if saved not in (None, "release"):
        load_save(load, int(saved), backend, "--no-load-optim" not in args)
    sinks = Sinks(debug_dir)
    die_at = os.environ.get("FAKE_MILES_DIE_AT")
    rng = random.Random(seed * 1000 + start)
    if num_rollout == 0:  # evaluation only: one `eval 0` of the loaded weights, then exit (FACTS section 6)
        if eval_interval is not None:
            run_eval(args, 0, 0.0 if start == 0 else 1.0, rng, sinks)
        sinks.close()
        return 0
    if eval_interval is not None and start == 0 and "--skip-eval-before-train" not in args:
        run_eval(args, 0, 0.0, rng, sinks)
    for rollout_id in range(start, num_rollout):
        if die_at is not None and int(die_at) == rollout_id:
            print(f"RuntimeError: FAKE_MILES_DIE_AT={die_at}: dying at rollout {rollout_id}", file=sys.stderr, flush=True)
            sinks.close()
            return 3
        progress = rollout_id / max(1, num_rollout)
        reward = min(1.0, 0.1 + 0.6 * progress + 0.05 * math.sin(rollout_id))
        rollout = {"rollout/step": rollout_id, "rollout/raw_reward": reward, "rollout/rewards": 0.0,
                   "rollout/response_lengths": 100.0 + 10 * rollout_id, "rollout/truncated": 0.1 * (1 - progress)}
        log_line("RolloutManager", "rollout.py:1193", "rollout", rollout_id, rollout)
        rollout_perf = {"perf/rollout_time": 1.5, "perf/tokens_per_gpu_per_sec": 200.0 + rollout_id}
        log_line("RolloutManager", "rollout.py:1200", "perf", rollout_id, rollout_perf)
        sinks.scalars(rollout, rollout_id)
        sinks.scalars(rollout_perf, rollout_id)
        sinks.debug("rollout_manager", {**rollout, **rollout_perf})
        for step_id in range(steps):
            step = rollout_id * steps + step_id
            train = {"train/step": step, "train/loss": 0.01 / (1 + step), "train/pg_loss": 0.01 / (1 + step),
                     "train/entropy_loss": 0.3, "train/pg_clipfrac": 0.0, "train/ppo_kl": 0.0,
                     "train/grad_norm": 0.3 + 0.01 * step_id, "train/lr-pg_0": 1e-6}
            for _ in range(2):  # the Megatron backend prints each step twice
                log_line(trainer, "model.py:561", "step", step, train)
            sinks.scalars(train, step)
            sinks.debug("actor_cell0_rank0", train)
        train_perf = {"perf/actor_train_time": 2.0, "perf/step_time": 3.5, "perf/actor_train_tflops": 100.0}
        log_line(trainer, "train.py:140", "perf", rollout_id, train_perf)
        sinks.scalars(train_perf, rollout_id)
        sinks.debug("actor_cell0_rank0", {**train_perf, "rollout/step": rollout_id})
        last = rollout_id == num_rollout - 1
        if save_dir and ((save_interval and (rollout_id + 1) % save_interval == 0) or last):
            save(save_dir, rollout_id, debug_dir, backend, "--no-save-optim" not in args)
        if eval_interval is not None and (rollout_id + 1) % eval_interval == 0:
            run_eval(args, rollout_id, (rollout_id + 1) / num_rollout, rng, sinks)
    sinks.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
