"""The README's "After a crash", run for real: Ctrl-C needs nothing; after Snakemake itself was SIGKILLed the
same command stops on Snakemake's directory lock, and `snakemake --unlock` then the same command finishes,
resuming from the last checkpoint, with nothing deleted on the way. It starts from a copy of the session's
finished demo (tests/conftest.py) with its runs forgotten and its caches (demo model and data) kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_helpers import SNAKEMAKE, edit_config, keep_only_caches, snakemake
from test_resume_e2e import TARGET, checkpoints, job_processes, rollout_steps

pytestmark = pytest.mark.slow

NUM_ROLLOUT = 8
LOCKED = "Directory cannot be locked"
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def shorten(config: dict) -> None:
    demo = config["experiments"]["demo"]
    demo["warm_start"]["enabled"] = False  # not what is tested here, and half the time
    demo["rollout"]["num_rollout"] = NUM_ROLLOUT
    demo["train"]["save_interval"] = 1
    demo["eval"]["interval"] = 4


def start(repo: Path, log: Path) -> subprocess.Popen:
    """The same command as pipeline_helpers.snakemake(repo, TARGET), in its own process group, like a
    terminal's foreground job: with SIGINT's default action, which a background job of a non-interactive shell
    (`make test &`, nohup) would otherwise pass down as ignored, so that no Ctrl-C ever reached Snakemake."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [SNAKEMAKE, "--cores", "2", TARGET], cwd=repo, env=ENV, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def signal_group_after_checkpoint(proc: subprocess.Popen, repo: Path, sig: int, log: Path) -> list[str]:
    """Once training has saved a checkpoint this run did not start with, send `sig` to Snakemake's process
    group; return the checkpoints there were then."""
    run = repo / "results" / "demo" / "run"
    before = set(checkpoints(run)) if run.is_dir() else set()
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if run.is_dir() and set(checkpoints(run)) - before and job_processes((run / "job.json").resolve()):
            saved = checkpoints(run)
            os.killpg(proc.pid, sig)
            proc.wait(timeout=180)
            return saved
        time.sleep(0.2)
    pytest.fail(f"never saw a new checkpoint while the job ran (exit {proc.poll()}):\n{log.read_text()[-3000:]}")


def training_gone(spec: Path, timeout_s: float = 60) -> bool:
    deadline = time.time() + timeout_s
    while job_processes(spec) and time.time() < deadline:
        time.sleep(0.5)
    return not job_processes(spec)


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_after_ctrl_c_and_after_a_kill_the_readme_commands_recover(demo_copy, tmp_path):
    repo = demo_copy
    keep_only_caches(repo)
    edit_config(repo, shorten)
    run = repo / "results" / "demo" / "run"
    spec = (run / "job.json").resolve()

    # Ctrl-C (SIGINT to the whole group): Snakemake cleans up and releases its lock; nothing special to do.
    proc = start(repo, tmp_path / "ctrl-c.log")
    signal_group_after_checkpoint(proc, repo, signal.SIGINT, tmp_path / "ctrl-c.log")
    assert proc.returncode != 0, (  # what Snakemake and the train job said, should an interrupt ever go unheeded
        (tmp_path / "ctrl-c.log").read_text()[-4000:] + "\n--- train.log ---\n"
        + (repo / "results" / "demo" / "logs" / "train.log").read_text(errors="replace")[-4000:])
    assert training_gone(spec)

    # The same command again runs (no lock left); this time Snakemake itself is SIGKILLed with its jobs.
    proc = start(repo, tmp_path / "kill.log")
    saved = signal_group_after_checkpoint(proc, repo, signal.SIGKILL, tmp_path / "kill.log")
    assert proc.returncode == -signal.SIGKILL
    # Training is a Ray job, outside Snakemake's group; it dies with the Ray head, which dies with its parent.
    assert training_gone(spec), "training outlived the killed Snakemake"

    # The same command now stops on Snakemake's lock, and says how to remove it.
    proc = snakemake(repo, TARGET, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and LOCKED in text and "--unlock" in text, text[-3000:]

    # README: `snakemake --unlock`, exactly; it deletes nothing (outputs, logs, the run dir and its checkpoints).
    files = files_under(repo / "results")
    unlock = subprocess.run([SNAKEMAKE, "--unlock"], cwd=repo, env=ENV, capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    assert files_under(repo / "results") == files
    assert set(saved) <= set(checkpoints(run))

    # No --rerun-incomplete is needed, even without the profile (which sets it): Snakemake marked the killed
    # job's outputs incomplete, but every output is written atomically, so none of them exists.
    assert list((repo / ".snakemake" / "incomplete").iterdir())
    dry = snakemake(repo, "--workflow-profile", "none", "--dry-run", TARGET)
    assert "incomplete" not in (dry.stdout + dry.stderr).lower()

    # README: then the same command. It finishes, resuming from the last checkpoint.
    snakemake(repo, TARGET)
    assert (repo / TARGET).is_file()
    assert "[mileage] resuming from" in (run / "job.log").read_text()
    assert rollout_steps(repo / "results" / "demo" / "train" / "events.jsonl") == list(range(NUM_ROLLOUT))
    assert set(saved) <= set(checkpoints(run))
