"""Rewards miles does not ship, as `--custom-rm-path` functions (FACTS section 4).

miles calls `await f(args, sample)` in its rollout workers; the sample has `.response` and `.label`.
The grading itself is mileage.rewards, so a reward means the same in both engines. This module must not
import miles (it runs inside miles' processes, found through the Ray job's PYTHONPATH).
"""

from __future__ import annotations

from typing import Any

from mileage.rewards import deepscaler_nothink as _deepscaler_nothink
from mileage.rewards import math_verify as _math_verify


async def deepscaler_nothink(args: Any, sample: Any) -> float:
    """miles' deepscaler rule without the `</think>` requirement (models with no thinking phase)."""
    return _deepscaler_nothink(str(sample.response or ""), str(sample.label or ""))


async def math_verify(args: Any, sample: Any) -> float:
    """The boxed answer after `</think>`, judged by Hugging Face's math-verify (mileage.rewards.math_verify)."""
    return _math_verify(str(sample.response or ""), str(sample.label or ""))
