"""Supervised warm start for the demo model: a short pass over synthetic worked examples.

A randomly initialised tiny model never writes `\\boxed{...}`, so GRPO would see reward 0 everywhere
and learn nothing. Supervised steps on worked examples (prompt -> `Answer: \\boxed{<result>}`) teach
the answer format and the arithmetic. Examples come from the train part of the problem space only, so
they never contain a held-out eval problem.

`boxed_fraction` (the demo uses 0.35) lets only that share of the examples box the answer; the rest
end `Answer: <result>`, which the reward (`deepscaler*`: the last `\\boxed{}` must match) scores 0
even when the number is right. The warm-started model then boxes about that often, although its
prompt asks for a box, and its reward is about P(box) x P(correct). What GRPO then learns from the
reward alone is a global behaviour that transfers to held-out problems: box every answer, as the
prompt says, and (a little) commit to its likelier answer. Said plainly, the demo's gain is mostly
this format learning, not better arithmetic: with boxed_fraction = 1.0 the warm start alone scores
about what the final model does (GRPO then gains ~0 on this tiny model), and mixing unboxed examples
in costs the boxed answers some accuracy.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Sequence

from mileage.atomic import atomic_dir
from mileage.data.demo_problems import draw_problems, prompt_for, response_for
from mileage.data.problems import Problem
from mileage.engines.local.sampling import load_model, prompt_ids


class WarmStartError(ValueError):
    """Bad warm-start parameters (names the offending key)."""


def _check(name: str, value, low, integer: bool) -> None:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or value < low or (not integer and value == 0 and low == 0):
        raise WarmStartError(f"warm_start: key {name!r} must be {'an integer' if integer else 'a number'} >= {low}, got {value!r}")


def boxed_indices(n_examples: int, boxed_fraction: float, seed: int) -> set[int]:
    """Which examples end in `\\boxed{}`: exactly round(n x fraction) of them, spread by a seeded draw."""
    n_boxed = round(n_examples * boxed_fraction)
    if n_boxed >= n_examples:
        return set(range(n_examples))
    return set(random.Random(f"mileage-warm-boxed-{seed}").sample(range(n_examples), n_boxed))


def worked_examples(tokenizer, *, n_examples: int, seed: int, max_operand: int, operations: Sequence[str],
                    apply_chat_template: bool = True, boxed_fraction: float = 1.0) -> list[tuple[list[int], int]]:
    """(token ids of prompt + worked response + eos, prompt length) per example, from the train part."""
    problems = draw_problems(n_examples, seed=seed, max_operand=max_operand, operations=operations, split="train")
    boxed = boxed_indices(n_examples, boxed_fraction, seed)
    examples = []
    for index, p in enumerate(problems):
        problem = Problem(id=f"warm-{index}", prompt=[{"role": "user", "content": prompt_for(p)}], label=str(p.answer))
        prompt = prompt_ids(tokenizer, problem, apply_chat_template)
        text = response_for(p, boxed=index in boxed)
        response = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        examples.append((prompt + response, len(prompt)))
    return examples


def warm_start(
    model_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    n_examples: int,
    epochs: float,
    lr: float,
    batch_size: int,
    seed: int,
    max_operand: int,
    operations: Sequence[str],
    device: str = "auto",
    apply_chat_template: bool = True,
    boxed_fraction: float = 1.0,
) -> dict[str, float]:
    """Fine-tune `model_dir` on worked examples and save the result (weights + tokenizer) to `out_dir`.

    `epochs` may be fractional (0.5 = half a pass). `boxed_fraction` of the examples end in
    `Answer: \\boxed{n}`, the others in `Answer: n` (see the module docstring). Loss is on the response
    tokens only. Returns
    {"loss_first": ..., "loss_last": ..., "steps": ...} for the log.
    """
    import torch

    _check("n_examples", n_examples, 1, True)
    _check("batch_size", batch_size, 1, True)
    _check("epochs", epochs, 0, False)
    _check("lr", lr, 0, False)
    number = isinstance(boxed_fraction, (int, float)) and not isinstance(boxed_fraction, bool)
    if not number or not 0 <= boxed_fraction <= 1:
        raise WarmStartError(f"warm_start: key 'boxed_fraction' must be a number in [0, 1], got {boxed_fraction!r}")
    torch.manual_seed(seed)
    model, tokenizer = load_model(model_dir, device)
    examples = worked_examples(tokenizer, n_examples=n_examples, seed=seed, max_operand=max_operand,
                               operations=operations, apply_chat_template=apply_chat_template,
                               boxed_fraction=boxed_fraction)
    total_steps = max(1, round(epochs * len(examples) / batch_size))
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < total_steps * batch_size:
        passes = list(range(len(examples)))
        rng.shuffle(passes)
        order.extend(passes)
    device_ = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(total_steps):
        batch = [examples[i] for i in order[step * batch_size : (step + 1) * batch_size]]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (ids, n_prompt) in enumerate(batch):  # right padding: positions stay natural
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
            mask[row, : len(ids)] = 1
        out = model(input_ids=input_ids.to(device_), attention_mask=mask.to(device_), labels=labels.to(device_))
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(out.loss.detach()))
    model.eval()
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        special = Path(model_dir) / "special_tokens_map.json"  # transformers 5 no longer writes it; keep the start's
        if special.exists():
            shutil.copyfile(special, Path(tmp) / special.name)
    return {"loss_first": losses[0], "loss_last": losses[-1], "steps": float(total_steps)}
