"""`mileage argv EXPERIMENT --eval base|final`: the evaluation runs' train.py argv, as the eval rules build it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mileage.cli import main

REPO = Path(__file__).resolve().parents[1]
GLM = str(REPO / "config" / "experiments" / "glm-z1-9b-8xh100.yaml")


def _argv(capsys, tmp_path, *args) -> list[str]:
    assert main(["--config", str(REPO / "config" / "config.yaml"), "--results-dir", str(tmp_path), "argv", *args]) == 0
    return capsys.readouterr().out.splitlines()


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_eval_argvs_are_eval_only_runs_of_the_starting_model_and_of_the_final_save(capsys, tmp_path):
    base = _argv(capsys, tmp_path, GLM, "--eval", "base")
    final = _argv(capsys, tmp_path, GLM, "--eval", "final")
    train = _argv(capsys, tmp_path, GLM)
    for argv in (base, final):  # FACTS section 6: no --eval-only flag
        assert _value(argv, "--num-rollout") == "0" and _value(argv, "--eval-interval") == "1"
    assert _value(train, "--num-rollout") == "3000"
    # Before training, the final evaluation is shown for the save a 3000-rollout run ends with (rollout id 2999).
    assert _value(final, "--load") == str(tmp_path.resolve() / "glm-z1-9b-8xh100" / "run" / "checkpoints")
    assert _value(final, "--ckpt-step") == "2999"
    assert "--ckpt-step" not in base


def test_final_eval_argv_follows_the_checkpoint_done_json_names(capsys, tmp_path):
    done = tmp_path / "glm-z1-9b-8xh100" / "train" / "done.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"final_checkpoint": str(tmp_path / "glm-z1-9b-8xh100" / "run" / "checkpoints" /
                                                        "iter_0001499")}))
    assert _value(_argv(capsys, tmp_path, GLM, "--eval", "final"), "--ckpt-step") == "1499"


def test_eval_must_be_base_or_final(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["argv", GLM, "--eval", "middle"])
    assert "invalid choice" in capsys.readouterr().err
