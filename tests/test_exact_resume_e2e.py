"""Exact resume, through Snakemake: a training killed at any moment and run again ends with the same rollout,
train and eval TSVs, eval samples and summary, byte for byte, as one that was never interrupted; a finished run
trains nothing more when forced to rerun; a smaller num_rollout ends at its checkpoint. The reference run
starts from a copy of the session's finished demo (tests/conftest.py) with its runs forgotten and its caches kept:
it trains from scratch on the shared demo model, data and warm start."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mileage.provenance import result_view
from pipeline_helpers import SNAKEMAKE, copy_finished, edit_config, keep_only_caches, snakemake
from test_resume_e2e import checkpoints, job_processes, rollout_steps

pytestmark = pytest.mark.slow

NUM_ROLLOUT = 6
TARGETS = [f"results/demo/metrics/{kind}.tsv" for kind in ("rollout", "train", "eval")] + [
    "results/demo/report/summary.json"]
COMPARED = TARGETS + ["results/demo/train/eval_samples.jsonl", "results/demo/eval/arith/final.samples.jsonl"]


def shorten(config: dict) -> None:
    demo = config["experiments"]["demo"]  # its warm start (shared, cached) leaves GRPO reward signal to learn from
    demo["rollout"]["num_rollout"] = NUM_ROLLOUT
    demo["train"]["save_interval"] = 2
    demo["eval"]["interval"] = 2


def outputs(repo: Path) -> dict[str, bytes]:
    """The compared outputs, byte for byte; a summary without the provenance fields that time the attempt."""
    got = {rel: (repo / rel).read_bytes() for rel in COMPARED}
    for rel, data in got.items():
        if rel.endswith("summary.json"):
            got[rel] = json.dumps(result_view(json.loads(data)), sort_keys=True).encode()
    return got


def fresh_training(repo: Path) -> None:
    """Forget the training (run dir and everything after it), keep the shared caches and the base eval."""
    for rel in ("run", "train", "metrics", "eval/arith/final.samples.jsonl", "report"):
        path = repo / "results" / "demo" / rel
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for aside in (repo / "results" / "demo").glob("run.superseded-*"):
        shutil.rmtree(aside)


def evaluated(run: Path) -> list[int]:
    return sorted(int(p.stem.removeprefix("rollout_")) for p in run.glob("eval_samples/*/rollout_*.jsonl"))


def complete(run: Path) -> int:
    """Finished checkpoints (TRL writes trainer_state.json last)."""
    return len(list(run.glob("checkpoints/checkpoint-*/trainer_state.json")))


# When to kill the job: a condition on the run directory as the job writes it.
KILL_POINTS = {
    "before the first checkpoint": lambda run: max(rollout_steps(run / "events.jsonl"), default=-1) >= 0
    and not checkpoints(run),
    "right after a checkpoint": lambda run: complete(run) == 1,
    # Right after the eval at rollout 3: before, during or after the save of the checkpoint at rollout 4.
    "right after an in-training eval": lambda run: 3 in evaluated(run),
    "in the last rollouts": lambda run: max(rollout_steps(run / "events.jsonl"), default=-1) >= NUM_ROLLOUT - 2
    and complete(run) == 2,
}


def run_and_kill(repo: Path, when) -> bool:
    run = repo / "results" / "demo" / "run"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "2", *TARGETS], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed = False
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and not killed:
        if (run / "events.jsonl").is_file() and when(run):
            for job in job_processes((run / "job.json").resolve()):
                job.send_signal(signal.SIGKILL)
                killed = True
        time.sleep(0.05)
    proc.wait(timeout=300)
    return killed


@pytest.fixture(scope="module")
def reference(finished_demo, tmp_path_factory):
    repo = copy_finished(finished_demo, tmp_path_factory.mktemp("exact") / "repo")
    keep_only_caches(repo)
    edit_config(repo, shorten)
    snakemake(repo, *TARGETS)
    return repo, outputs(repo)


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_killed_at_any_point_and_rerun_ends_byte_identical(reference, point):
    repo, expected = reference
    fresh_training(repo)
    assert run_and_kill(repo, KILL_POINTS[point]), f"the job never reached the kill point: {point}"
    snakemake(repo, *TARGETS)
    got = outputs(repo)
    differing = [rel for rel in COMPARED if got[rel] != expected[rel]]
    assert not differing, f"killed {point}: differs from the uninterrupted run: {differing}"
    assert "resuming" in (repo / "results" / "demo" / "logs" / "train.log").read_text() or point.startswith("before")


def test_a_forced_rerun_of_a_finished_training_trains_nothing_more(reference):
    repo, expected = reference
    if not (repo / "results/demo/train/done.json").is_file():
        snakemake(repo, *TARGETS)
    run = repo / "results" / "demo" / "run"
    before = checkpoints(run)
    snakemake(repo, *TARGETS, "--forcerun", "train")
    done = json.loads((repo / "results/demo/train/done.json").read_text())
    assert done["rollouts_logged"] == NUM_ROLLOUT and checkpoints(run) == before
    assert done["final_checkpoint"].endswith("final_model")
    log = (repo / "results" / "demo" / "logs" / "train.log").read_text()
    assert f"complete at rollout {NUM_ROLLOUT}: nothing to train" in log
    assert outputs(repo) == expected


def test_a_smaller_num_rollout_ends_at_its_checkpoint_and_back_again(reference):
    repo, expected = reference
    if not (repo / "results/demo/train/done.json").is_file():
        snakemake(repo, *TARGETS)
    run = repo / "results" / "demo" / "run"
    edit_config(repo, lambda c: c["experiments"]["demo"]["rollout"].update(num_rollout=4))
    snakemake(repo, *TARGETS)
    done = json.loads((repo / "results/demo/train/done.json").read_text())
    assert done["rollouts_logged"] == 4
    assert rollout_steps(repo / "results/demo/train/events.jsonl") == [0, 1, 2, 3]
    assert "complete at rollout 4" in (repo / "results/demo/logs/train.log").read_text()
    assert not list(run.parent.glob("run.superseded-*")), "the longer run is kept where it is"
    # Not on a checkpoint (save_interval 2): start afresh, the old run kept aside.
    edit_config(repo, lambda c: c["experiments"]["demo"]["rollout"].update(num_rollout=3))
    snakemake(repo, "results/demo/train/done.json")
    assert "has no checkpoint at rollout 3" in (repo / "results/demo/logs/train.log").read_text()
    assert len(list(run.parent.glob("run.superseded-*"))) == 1
