"""TRL GRPOTrainer log names -> miles' canonical metric names (docs/contracts.md).

TRL logs one dict per optimizer step (logging_steps=1). The rollout statistics (reward, completion
lengths) are computed when a generation batch is made, i.e. in the first optimizer step of each rollout,
so they land in that step's dict; everything else is per optimizer step.

| TRL key                         | canonical                  | note |
| ------------------------------- | -------------------------- | ---- |
| reward                          | rollout/raw_reward         | mean reward of the fresh samples |
| reward_std                      | rollout/raw_reward_std     | |
| frac_reward_zero_std            | rollout/zero_std_frac      | groups with no learning signal |
| completions/mean_length         | rollout/response_lengths   | mean tokens per response |
| completions/clipped_ratio       | rollout/truncated          | fraction hitting max_response_len |
| completions/* (others)          | rollout/<rest>             | min/max/terminated lengths |
| rewards/<func>/mean, /std       | rollout/rewards/<func>/... | the one reward function, per name |
| num_tokens                      | rollout/num_tokens         | tokens seen so far |
| loss                            | train/loss                 | |
| policy_loss                     | train/pg_loss              | |
| grad_norm                       | train/grad_norm            | before clipping |
| kl                              | train/kl_loss              | only when beta > 0 |
| entropy                         | train/entropy_loss         | mean per-token entropy |
| entropy_coef                    | train/entropy_coef         | |
| learning_rate                   | train/lr-pg_0              | |
| clip_ratio/region_mean          | train/pg_clipfrac          | tokens clipped either side |
| clip_ratio/* (others)           | train/clip_ratio/<rest>    | low/high detail |
| epoch                           | train/epoch                | |
| step_time                       | (summed per rollout)       | -> perf/step_time |
| anything else                   | train/<name>               | kept, prefixed by kind |

perf/step_time (generation + update of one rollout), perf/rollout_time (generation and scoring) and
perf/actor_train_time (their difference) are measured by the engine per rollout.
"""

from __future__ import annotations

ROLLOUT_KEYS: dict[str, str] = {
    "reward": "rollout/raw_reward",
    "reward_std": "rollout/raw_reward_std",
    "frac_reward_zero_std": "rollout/zero_std_frac",
    "completions/mean_length": "rollout/response_lengths",
    "completions/clipped_ratio": "rollout/truncated",
    "num_tokens": "rollout/num_tokens",
}
TRAIN_KEYS: dict[str, str] = {
    "loss": "train/loss",
    "policy_loss": "train/pg_loss",
    "grad_norm": "train/grad_norm",
    "kl": "train/kl_loss",
    "entropy": "train/entropy_loss",
    "entropy_coef": "train/entropy_coef",
    "learning_rate": "train/lr-pg_0",
    "clip_ratio/region_mean": "train/pg_clipfrac",
    "epoch": "train/epoch",
}
# Trainer summary keys logged once at the end of training (train_runtime, ...): not per-step metrics.
IGNORED_PREFIXES: tuple[str, ...] = ("train_", "total_flos")
STEP_TIME_KEY = "step_time"


def canonical_name(trl_key: str) -> tuple[str, str] | None:
    """(kind, canonical name) for one TRL log key, or None for keys that are not metrics."""
    if trl_key == STEP_TIME_KEY or trl_key.startswith(IGNORED_PREFIXES):
        return None
    if trl_key in ROLLOUT_KEYS:
        return "rollout", ROLLOUT_KEYS[trl_key]
    if trl_key in TRAIN_KEYS:
        return "train", TRAIN_KEYS[trl_key]
    if trl_key.startswith("completions/"):
        return "rollout", "rollout/" + trl_key.removeprefix("completions/")
    if trl_key.startswith("rewards/"):
        return "rollout", "rollout/" + trl_key
    if trl_key.startswith("clip_ratio/"):
        return "train", "train/" + trl_key
    return "train", "train/" + trl_key


def split_logs(logs: dict) -> dict[str, dict[str, float]]:
    """Group one TRL log dict into {kind: {canonical name: value}}; non-numeric values are dropped."""
    out: dict[str, dict[str, float]] = {"rollout": {}, "train": {}}
    for key, value in logs.items():
        named = canonical_name(key)
        if named is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        kind, name = named
        out[kind][name] = value
    return out
