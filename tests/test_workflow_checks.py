"""The workflow itself: lint-clean, formatted, and every shipped experiment dry-runs through Snakemake."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_helpers import ROOT, copy_repo, edit_config, planned_jobs, snakemake

BIN = Path(sys.executable).parent
EXPERIMENT_FILES = sorted((ROOT / "config" / "experiments").glob("*.yaml"))


def test_snakemake_lint_is_clean(tmp_path):
    proc = snakemake(copy_repo(tmp_path), "--lint", check=False)
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_snakefmt_check_passes():
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "rules/"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


REFUSED = "glm-z1-9b-1x5090-megatron"  # tests/fixtures: the Megatron recipe on one RTX 5090, which does not fit


def test_every_shipped_experiment_dry_runs_and_shares_downloads(tmp_path):
    assert EXPERIMENT_FILES, "no experiment files shipped"
    repo = copy_repo(tmp_path)
    experiments = {f.stem: {"extends": f"config/experiments/{f.name}"} for f in EXPERIMENT_FILES}
    edit_config(repo, lambda c: c["experiments"].update(experiments))
    jobs = planned_jobs(repo)
    n = len(experiments)
    # One rule per stage whatever the engine: the miles experiments and the demo (still there, untouched).
    assert jobs["train"] == n + 1 and jobs["preflight"] == n
    assert jobs["eval_base"] == n + 1 and jobs["eval_final"] == n + 1
    # One model download per model (GLM-Z1-9B, Qwen3-1.7B, Qwen3-4B) and one conversion for the GLM-Z1-9B Megatron
    # experiments (FSDP trains the HF weights); one fetch per dataset.
    assert jobs["fetch_model"] == 3 and jobs["convert_model"] == 1 and jobs["fetch_dataset"] == 2


def test_an_experiment_that_cannot_fit_stops_the_dry_run(tmp_path):
    repo = copy_repo(tmp_path)
    edit_config(repo, lambda c: c["experiments"].update({REFUSED: {"extends": f"tests/fixtures/{REFUSED}.yaml"}}))
    proc = snakemake(repo, "--dry-run", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"experiments.{REFUSED}: does not fit" in text and "what would fit" in text, text[-2000:]


@pytest.mark.parametrize("path", EXPERIMENT_FILES, ids=lambda p: p.stem)
def test_mileage_argv_prints_a_checked_command_line(path):
    proc = subprocess.run([str(BIN / "mileage"), "argv", str(path)], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    tokens = proc.stdout.splitlines()
    assert tokens[0].startswith("--") and "--rollout-batch-size" in tokens and "--load" in tokens
    assert tokens[tokens.index("--load") + 1] == tokens[tokens.index("--save") + 1]
