"""The miles engine around the argv: Ray runtime env, commands, checkpoints, the eval hook, and a run of the
stand-in train.py (tests/fake_miles) with the argv the pipeline builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fake_miles.experiments import MODELS_DIR, REPO, load_experiment, resolve
from mileage.engines.miles import checkpoints
from mileage.engines.miles.argv import MilesPaths
from mileage.engines.miles.eval_hook import EvalHookError, log_eval_samples
from mileage.engines.miles.launch import convert_command, eval_entrypoint, export_command, train_entrypoint
from mileage.engines.miles.runtime_env import detect_nvlink, runtime_env
from mileage.evaluation.records import read_records
from mileage.metrics.miles_log import parse_miles_lines
from mileage.models.cards import load_card

FAKE_MILES = REPO / "tests" / "fake_miles"
NVLINK_STATUS_H100 = "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)\n\t Link 0: 26.562 GB/s\n\t Link 1: 26.562 GB/s\n"
NVLINK_STATUS_INACTIVE = "GPU 0: NVIDIA GeForce RTX 5090 (UUID: GPU-2)\n\t Link 0: <inactive>\n"
TOPO_PCIE = "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tPHB\t0-15\nGPU1\tPHB\t X \t0-15\n"
TOPO_NVLINK = "\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tNV18\t X \n"


@pytest.fixture(scope="module")
def card():
    return load_card("glm-z1-9b-0414", MODELS_DIR)


def fake_smi(status: str | None, topo: str | None):
    return lambda args: status if args[0] == "nvlink" else topo


def paths_under(root: Path, eval_file: Path | None = None, train_file: Path | None = None) -> MilesPaths:
    return MilesPaths(
        hf_checkpoint=str(root / "hf"), ref_load=str(root / "torch_dist"), run_dir=str(root / "run" / "checkpoints"),
        prompt_data=str(train_file or root / "train.jsonl"), eval_data=[("aime", str(eval_file or root / "aime.jsonl"))],
        tensorboard_dir=str(root / "run" / "tensorboard"), debug_event_dir=str(root / "run" / "debug_events"),
        eval_samples_dir=str(root / "run" / "eval_samples"),
    )


def test_nvlink_detection():
    assert detect_nvlink(fake_smi(NVLINK_STATUS_H100, None))
    assert not detect_nvlink(fake_smi(NVLINK_STATUS_INACTIVE, TOPO_PCIE))
    assert detect_nvlink(fake_smi(None, TOPO_NVLINK))
    assert not detect_nvlink(fake_smi(None, None))  # no nvidia-smi


def test_runtime_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "secret-key")
    experiment = load_experiment("glm-z1-9b-8xh100")
    env = runtime_env(experiment, paths_under(tmp_path), hook_dir=REPO, run=fake_smi(NVLINK_STATUS_H100, None))["env_vars"]
    assert env["PYTHONPATH"].split(os.pathsep) == ["/root/Megatron-LM", str(REPO)]
    assert (Path(env["PYTHONPATH"].split(os.pathsep)[1]) / "mileage" / "engines" / "miles" / "eval_hook.py").is_file()
    assert env["CUDA_DEVICE_MAX_CONNECTIONS"] == "1" and env["PYTHONUNBUFFERED"] == "1"
    assert env["NCCL_NVLS_ENABLE"] == "1"
    assert env["TENSORBOARD_DIR"] == str(tmp_path / "run" / "tensorboard") and Path(env["TENSORBOARD_DIR"]).is_absolute()
    assert env["MILEAGE_EVAL_SAMPLES_DIR"] == str(tmp_path / "run" / "eval_samples")
    assert "secret-key" not in json.dumps(env) and "WANDB_API_KEY" not in env
    assert "CUBLAS_WORKSPACE_CONFIG" not in env
    # RTX 5090 box: nvlink false in the config wins over detection; deterministic adds the NCCL/cuBLAS env.
    experiment = load_experiment("glm-z1-9b-2x5090")
    experiment["miles"]["deterministic"] = True
    env = runtime_env(experiment, paths_under(tmp_path), run=fake_smi(NVLINK_STATUS_H100, None))["env_vars"]
    assert env["NCCL_NVLS_ENABLE"] == "0"
    assert env["NCCL_ALGO"] == "Ring" and env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert env["NVTE_ALLOW_NONDETERMINISTIC_ALGO"] == "0"


def test_commands(tmp_path, card):
    experiment = load_experiment("glm-z1-9b-8xh100")
    command = train_entrypoint(experiment, card, paths_under(tmp_path))
    assert command[:2] == ["python3", "/root/miles/train.py"] and "--rollout-batch-size" in command
    convert = convert_command(card, tmp_path / "hf", tmp_path / "out", "/root/miles", "/root/Megatron-LM")
    assert convert[:4] == ["env", "PYTHONPATH=/root/Megatron-LM:/root/miles", "python3",
                           "/root/miles/tools/convert_hf_to_torch_dist.py"]
    assert convert[4:4 + len(card["megatron_args"])] == card["megatron_args"]
    assert convert[-4:] == ["--hf-checkpoint", str(tmp_path / "hf"), "--save", str(tmp_path / "out")]
    export = export_command(tmp_path / "run" / "iter_0000019", tmp_path / "hf_out", tmp_path / "hf")
    assert export[3].endswith("tools/convert_torch_dist_to_hf.py")
    assert export[4:] == ["--input-dir", str(tmp_path / "run" / "iter_0000019"), "--output-dir", str(tmp_path / "hf_out"),
                          "--origin-hf-dir", str(tmp_path / "hf"), "-f"]


def test_checkpoint_layout(tmp_path):
    run = tmp_path / "ckpt"
    assert checkpoints.latest_iteration(run) is None and checkpoints.next_rollout(run) == 0
    run.mkdir()
    (run / "latest_checkpointed_iteration.txt").write_text("19\n")
    with pytest.raises(checkpoints.CheckpointError, match="iter_0000019"):
        checkpoints.latest_iteration(run)
    checkpoints.iter_dir(run, 19).mkdir()
    assert checkpoints.latest_iteration(run) == 19 and checkpoints.next_rollout(run) == 20
    (run / "latest_checkpointed_iteration.txt").write_text("garbage")
    with pytest.raises(checkpoints.CheckpointError, match="garbage"):
        checkpoints.latest_iteration(run)
    conv = tmp_path / "conv"
    (conv / "release").mkdir(parents=True)
    assert not checkpoints.is_converted(conv)
    (conv / "latest_checkpointed_iteration.txt").write_text("release")
    assert checkpoints.is_converted(conv)


class _Status:
    def __init__(self, name):
        self.name, self.value = name, name.lower()


def _sample(index, response, reward, status="COMPLETED", length=10):
    return SimpleNamespace(index=index, label="204", response=response, reward=reward, response_length=length,
                           status=_Status(status))


def test_eval_hook_writes_contract_records(tmp_path, monkeypatch):
    eval_file = tmp_path / "aime.jsonl"
    eval_file.write_text("\n".join(json.dumps({"prompt": f"q{i}", "label": "204", "id": f"aime-2024-{i}"})
                                   for i in range(2)) + "\n")
    args = SimpleNamespace(eval_prompt_data=["aime", str(eval_file)], n_samples_per_eval_prompt=2)
    samples = [
        _sample(0, "<think>x</think> \\boxed{204}", 1.0),
        _sample(1, "<think>x</think> \\boxed{12}", 0.0),
        _sample(2, "<think>still thinking", 0.0, status="TRUNCATED", length=8192),
        _sample(3, "<think>x</think> \\boxed{204}", 1.0),
    ]
    data = {"aime": {"rewards": [s.reward for s in samples], "truncated": [0, 0, 1, 0], "samples": samples}}
    monkeypatch.delenv("MILEAGE_EVAL_SAMPLES_DIR", raising=False)
    with pytest.raises(EvalHookError, match="MILEAGE_EVAL_SAMPLES_DIR"):
        log_eval_samples(20, args, data, {})
    monkeypatch.setenv("MILEAGE_EVAL_SAMPLES_DIR", str(tmp_path / "samples"))
    assert log_eval_samples(19, args, data, {}) is False  # miles still logs its eval line
    records = read_records(tmp_path / "samples" / "aime" / "rollout_19.jsonl")
    assert [(r["problem_id"], r["sample_index"]) for r in records] == [
        ("aime-2024-0", 0), ("aime-2024-0", 1), ("aime-2024-1", 0), ("aime-2024-1", 1)]
    assert [r["extracted_answer"] for r in records] == ["204", "12", None, "204"]
    assert [r["truncated"] for r in records] == [False, False, True, False]
    assert [r["reward"] for r in records] == [1.0, 0.0, 0.0, 1.0]
    assert records[2]["response_length"] == 8192


# --- the stand-in miles -------------------------------------------------------------------------------

def small_experiment():
    return resolve({
        "engine": "miles", "model": {"source": "hf", "card": "glm-z1-9b-0414"},
        "data": {"train": {"name": "dapo", "repo": "zhuzilin/dapo-math-17k"},
                 "eval": {"name": "aime", "repo": "zhuzilin/aime-2024"}},
        "rollout": {"num_rollout": 4, "rollout_batch_size": 2, "n_samples_per_prompt": 2},
        "train": {"global_batch_size": 2, "save_interval": 2, "use_kl_loss": True},
        "eval": {"interval": 2, "n_samples_per_prompt": 2, "max_response_len": 64},
        "resources": {"gpus": 8},
        "miles": {"python": sys.executable, "miles_dir": str(FAKE_MILES)},
    })


@pytest.fixture()
def fake_run(tmp_path, card):
    eval_file = tmp_path / "aime.jsonl"
    eval_file.write_text("".join(json.dumps({"prompt": f"q{i}", "label": str(i), "id": f"aime-{i}"}) + "\n"
                                 for i in range(3)))
    (tmp_path / "train.jsonl").write_text(json.dumps({"prompt": "q", "label": "1", "id": "t0"}) + "\n")
    experiment = small_experiment()
    paths = paths_under(tmp_path, eval_file)
    env = {**os.environ, **runtime_env(experiment, paths, hook_dir=REPO, run=fake_smi(None, None))["env_vars"]}
    env["PYTHONPATH"] = str(REPO)

    def run(command, **extra_env):
        return subprocess.run(command, capture_output=True, text=True, env={**env, **extra_env}, timeout=120)

    return experiment, paths, run


def test_fake_miles_runs_our_argv_and_resumes(fake_run, card):
    experiment, paths, run = fake_run
    command = train_entrypoint(experiment, card, paths)
    died = run(command, FAKE_MILES_DIE_AT="3")
    assert died.returncode == 3, died.stderr
    assert checkpoints.latest_iteration(paths.run_dir) == 1  # saved at rollout 1 (save interval 2)
    done = run(command)
    assert done.returncode == 0, done.stderr
    assert checkpoints.latest_iteration(paths.run_dir) == 3
    events, _ = parse_miles_lines(done.stdout.splitlines())
    rollout_steps = sorted(e.step for e in events if e.kind == "rollout")
    assert rollout_steps == [2, 3]  # resumed after the saved rollout 1
    assert sorted(e.step for e in events if e.kind == "train") == [4, 5, 6, 7]  # 2 steps per rollout, deduplicated
    assert {e.step for e in events if e.kind == "eval"} == {3}
    records = read_records(Path(paths.eval_samples_dir) / "aime" / "rollout_3.jsonl")
    assert len(records) == 3 * 2 and records[0]["problem_id"] == "aime-0"
    assert (Path(paths.eval_samples_dir) / "aime" / "rollout_0.jsonl").is_file()  # eval before training
    assert any(Path(paths.tensorboard_dir).glob("*tfevents*"))
    assert (Path(paths.debug_event_dir) / "rollout_manager.jsonl").is_file()


def test_fake_miles_eval_only_and_bogus_flag(fake_run, card):
    experiment, paths, run = fake_run
    evaluation = run(eval_entrypoint(experiment, card, paths, None, n_samples=3, max_response_len=32))
    assert evaluation.returncode == 0, evaluation.stderr
    events, _ = parse_miles_lines(evaluation.stdout.splitlines())
    assert [(e.kind, e.step) for e in events] == [("eval", 0)]
    assert len(read_records(Path(paths.eval_samples_dir) / "aime" / "rollout_0.jsonl")) == 3 * 3
    assert not Path(paths.run_dir).exists()  # nothing saved
    bogus = run([*train_entrypoint(experiment, card, paths), "--rollout-batchsize", "3"])
    assert bogus.returncode == 2 and "unrecognized arguments: --rollout-batchsize" in bogus.stderr


def test_stand_in_like_megatron_needs_cuda_device_max_connections_for_tp(fake_run, card):
    """Schema defaults: TP 2 and CP 2. Without CUDA_DEVICE_MAX_CONNECTIONS=1 in train.py's own environment Megatron
    (on a Hopper) refuses at argument parsing; the job's runtime_env, which Ray applies to the entrypoint, has it."""
    experiment, paths, run = fake_run
    assert experiment["miles"]["parallelism"]["tensor"] == 2
    env = {k: v for k, v in os.environ.items() if k != "CUDA_DEVICE_MAX_CONNECTIONS"}
    command = [*train_entrypoint(experiment, card, paths)]
    command[command.index("--num-rollout") + 1] = "0"  # parse, then evaluate nothing
    refused = subprocess.run(command, capture_output=True, text=True, env={**env, "PYTHONPATH": str(REPO)},
                             timeout=120)
    assert refused.returncode == 1 and "CUDA_DEVICE_MAX_CONNECTIONS to 1" in refused.stderr
    assert runtime_env(experiment, paths, run=fake_smi(None, None))["env_vars"]["CUDA_DEVICE_MAX_CONNECTIONS"] == "1"
    assert run(command).returncode == 0


def test_fake_conversions(tmp_path, card, fake_run):
    _, _, run = fake_run
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"hidden_size": 4096}))
    out = tmp_path / "torch_dist"
    assert run(convert_command(card, hf, out, FAKE_MILES, "/nonexistent", python=sys.executable)).returncode == 0
    assert checkpoints.is_converted(out)
    it = tmp_path / "ckpt" / "iter_0000001"
    it.mkdir(parents=True)
    (it / "metadata.json").write_text("{}")
    exported = run(export_command(it, tmp_path / "hf_out", hf, FAKE_MILES, "/nonexistent", python=sys.executable))
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "hf_out" / "config.json").is_file()


def test_eval_entrypoint_takes_a_settings_dict(tmp_path, card):
    experiment = load_experiment("glm-z1-9b-8xh100")
    settings = {**experiment["final_eval"], "n_samples_per_prompt": 4, "temperature": 0.7, "seed": 5}
    command = eval_entrypoint(experiment, card, paths_under(tmp_path), str(tmp_path / "ck" / "iter_0000019"), settings)
    pairs = dict(zip(command, command[1:]))
    assert pairs["--n-samples-per-eval-prompt"] == "4" and pairs["--eval-temperature"] == "0.7"
    assert pairs["--rollout-seed"] == "5" and pairs["--ckpt-step"] == "19" and pairs["--load"] == str(tmp_path / "ck")
