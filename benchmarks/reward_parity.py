"""Parity of mileage's `deepscaler` with miles' own deepscaler code on the graded pairs of
../shared/miles/reward-parity/, per wrapper and answer form, and the mean time per call on this machine.

Usage: .venv/bin/python benchmarks/reward_parity.py [FIXTURE]
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path

from mileage.rewards import deepscaler

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "miles" / "reward-parity" / "deepscaler-v0.1.0.jsonl"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    deepscaler("</think> \\boxed{\\sqrt{4}}", "\\sqrt{4}")  # start the symbolic worker outside the timing
    start = time.perf_counter()
    wrong = [r for r in rows if deepscaler(r["response"], r["label"]) != r["miles_deepscaler"]]
    elapsed = time.perf_counter() - start
    print(f"parity: {len(rows) - len(wrong)} / {len(rows)} pairs agree ({100 * (1 - len(wrong) / len(rows)):.2f}%)")
    for field in ("wrapper", "form"):
        counts = collections.Counter(r[field] for r in wrong)
        print(f"disagreeing by {field}: " + (", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"))
    print(f"mean time per call: {1e3 * elapsed / len(rows):.3f} ms "
          f"(this machine, {os.cpu_count()} CPUs; machine-specific; first pass, no cache)")


if __name__ == "__main__":
    main()
