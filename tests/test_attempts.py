"""Every attempt at training a run is recorded where the job runs, and provenance sums them: a run killed midway
and resumed reports the wall time and GPU-hours of both attempts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from mileage.attempts import ATTEMPTS_NAME, attempt, read_attempts
from mileage.provenance import collect, for_experiment, result_view

ROOT = Path(__file__).resolve().parents[1]


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / ATTEMPTS_NAME).read_text().splitlines()]


def _backdate(run: Path, seconds: float) -> None:
    """Shift the newest attempt's start `seconds` into the past (an attempt that lasted that long)."""
    records = _records(run)
    newest = max((r for r in records if r["event"] == "start"), key=lambda r: r["unix"])
    lines = []
    for record in records:
        if record is newest:
            record["unix"] -= seconds
        lines.append(json.dumps(record))
    (run / ATTEMPTS_NAME).write_text("\n".join(lines) + "\n")


def test_each_attempt_says_how_it_ended(tmp_path):
    with attempt(tmp_path, gpus=2, rollouts_before=0):
        pass
    with pytest.raises(RuntimeError), attempt(tmp_path, gpus=2, rollouts_before=10):
        raise RuntimeError("the job failed")
    with pytest.raises(KeyboardInterrupt), attempt(tmp_path, gpus=2, rollouts_before=10):
        raise KeyboardInterrupt
    attempts = read_attempts(tmp_path)
    assert [a["outcome"] for a in attempts] == ["succeeded", "failed", "interrupted"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["rollouts_before"] for a in attempts] == [0, 10, 10]
    assert all(a["gpus"] == 2 and a["host"] for a in attempts)


def test_a_killed_attempt_ends_at_the_runs_last_write_and_the_next_attempt_closes_it(tmp_path):
    run = tmp_path
    # An attempt killed with SIGKILL: a start, no end. The job log was last written 100 s after the start.
    start = time.time() - 1000
    (run / ATTEMPTS_NAME).write_text(json.dumps({"attempt": "a", "event": "start", "unix": start, "gpus": 1,
                                                 "rollouts_before": 0, "host": "h"}) + "\n" + '{"attempt": "b", "ev')
    (run / "job.log").write_text("rollout 1\n")
    os.utime(run / "job.log", (start + 100, start + 100))
    killed = read_attempts(run)
    assert len(killed) == 1 and killed[0]["outcome"] == "killed"
    assert killed[0]["wall_seconds"] == pytest.approx(100, abs=1)
    # While its training holds the run, the open attempt is the running one, timed to now.
    assert read_attempts(run, running=True, now=start + 500)[0]["outcome"] == "running"
    # The next attempt closes it at that last write, before it writes the job log itself.
    with attempt(run, gpus=1, rollouts_before=20):
        (run / "job.log").write_text("rollout 21\n")
    both = read_attempts(run)
    assert [a["outcome"] for a in both] == ["killed", "succeeded"]
    assert both[0]["wall_seconds"] == pytest.approx(100, abs=1)
    assert both[0]["gpu_hours"] == pytest.approx(100 / 3600, rel=0.02)


def demo_config(tmp_path: Path) -> dict:
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text(encoding="utf-8"))
    config["results_dir"] = str(tmp_path / "results")
    return config


def test_provenance_sums_every_attempt_and_lists_them(tmp_path):
    run = tmp_path / "results" / "demo" / "run"
    with pytest.raises(KeyboardInterrupt), attempt(run, gpus=1, rollouts_before=0):
        raise KeyboardInterrupt  # killed at rollout 20 ...
    _backdate(run, 600)
    with attempt(run, gpus=1, rollouts_before=20):  # ... and resumed
        pass
    _backdate(run, 300)
    exp = for_experiment(demo_config(tmp_path), "demo", ROOT)["config"]
    exp = {**exp, "resources": {**exp["resources"], "device": "cuda", "gpus": 1}}
    logs = tmp_path / "results" / "demo" / "logs"
    logs.mkdir(parents=True)
    (logs / "train.log").write_text("mileage: wall time 300.000 s\n")  # the last attempt's stage, as logs.py writes
    block = collect(exp, seeds=[1], data_files=[], logs_dir=logs, base_dir=ROOT, run_dir=run)
    assert [a["outcome"] for a in block["attempts"]] == ["interrupted", "succeeded"]
    assert block["wall_seconds"]["train"] == pytest.approx(900, abs=2)  # both attempts, not the last one only
    assert block["gpu_hours"] == pytest.approx(900 / 3600, rel=0.01)
    # An attempt's timing is not part of the result: a resumed run's result equals an uninterrupted one's.
    assert "attempts" not in result_view({"provenance": block})["provenance"]


def test_for_experiment_reads_the_runs_attempts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # results_dir is relative in a real config
    config = demo_config(tmp_path)
    config["results_dir"] = "results"
    with attempt(tmp_path / "results" / "demo" / "run", gpus=0, rollouts_before=0):
        pass
    block = for_experiment(config, "demo", ROOT)
    assert len(block["attempts"]) == 1 and block["gpu_hours"] == 0.0  # the demo trains on the CPU
    assert block["wall_seconds"]["train"] == block["attempts"][0]["wall_seconds"]
