"""The local engine: knob mapping onto TRL, canonical metric names, resume, and short real GRPO runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from mileage.engines.local.grpo import LocalEngineError, build_grpo_config, prepare_resume
from mileage.engines.local.metric_names import split_logs
from mileage.metrics.events import MetricEvent, append_event, read_events


def make_spec(run_dir: Path, **overrides) -> dict:
    spec = {
        "experiment": "t", "model_path": "unused", "train_data": "unused", "eval_data": None,
        "run_dir": str(run_dir), "seed": 11, "rollout_seed": 22,
        "data": {"apply_chat_template": True},
        "rollout": {"num_rollout": 5, "rollout_batch_size": 4, "n_samples_per_prompt": 4, "max_response_len": 12,
                    "temperature": 0.9, "top_p": 0.95, "shuffle": True, "reward": "deepscaler_nothink"},
        "train": {"global_batch_size": 8, "num_steps_per_rollout": 2, "micro_batch_size": 4, "lr": 3e-4,
                  "lr_decay_style": "constant", "weight_decay": 0.05, "adam_beta1": 0.8, "adam_beta2": 0.97,
                  "clip_grad": 0.7, "eps_clip": 0.2, "eps_clip_high": 0.28, "use_kl_loss": False,
                  "kl_loss_coef": 0.0, "kl_loss_type": "low_var_kl", "entropy_coef": 0.0, "save_interval": 2},
        "eval": {"interval": 1, "n_samples_per_prompt": 2, "max_response_len": 12},
        "resources": {"device": "cpu", "gpus": 0},
    }
    for key, value in overrides.items():
        section, _, leaf = key.partition(".")
        spec[section][leaf] = value
    return spec


def test_grpo_config_maps_every_knob(tmp_path):
    cfg = build_grpo_config(make_spec(tmp_path), tmp_path / "ck")
    assert cfg.num_generations == 4
    assert cfg.generation_batch_size == 16  # rollout_batch_size x n_samples_per_prompt
    assert cfg.per_device_train_batch_size * cfg.gradient_accumulation_steps == 8  # global_batch_size
    assert cfg.per_device_train_batch_size == 4
    # optimizer steps per rollout = generation batch / global batch = num_steps_per_rollout
    assert cfg.steps_per_generation // cfg.gradient_accumulation_steps == 2
    assert cfg.max_steps == 10 and cfg.num_iterations == 1
    # Off, and set by its transformers-5 name (TRL defaults it on; the old name warns FutureWarning).
    assert cfg.activation_checkpointing is False and cfg.gradient_checkpointing is False
    assert cfg.save_strategy == "steps" and cfg.save_steps == 4 and cfg.save_total_limit is None
    assert cfg.epsilon == 0.2 and cfg.epsilon_high == 0.28
    assert cfg.beta == 0.0 and cfg.loss_type == "grpo" and cfg.entropy_coef == 0.0
    assert cfg.learning_rate == 3e-4 and getattr(cfg.lr_scheduler_type, "value", cfg.lr_scheduler_type) == "constant"
    assert cfg.weight_decay == 0.05 and cfg.adam_beta1 == 0.8 and cfg.adam_beta2 == 0.97
    assert cfg.max_grad_norm == 0.7
    assert cfg.max_completion_length == 12 and cfg.temperature == 0.9 and cfg.top_p == 0.95
    assert cfg.seed == 11 and cfg.shuffle_dataset is True
    assert cfg.report_to == [] or cfg.report_to == "none" or cfg.report_to == ["none"]
    assert cfg.push_to_hub is False and cfg.logging_steps == 1 and cfg.use_cpu and not cfg.bf16


def test_kl_and_entropy_and_schedule(tmp_path):
    cfg = build_grpo_config(make_spec(tmp_path, **{"train.use_kl_loss": True, "train.kl_loss_coef": 0.01,
                                                   "train.entropy_coef": 0.002, "train.lr_decay_style": "cosine"}),
                            tmp_path)
    assert cfg.beta == 0.01 and cfg.entropy_coef == 0.002 and getattr(cfg.lr_scheduler_type, "value", cfg.lr_scheduler_type) == "cosine"
    # a coefficient without use_kl_loss loads no reference model, as in miles
    assert build_grpo_config(make_spec(tmp_path, **{"train.kl_loss_coef": 0.01}), tmp_path).beta == 0.0
    with pytest.raises(LocalEngineError, match="kl_loss_type"):
        build_grpo_config(make_spec(tmp_path, **{"train.use_kl_loss": True, "train.kl_loss_type": "k1"}), tmp_path)


def test_batch_identity_is_checked(tmp_path):
    with pytest.raises(LocalEngineError, match="global_batch_size"):
        build_grpo_config(make_spec(tmp_path, **{"train.global_batch_size": 6}), tmp_path)
    with pytest.raises(LocalEngineError, match="micro_batch_size"):
        build_grpo_config(make_spec(tmp_path, **{"train.micro_batch_size": 3}), tmp_path)


def test_trl_log_names_become_miles_names():
    grouped = split_logs({"reward": 0.5, "completions/mean_length": 7.0, "completions/clipped_ratio": 0.25,
                          "loss": 0.1, "grad_norm": 2.0, "kl": 0.01, "entropy": 0.3, "learning_rate": 1e-3,
                          "clip_ratio/region_mean": 0.05, "policy_loss": 0.2, "mystery": 4.0,
                          "step_time": 1.0, "train_runtime": 9.0})
    assert grouped["rollout"] == {"rollout/raw_reward": 0.5, "rollout/response_lengths": 7.0,
                                  "rollout/truncated": 0.25}
    assert grouped["train"] == {"train/loss": 0.1, "train/grad_norm": 2.0, "train/kl_loss": 0.01,
                                "train/entropy_loss": 0.3, "train/lr-pg_0": 1e-3, "train/pg_clipfrac": 0.05,
                                "train/pg_loss": 0.2, "train/mystery": 4.0}


def test_prepare_resume_drops_what_follows_the_latest_finished_checkpoint(tmp_path):
    run = tmp_path / "run"
    for step, finished in ((2, True), (4, True), (6, False)):  # checkpoint-6 was cut off mid-write
        ck = run / "checkpoints" / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        if finished:
            (ck / "trainer_state.json").write_text("{}")
    events = run / "events.jsonl"
    for rollout in range(4):
        append_event(events, MetricEvent("rollout", rollout, {"rollout/raw_reward": rollout}))
        for s in range(2):
            append_event(events, MetricEvent("train", rollout * 2 + s, {"train/loss": 1.0}))
        (run / "eval_samples" / "arith").mkdir(parents=True, exist_ok=True)
        (run / "eval_samples" / "arith" / f"rollout_{rollout}.jsonl").write_text("")
    latest = prepare_resume(run, steps_per_rollout=2)
    assert latest == run / "checkpoints" / "checkpoint-4"  # rollouts 0 and 1 done
    kept = read_events(events)
    assert max(e.step for e in kept if e.kind == "rollout") == 1
    assert max(e.step for e in kept if e.kind == "train") == 3
    assert sorted(p.name for p in (run / "eval_samples" / "arith").iterdir()) == ["rollout_0.jsonl", "rollout_1.jsonl"]
    assert (run / "checkpoints" / "checkpoint-6").exists()  # nothing is deleted from checkpoints


# ---------------------------------------------------------------------------------------------------
# Real (tiny) GRPO runs


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from mileage.data.demo_problems import write_demo_dataset
    from mileage.models.tiny import build_demo_model

    root = tmp_path_factory.mktemp("engine")
    build_demo_model(root / "model", {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1,
                                      "intermediate_size": 32}, seed=0)
    write_demo_dataset(root / "train.jsonl", name="arith", n_problems=16, seed=1, max_operand=5, operations=["+"],
                       split="train")
    write_demo_dataset(root / "eval.jsonl", name="arith", n_problems=4, seed=2, max_operand=5, operations=["+"],
                       split="eval")
    return root


_ABSENT = object()


def tiny_spec(root: Path, run_dir: Path, num_rollout: int) -> dict:
    spec = make_spec(run_dir, **{"rollout.num_rollout": num_rollout, "train.save_interval": 1})
    spec["model_path"] = str(root / "model")
    spec["train_data"] = str(root / "train.jsonl")
    spec["eval_data"] = {"name": "arith", "path": str(root / "eval.jsonl")}
    return spec


def run_job(spec: dict, tmp_path: Path) -> None:
    from mileage.engines.local.job import main

    spec_path = tmp_path / f"spec-{spec['rollout']['num_rollout']}.json"
    spec_path.write_text(json.dumps(spec))
    wandb_before = sys.modules.get("wandb", _ABSENT)
    try:
        assert main([str(spec_path)]) == 0
    finally:
        # The job hides wandb from its process when tracking is off (wandb_import.settle_wandb); here that process
        # is the test worker, whose later tests import wandb.
        if wandb_before is _ABSENT:
            sys.modules.pop("wandb", None)


def seeded_metrics(run: Path) -> list:
    """Every logged value but the timings."""
    out = []
    for e in read_events(run / "events.jsonl"):
        if e.kind != "perf":
            out.append((e.kind, e.step, {k: v for k, v in e.metrics.items() if "time" not in k}))
    return out


@pytest.fixture(scope="module")
def two_rollouts(tiny_setup, tmp_path_factory):
    """One real run of two rollouts and its metrics as it finished: the contract test then resumes it, the
    reproducibility test runs it again."""
    root = tmp_path_factory.mktemp("two-rollouts")
    run_job(tiny_spec(tiny_setup, root / "run", num_rollout=2), root)
    return root / "run", seeded_metrics(root / "run")


@pytest.mark.slow
def test_short_run_writes_the_engine_contract_and_resumes(tiny_setup, two_rollouts, tmp_path):
    run, _ = two_rollouts
    events = read_events(run / "events.jsonl")
    names = {name for e in events for name in e.metrics}
    for name in ("rollout/raw_reward", "rollout/response_lengths", "rollout/truncated", "train/loss",
                 "train/grad_norm", "train/lr-pg_0", "train/entropy_loss", "perf/rollout_time",
                 "perf/actor_train_time", "perf/step_time", "eval/arith"):
        assert name in names, name
    assert sorted(e.step for e in events if e.kind == "train") == [0, 1, 2, 3]
    assert sorted(e.step for e in events if e.kind == "rollout") == [0, 1]
    assert sorted(e.step for e in events if e.kind == "eval") == [0, 1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("checkpoint-")) == [
        "checkpoint-2", "checkpoint-4"]
    samples = (run / "eval_samples" / "arith" / "rollout_1.jsonl").read_text().splitlines()
    assert len(samples) == 4 * 2 and {"problem_id", "reward", "response"} <= set(json.loads(samples[0]))
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(run / "final_model")
    AutoTokenizer.from_pretrained(run / "final_model")

    # A stale event past the last checkpoint (a run killed after logging) must not survive the resume.
    append_event(run / "events.jsonl", MetricEvent("train", 99, {"train/loss": 123.0}))
    run_job(tiny_spec(tiny_setup, run, num_rollout=3), tmp_path)
    events = read_events(run / "events.jsonl")
    train_steps = [e.step for e in events if e.kind == "train"]
    assert train_steps == [0, 1, 2, 3, 4, 5]  # continues at rollout 2 (steps 4, 5), nothing duplicated
    assert [e.step for e in events if e.kind == "rollout"] == [0, 1, 2]
    assert (run / "checkpoints" / "checkpoint-6").is_dir()


@pytest.mark.slow
def test_same_seed_same_metrics(tiny_setup, two_rollouts, tmp_path):
    _, first = two_rollouts
    run_job(tiny_spec(tiny_setup, tmp_path / "again", num_rollout=2), tmp_path)
    assert seeded_metrics(tmp_path / "again") == first


def test_the_local_evaluation_is_a_job_spec_and_the_stage_keeps_its_newest_samples(tiny_setup, tmp_path, monkeypatch):
    """The stage runs the engine's evaluation spec through the runner (here in-process: no Ray head) and writes the
    records the job left in the one eval-samples layout; records of an earlier evaluation never pass for them."""
    import mileage.stages.evaluate as stage
    from mileage.engines.local.eval_job import main as eval_main
    from mileage.evaluation.records import read_records

    launched = []

    def run_here(job, params, log, job_id_prefix, **_):
        for step in job.prepare:
            step()
        assert job.entrypoint[1:3] == ["-m", "mileage.engines.local.eval_job"]
        assert not job.cluster  # one process: no Ray head to start
        launched.append(job_id_prefix)
        assert eval_main(job.entrypoint[3:]) == 0

    monkeypatch.setattr(stage, "run_spec", run_here)
    settings = {"n_samples_per_prompt": 2, "max_response_len": 4, "temperature": 1.0, "top_p": 1.0, "seed": 3}
    evaluation = {"engine": "local", "which": "base", "name": "x", "base_eval": settings,
                  "rollout": {"reward": "deepscaler_nothink"}, "data": {"apply_chat_template": False},
                  "resources": {"device": "cpu"}}
    out = tmp_path / "base.samples.jsonl"
    stale = tmp_path / ".base.samples.jsonl.work" / "eval_samples" / "eval" / "rollout_9.jsonl"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"stale": true}\n')
    stage.evaluate(evaluation, {"model": str(tiny_setup / "model"), "data": str(tiny_setup / "eval.jsonl")}, str(out))
    records = read_records(out)
    assert launched == ["mileage-eval-base"]
    assert len(records) == 4 * 2 and {r["sample_index"] for r in records} == {0, 1}
    assert not stale.exists()
