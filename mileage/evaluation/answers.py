"""Answers as the reward judges them: its equivalence of two answers, and the answer regardless of format.

Both ask the reward function itself (mileage.rewards), so they agree with the reward by construction: two answers
are equivalent when the reward grades a reply boxing the first as correct against the second as its label, and
the format-free answer is judged the same way. Nothing here re-implements an equivalence.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from mileage.rewards import THINK_END, get_reward, last_boxed

# A number as the last thing a reply states when it boxes nothing: `Answer: 6`, `= -3/4`, `is 2.5.`
_LAST_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:/\d+)?")


def _reply_boxing(answer: str) -> str:
    """The reply every reward grades as exactly `answer`: a closed think block, then the box."""
    return f"{THINK_END}\\boxed{{{answer}}}"


@functools.lru_cache(maxsize=None)
def equivalence(reward: str) -> Callable[[str, str], bool]:
    """`same(x, y)`: whether reward `reward` deems answer `x` correct for label `y` (its own equivalence)."""
    grade = get_reward(reward)

    @functools.lru_cache(maxsize=65536)
    def same(x: str, y: str) -> bool:
        return x == y or grade(_reply_boxing(x), y) >= 1.0 - 1e-9

    return same


def free_answer(response: str) -> str | None:
    """The last answer a reply gives anywhere, whatever its format: the last `\\boxed{...}` in the whole reply
    (inside an unclosed think block too), else the last number it writes; None when it gives neither."""
    if not isinstance(response, str):
        return None
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    numbers = _LAST_NUMBER.findall(response)
    return numbers[-1] if numbers else None


def free_answer_correct(reward: str, response: str, label: str) -> bool:
    """Whether the reply's format-free answer is right by the reward's equivalence (format learning aside)."""
    answer = free_answer(response)
    return answer is not None and equivalence(reward)(answer, str(label))


def group_equivalent(answers: list[str], reward: str) -> list[list[int]]:
    """Indices of `answers` grouped by the reward's equivalence, groups and members in first-seen order.

    Each answer joins the first group whose first answer it is equivalent to (checked both ways, as a label may
    be written differently from a reply); identical strings are pooled without asking the reward."""
    same = equivalence(reward)
    groups: list[list[int]] = []
    heads: dict[str, int] = {}
    for i, answer in enumerate(answers):
        if answer in heads:
            groups[heads[answer]].append(i)
            continue
        for g, members in enumerate(groups):
            head = answers[members[0]]
            if same(answer, head) or same(head, answer):
                members.append(i)
                heads[answer] = g
                break
        else:
            heads[answer] = len(groups)
            groups.append([i])
    return groups
