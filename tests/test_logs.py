"""Rule logs: what a failing or interrupted rule leaves in results/<exp>/logs/."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mileage.logs import logged


def test_an_error_is_named_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "rule.log"
    with pytest.raises(ValueError), logged(log):
        raise ValueError("data.jsonl:line 3: missing key 'label'")
    assert "mileage: ValueError: data.jsonl:line 3: missing key 'label'" in log.read_text(encoding="utf-8")


def test_ctrl_c_says_interrupted_not_an_empty_message(tmp_path: Path) -> None:
    log = tmp_path / "rule.log"
    with pytest.raises(KeyboardInterrupt), logged(log):
        print("step 3")
        raise KeyboardInterrupt
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines == ["step 3", "mileage: KeyboardInterrupt: interrupted"]


def test_the_wall_time_goes_to_the_log_not_the_terminal(tmp_path: Path, capsys) -> None:
    log = tmp_path / "rule.log"
    with logged(log):
        print("evaluated 32 problems")
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "evaluated 32 problems" and lines[1].startswith("mileage: wall time ")
    assert capsys.readouterr().out == "evaluated 32 problems\n"


def test_the_terminal_gets_what_informs_and_the_log_everything(tmp_path: Path, capsys) -> None:
    said = [
        "ray: starting a head on 127.0.0.1:42079, dashboard http://127.0.0.1:50859, temp dir /tmp/r",
        "[mileage 2026-12-06 23:32:01] ray job mileage-demo-1 -> http://127.0.0.1:50859",
        "[mileage 2026-12-06 23:32:01] entrypoint: python -m mileage.engines.local.job job.json",
        "2026-12-06 23:32:19,407\tINFO job_manager.py:581 -- Runtime env is setting up.",
        "",
        "Loading weights:   0%|          | 0/29 [00:00<?, ?it/s]\rLoading weights: 100%|##########| 29/29 [00:00<00:00]",
        "[mileage] rollout 1/30  reward 0.273  5.1 s",
        "[mileage 2026-12-06 23:39:42] ray job mileage-demo-1 SUCCEEDED",
        "[mileage 2026-12-06 23:39:42] ray job mileage-demo-2 ended FAILED: the job failed",
        "ray: stopping the head we started (pid 16126)",
    ]
    log = tmp_path / "train.log"
    with logged(log):
        print("\n".join(said[:5]))
        sys.stderr.write(said[5] + "\n")
        print("\n".join(said[6:]), end="")  # the last line without its newline: shown at the end
    out = capsys.readouterr()
    assert out.out.splitlines() == [said[6], said[8]] and out.err == ""
    assert log.read_bytes().decode().split("\n")[:len(said)] == said  # everything, in order
    from mileage.provenance import stage_wall_seconds

    assert "train" in stage_wall_seconds(tmp_path)  # the wall time on its own line, after the unfinished one
