"""Long runs: SIGKILL the training job midway, run the same command again, and it continues from the last
checkpoint; a changed training configuration starts afresh and keeps the old run; nothing is deleted.

Both start from a copy of the session's finished demo (tests/conftest.py) with its runs forgotten and its caches
kept: the training is from scratch, the demo model, data and warm start are not built again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from mileage.attempts import read_attempts
from mileage.provenance import for_experiment
from mileage.status import statuses
from pipeline_helpers import SNAKEMAKE, copy_finished, edit_config, keep_only_caches, snakemake
from run_checks import assert_terminal_informs

pytestmark = pytest.mark.slow

TARGET = "results/demo/train/done.json"


def shorten(config: dict) -> None:
    demo = config["experiments"]["demo"]
    demo["rollout"]["num_rollout"] = 12
    demo["train"]["save_interval"] = 2
    demo["eval"]["interval"] = 4


def rollout_steps(events: Path) -> list[int]:
    steps = []
    for line in events.read_text().splitlines():
        if line.strip():
            event = json.loads(line)
            if event["kind"] == "rollout":
                steps.append(event["step"])
    return steps


def job_processes(spec: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "mileage.engines.local.job" in cmdline and str(spec) in cmdline:
            found.append(proc)
    return found


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*"))


@pytest.fixture(scope="module")
def repo(finished_demo, tmp_path_factory):
    repo = copy_finished(finished_demo, tmp_path_factory.mktemp("resume") / "repo")
    keep_only_caches(repo)
    edit_config(repo, shorten)
    return repo


def test_sigkill_midway_then_rerun_resumes_from_last_checkpoint(repo):
    run = repo / "results" / "demo" / "run"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.Popen(
        [SNAKEMAKE, "--cores", "2", TARGET], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 900
    killed = False
    watched = []  # what `mileage status` said while the job trained
    while time.time() < deadline and proc.poll() is None:
        events = run / "events.jsonl"
        if job_processes((run / "job.json").resolve()):
            [demo] = statuses(repo / "config" / "config.yaml")
            watched.append((demo.state, demo.rollout))
        if events.is_file() and max(rollout_steps(events), default=-1) >= 4 and checkpoints(run):
            for job in job_processes((run / "job.json").resolve()):
                job.send_signal(signal.SIGKILL)
                killed = True
            if killed:
                break
        time.sleep(0.2)
    output, _ = proc.communicate(timeout=300)
    assert killed, f"never saw the job reach rollout 4 with a checkpoint:\n{output[-3000:]}"
    assert proc.returncode != 0
    # While it trained, status saw it running, its rollout advancing; killed, it is failed.
    running = [rollout for state, rollout in watched if state == "running"]
    assert running and running == sorted(running) and running[-1] > running[0], watched
    assert statuses(repo / "config" / "config.yaml")[0].state == "failed"
    # The failure is explained, the declared outputs are absent, the checkpoints survive.
    assert "FAILED" in output or "failed" in output
    assert not (repo / TARGET).exists()
    saved = checkpoints(run)
    assert saved, "a failure must never delete a checkpoint"
    steps_before = rollout_steps(run / "events.jsonl")

    resumed = snakemake(repo, TARGET)
    log = (run / "job.log").read_text()
    assert "[mileage] resuming from" in log
    final_steps = rollout_steps(repo / "results" / "demo" / "train" / "events.jsonl")
    assert final_steps == list(range(12)), final_steps
    # The second attempt continued: rollouts up to the checkpoint were not trained again.
    run_steps = rollout_steps(run / "events.jsonl")
    assert run_steps == sorted(set(run_steps)) == list(range(12))
    assert set(saved) <= set(checkpoints(run))
    assert len(steps_before) < 12
    [demo] = statuses(repo / "config" / "config.yaml")
    assert (demo.state, demo.rollout, demo.num_rollout, demo.checkpoint_rollout) == ("done", 12, 12, 12)
    # Provenance counts both attempts: the killed one and the resumed one.
    attempts = read_attempts(run)
    assert [a["outcome"] for a in attempts] == ["failed", "succeeded"] and attempts[1]["rollouts_before"] >= 4
    config = {**yaml.safe_load((repo / "config" / "config.yaml").read_text()), "results_dir": str(repo / "results")}
    block = for_experiment(config, "demo", repo)
    assert block["wall_seconds"]["train"] == pytest.approx(sum(a["wall_seconds"] for a in attempts), abs=0.01)
    assert len(block["attempts"]) == 2 and block["gpu_hours"] == 0.0  # the demo trains on the CPU
    # The resumed training printed one line per rollout it trained, and no library noise.
    assert_terminal_informs(resumed.stdout + resumed.stderr, rollouts=range(attempts[1]["rollouts_before"], 12))


def test_changed_training_config_starts_afresh_and_keeps_the_old_run(repo):
    run = repo / "results" / "demo" / "run"
    if not (repo / TARGET).exists():
        pytest.skip("needs the finished run of the resume test")
    old_checkpoints = checkpoints(run)
    edit_config(repo, lambda c: c["experiments"]["demo"]["train"].update(lr=0.001))
    snakemake(repo, TARGET)
    aside = [p for p in run.parent.iterdir() if p.name.startswith("run.superseded-")]
    assert len(aside) == 1 and checkpoints(aside[0]) == old_checkpoints
    assert "[mileage] resuming from" not in (run / "job.log").read_text()
    assert rollout_steps(run / "events.jsonl") == list(range(12))
