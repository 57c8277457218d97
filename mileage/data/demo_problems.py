"""Synthetic arithmetic problems for the offline demo, in the normalised dataset schema.

Every problem is `a <op> b` with integer operands in [0, max_operand]. The prompt mimics
dapo-math-17k's phrasing in miniature (a one-message list, answer asked for as `\\boxed{}`), the label
is the exact result as a string.

Held out by construction: the whole problem space is split once, by a hash of the problem's text
(`"3+5"`), into an eval part (`hash % EVAL_BUCKETS == 0`, about a quarter) and a train part. The split
depends on nothing but the problem, so any train file (any seed, size, warm-start examples too) and
any eval file are disjoint.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from typing import Literal, Sequence

from mileage.atomic import write_jsonl

OPERATIONS: tuple[str, ...] = ("+", "-", "*")
EVAL_BUCKETS = 4  # 1 of 4 problems (by hash) belongs to the held-out eval part

# dapo-math-17k's instruction, shortened; the problem goes between the two halves.
PROMPT_HEAD = "Solve the following math problem. The last line of your response should be Answer: \\boxed{$Answer}.\n\n"
PROMPT_TAIL = ""
# What a correct worked response looks like (the warm start teaches this form).
RESPONSE_TEMPLATE = "Answer: \\boxed{{{answer}}}"
# The same answer without the box the reward looks for (the warm start mixes some in: see warm_start.py).
UNBOXED_RESPONSE_TEMPLATE = "Answer: {answer}"

Split = Literal["train", "eval"]


class DemoDataError(ValueError):
    """Bad parameters for the synthetic dataset (names the offending key)."""


@dataclass(frozen=True)
class ArithmeticProblem:
    a: int
    op: str
    b: int

    @property
    def text(self) -> str:
        return f"{self.a} {self.op} {self.b}"

    @property
    def answer(self) -> int:
        if self.op == "+":
            return self.a + self.b
        if self.op == "-":
            return self.a - self.b
        return self.a * self.b

    @property
    def split(self) -> Split:
        digest = hashlib.sha256(f"{self.a}{self.op}{self.b}".encode()).digest()
        return "eval" if int.from_bytes(digest[:8], "big") % EVAL_BUCKETS == 0 else "train"


def prompt_for(problem: ArithmeticProblem) -> str:
    return f"{PROMPT_HEAD}What is {problem.text}?{PROMPT_TAIL}"


def response_for(problem: ArithmeticProblem, boxed: bool = True) -> str:
    return (RESPONSE_TEMPLATE if boxed else UNBOXED_RESPONSE_TEMPLATE).format(answer=problem.answer)


def _check_params(max_operand: int, operations: Sequence[str]) -> None:
    if not isinstance(max_operand, int) or isinstance(max_operand, bool) or max_operand < 1:
        raise DemoDataError(f"demo dataset: key 'max_operand' must be an integer >= 1, got {max_operand!r}")
    if not operations:
        raise DemoDataError("demo dataset: key 'operations' must name at least one operation")
    for op in operations:
        if op not in OPERATIONS:
            raise DemoDataError(f"demo dataset: key 'operations' has {op!r}; expected some of {OPERATIONS}")


def problem_space(max_operand: int, operations: Sequence[str], split: Split) -> list[ArithmeticProblem]:
    """Every problem of one part of the space, in a fixed order."""
    _check_params(max_operand, operations)
    if split not in ("train", "eval"):
        raise DemoDataError(f"demo dataset: split must be 'train' or 'eval', got {split!r}")
    ops = [op for op in OPERATIONS if op in set(operations)]
    return [
        p
        for op in ops
        for a in range(max_operand + 1)
        for b in range(max_operand + 1)
        if (p := ArithmeticProblem(a, op, b)).split == split
    ]


def draw_problems(
    n: int, *, seed: int, max_operand: int, operations: Sequence[str], split: Split
) -> list[ArithmeticProblem]:
    """`n` problems of one part, deterministic from `seed`.

    Eval draws without replacement (a held-out set has distinct problems) and refuses an `n` larger
    than its part; train cycles through reshuffled passes, so it may repeat problems.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise DemoDataError(f"demo dataset: key 'n_problems' must be an integer >= 1, got {n!r}")
    pool = problem_space(max_operand, operations, split)
    if not pool:
        raise DemoDataError(f"demo dataset: the {split} part of the space is empty (max_operand={max_operand})")
    if split == "eval" and n > len(pool):
        raise DemoDataError(
            f"demo dataset: key 'n_problems' = {n} exceeds the {len(pool)} distinct held-out eval problems for "
            f"max_operand={max_operand}, operations={list(operations)}; lower it or raise max_operand"
        )
    rng = random.Random(f"mileage-demo-{split}-{seed}")
    drawn: list[ArithmeticProblem] = []
    while len(drawn) < n:
        order = list(pool)
        rng.shuffle(order)
        drawn.extend(order[: n - len(drawn)])
    return drawn


def demo_rows(
    *, name: str, n_problems: int, seed: int, max_operand: int, operations: Sequence[str], split: Split
) -> list[dict]:
    problems = draw_problems(n_problems, seed=seed, max_operand=max_operand, operations=operations, split=split)
    return [
        {"id": f"{name}-{split}-{index}", "prompt": [{"role": "user", "content": prompt_for(p)}], "label": str(p.answer)}
        for index, p in enumerate(problems)
    ]


def write_demo_dataset(
    out_path: str | os.PathLike,
    *,
    name: str,
    n_problems: int,
    seed: int,
    max_operand: int,
    operations: Sequence[str],
    split: Split,
) -> None:
    """Write `n_problems` synthetic problems as normalised JSONL (atomic, deterministic from the arguments)."""
    rows = demo_rows(
        name=name, n_problems=n_problems, seed=seed, max_operand=max_operand, operations=operations, split=split
    )
    write_jsonl(out_path, rows)
