"""Fault-injection suite on the demo pipeline: inject each fault into a real run, rerun the same command, compare.

    .venv/bin/python benchmarks/fault_suite.py [--only NAME ...] [--workdir DIR]

For every fault: a scratch copy of the repository (sharing the reference run's cache/, so only training and what
follows reruns) starts `snakemake --cores 2 <the exact-resume targets>`, the fault is injected at its moment, then
the same command runs again (after `snakemake --unlock` where Snakemake was killed). A fault is

- recovered identically: the rerun succeeds and the compared outputs (metrics TSVs, summary, eval samples) equal
  the uninterrupted reference byte for byte, no trainer and no Ray process is left over;
- lost: the rerun fails (or a process is left over);
- silently wrong: the rerun succeeds but an output differs.

Figures (wall times) are this machine's; the table's verdicts are not machine-specific. The disk-full case
mounts a tmpfs as results_dir (needs root, as here); without mount rights it runs under `ulimit -f`
(EFBIG instead of ENOSPC) and says so.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_helpers import SNAKEMAKE, copy_repo, edit_config  # noqa: E402
from test_exact_resume_e2e import TARGETS, outputs  # noqa: E402

ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def shorten(config: dict) -> None:
    """Six rollouts, a checkpoint and an eval every two: faults land between and on them, and a trial is short."""
    demo = config["experiments"]["demo"]
    demo["rollout"]["num_rollout"] = 6
    demo["train"]["save_interval"] = 2
    demo["eval"]["interval"] = 2


# ---- processes ----------------------------------------------------------------------------------------------------

def cmdlines() -> dict[int, list[str]]:
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if raw and state not in ("Z", "X"):
                found[int(entry.name)] = raw.decode(errors="replace").split("\0")
    return found


def pids_where(test) -> list[int]:
    return [pid for pid, cmd in cmdlines().items() if pid != os.getpid() and test(" ".join(cmd))]


def trainers(repo: Path) -> list[int]:
    return pids_where(lambda c: "mileage.engines.local.job" in c and str(repo) in c and "lifeline" not in c)


def ray_processes(repo: Path, *logs: Path) -> list[int]:
    """Live processes of the Ray heads this trial's runs started (their temp dirs, named in the train log and in
    the job logs, which every attempt appends to), so another pipeline's Ray on the same machine is not counted."""
    logs = (repo / "results" / "demo" / "logs" / "train.log", repo / "results" / "demo" / "run" / "job.log", *logs)
    text = "".join(log.read_text(errors="replace") for log in logs if log.exists())
    temp_dirs = set(re.findall(r"temp dir (\S+)", text))
    return pids_where(lambda c: any(t in c for t in temp_dirs))


def wait_for(what, timeout_s: float = 900, poll_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(poll_s)
    raise TimeoutError(f"waited {timeout_s:.0f} s for {getattr(what, '__name__', 'a condition')}")


# ---- runs ---------------------------------------------------------------------------------------------------------

def start(repo: Path, log: Path, *targets: str) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen([SNAKEMAKE, "--cores", "2", *(targets or TARGETS)], cwd=repo, env=ENV, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def run(repo: Path, log: Path, *args: str) -> int:
    proc = start(repo, log, *args)
    return proc.wait(timeout=3600)


def checkpoints(repo: Path) -> list[Path]:
    root = repo / "results" / "demo" / "run" / "checkpoints"
    return sorted(root.glob("checkpoint-*[0-9]"), key=lambda p: int(p.name.split("-")[1])) if root.is_dir() else []


def after_new_checkpoint(repo: Path):
    """Wait until training saved a checkpoint with its manifest while the trainer runs."""
    def ready():
        done = [c for c in checkpoints(repo) if (c / "mileage-manifest.json").exists()]
        return done and trainers(repo)
    return wait_for(ready)


def scratch(workdir: Path, name: str, reference: Path) -> Path:
    repo = copy_repo(workdir / name)
    edit_config(repo, shorten)
    shutil.copytree(reference / "results" / "cache", repo / "results" / "cache")
    return repo


# ---- faults: each injects into a started run and returns a note; the rerun follows --------------------------------

def kill_job(repo, log):
    proc = start(repo, log)
    after_new_checkpoint(repo)
    for pid in trainers(repo):
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=600)
    return f"snakemake exit {proc.returncode}"


def kill_snakemake_group(repo, log):
    proc = start(repo, log)
    after_new_checkpoint(repo)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not trainers(repo), 60)
    run(repo, log, "--unlock")
    return "group killed; --unlock"


def kill_ray_head(repo, log):
    proc = start(repo, log)
    after_new_checkpoint(repo)
    for pid in pids_where(lambda c: "start --head --block" in c and "mileage-ray-" in c):
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=600)
    said = "the Ray head at" in (repo / "results" / "demo" / "logs" / "train.log").read_text(errors="replace")
    return f"snakemake exit {proc.returncode}; 'the Ray head at ... died' reported: {said}"


def kill_ray_wrapper(repo, log):
    proc = start(repo, log)
    after_new_checkpoint(repo)
    lifelines = pids_where(lambda c: "mileage.launch.lifeline" in c and str(repo) in c and not c.startswith("/bin/sh"))
    for pid in lifelines:
        parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        os.kill(parent, signal.SIGKILL)  # Ray's `/bin/sh -c ENTRYPOINT`
    proc.wait(timeout=600)
    return f"snakemake exit {proc.returncode}"


def _corrupt(repo, log, damage):
    note = kill_job(repo, log)
    newest = checkpoints(repo)[-1]
    damage(newest)
    return f"{note}; damaged {newest.name}"


def corrupt_truncated_weights(repo, log):
    def damage(ckpt):
        weights = ckpt / "model.safetensors"
        with open(weights, "r+b") as fh:
            fh.truncate(weights.stat().st_size // 2)
    return _corrupt(repo, log, damage)


def corrupt_missing_trainer_state(repo, log):
    return _corrupt(repo, log, lambda ckpt: (ckpt / "trainer_state.json").unlink())


def disk_full(repo, log):
    results = repo / "results"
    used = sum(f.stat().st_size for f in results.rglob("*") if f.is_file())
    keep = tempfile.mkdtemp(prefix="fault-cache-")
    shutil.move(str(results), keep)
    results.mkdir()
    size_kb = used // 1024 + 2048  # the cache fits, a few checkpoints do not
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(results)]).returncode != 0:
        shutil.rmtree(results)
        shutil.move(str(Path(keep) / "results"), results)
        os.environ["FAULT_ULIMIT"] = "1"
        code = subprocess.run(["bash", "-c", f'ulimit -f {size_kb}; exec "$@"', "bash", SNAKEMAKE, "--cores", "2",
                               *TARGETS], cwd=repo, env=ENV, stdout=open(log, "a"), stderr=subprocess.STDOUT).returncode
        return f"no mount rights: ran under ulimit -f {size_kb} (EFBIG); exit {code}"
    shutil.copytree(Path(keep) / "results", results, dirs_exist_ok=True)
    code = run(repo, log)
    full = "No space left on device" in log.read_text(errors="replace")
    subprocess.run(["mount", "-o", "remount,size=2g", str(results)], check=True)  # the user frees space
    return f"tmpfs of {size_kb} KiB; exit {code}; ENOSPC seen: {full}"


def two_snakemakes(repo, log):
    first = start(repo, log)
    wait_for(lambda: (repo / ".snakemake" / "locks").is_dir() and any((repo / ".snakemake" / "locks").iterdir()))
    second = run(repo, log)
    first.wait(timeout=3600)
    locked = "Directory cannot be locked" in log.read_text(errors="replace")
    return f"second exit {second} (locked out: {locked}); first exit {first.returncode}"


def _kill_during(repo, log, script):
    assert run(repo, log, *TARGETS) == 0  # the metrics and summary first; then the rule whose script is `script`
    proc = start(repo, log, "all")  # the figures and reports are asked for only by the default target
    # Snakemake runs a rule's script as .snakemake/scripts/tmpXXXX.<script> inside the repository
    wait_for(lambda: pids_where(lambda c: str(repo) in c and c.endswith(script) or f".{script} " in c and str(repo) in c), 600, 0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    run(repo, log, "--unlock")
    # The rerun must rebuild what the kill interrupted (nothing half-written taken as done), and finish.
    assert run(repo, log, "all") == 0, f"the rerun of 'all' after the kill failed (see {log})"
    return f"killed while {script} ran; 'all' rebuilt"


def kill_during_plots(repo, log):
    return _kill_during(repo, log, "plots.py")


def kill_during_report(repo, log):
    return _kill_during(repo, log, "report.py")


FAULTS = {f.__name__: f for f in (kill_job, kill_snakemake_group, kill_ray_head, kill_ray_wrapper,
                                  corrupt_truncated_weights, corrupt_missing_trainer_state, disk_full,
                                  two_snakemakes, kill_during_plots, kill_during_report)}


def trial(name: str, workdir: Path, reference: Path, expected: dict) -> dict:
    repo = scratch(workdir, name, reference)
    log = workdir / f"{name}.log"
    started = time.monotonic()
    try:
        note = FAULTS[name](repo, log)
        rerun = run(repo, log)
    except Exception as exc:  # a fault we could not even inject counts as lost
        note, rerun = f"{type(exc).__name__}: {exc}", -1
    left = [*trainers(repo), *ray_processes(repo, log)]
    got = outputs(repo) if rerun == 0 else None
    if got is not None and got == expected and not left:
        verdict = "recovered identically"
    elif got is not None and got != expected:
        verdict = "silently wrong"
    else:
        verdict = "lost"
    if (repo / "results").is_mount():
        subprocess.run(["umount", str(repo / "results")])
    return {"fault": name, "verdict": verdict, "note": note, "left": left, "wall_s": time.monotonic() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", choices=sorted(FAULTS), help="faults to run (default: all)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mileage-faults-"))
    print(f"fault suite in {workdir} (wall times are this machine's)", flush=True)
    reference = copy_repo(workdir / "reference")
    edit_config(reference, shorten)
    if run(reference, workdir / "reference.log") != 0:
        print((workdir / "reference.log").read_text()[-3000:])
        return 1
    expected = outputs(reference)
    rows = []
    for name in args.only or FAULTS:
        row = trial(name, workdir, reference, expected)
        rows.append(row)
        print(f"{row['fault']:32s} {row['verdict']:22s} {row['wall_s']:6.0f} s  {row['note']}"
              + (f"  LEFT OVER: {row['left']}" if row["left"] else ""), flush=True)
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("recovered identically", "lost", "silently wrong")}
    print("\n| fault | verdict | note |\n|---|---|---|")
    for row in rows:
        print(f"| {row['fault']} | {row['verdict']} | {row['note']} |")
    print(f"\nfaults tried: {len(rows)}, recovered identically: {counts['recovered identically']}, "
          f"lost: {counts['lost']}, silently wrong: {counts['silently wrong']}")
    return 0 if counts["recovered identically"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
