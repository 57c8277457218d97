"""How long the local trainer's imports take at the start of every training and every resume, with W&B settled
first (mileage.engines.local.wandb_import: hidden when tracking is off, imported before torch when on) and without
(TRL importing wandb after torch and transformers). Each case is a fresh interpreter, run --repeat times; the
median and range are printed. The times are machine-specific (and load-specific); the ordering is the point.

    .venv/bin/python benchmarks/trainer_start.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

IMPORTS = "from trl import GRPOConfig, GRPOTrainer; from transformers import AutoTokenizer"
CASES = {
    "as TRL does it (wandb after torch)": IMPORTS,
    "W&B off: settle_wandb(False)": f"from mileage.engines.local.wandb_import import settle_wandb; "
                                    f"settle_wandb(False); {IMPORTS}",
    "W&B on: settle_wandb(True)": f"from mileage.engines.local.wandb_import import settle_wandb; "
                                  f"settle_wandb(True); {IMPORTS}",
}


def timed(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"trainer imports, fresh interpreter, {args.repeat} runs each (this machine, its load now):")
    for name, code in CASES.items():
        times = [timed(code) for _ in range(args.repeat)]
        print(f"  {name:<38} median {statistics.median(times):5.1f} s  (min {min(times):.1f}, max {max(times):.1f})")


if __name__ == "__main__":
    main()
