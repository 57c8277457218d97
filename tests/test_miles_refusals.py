"""What mileage refuses or expects of a miles run because of how miles v0.1.0 behaves (78527b91)."""

from __future__ import annotations

import sys

import pytest

from fake_miles.experiments import resolve
from mileage.engines.miles.evals import in_training_evals
from mileage.config import ConfigError


def _miles(reward: str, extra_args: list[str]) -> dict:
    return {
        "engine": "miles", "model": {"source": "hf", "card": "glm-z1-9b-0414"},
        "data": {"train": {"name": "dapo", "repo": "zhuzilin/dapo-math-17k"},
                 "eval": {"name": "aime", "repo": "zhuzilin/aime-2024"}},
        "rollout": {"num_rollout": 4, "rollout_batch_size": 2, "n_samples_per_prompt": 2, "reward": reward},
        "train": {"global_batch_size": 2, "save_interval": 2},
        "resources": {"gpus": 8},
        "miles": {"python": sys.executable, "extra_args": extra_args},
    }


@pytest.mark.parametrize("flag", [["--group-rm"], ["--group-rm=true"]])
def test_group_rm_with_the_custom_reward_hook_is_refused_naming_the_key(flag):
    # math_verify is graded by mileage's --custom-rm-path hook, f(args, sample): --group-rm would pass a list.
    with pytest.raises(ConfigError, match=r"^experiments\.t\.miles\.extra_args: --group-rm .*math_verify"):
        resolve(_miles("math_verify", ["--log-passrate", *flag]))


def test_group_rm_with_a_reward_miles_ships_is_accepted():
    exp = resolve(_miles("deepscaler", ["--group-rm"]))  # miles' own --rm-type handles a group
    assert exp["miles"]["extra_args"] == ["--group-rm"]


def test_local_non_persistent_checkpoints_are_refused_the_env_lacks_nvidia_resiliency_ext():
    with pytest.raises(ConfigError, match=r"miles\.extra_args: --non-persistent-ckpt-type local needs nvidia-resil"):
        resolve(_miles("deepscaler", ["--non-persistent-ckpt-type", "local"]))
    resolve(_miles("deepscaler", ["--non-persistent-ckpt-type", "global"]))


# ---------------------------------------------------------------- in-training evaluations, miles' own rule


def test_periodic_and_before_train_evals():
    assert in_training_evals(2, 6, skip_eval_before_train=False) == {0, 1, 3, 5}
    assert in_training_evals(2, 6, skip_eval_before_train=True) == {1, 3, 5}
    assert in_training_evals(None, 6, skip_eval_before_train=False) == set()
    # miles' eval does not force the last rollout (save does): 5 rollouts at interval 2 end on eval 3.
    assert in_training_evals(2, 5, skip_eval_before_train=True) == {1, 3}


def test_epoch_boundaries_evaluate_when_miles_knows_the_epoch_length():
    # misc.py 150-151: (r + 1) % interval == 0 or (r + 1) % num_rollout_per_epoch == 0
    assert in_training_evals(4, 9, True, num_rollout_per_epoch=3) == {2, 3, 5, 7, 8}


def test_each_resumed_start_evaluates_at_its_first_rollout():
    # train.py 96: rollout_id == start_rollout_id and not skip_eval_before_train; a run resumed from the save after
    # rollout 1 starts at 2, evaluating there before generating.
    assert in_training_evals(4, 8, False, starts=(0, 2)) == {0, 2, 3, 7}
    assert in_training_evals(4, 8, True, starts=(0, 2)) == {3, 7}


def test_the_engine_expects_what_miles_runs_for_the_shipped_argv():
    from mileage.engines import get_engine

    exp = resolve({**_miles("deepscaler", []), "eval": {"interval": 2}})
    engine = get_engine("miles")
    assert engine.in_training_evals(exp, 4) == {0, 1, 3}
