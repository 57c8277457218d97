"""miles' eval log hook: every evaluation sample out of a miles run, as per-sample records.

Passed as `--custom-eval-rollout-log-function-path mileage.engines.miles.eval_hook.log_eval_samples`; miles
calls it in its rollout process after each evaluation as `f(rollout_id, args, data, extra_metrics)` with
`data = {name: {"rewards": [...], "truncated": [...], "samples": [Sample, ...]}}` (FACTS section 5). It writes
`$MILEAGE_EVAL_SAMPLES_DIR/<name>/rollout_<rollout_id>.jsonl` (docs/contracts.md) and returns False so miles
still logs its own `eval N: {...}` line. It must not import miles (only the duck-typed samples reach it).

Which problem a sample belongs to: ASSUMED from miles' eval loop, which makes n_samples_per_eval_prompt
copies of each prompt in dataset order and numbers them `.index` = problem position x n + sample number,
sorting the results by it. The problem id is the `id` of that row of the eval file when the file can be read
(the pipeline's normalised JSONL has one), else `<name>-<position>`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from mileage.evaluation.records import validate_record, write_records
from mileage.engines.miles.reward_hook import REWARD_ENV
from mileage.rewards import extract_answer, get_reward, requires_think

log = logging.getLogger(__name__)

EVAL_SAMPLES_ENV = "MILEAGE_EVAL_SAMPLES_DIR"
EVAL_REWARD_ENV = REWARD_ENV  # one variable names the job's reward rule, for this hook and the reward hook
DEFAULT_REWARD = "deepscaler"


class EvalHookError(RuntimeError):
    """The hook cannot place its records (no output directory configured)."""


def _status_name(status: Any) -> str:
    """A Sample.Status (an Enum in miles), its value, or a plain string, as a lower-case name."""
    for attr in ("name", "value"):
        value = getattr(status, attr, None)
        if isinstance(value, str):
            return value.lower()
    return str(status).rsplit(".", 1)[-1].lower()


def is_truncated(sample: Any) -> bool:
    """Cut off at the length limit (status TRUNCATED); an aborted request counts too (it has no full answer)."""
    return _status_name(getattr(sample, "status", "")) in {"truncated", "aborted"}


def eval_file_ids(args: Any, name: str) -> list[str] | None:
    """The `id` column of dataset `name`'s eval file (from `args.eval_prompt_data`, pairs of name and path)."""
    pairs = getattr(args, "eval_prompt_data", None) or []
    path = None
    for i in range(0, len(pairs) - 1, 2):
        if pairs[i] == name:
            path = pairs[i + 1]
    if path is None or not Path(path).is_file():
        return None
    ids: list[str] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    ids.append(str(row["id"]) if isinstance(row, dict) and "id" in row else None)
    except (OSError, ValueError):
        return None
    return ids if all(i is not None for i in ids) else None


def _as_float(value: Any) -> float | None:
    if isinstance(value, Mapping):  # some reward models return a dict; miles' eval metric uses its "score"
        value = value.get("score")
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def sample_records(name: str, samples: Sequence[Any], truncated: Sequence[Any] | None, n_per_problem: int,
                   ids: list[str] | None, reward_name: str) -> list[dict[str, Any]]:
    """Per-sample records of one dataset's eval samples."""
    need_think = requires_think(reward_name)
    get_reward(reward_name)  # an unknown reward name is an error even when every sample has its reward
    records = []
    for position, sample in enumerate(samples):
        index = getattr(sample, "index", None)
        index = index if isinstance(index, int) and index >= 0 else position
        problem, number = divmod(index, max(1, n_per_problem))
        problem_id = ids[problem] if ids is not None and problem < len(ids) else f"{name}-{problem}"
        response = str(getattr(sample, "response", "") or "")
        label = str(getattr(sample, "label", "") or "")
        reward = _as_float(getattr(sample, "reward", None))
        if reward is None:
            # An errored or aborted sample: miles counts it 0.0 in eval/<name> (FACTS section 5), so the records
            # do too, and avg@k equals miles' own metric. Never re-graded here.
            reward = 0.0
        cut = is_truncated(sample)
        if truncated is not None and len(truncated) == len(samples):
            cut = bool(truncated[position])
        length = getattr(sample, "response_length", None)
        record = {
            "problem_id": problem_id,
            "sample_index": number,
            "label": label,
            "extracted_answer": extract_answer(response, require_think=need_think),
            "reward": reward,
            "response_length": int(length) if length is not None else 0,
            "truncated": cut,
            "response": response,
        }
        validate_record(record, f"eval sample {position} of {name}")
        records.append(record)
    return records


def log_eval_samples(rollout_id: int, args: Any, data: Mapping[str, Any], extra_metrics: Any = None) -> bool:
    """miles' custom eval log function: write each dataset's samples, return False (miles logs as usual)."""
    out_dir = os.environ.get(EVAL_SAMPLES_ENV)
    if not out_dir:
        raise EvalHookError(f"{EVAL_SAMPLES_ENV} is not set: the Ray job's runtime env must name where eval "
                            f"samples go (mileage.engines.miles.runtime_env sets it)")
    reward_name = os.environ.get(EVAL_REWARD_ENV, DEFAULT_REWARD)
    n_per_problem = int(getattr(args, "n_samples_per_eval_prompt", 1) or 1)
    for name, result in data.items():
        samples = list(result.get("samples") or [])
        truncated = result.get("truncated")
        records = sample_records(name, samples, truncated, n_per_problem, eval_file_ids(args, name), reward_name)
        path = Path(out_dir) / name / f"rollout_{int(rollout_id)}.jsonl"
        write_records(path, records)
        log.info("eval samples of %s at rollout %s: %d records -> %s", name, rollout_id, len(records), path)
    return False
