"""Quick cases of the fault suite (benchmarks/fault_suite.py runs the whole pipeline through each fault):
corrupt checkpoints are detected and the previous one used, a run directory has one writer, a job dies with
whatever started it, a dead Ray head is reported as such and leaves no Ray process, a full disk leaves nothing
half-written, and moving results_dir keeps every cache key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from mileage.engines.local.checkpoints import complete_checkpoints, set_aside_unusable, write_manifest
from mileage.launch.lifeline import _cmdline, _stat, ancestors
from mileage.run_dir import RunDirLocked, run_dir_lock

ROOT = Path(__file__).resolve().parents[1]
SLEEPER = f"{sys.executable} -c 'import time; time.sleep(300)'"  # what stands for a trainer; a marker follows


# ---- checkpoints ------------------------------------------------------------------------------------------------

def save_checkpoint(root: Path, step: int, *, manifest: bool = True) -> Path:
    import torch
    from safetensors.torch import save_file

    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"w": torch.full((64, 64), float(step))}, str(path / "model.safetensors"))
    (path / "optimizer.pt").write_bytes(os.urandom(2048))
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if manifest:
        write_manifest(path)
    return path


def truncate(path: Path, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)


@pytest.mark.parametrize("manifest", [True, False], ids=["manifest", "before-manifests"])
def test_truncated_newest_weights_fall_back_to_the_previous_checkpoint_saying_so(tmp_path, manifest):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, manifest=manifest)
    truncate(tmp_path / "checkpoint-30" / "model.safetensors", 5000)
    notes = []
    assert [s for s, _ in complete_checkpoints(tmp_path, notes.append)] == [10, 20]
    assert len(notes) == 1 and "checkpoint-30" in notes[0] and "model.safetensors" in notes[0]
    assert "using checkpoint-20 instead" in notes[0]


def test_a_same_size_change_to_the_newest_weights_is_caught_by_its_digest(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path, step)
    weights = tmp_path / "checkpoint-20" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same length, one tensor byte flipped: only the sha256 sees it
    weights.write_bytes(bytes(data))
    notes = []
    assert [s for s, _ in complete_checkpoints(tmp_path, notes.append)] == [10]
    assert "differs from what was saved" in notes[0]


def test_missing_trainer_state_or_manifest_file_is_not_complete(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step)
    (tmp_path / "checkpoint-30" / "trainer_state.json").unlink()
    (tmp_path / "checkpoint-20" / "optimizer.pt").unlink()
    notes = []
    assert [s for s, _ in complete_checkpoints(tmp_path, notes.append)] == [10]
    assert any("trainer_state.json" in n for n in notes) and any("optimizer.pt is missing" in n for n in notes)


def test_unusable_newest_checkpoints_are_set_aside_not_deleted(tmp_path):
    for step in (10, 20):
        save_checkpoint(tmp_path, step)
    truncate(tmp_path / "checkpoint-20" / "optimizer.pt", 10)
    set_aside_unusable(tmp_path, lambda _: None)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "checkpoint-10" and names[1].startswith("checkpoint-20.unusable-") and len(names) == 2
    assert [s for s, _ in complete_checkpoints(tmp_path, lambda _: None)] == [10]


# ---- one writer per run directory ----------------------------------------------------------------------------------

HOLD = textwrap.dedent("""
    import sys, time
    from mileage.run_dir import run_dir_lock
    with run_dir_lock(sys.argv[1], "test holder"):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_writer_of_a_run_directory_is_refused_naming_the_holder(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirLocked, match=f"pid {holder.pid} \\(test holder\\)"):
            with run_dir_lock(tmp_path, "second"):
                pass
        holder.kill()  # a holder that dies, however, releases the lock: the next writer gets it
        holder.wait()
        with run_dir_lock(tmp_path, "second"):
            assert f"pid {os.getpid()} (second)" in (tmp_path / "trainer.lock").read_text()
    finally:
        holder.kill()


def test_a_training_job_holds_its_run_directory_for_its_whole_life(tmp_path):
    """Whatever the engine, the lifeline takes the run directory's lock before the job starts and keeps it."""
    started = tmp_path / "started"
    job = [sys.executable, "-c", f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(120)"]
    first = subprocess.Popen([sys.executable, "-m", "mileage.launch.lifeline", "--lock", str(tmp_path), "--", *job])
    try:
        deadline = time.time() + 60
        while not started.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert started.exists()
        with pytest.raises(RunDirLocked, match=f"pid {first.pid} \\(the training job"):
            with run_dir_lock(tmp_path, "the train rule, planning"):
                pass
        started.unlink()
        second = subprocess.run([sys.executable, "-m", "mileage.launch.lifeline", "--lock", str(tmp_path), "--", *job],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and not started.exists()  # refused before its command started
        assert f"not starting the job: the run directory {tmp_path} is in use: pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()


# ---- a job dies with what started it ------------------------------------------------------------------------------

def wait_gone(pid: int, timeout_s: float = 15) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _stat(pid) is None:
            return True
        time.sleep(0.1)
    return False


def find_pid(marker: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmd = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if marker.encode() in cmd and b"mileage.launch.lifeline" not in cmd:
                    return int(entry.name)
        time.sleep(0.2)
    raise AssertionError(f"no process with {marker!r} in its command line")


def lifeline_under_shells(marker: str) -> tuple[subprocess.Popen, int]:
    """sh (outer) -> sh (inner, as Ray's wrapper) -> lifeline -> a sleeper; returns (outer, pid of the sleeper)."""
    inner = f'{sys.executable} -m mileage.launch.lifeline -- {SLEEPER} {marker}; true'
    outer = subprocess.Popen(["sh", "-c", 'sh -c "$1"; true', "sh", inner], cwd=ROOT, start_new_session=True)
    return outer, find_pid(marker)


@pytest.mark.parametrize("victim", ["wrapper", "ancestor", "lifeline"])
def test_the_job_dies_when_what_started_it_is_killed(victim):
    marker = f"m-{uuid.uuid4().hex[:8]}"
    outer, job = lifeline_under_shells(marker)
    try:
        lifeline_pid = _stat(job)[0]
        wrapper = _stat(lifeline_pid)[0]
        target = {"wrapper": wrapper, "ancestor": outer.pid, "lifeline": lifeline_pid}[victim]
        assert "time.sleep" in _cmdline(job)  # the sleeper itself (checked before the kill: PDEATHSIG is instant)
        os.kill(target, signal.SIGKILL)
        assert wait_gone(job), f"the job outlived its {victim}"
    finally:
        try:
            os.killpg(outer.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---- a dead Ray head -----------------------------------------------------------------------------------------------

RUN_JOB = textwrap.dedent("""
    import sys
    from pathlib import Path
    from mileage.launch.ray_cluster import RayClusterSpec, free_port, ray_cluster
    from mileage.launch.ray_job import run_job
    spec = RayClusterSpec(port=free_port("127.0.0.1"), dashboard_port=free_port("127.0.0.1"), num_cpus=1, num_gpus=0)
    with ray_cluster(spec, log=lambda m: print(m, flush=True)) as url:
        run_job(url, [sys.executable, "-c", "import time; time.sleep(300)", sys.argv[1] + "-job"], {}, Path(sys.argv[2]),
                job_id_prefix="t-fault")
""")


def ray_processes_of(temp_dir_marker: str) -> list[int]:
    """Live processes whose command line names the head's temp dir (GCS, raylet, dashboard, agents, workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if temp_dir_marker.encode() in cmd and _stat(int(entry.name)) is not None:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("victim", ["head", "wrapper"])
def test_a_killed_ray_head_or_job_wrapper_takes_the_job_along_and_leaves_no_ray_process(tmp_path, victim):
    marker = f"m-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "train.log"
    proc = subprocess.Popen([sys.executable, "-c", RUN_JOB, marker, str(log)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        job = find_pid(marker + "-job", timeout_s=120)
        lifeline_pid = _stat(job)[0]
        wrapper = _stat(lifeline_pid)[0]  # Ray's `/bin/sh -c ENTRYPOINT`
        # The job's ancestors: the wrapper, Ray's supervisor, the raylet, `ray start --head --block`, our script.
        # Read each ancestor's whole command line: the lifeline's `what` is cut short, and a long venv path (a
        # scratch clone's) pushed `start --head --block` out of it.
        head_pid = next(pid for pid, _, _ in ancestors(job)
                        if {b"start", b"--head", b"--block"} <= set(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")))
        temp_dir = Path(f"/proc/{head_pid}/cmdline").read_bytes().split(b"\0")
        temp_dir = temp_dir[temp_dir.index(b"--temp-dir") + 1].decode()
        out_so_far: list[str] = []
        os.kill(head_pid if victim == "head" else wrapper, signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
        out = "".join(out_so_far) + out
        assert proc.returncode != 0
        assert wait_gone(job), f"the job outlived the {victim}"
        if victim == "head":
            assert "the Ray head at http://127.0.0.1:" in out and "died" in out, out[-3000:]
            assert "lost contact" not in out
        deadline = time.monotonic() + 30
        while ray_processes_of(temp_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert ray_processes_of(temp_dir) == [], "Ray processes left after the fault"
        assert not Path(temp_dir).exists()
    finally:
        proc.kill()


# ---- a full disk --------------------------------------------------------------------------------------------------

def test_a_full_disk_leaves_no_half_written_output(tmp_path):
    """A 1 MiB tmpfs where mounting is allowed (root); else a 1 MiB RLIMIT_FSIZE (EFBIG on the write instead)."""
    code = textwrap.dedent("""
        import sys
        from mileage.atomic import write_jsonl
        try:
            write_jsonl(sys.argv[1], [{"row": i, "text": "x" * 200} for i in range(20000)])
        except OSError as exc:
            print("refused:", exc.strerror)
    """)
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    try:
        limit = [] if mounted else ["bash", "-c", 'ulimit -f 1024; exec "$@"', "bash"]
        out = subprocess.run([*limit, sys.executable, "-c", code, str(disk / "out.jsonl")], cwd=ROOT,
                             capture_output=True, text=True)
        assert "refused:" in out.stdout, out.stdout + out.stderr
        assert ("No space left" if mounted else "File too large") in out.stdout
        assert list(disk.iterdir()) == []  # neither the output nor its temporary sibling
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


# ---- caches keyed by content, not place ----------------------------------------------------------------------------

def test_moving_results_dir_keeps_every_cache_key_and_the_training_identity(tmp_path):
    import yaml

    from mileage.config import ExperimentResolver
    from mileage.layout import Layout
    from mileage.run_dir import training_identity
    from mileage.stages.params import experiment_paths, rule_params

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    seen = []
    for results in (str(tmp_path / "here" / "results"), str(tmp_path / "elsewhere" / "results")):
        resolver = ExperimentResolver({**config, "results_dir": results}, base_dir=ROOT)
        experiments, cfg = resolver.resolve_all(), resolver.config
        layout = Layout(results, base_dir=ROOT)
        identities = {}
        for name, exp in sorted(experiments.items()):
            paths = experiment_paths(layout, name, exp, cfg)
            train = rule_params("train", name, exp, cfg, layout)
            identities[name] = training_identity(train, paths["train_inputs"])
        caches = {k: sorted(getattr(layout, k)) for k in ("demo_models", "warm_models", "demo_data", "file_data",
                                                          "hf_data", "hf_models", "base_evals")}
        seen.append((caches, identities))
    assert seen[0][0]["warm_models"] and seen[0][0]["base_evals"]  # the demo has both
    assert seen[0] == seen[1]
