"""The miles engine (train.py on GPUs: SGLang rollouts, Megatron training, placed by Ray) as an implementation
of the engine contract."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping

from mileage.engines.contract import Checkpoint, DoctorNeeds, Engine
from mileage.engines.miles import checkpoints as ckpt
from mileage.metrics.events import MetricEvent, collapse_events
from mileage.paths import absolute, final_model, model_dir
from mileage.pins import MILES_CONTAINER_IMAGE

# What the converter tools depend on: the engine that runs them, its image, the checkouts and the interpreter.
TOOL_KEYS = ("engine", "miles.container", "miles.miles_dir", "miles.megatron_dir", "miles.python")

# What each stage reads. An eval-only run reads of `rollout` and `train` only the reward, the required
# --rollout-batch-size and the micro-batch size (argv.eval_only_groups): extending a run or a learning-rate
# variant never reruns the base model's evaluation. The preflight orders the model download, so it reads only what
# the memory plan sizes.
READS = {
    "train": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name",
        "rollout", "train", "eval", "resources.gpus", "ray", "tracking", "miles",
    ),
    "eval_base": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name", "rollout.reward",
        "rollout.rollout_batch_size", "train.micro_batch_size", "resources.gpus", "ray", "miles", "base_eval",
    ),
    "eval_final": (
        "engine", "seed", "rollout_seed", "data.apply_chat_template", "data.eval.name", "rollout.reward",
        "rollout.rollout_batch_size", "train.micro_batch_size", "resources.gpus", "ray", "miles", "final_eval",
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
    ),
    "convert_model": TOOL_KEYS,
    "export_hf": TOOL_KEYS,
}


def _tools(params: Mapping[str, Any]) -> dict:
    """The converter tools' keyword arguments: the checkouts and the interpreter."""
    miles = params["miles"]
    return {"miles_dir": miles["miles_dir"], "megatron_dir": miles["megatron_dir"], "python": miles["python"]}


def miles_paths(params: Mapping[str, Any], inputs: Mapping[str, str], run_dir: Path):
    from mileage.engines.miles.argv import MilesPaths

    return MilesPaths(
        hf_checkpoint=absolute(model_dir(inputs["model"])),
        ref_load=absolute(Path(inputs["torch_dist"]).parent),
        run_dir=absolute(run_dir / "checkpoints"),
        prompt_data=absolute(inputs["train_data"]),
        eval_data=[(params["data"]["eval"]["name"], absolute(inputs["eval_data"]))],
        tensorboard_dir=absolute(run_dir / "tensorboard"),
        debug_event_dir=absolute(run_dir / "debug_events"),
        eval_samples_dir=absolute(run_dir / "eval_samples"),
    )


class MilesEngine(Engine):
    name = "miles"
    env = "miles"
    reads = READS
    stack_modules = (
        ("miles", "miles", True),
        ("megatron.core", "megatron-core", True),
        ("sglang", "sglang", True),
        ("transformer_engine", "transformer-engine", True),
        ("ray", "ray", True),
        ("flash_attn", "flash-attn", False),
    )

    def container(self, exp):
        return exp["miles"]["container"] or MILES_CONTAINER_IMAGE

    def check_config(self, exp, where):
        from mileage.config import ConfigError

        model = exp["model"]
        if model["source"] != "hf" or not model["card"]:
            raise ConfigError(
                f"{where}.model.card: engine 'miles' needs a model card (model.source: hf, model.card: NAME) "
                "for the Megatron model arguments"
            )
        if exp["warm_start"]["enabled"]:
            raise ConfigError(f"{where}.warm_start.enabled: the warm start exists for the local engine only")

    def model_inputs(self, layout, exp):
        return {"torch_dist": layout.torch_dist(exp)}  # Megatron loads torch_dist; the HF dir gives the tokenizer

    def train_inputs(self, layout, name, exp):
        return {"preflight": layout.exp(name, "preflight.txt")}  # the memory plan, recorded

    def converts(self, exp):
        return True

    def exports(self, exp):
        return True

    def convert_model(self, params, hf_dir, marker):
        """HF -> Megatron torch_dist with miles' converter; finished only when the tracker reads `release`."""
        from mileage.engines.miles.launch import convert_command

        out_dir = Path(marker).parent
        cmd = convert_command(params["card"], hf_dir, str(out_dir), **_tools(params))
        print("mileage: converting:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=params["miles"]["miles_dir"])
        if not ckpt.is_converted(out_dir):
            raise RuntimeError(f"conversion ended but {marker} does not read 'release': the conversion did not finish")

    def export_hf(self, params, checkpoint, origin_hf_dir, out_dir):
        from mileage.engines.miles.launch import export_command

        cmd = export_command(checkpoint, out_dir, origin_hf_dir, **_tools(params))
        print("mileage: exporting:", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=params["miles"]["miles_dir"])

    # ---- training -------------------------------------------------------------------------------------
    def training_job(self, train, inputs, run_dir):
        from mileage.engines.miles.launch import train_entrypoint
        from mileage.engines.miles.runtime_env import runtime_env
        from mileage.models.cards import check_hf_config

        paths = miles_paths(train, inputs, run_dir)
        # miles checks the card's shape against config.json at start-up; fail here, before any GPU time is spent.
        config_json = Path(paths.hf_checkpoint) / "config.json"
        check_hf_config(train["card"], json.loads(config_json.read_text()), where=str(config_json))
        return train_entrypoint(train, train["card"], paths), runtime_env(train, paths)

    def job_argv(self, train, inputs, run_dir):
        from mileage.engines.miles.argv import build_argv

        return build_argv(train, train["card"], miles_paths(train, inputs, run_dir))

    def job_process(self, train, inputs, run_dir):
        from mileage.engines.miles.runtime_env import runtime_env

        env = runtime_env(train, miles_paths(train, inputs, run_dir))["env_vars"]
        return train["miles"]["python"], train["miles"]["miles_dir"], env  # train.py's dir leads its sys.path

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
                found.append(Checkpoint(iteration + 1, child))
        return sorted(found, key=lambda c: c.rollouts)

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
        interval = train["eval"]["interval"]
        if interval is None:
            return set()
        # miles evaluates before the first rollout (unless told to skip) and after every interval-th rollout.
        evals = {r for r in range(num_rollout) if (r + 1) % interval == 0}
        if not train["miles"]["skip_eval_before_train"]:
            evals.add(0)
        return evals

    def final_model(self, train, inputs, run_dir, checkpoint):
        return absolute(checkpoint.path), checkpoint.rollouts - 1

    # ---- evaluation, plan, doctor ---------------------------------------------------------------------------
    def evaluate(self, evaluation, inputs, out):
        """A miles eval-only job (no --eval-only flag: --num-rollout 0 --eval-interval 1) on one checkpoint."""
        from mileage.engines.miles.launch import eval_entrypoint
        from mileage.engines.miles.runtime_env import runtime_env
        from mileage.evaluation.records import read_records, write_records
        from mileage.launch.ray_cluster import cluster_spec, ray_cluster
        from mileage.launch.ray_job import run_job

        which = evaluation["which"]
        work = Path(out).with_name(f".{Path(out).name}.work")  # per output: base evals of several models share a folder
        inputs = {**inputs, "train_data": inputs["data"], "eval_data": inputs["data"]}
        paths = miles_paths(evaluation, inputs, work)
        checkpoint = None if which == "base" else final_model(inputs["done"])
        entrypoint = eval_entrypoint(evaluation, evaluation["card"], paths, checkpoint, evaluation[f"{which}_eval"])
        # The work dir outlives a run: records of an earlier evaluation must not pass for this one's.
        shutil.rmtree(work / "eval_samples", ignore_errors=True)
        with ray_cluster(cluster_spec(evaluation["ray"], evaluation["resources"]["gpus"])) as address:
            run_job(address, entrypoint, runtime_env(evaluation, paths), work / "job.log",
                    job_id_prefix=f"mileage-eval-{which}")
        dataset = evaluation["data"]["eval"]["name"]
        files = sorted((work / "eval_samples" / dataset).glob("rollout_*.jsonl"),
                       key=lambda f: int(f.stem.removeprefix("rollout_")))
        if not files:
            raise RuntimeError(f"the miles eval job wrote no per-sample records under {work / 'eval_samples'}")
        write_records(out, read_records(files[-1]))

    def memory_plan(self, plan, name=None, gpus=None, gpu_memory_gb=None):
        from mileage.engines.miles.plan import estimate_memory

        return estimate_memory(plan, plan.get("card"), name=name, gpus=gpus, gpu_memory_gb=gpu_memory_gb)

    def plan_main(self, exp, gpus, gpu_memory_gb, name):
        from mileage.engines.miles.plan import plan_main

        return plan_main(exp, gpus, gpu_memory_gb, name=name)

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
