"""The FSDP memory plan of every 1 x RTX 5090 experiment, as the README's table.

Arithmetic from the model shapes (mileage/engines/miles/plan_fsdp.py), not a measurement: no miles run on an
RTX 5090 is behind these figures. Run: .venv/bin/python benchmarks/plan_1x5090.py
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mileage.config import load_experiment  # noqa: E402
from mileage.engines.miles.plan import estimate_memory  # noqa: E402

EXPERIMENTS = ["qwen3-1_7b-1x5090", "qwen3-4b-1x5090", "glm-z1-9b-1x5090"]


def row(name: str) -> str:
    exp = load_experiment(str(REPO / "config" / "experiments" / f"{name}.yaml"), REPO / "config" / "config.yaml")[1]
    plan = estimate_memory(exp, name=name)
    by = {p.name: p.total for p in plan.phases}
    train = max(v for k, v in by.items() if k.startswith("train:"))
    other = copy.deepcopy(exp)
    fp32 = other["miles"]["fsdp"]["keep_fp32_master"]
    other["miles"]["fsdp"]["keep_fp32_master"] = not fp32
    alt = estimate_memory(other, name=name, host_memory_gb=1024).host_total_gib
    host_fp32, host_bf16 = (plan.host_total_gib, alt) if fp32 else (alt, plan.host_total_gib)
    return (f"| `{name}` | {plan.parameter_count / 1e9:.2f}B | {'fp32' if fp32 else 'bf16'} | "
            f"{by['rollout phase']:.1f} | {by['initialisation (rank 0 loads its shard on the GPU)']:.1f} | "
            f"{train:.1f} @ {exp['miles']['max_tokens_per_gpu']} | {plan.gpu_peak_gib:.1f} / {plan.gpu_memory_gib} | "
            f"{plan.host_total_gib:.0f} / {plan.host_memory_gib:.0f} | {host_fp32:.0f} / {host_bf16:.0f} | "
            f"{'fits' if plan.fits else 'DOES NOT FIT'} |")


if __name__ == "__main__":
    print("machine-independent arithmetic (mileage plan), GiB per GPU / GiB host; not measured")
    print("| experiment | params | master | rollout | init | training @ tokens | peak / GPU | host / stated | "
          "host fp32 / bf16 | verdict |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in EXPERIMENTS:
        print(row(name))
