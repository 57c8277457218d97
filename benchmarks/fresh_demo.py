"""`make demo` on a fresh clone: install time and pipeline time, separately. Targets: all under 25 min,
the pipeline under 5 (aim 3). Also times `make test` when given --test (target: under 15 min, issue 14).

Usage: python3 benchmarks/fresh_demo.py [--test] [--keep]   (clones the committed HEAD into a temp dir)
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed after {elapsed:.0f} s:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test", action="store_true", help="also time `make test` in the same clone")
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mileage-fresh-"))
    clone = tmp / "mileage"
    run(["git", "clone", "--quiet", str(ROOT), str(clone)], tmp)
    shutil.copytree(ROOT.parent / "shared", tmp / "shared") if (ROOT.parent / "shared").is_dir() else None
    install, _ = run(["make", "install"], clone)
    pipeline, _ = run(["make", "demo"], clone)
    summary = (clone / "results" / "demo" / "report" / "summary.json").read_text()
    k = re.search(r'"k": (\d+)', summary).group(1)
    print(f"install (fresh .venv): {install / 60:.1f} min")
    print(f"pipeline (make demo after install): {pipeline / 60:.1f} min (target < 5, aim 3)")
    print(f"make demo in all: {(install + pipeline) / 60:.1f} min (target < 25); eval k = {k}")
    if args.test:
        elapsed, out = run(["make", "test"], clone)
        outcome = re.findall(r"^=+ (.*(?:passed|failed).*) =+$", out, flags=re.M)
        print(f"make test (dev extras + suite): {elapsed / 60:.1f} min (target < 15); {outcome[-1] if outcome else '?'}")
    if args.keep:
        print(f"clone kept in {clone}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
