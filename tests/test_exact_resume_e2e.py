"""A long run's life, through Snakemake: interrupted at four moments in four ways, then the same command again each
time (and, after Snakemake itself was SIGKILLed, the README's `snakemake --unlock` first), it ends with the same
rollout, train and eval TSVs, eval samples and summary, byte for byte, as one that was never interrupted.

On the way it checks what a user of a long run relies on: Ctrl-C needs nothing; a killed Snakemake leaves its lock,
which `--unlock` removes deleting nothing; each rerun resumes from the last checkpoint, keeps every checkpoint and
trains no rollout twice; `mileage status` sees the run train and fail; every attempt is recorded and provenance sums
them; the resumed run prints one line per rollout it trains. Then: a forced rerun of the finished training trains
nothing; a smaller num_rollout ends at its checkpoint, one with no checkpoint there and a changed training config
start afresh, the old run kept aside.

One interrupted chain, not one run per moment: each moment still kills the trainer where it stands, and a resume
that is not exact at any of them shows in the final outputs (which attempt did what is in the failure message).
The uninterrupted run is the session's finished demo (tests/conftest.py; two builds of it, in other directories
and at other times, are byte-identical); the chain trains the same shipped config from scratch in a copy of it,
its training forgotten and its caches (demo model, data, warm start, base evaluation) kept.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from mileage.attempts import read_attempts
from mileage.provenance import for_experiment, result_view
from mileage.status import statuses
from pipeline_helpers import (ROOT, SNAKEMAKE, checkpoints, copy_finished, edit_config, job_processes, rollout_steps,
                              snakemake)
from run_checks import assert_terminal_informs

pytestmark = pytest.mark.slow

DEMO = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiments"]["demo"]  # as shipped
NUM_ROLLOUT, SAVE_INTERVAL = DEMO["rollout"]["num_rollout"], DEMO["train"]["save_interval"]
EVAL_AT = 2 * DEMO["eval"]["interval"] - 1  # the second in-training eval: after a checkpoint was resumed from
SMALLER = NUM_ROLLOUT - SAVE_INTERVAL  # a num_rollout with a checkpoint
NOT_SAVED = 3  # one without
TARGETS = [f"results/demo/metrics/{kind}.tsv" for kind in ("rollout", "train", "eval")] + [
    "results/demo/report/summary.json"]
COMPARED = TARGETS + ["results/demo/train/eval_samples.jsonl", "results/demo/eval/arith/final.samples.jsonl"]
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
LOCKED = "Directory cannot be locked"


def outputs(repo: Path) -> dict[str, bytes]:
    """The compared outputs, byte for byte; a summary without the provenance fields that time the attempt."""
    got = {rel: (repo / rel).read_bytes() for rel in COMPARED}
    for rel, data in got.items():
        if rel.endswith("summary.json"):
            got[rel] = json.dumps(result_view(json.loads(data)), sort_keys=True).encode()
    return got


def finished_checkpoints(run: Path) -> list[str]:
    """Checkpoints whose save finished (TRL writes trainer_state.json last)."""
    return sorted(p.parent.name for p in run.glob("checkpoints/checkpoint-*/trainer_state.json"))


def complete(run: Path) -> int:
    return len(finished_checkpoints(run))


def evaluated_since(run: Path, since: float) -> list[int]:
    """Rollouts whose in-training eval samples were written at or after `since` (a resume drops later ones of an
    earlier attempt only once its trainer starts)."""
    return sorted(int(p.stem.removeprefix("rollout_")) for p in run.glob("eval_samples/*/rollout_*.jsonl")
                  if p.stat().st_mtime >= since)


def last_rollout(run: Path) -> int:
    events = run / "events.jsonl"
    return max(rollout_steps(events), default=-1) if events.is_file() else -1


def training_gone(spec: Path, timeout_s: float = 60) -> bool:
    deadline = time.time() + timeout_s
    while job_processes(spec) and time.time() < deadline:
        time.sleep(0.5)
    return not job_processes(spec)


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@dataclass
class Moment:
    """When to interrupt an attempt (a condition on the run directory as the job writes it, given when the attempt
    started) and how: SIGKILL the training job; Ctrl-C (SIGINT to Snakemake's process group, as a terminal sends
    it); or SIGKILL Snakemake's whole group."""
    name: str
    reached: Callable[[Path, float], bool]
    how: str  # "kill the job" | "ctrl-c" | "kill snakemake"
    watch_status: bool = False


MOMENTS = [
    Moment("before the first checkpoint", lambda run, t0: last_rollout(run) >= 0 and not checkpoints(run),
           "kill the job"),
    Moment("right after a checkpoint", lambda run, t0: complete(run) == 1, "ctrl-c"),
    # Right after an in-training eval: before, during or after the save of the checkpoint that follows it.
    Moment("right after an in-training eval", lambda run, t0: EVAL_AT in evaluated_since(run, t0), "kill the job",
           watch_status=True),
    Moment("in the last rollouts", lambda run, t0: last_rollout(run) >= NUM_ROLLOUT - 2
           and complete(run) == NUM_ROLLOUT // SAVE_INTERVAL - 1, "kill snakemake"),
]


@dataclass
class Attempt:
    moment: Moment
    returncode: int
    had_checkpoint: bool  # a finished checkpoint was there when it started: it must resume
    output: str
    train_log: str
    saved: list[str]  # finished checkpoints there were when it was interrupted
    done_json: bool  # the training's declared output existed after it
    watched: list[tuple[str, int]] = field(default_factory=list)  # what `mileage status` said while it trained
    status_after: str = ""


def start(repo: Path, log: Path) -> subprocess.Popen:
    """`snakemake --cores 2 TARGETS` in its own process group, like a terminal's foreground job: with SIGINT's
    default action, which a background job of a non-interactive shell (`make test &`, nohup) would otherwise pass
    down as ignored, so that no Ctrl-C ever reached Snakemake."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [SNAKEMAKE, "--cores", "2", *TARGETS], cwd=repo, env=ENV, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def interrupted(repo: Path, moment: Moment, log: Path) -> Attempt:
    """Run the targets, interrupt them at `moment`, and return what happened."""
    run = repo / "results" / "demo" / "run"
    had_checkpoint = complete(run) > 0 if run.is_dir() else False
    t0 = time.time()
    proc = start(repo, log)
    watched, saved = [], None
    next_status = 0.0
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        spec = (run / "job.json").resolve()
        running = run.is_dir() and bool(job_processes(spec))
        if running and moment.watch_status and time.time() >= next_status:
            [demo] = statuses(repo / "config" / "config.yaml")
            watched.append((demo.state, demo.rollout))
            next_status = time.time() + 0.5
        if running and moment.reached(run, t0):
            saved = finished_checkpoints(run)
            if moment.how == "kill the job":
                for job in job_processes(spec):
                    job.send_signal(signal.SIGKILL)
            else:
                os.killpg(proc.pid, signal.SIGINT if moment.how == "ctrl-c" else signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=300)
    output = log.read_text(errors="replace")
    if saved is None:
        pytest.fail(f"the job never reached the moment {moment.name!r} (exit {proc.returncode}):\n{output[-3000:]}")
    train_log = repo / "results" / "demo" / "logs" / "train.log"
    return Attempt(moment, proc.returncode, had_checkpoint, output,
                   train_log.read_text(errors="replace") if train_log.is_file() else "", saved,
                   (repo / "results" / "demo" / "train" / "done.json").exists(), watched,
                   statuses(repo / "config" / "config.yaml")[0].state)


@pytest.fixture(scope="module")
def reference(finished_demo, tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A scratch copy of the finished demo, and the outputs of that uninterrupted run."""
    return copy_finished(finished_demo, tmp_path_factory.mktemp("exact") / "repo"), outputs(finished_demo)


def fresh_training(repo: Path) -> None:
    """Forget the training (run dir and everything after it), keep the shared caches and the base eval."""
    for rel in ("run", "train", "metrics", "eval/arith/final.samples.jsonl", "report"):
        path = repo / "results" / "demo" / rel
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    for aside in (repo / "results" / "demo").glob("run.superseded-*"):
        shutil.rmtree(aside)


@pytest.fixture(scope="module")
def life(reference, tmp_path_factory):
    """The same training interrupted at each moment of MOMENTS, then the same command to the end."""
    repo, _ = reference
    fresh_training(repo)
    logs = tmp_path_factory.mktemp("attempts")
    run = repo / "results" / "demo" / "run"
    attempts = []
    for i, moment in enumerate(MOMENTS, 1):
        attempt = interrupted(repo, moment, logs / f"{i}.log")
        attempts.append(attempt)
        spec = (run / "job.json").resolve()
        assert attempt.returncode != 0, f"attempt {i} ({moment.how}, {moment.name}) did not fail:\n{attempt.output[-3000:]}"
        assert training_gone(spec), f"training outlived attempt {i} ({moment.how}, {moment.name})"
        if moment.how == "kill snakemake":
            unlocked(repo, attempt)
    finish = snakemake(repo, *TARGETS)
    return repo, attempts, finish


def unlocked(repo: Path, attempt: Attempt) -> None:
    """The README's "After a crash", after Snakemake itself was SIGKILLed: the same command stops on its lock and
    says how to remove it; `snakemake --unlock` deletes nothing; no --rerun-incomplete is needed."""
    assert attempt.returncode == -signal.SIGKILL
    proc = snakemake(repo, *TARGETS, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and LOCKED in text and "--unlock" in text, text[-3000:]
    files = files_under(repo / "results")
    unlock = subprocess.run([SNAKEMAKE, "--unlock"], cwd=repo, env=ENV, capture_output=True, text=True)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr
    assert files_under(repo / "results") == files
    # Snakemake marked the killed job's outputs incomplete, but every output is written atomically, so none of
    # them exists: even without the profile (which sets --rerun-incomplete) a dry run plans no incomplete rerun.
    assert list((repo / ".snakemake" / "incomplete").iterdir())
    dry = snakemake(repo, "--workflow-profile", "none", "--dry-run", *TARGETS)
    assert "incomplete" not in (dry.stdout + dry.stderr).lower()


def test_interrupted_at_four_moments_in_four_ways_it_ends_byte_identical(reference, life):
    _, expected = reference
    repo, attempts, _ = life
    got = outputs(repo)
    differing = [rel for rel in COMPARED if got[rel] != expected[rel]]
    story = "; ".join(f"{a.moment.how} {a.moment.name} (checkpoints then: {a.saved})" for a in attempts)
    assert not differing, f"differs from the uninterrupted run: {differing}\nattempts: {story}"


def test_every_rerun_resumes_from_its_last_checkpoint_and_trains_no_rollout_twice(life):
    repo, attempts, _ = life
    run = repo / "results" / "demo" / "run"
    for attempt in attempts:  # what each attempt said of where it started
        if attempt.had_checkpoint:
            assert "resuming from" in attempt.train_log, (attempt.moment.name, attempt.train_log[-2000:])
    assert "[mileage] resuming from" in (run / "job.log").read_text()
    assert rollout_steps(repo / "results" / "demo" / "train" / "events.jsonl") == list(range(NUM_ROLLOUT))
    run_steps = rollout_steps(run / "events.jsonl")
    assert run_steps == sorted(set(run_steps)) == list(range(NUM_ROLLOUT))
    # No failure, interrupt or rerun ever deleted a finished checkpoint.
    kept = set(checkpoints(run))
    for attempt in attempts:
        assert set(attempt.saved) <= kept, (attempt.moment.name, attempt.saved, kept)


def test_a_killed_job_fails_its_rule_keeps_its_checkpoints_and_status_saw_it_train(life):
    repo, attempts, _ = life
    killed = [a for a in attempts if a.moment.how == "kill the job"]
    for attempt in killed:  # the failure is explained, the declared output absent, the status `failed`
        assert "FAILED" in attempt.output or "failed" in attempt.output
        assert not attempt.done_json
        assert attempt.saved or attempt.moment.name.startswith("before")  # and its checkpoints survive
        assert attempt.status_after == "failed", attempt.status_after
    watched = next(a.watched for a in attempts if a.moment.watch_status)
    running = [rollout for state, rollout in watched if state == "running"]
    assert running and running == sorted(running) and running[-1] > running[0], watched
    ctrl_c = next(a for a in attempts if a.moment.how == "ctrl-c")
    assert ctrl_c.returncode != 0, ctrl_c.output[-3000:]  # an interrupt that went unheeded would train on
    [demo] = statuses(repo / "config" / "config.yaml")
    assert (demo.state, demo.rollout, demo.num_rollout, demo.checkpoint_rollout) == (
        "done", NUM_ROLLOUT, NUM_ROLLOUT, NUM_ROLLOUT)


def test_every_attempt_is_recorded_and_provenance_sums_them(life):
    repo, attempts, finish = life
    run = repo / "results" / "demo" / "run"
    recorded = read_attempts(run)
    outcome = {"kill the job": "failed", "ctrl-c": "interrupted", "kill snakemake": "killed"}
    assert [a["outcome"] for a in recorded] == [outcome[a.moment.how] for a in attempts] + ["succeeded"], recorded
    assert recorded[-1]["rollouts_before"] >= NUM_ROLLOUT - SAVE_INTERVAL
    config = {**yaml.safe_load((repo / "config" / "config.yaml").read_text()), "results_dir": str(repo / "results")}
    block = for_experiment(config, "demo", repo)
    assert block["wall_seconds"]["train"] == pytest.approx(sum(a["wall_seconds"] for a in recorded), abs=0.01)
    assert len(block["attempts"]) == len(recorded) and block["gpu_hours"] == 0.0  # the demo trains on the CPU
    # The last attempt printed one line per rollout it trained, and no library noise.
    assert_terminal_informs(finish.stdout + finish.stderr, rollouts=range(recorded[-1]["rollouts_before"], NUM_ROLLOUT))


def test_a_forced_rerun_of_a_finished_training_trains_nothing_more(reference, life):
    _, expected = reference
    repo = life[0]
    run = repo / "results" / "demo" / "run"
    before = checkpoints(run)
    snakemake(repo, *TARGETS, "--forcerun", "train")
    done = json.loads((repo / "results/demo/train/done.json").read_text())
    assert done["rollouts_logged"] == NUM_ROLLOUT and checkpoints(run) == before
    assert done["final_checkpoint"].endswith("final_model")
    log = (repo / "results" / "demo" / "logs" / "train.log").read_text()
    assert f"complete at rollout {NUM_ROLLOUT}: nothing to train" in log
    assert outputs(repo) == expected


def test_a_smaller_num_rollout_ends_at_its_checkpoint_and_other_edits_start_afresh(life):
    repo = life[0]
    run = repo / "results" / "demo" / "run"
    edit_config(repo, lambda c: c["experiments"]["demo"]["rollout"].update(num_rollout=SMALLER))
    snakemake(repo, *TARGETS)
    done = json.loads((repo / "results/demo/train/done.json").read_text())
    assert done["rollouts_logged"] == SMALLER
    assert rollout_steps(repo / "results/demo/train/events.jsonl") == list(range(SMALLER))
    assert f"complete at rollout {SMALLER}" in (repo / "results/demo/logs/train.log").read_text()
    assert not list(run.parent.glob("run.superseded-*")), "the longer run is kept where it is"
    # Not on a checkpoint: start afresh, the old run kept aside.
    edit_config(repo, lambda c: c["experiments"]["demo"]["rollout"].update(num_rollout=NOT_SAVED))
    snakemake(repo, "results/demo/train/done.json")
    assert f"has no checkpoint at rollout {NOT_SAVED}" in (repo / "results/demo/logs/train.log").read_text()
    assert len(list(run.parent.glob("run.superseded-*"))) == 1
    # A changed training configuration: afresh too, the run it replaces kept aside with its checkpoints.
    old_checkpoints = checkpoints(run)
    edit_config(repo, lambda c: c["experiments"]["demo"]["train"].update(lr=0.001))
    snakemake(repo, "results/demo/train/done.json")
    aside = sorted(run.parent.glob("run.superseded-*"), key=lambda p: p.stat().st_mtime)
    assert len(aside) == 2 and checkpoints(aside[-1]) == old_checkpoints
    assert "[mileage] resuming from" not in (run / "job.log").read_text()
    assert rollout_steps(run / "events.jsonl") == list(range(NOT_SAVED))
