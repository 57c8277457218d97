"""What the local engine's training job prints: one line per rollout and each warning once; TRL's metric dicts,
library log records and FutureWarnings go to the run's details log only."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from mileage.engines.local.console import DETAILS_NAME, rollout_line

ROOT = Path(__file__).resolve().parents[1]


def test_one_line_per_rollout_says_step_reward_eval_and_time():
    assert rollout_line(9, 30, 0.5123, {"arith": 0.5625}, 3.94) == (
        "[mileage] rollout 10/30  reward 0.512  eval arith 0.562  3.9 s")
    assert rollout_line(0, 30, None, {}, 12.0) == "[mileage] rollout 1/30  reward -  12.0 s"


def test_warnings_once_future_warnings_and_library_logs_only_in_the_details_log(tmp_path):
    script = textwrap.dedent(f"""
        import logging, warnings
        from mileage.engines.local.console import route_output
        details = route_output({str(tmp_path)!r})
        for _ in range(3):
            warnings.warn("`gradient_checkpointing` is deprecated", FutureWarning)
            warnings.warn("the eval set has 2 problems", UserWarning)
            logging.getLogger("transformers.trainer").warning("could not estimate the number of tokens")
        details.metrics(1, {{"loss": 0.5, "reward": 0.25}})
        logging.getLogger("trl").error("generation failed")
        print("[mileage] rollout 1/30  reward 0.250  1.0 s")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    shown = (done.stdout + done.stderr).splitlines()
    assert [line for line in shown if "eval set has 2 problems" in line] == [
        f"[mileage] warning: the eval set has 2 problems (once; every warning is in {tmp_path / DETAILS_NAME})"]
    assert not [line for line in shown if "FutureWarning" in line or "deprecated" in line]
    assert not [line for line in shown if "estimate the number of tokens" in line or "'loss'" in line]
    assert "[mileage] trl: generation failed" in shown  # errors reach the terminal
    kept = (tmp_path / DETAILS_NAME).read_text()
    assert "FutureWarning: `gradient_checkpointing` is deprecated" in kept
    assert "could not estimate the number of tokens" in kept and '"loss": 0.5' in kept
