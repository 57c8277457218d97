"""Running the real pipeline in a scratch copy of the repository, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

# Sentinel credentials in the environment of the session's demo run (tests/conftest.py): no file it writes may
# hold them. test_short_runs_e2e sets the same ones, so its scan of a copied tree covers the shared run's files too.
DEMO_SECRETS = {"HF_TOKEN": "hf_mileageTestSecret0123456789", "WANDB_API_KEY": "wandbMileageTestSecret9876543210"}


def copy_repo(dest: Path) -> Path:
    """Copy the files git would ship (tracked and untracked-not-ignored) to `dest`."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def copy_finished(src: Path, dest: Path) -> Path:
    """A copy of a repo whose pipeline has run: its files, results/ and Snakemake's metadata (.snakemake/), every
    mtime kept, so that Snakemake sees the copy as finished as the original (a dry run plans nothing)."""
    shutil.copytree(src, dest, symlinks=True, copy_function=shutil.copy2)
    return dest


def keep_only_caches(repo: Path) -> None:
    """Forget every run of a finished tree (its training, evaluations, reports, the comparison) and keep the
    shared caches keyed by content (results/cache: the demo model, data, warm start, base evaluations), so the
    next run trains from scratch without building those again."""
    for path in (repo / "results").iterdir():
        if path.name != "cache":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def edit_config(repo: Path, edit) -> None:
    path = repo / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    edit(config)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(repo: Path, *args: str, timeout: int = 1200, check: bool = True,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`snakemake --cores 2 ARGS` in `repo`; `env` adds to (or overrides) this process's environment."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", **(env or {})}
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def planned_jobs(repo: Path) -> dict[str, int]:
    """What a dry run would run: rule name -> job count (empty when nothing is to be done)."""
    proc = snakemake(repo, "--dry-run")
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    table = text.split("Job stats:")[1]
    jobs = {}
    for line in table.splitlines()[3:]:
        match = re.match(r"^(\S+)\s+(\d+)$", line.strip())
        if not match or match.group(1) == "total":
            break
        jobs[match.group(1)] = int(match.group(2))
    return jobs


# ---- a training run as it goes: its rollouts, checkpoints and job processes ----------------------------------------

def rollout_steps(events: Path) -> list[int]:
    """The rollout ids of a run's events.jsonl, in file order."""
    steps = []
    for line in events.read_text().splitlines():
        if line.strip():
            event = json.loads(line)
            if event["kind"] == "rollout":
                steps.append(event["step"])
    return steps


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").glob("checkpoint-*"))


def job_processes(spec: Path) -> list[psutil.Process]:
    """The live processes of the local training job of the run whose job spec is `spec` (the lifeline and the
    trainer), not another pipeline's on the same machine."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "mileage.engines.local.job" in cmdline and str(spec) in cmdline:
            found.append(proc)
    return found
