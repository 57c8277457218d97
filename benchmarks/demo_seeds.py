"""The demo with three replicate seeds vs the single-seed demo, each from scratch (empty results) in its own copy of
the repository. Target: the three seeds take at most 3x the single seed's wall time (the demo model, warm start,
datasets and base evaluation are built once and shared; the three trainings are queued within the cores).

Usage: python benchmarks/demo_seeds.py [--seeds 1 2 3] [--cores 2] [--keep]
Prints both wall times and the ratio. Machine-specific figures: they depend on this machine's cores and load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from pipeline_helpers import copy_repo  # noqa: E402  (the files git would ship, as the e2e tests copy them)

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
TARGET = 3.0


def run_demo(workdir: Path, seeds: list[int] | None, cores: int) -> float:
    repo = copy_repo(workdir)
    if seeds is not None:
        config_path = repo / "config" / "config.yaml"
        config = yaml.safe_load(config_path.read_text())
        config["experiments"]["demo"]["seeds"] = seeds
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    start = time.perf_counter()
    proc = subprocess.run([SNAKEMAKE, "--cores", str(cores)], cwd=repo, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"snakemake failed in {repo} after {elapsed:.0f} s:\n{proc.stderr[-4000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the two copies (their results) for inspection")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mileage-seeds-"))
    try:
        single = run_demo(tmp / "single", None, args.cores)
        print(f"single seed: {single:.0f} s", flush=True)
        replicated = run_demo(tmp / "seeds", args.seeds, args.cores)
        print(f"seeds {args.seeds}: {replicated:.0f} s", flush=True)
        ratio = replicated / single
        verdict = "meets" if ratio <= TARGET else "misses"
        print(f"ratio {ratio:.2f}x ({verdict} the target of at most {TARGET:g}x; "
              f"machine-specific: --cores {args.cores} on this machine)")
        summary = json.loads((tmp / "seeds" / "results" / "demo" / "report" / "summary.json").read_text())
        k = summary["k"]
        final = summary["final"]["metrics"][f"avg@{k}"]
        print(f"aggregate final avg@{k} = {final['value']:.3f}, 95% CI across seeds {final['ci95']}, "
              f"per seed {final['per_seed']}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
