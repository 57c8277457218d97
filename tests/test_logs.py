"""Rule logs: what a failing or interrupted rule leaves in results/<exp>/logs/."""

from __future__ import annotations

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
