"""The one `--custom-rm-path` function for every reward miles does not ship (FACTS section 4).

miles calls `await reward(args, sample)` in its rollout workers; the sample has `.response` and `.label`. Which
rule grades is the job's: the engine puts the config's `rollout.reward` into the job's runtime env as REWARD_ENV,
and the grading itself is mileage.rewards' registry, so a reward means the same in both engines and a new reward
needs no hook of its own. This module must not import miles (it runs inside miles' processes, found through the
Ray job's PYTHONPATH).
"""

from __future__ import annotations

import os
from typing import Any

from mileage.rewards import get_reward

REWARD_ENV = "MILEAGE_REWARD"  # the job's reward name (mileage.engines.miles.runtime_env sets it)
HOOK_PATH = f"{__name__}.reward"  # what --custom-rm-path names


class RewardHookError(RuntimeError):
    """The job's environment names no reward: a job not built by mileage.engines.miles.runtime_env."""


def job_reward_name() -> str:
    name = os.environ.get(REWARD_ENV)
    if not name:
        raise RewardHookError(f"{REWARD_ENV} is not set: the Ray job's runtime env names the reward rule "
                              "(mileage.engines.miles.runtime_env sets it from rollout.reward)")
    return name


async def reward(args: Any, sample: Any) -> float:
    """The job's reward rule (REWARD_ENV) on one sample."""
    return get_reward(job_reward_name())(str(sample.response or ""), str(sample.label or ""))
