"""Sample k answers per problem with Hugging Face `generate` and grade them into per-sample records.

Used by the base and final evaluation rules (`evaluate_model`) and by the local engine's in-training
evaluation (`sample_records` on the live model). Sampling runs under a forked torch RNG seeded from
`seed`, so it is reproducible and leaves the caller's random state (a training run's) untouched.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

from mileage.data.problems import Problem, prompt_text, read_problems
from mileage.evaluation.records import make_record, write_records

# Rows (problem x sample) per generate call: large enough to keep a CPU busy, small enough for a GPU.
DEFAULT_BATCH_ROWS = 256


class SamplingError(ValueError):
    """Bad sampling parameters (names the offending argument)."""


@dataclass(frozen=True)
class Completion:
    text: str
    length: int  # generated tokens, the end-of-turn token included
    truncated: bool  # hit max_new_tokens before an end-of-turn token


def prompt_ids(tokenizer, problem: Problem, apply_chat_template: bool) -> list[int]:
    """Token ids of a problem's prompt, rendered the way training renders it."""
    if apply_chat_template:
        messages = problem.prompt if isinstance(problem.prompt, list) else [{"role": "user", "content": problem.prompt}]
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
        return list(rendered["input_ids"])
    return list(tokenizer(prompt_text(problem), add_special_tokens=False)["input_ids"])


def end_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the tokenizer's eos and the model's generation-config eos ids."""
    ids = model.generation_config.eos_token_id
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.insert(0, tokenizer.eos_token_id)
    return ids


def generate_completions(
    model,
    tokenizer,
    prompts: Sequence[list[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
) -> list[Completion]:
    """One sampled completion per prompt (left-padded batch); temperature 0 means greedy."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    longest = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    attention = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, longest - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention[row, longest - len(ids):] = 1
    device = next(model.parameters()).device
    ends = end_token_ids(model, tokenizer)
    sampling = {"do_sample": True, "temperature": temperature, "top_p": top_p, "top_k": 0} if temperature > 0 else {
        "do_sample": False
    }
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            eos_token_id=ends,
            pad_token_id=pad_id,
            **sampling,
        )
    if was_training:
        model.train()
    completions = []
    for row in out[:, longest:].cpu().tolist():
        stop = next((i for i, tok in enumerate(row) if tok in ends), None)
        kept = row if stop is None else row[: stop + 1]
        text = tokenizer.decode(kept, skip_special_tokens=True)
        completions.append(Completion(text=text, length=len(kept), truncated=stop is None))
    return completions


def sample_records(
    model,
    tokenizer,
    problems: Sequence[Problem],
    *,
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    reward: str,
    apply_chat_template: bool,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = True,
    desc: str = "eval",
) -> list[dict[str, Any]]:
    """`n_samples` graded records per problem, problem by problem, sample index within problem."""
    import torch
    from tqdm.auto import tqdm

    for key, value, low in (("n_samples", n_samples, 1), ("max_new_tokens", max_new_tokens, 1)):
        if not isinstance(value, int) or value < low:
            raise SamplingError(f"sampling: {key} must be an integer >= {low}, got {value!r}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise SamplingError(f"sampling: need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
    per_batch = max(1, batch_rows // n_samples)
    records: list[dict[str, Any]] = []
    devices = [next(model.parameters()).device] if next(model.parameters()).is_cuda else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with tqdm(total=len(problems), desc=desc, unit="problem", disable=not progress) as bar:
            for start in range(0, len(problems), per_batch):
                chunk = problems[start : start + per_batch]
                ids = [prompt_ids(tokenizer, p, apply_chat_template) for p in chunk]
                rows = [i for i in ids for _ in range(n_samples)]
                completions = generate_completions(
                    model, tokenizer, rows, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p
                )
                for index, completion in enumerate(completions):
                    problem = chunk[index // n_samples]
                    records.append(
                        make_record(
                            problem.id, index % n_samples, problem.label, completion.text,
                            completion.length, completion.truncated, reward,
                        )
                    )
                bar.update(len(chunk))
    return records


def resolve_device(device: str) -> str:
    """`auto` -> cuda when present, else cpu; `cuda` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SamplingError("resources.device is 'cuda' but torch sees no CUDA device")
    if device not in ("cpu", "cuda"):
        raise SamplingError(f"resources.device must be auto, cpu or cuda, got {device!r}")
    return device


def load_model(model_path: str | os.PathLike, device: str):
    """Model (eval mode, float32 on CPU) and left-padding tokenizer from an HF directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    dtype = torch.float32 if device == "cpu" else "auto"
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(device)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_path), padding_side="left")
    return model, tokenizer


def evaluate_model(
    model_path: str | os.PathLike,
    problems_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    n_samples: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    reward: str,
    apply_chat_template: bool,
    device: str = "auto",
) -> list[dict[str, Any]]:
    """Sample `n_samples` answers per problem of `problems_path`, write every graded sample to `out_path`."""
    model, tokenizer = load_model(model_path, device)
    problems = read_problems(problems_path)
    records = sample_records(
        model, tokenizer, problems, n_samples=n_samples, max_new_tokens=max_new_tokens, temperature=temperature,
        top_p=top_p, seed=seed, reward=reward, apply_chat_template=apply_chat_template,
    )
    write_records(out_path, records)
    return records
