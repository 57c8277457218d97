"""Flags in `miles.extra_args` that miles accepts but that cannot work with what mileage wires or installs.

- `--group-rm` makes miles score a whole group at once: its rollout calls the reward function with the list of
  the group's samples (v0.1.0 `miles/rollout/sglang_rollout.py` 332-333, `batched_async_rm`). mileage's custom
  reward hook (`--custom-rm-path`, reward_hook.py) grades one sample, `f(args, sample)`: with a list it would
  fail or grade garbage. miles' own `--rm-type` rules take either form, so only the custom hook is refused.
- `--non-persistent-ckpt-type local` needs nvidia-resiliency-ext (Megatron-LM 37f91617
  megatron/training/arguments.py 297-303), which the miles environment leaves out (envs/miles.lock.txt: PyPI
  has it only for glibc >= 2.39 and miles' own code never imports it).
"""

from __future__ import annotations

from typing import Any, Mapping

from mileage.rewards import registered


def _has_flag(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _value_of(argv: list[str], flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def extra_args_problems(exp: Mapping[str, Any]) -> list[str]:
    """What is wrong with the experiment's miles.extra_args, each message starting with the key."""
    argv = [str(a) for a in exp["miles"].get("extra_args") or []]
    problems = []
    if _has_flag(argv, "--group-rm"):
        reward = exp["rollout"]["reward"]
        try:
            custom = "miles" not in registered(reward).engine_builtin
        except ValueError:
            custom = False  # an unknown reward is refused by its own check, with its own message
        if custom:
            problems.append(
                f"miles.extra_args: --group-rm makes miles call the reward function once per group with a list of "
                f"samples, but rollout.reward {reward!r} is graded by mileage's custom reward hook, which scores one "
                f"sample (f(args, sample)): remove --group-rm, or use a reward miles ships as an --rm-type")
    if _value_of(argv, "--non-persistent-ckpt-type") == "local":
        problems.append(
            "miles.extra_args: --non-persistent-ckpt-type local needs nvidia-resiliency-ext, which the miles "
            "environment does not install (docs/miles-environment.md): use 'global' or leave it out")
    return problems
