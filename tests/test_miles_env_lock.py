"""`mileage doctor`'s check of an environment against envs/miles.lock.txt (mileage.engines.miles.env_lock)."""

from __future__ import annotations

from mileage.engines.miles import env_lock
from mileage.engines.miles import pins as miles_pins


def _as_installed():
    """An environment exactly as the lock says, and the facts doctor would probe there."""
    locked, glibc = env_lock.read_lock()
    versions = {name: lock.version or "0.0.1" for name, lock in locked.items()}
    commits = {name: lock.commit for name, lock in locked.items() if lock.commit}
    return versions, commits, glibc


def test_the_shipped_lock_reads_and_states_its_glibc():
    locked, glibc = env_lock.read_lock()
    assert len(locked) >= 40 and glibc is not None and glibc >= (2, 17)
    assert locked["sglang-kernel"].commit == miles_pins.SGLANG_COMMIT
    assert locked["torch"].version.endswith("+cu128")


def test_an_env_built_from_the_lock_passes():
    versions, commits, glibc = _as_installed()
    found = env_lock.lock_findings(versions, "12.8", glibc, commits)
    assert [(f.check, f.status) for f in found] == [("miles env lock", "OK")]


def test_each_mismatch_is_named():
    versions, commits, glibc = _as_installed()
    versions["transformers"] = "5.13.0"
    del versions["blake3"]
    commits["sglang-kernel"] = None  # PyPI's wheel, not the source build
    versions["torch"] = "2.11.0+cu130"
    found = {f.check: f for f in env_lock.lock_findings(versions, "13.0", (glibc[0], glibc[1] - 1), commits)}
    assert found["transformers (lock)"].found == "5.13.0" and found["transformers (lock)"].status == "WARN"
    assert found["blake3 (lock)"].found == "not installed"
    assert found["sglang-kernel (lock)"].status == "FAIL" and "PyPI's wheel" in found["sglang-kernel (lock)"].hint
    assert found["torch (lock)"].expected == "2.11.0+cu128"
    assert found["torch CUDA"].status == "FAIL" and found["glibc"].status == "FAIL"
    assert "miles env lock" not in found


def test_outside_the_miles_env_one_row_says_where_to_run_it():
    found = env_lock.lock_findings({"torch": "2.13.0+cpu"}, None, (2, 35), {})
    assert len(found) == 1 and found[0].status == "WARN" and "inside the miles env" in found[0].hint


def test_a_broken_lock_line_names_file_and_line(tmp_path):
    lock = tmp_path / "miles.lock.txt"
    lock.write_text("# header\nfoo==1.0\nbar>=2\n")
    found = env_lock.lock_findings({"miles": "0.1.0"}, None, None, {}, path=lock)
    assert found[0].status == "WARN" and f"{lock}:3: not a pinned line" in found[0].found


def test_doctor_on_this_machine_reports_the_lock_row():
    from mileage.doctor import probe_machine

    facts = probe_machine(with_torch=False)
    rows = env_lock.probe_and_check(facts)
    assert rows and rows[0].check == "miles env lock"  # no miles here: one row saying where to run it
