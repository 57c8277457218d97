"""miles' batch identity, in one place: rollout_batch_size x n_samples_per_prompt = global_batch_size x
num_steps_per_rollout. miles fills whichever side is unset (FACTS section 1); the config, the miles argv and
the local engine's TRL layout all ask this function."""

from __future__ import annotations

from typing import Any, Mapping


class BatchIdentityError(ValueError):
    """The identity cannot hold; `key` is the config key (relative to the experiment) to fix."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def batch_identity(rollout: Mapping[str, Any], train: Mapping[str, Any]) -> tuple[int, int]:
    """(global_batch_size, num_steps_per_rollout), the unset side filled as miles fills it."""
    samples = rollout["rollout_batch_size"] * rollout["n_samples_per_prompt"]
    lhs = (
        f"rollout.rollout_batch_size x rollout.n_samples_per_prompt = "
        f"{rollout['rollout_batch_size']} x {rollout['n_samples_per_prompt']} = {samples}"
    )
    gbs, steps = train.get("global_batch_size"), train.get("num_steps_per_rollout")
    if gbs is None and steps is None:
        steps = 1
    if gbs is None:
        if samples % steps:
            raise BatchIdentityError("train.num_steps_per_rollout", f"{lhs} is not divisible by {steps}")
        gbs = samples // steps
    elif steps is None:
        if samples % gbs:
            raise BatchIdentityError("train.global_batch_size", f"{lhs} is not divisible by global_batch_size {gbs}")
        steps = samples // gbs
    if gbs * steps != samples:
        raise BatchIdentityError(
            "train.global_batch_size",
            f"batch identity violated: {lhs}, but train.global_batch_size x train.num_steps_per_rollout = "
            f"{gbs} x {steps} = {gbs * steps}",
        )
    return gbs, steps
