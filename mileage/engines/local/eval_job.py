"""Ray job entrypoint of the local engine's evaluation: `python -m mileage.engines.local.eval_job SPEC_JSON`.

SPEC_JSON holds evaluate_model's arguments ({"model_path", "problems_path", "out_path", "n_samples",
"max_new_tokens", "temperature", "top_p", "seed", "reward", "apply_chat_template", "device"}); `out_path` is
the one eval-samples layout (`<work>/eval_samples/<dataset>/rollout_0.jsonl`, mileage.engines.contract).
"""

from __future__ import annotations

import sys

from mileage.engines.local.entrypoint import job_spec_argument


def main(argv: list[str] | None = None) -> int:
    spec_path = job_spec_argument(argv, "mileage.engines.local.eval_job")
    if spec_path is None:
        return 2
    from mileage.engines.local.grpo import load_spec
    from mileage.engines.local.sampling import evaluate_model

    spec = load_spec(spec_path)
    records = evaluate_model(spec.pop("model_path"), spec.pop("problems_path"), spec.pop("out_path"), **spec)
    mean = sum(r["reward"] for r in records) / max(len(records), 1)
    print(f"[mileage] {len(records)} samples, avg@k {mean:.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
