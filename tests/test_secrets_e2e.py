"""One secrets policy through a whole demo run: HF_TOKEN and WANDB_API_KEY sentinels in Snakemake's environment
reach no file under results/ or .snakemake/, nor the Ray job's recorded info or Ray's own logs, nor the trainer's
environment (the demo does not track with W&B, so no job needs either). Then results_dir moves: the dry run plans
nothing (caches are keyed by content, not place).

The run starts from a copy of the session's finished demo (tests/conftest.py) with its runs forgotten and its
caches kept: the demo model, data, warm start and base evaluation were built by the session's run, with the same
sentinels in its environment, so the scan of the whole copied tree covers those jobs too."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from pipeline_helpers import DEMO_SECRETS, SNAKEMAKE, edit_config, keep_only_caches, planned_jobs

pytestmark = pytest.mark.slow

HF, WANDB = DEMO_SECRETS["HF_TOKEN"], DEMO_SECRETS["WANDB_API_KEY"]
HEAD_LINE = re.compile(r"ray: starting a head on \S+, dashboard (http://\S+), temp dir (\S+)")


def shorten(config: dict) -> None:
    demo = config["experiments"]["demo"]
    demo["rollout"]["num_rollout"] = 4
    demo["eval"]["interval"] = 2  # the warm start is kept on (the shared one): its cache is one a move must keep


def files_with(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            hits += [f"{path}: {n.decode()}" for n in needles if n in data]
    return hits


def watch_the_job(repo: Path, proc: subprocess.Popen) -> dict:
    """While training runs: the Ray job's info as the job API records it, hits in Ray's temp dir, and the trainer's
    environment (read before the head and its logs are gone)."""
    log = repo / "results" / "demo" / "logs" / "train.log"
    seen: dict = {}
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None:
        text = log.read_text(errors="replace") if log.exists() else ""
        match = HEAD_LINE.search(text)
        trainers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _is_trainer(p, repo)]
        if match and trainers:
            url, temp_dir = match.group(1), Path(match.group(2))
            token = (temp_dir / "auth_token").read_text()
            request = urllib.request.Request(f"{url}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, timeout=10) as resp:
                seen["jobs"] = resp.read()
            seen["trainer_env"] = (trainers[0] / "environ").read_bytes()
            seen["ray_files"] = files_with(temp_dir, [HF.encode(), WANDB.encode()])
            return seen
        time.sleep(0.5)
    pytest.fail(f"never saw the training job (exit {proc.poll()})")


def _is_trainer(proc_dir: Path, repo: Path) -> bool:
    """This run's trainer (its job spec lies in `repo`), not another pipeline's on the same machine."""
    try:
        cmd = (proc_dir / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (b"mileage.engines.local.job" in cmd and b"mileage.launch.lifeline" not in cmd
            and any(arg.startswith(str(repo).encode() + b"/") for arg in cmd))


def test_sentinel_secrets_reach_nothing_and_a_moved_results_dir_rebuilds_nothing(demo_copy, tmp_path):
    repo = demo_copy
    keep_only_caches(repo)
    edit_config(repo, shorten)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_TOKEN": HF, "WANDB_API_KEY": WANDB}
    out = tmp_path / "snakemake.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen([SNAKEMAKE, "--cores", "2"], cwd=repo, env=env,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        seen = watch_the_job(repo, proc)
        assert proc.wait(timeout=1800) == 0, out.read_text()[-4000:]
    finally:
        proc.kill()

    jobs = json.loads(seen["jobs"])
    assert jobs and all("entrypoint" in job for job in jobs)  # the job API answered with the job we ran
    for needle in (HF, WANDB):
        assert needle.encode() not in seen["jobs"]
        assert needle.encode() not in seen["trainer_env"]
    assert b"HF_TOKEN=" not in seen["trainer_env"] and b"WANDB_API_KEY=" not in seen["trainer_env"]
    assert seen["ray_files"] == []
    needles = [HF.encode(), WANDB.encode()]
    assert files_with(repo / "results", needles) == []
    assert files_with(repo / ".snakemake", needles) == []
    assert HF not in out.read_text() and WANDB not in out.read_text()

    # Move results_dir: every cache, training and report is found where it moved; nothing is planned.
    shutil.move(repo / "results", repo / "moved-results")
    edit_config(repo, lambda config: config.update(results_dir="moved-results"))
    assert planned_jobs(repo) == {}
