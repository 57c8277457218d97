"""A miles save that the tracker names but whose weights are cut short is not resumed from: before a (re)start its
torch.distributed.checkpoint directories are verified (.metadata readable, every shard as long as it says), a bad
newest save is set aside and the tracker pointed at the newest older one that verifies (or removed: a fresh start),
saying so. Real DCP saves, written by the stand-in miles' own save (tests/fake_miles/saves.py), both layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch.distributed.checkpoint.api import CheckpointException  # a BaseException, not an Exception

from fake_miles.saves import load_save, save
from mileage.engines import get_engine
from mileage.engines.miles import checkpoints as ckpt
from mileage.run_dir import plan_run
from test_faults import save_checkpoint

MILES = get_engine("miles")
SHARD = "__0_0.distcp"


def train_of(backend: str, num_rollout: int = 10) -> dict:
    return {"miles": {"train_backend": backend}, "rollout": {"num_rollout": num_rollout},
            "train": {"num_steps_per_rollout": 1}}


def saved_run(tmp_path: Path, backend: str, rollout_ids) -> Path:
    """A run directory whose checkpoints/ holds the stand-in's saves after these rollout ids."""
    root = tmp_path / "run" / "checkpoints"
    for rollout_id in rollout_ids:
        save(str(root), rollout_id, None, backend)
    return root


def truncate(path: Path, keep: int) -> None:
    with open(path, "r+b") as fh:
        fh.truncate(keep)


def set_aside(root: Path, backend: str) -> list[str]:
    notes: list[str] = []
    MILES.set_aside_unusable(train_of(backend), root.parent, notes.append)
    return notes


def names(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("iter_*"))


def test_megatron_truncated_newest_shard_is_set_aside_and_the_previous_save_resumed(tmp_path):
    root = saved_run(tmp_path, "megatron", [1, 3])
    truncate(root / "iter_0000003" / SHARD, 100)
    with pytest.raises(CheckpointException):  # what miles does with it: fail the load, on every rerun
        load_save(str(root), 3, "megatron")
    notes = set_aside(root, "megatron")
    assert ckpt.read_tracker(root) == "1"
    assert names(root)[0] == "iter_0000001" and names(root)[1].startswith("iter_0000003.unusable-")
    assert len(names(root)) == 2
    text = "\n".join(notes)
    assert f"iter_0000003 is not usable ({SHARD} is truncated (100 bytes" in text
    assert "resuming from iter_0000001 (after 2 rollouts)" in text
    assert [(c.rollouts, c.path.name) for c in MILES.checkpoints(train_of("megatron"), root.parent)] == [
        (2, "iter_0000001")]
    load_save(str(root), 1, "megatron")  # the tracker's save now loads
    # The data-loader state of every rollout id stays (miles keys it by id).
    assert sorted(p.name for p in (root / "rollout").iterdir()) == [
        "global_dataset_state_dict_1.pt", "global_dataset_state_dict_3.pt"]


def test_fsdp_truncated_optimizer_shard_falls_back_by_rollouts_trained(tmp_path):
    root = saved_run(tmp_path, "fsdp", [1, 3])  # iter_0000002 and iter_0000004 (rollouts trained)
    truncate(root / "iter_0000004" / "optimizer" / SHARD, 10)
    with pytest.raises(CheckpointException):
        load_save(str(root), 4, "fsdp")
    notes = set_aside(root, "fsdp")
    assert ckpt.read_tracker(root) == "2" and ckpt.next_rollout(root, "fsdp") == 2
    assert "optimizer/__0_0.distcp is truncated" in "\n".join(notes)
    assert "resuming from iter_0000002 (after 2 rollouts)" in "\n".join(notes)
    assert [c.path.name for c in MILES.checkpoints(train_of("fsdp"), root.parent)] == ["iter_0000002"]


def test_missing_or_unreadable_metadata_or_common_state_is_unusable(tmp_path):
    root = saved_run(tmp_path, "megatron", [1, 3, 5, 7])
    (root / "iter_0000007" / ".metadata").write_bytes(b"\x80\x04not a pickle")
    (root / "iter_0000005" / ".metadata").unlink()
    (root / "iter_0000003" / "common.pt").unlink()
    text = "\n".join(set_aside(root, "megatron"))
    assert ckpt.read_tracker(root) == "1"
    assert [n.split(".unusable-")[0] for n in names(root)] == ["iter_0000001", "iter_0000003", "iter_0000005",
                                                                "iter_0000007"]
    assert sum(".unusable-" in n for n in names(root)) == 3
    assert "iter_0000007" in text and ".metadata is unreadable" in text
    assert ".metadata is missing" in text and "common.pt is missing" in text


def test_no_verified_save_removes_the_tracker_a_fresh_start(tmp_path):
    root = saved_run(tmp_path, "fsdp", [1])
    truncate(root / "iter_0000002" / "model" / SHARD, 0)
    notes = set_aside(root, "fsdp")
    assert ckpt.read_tracker(root) is None and ckpt.next_rollout(root, "fsdp") == 0
    assert "no earlier save verifies: starting afresh" in "\n".join(notes)
    assert MILES.checkpoints(train_of("fsdp"), root.parent) == []


def test_whole_saves_and_a_tracker_named_save_that_is_missing(tmp_path):
    root = saved_run(tmp_path, "megatron", [1, 3])
    assert set_aside(root, "megatron") == [] and names(root) == ["iter_0000001", "iter_0000003"]
    assert ckpt.read_tracker(root) == "3"
    ckpt.write_text(root / ckpt.TRACKER, "5")  # e.g. a copy without its last save
    notes = set_aside(root, "megatron")
    assert ckpt.read_tracker(root) == "3" and "iter_0000005" in notes[0] and "directory is missing" in notes[0]


def test_a_metadata_naming_a_class_this_environment_lacks_is_not_thrown_away(tmp_path, monkeypatch):
    """Not evidence of damage: the save is kept and resumed from, saying that it could not be verified."""
    import pickle
    import sys
    import types

    from torch.distributed.checkpoint import FileSystemReader

    root = saved_run(tmp_path, "megatron", [1, 3])
    newest = root / "iter_0000003"
    missing = types.ModuleType("not_installed_here")
    extra = type("Extra", (), {"__module__": "not_installed_here"})
    missing.Extra = extra
    monkeypatch.setitem(sys.modules, "not_installed_here", missing)
    metadata = FileSystemReader(str(newest)).read_metadata()
    metadata.extra = extra()
    (newest / ".metadata").write_bytes(pickle.dumps(metadata))
    monkeypatch.delitem(sys.modules, "not_installed_here")
    notes = set_aside(root, "megatron")
    assert ckpt.read_tracker(root) == "3" and names(root) == ["iter_0000001", "iter_0000003"]
    assert len(notes) == 1 and "cannot verify" in notes[0] and "not_installed_here" in notes[0]


@pytest.mark.parametrize("engine", ["local", "miles"])
def test_the_train_rules_plan_resumes_from_the_newest_verified_checkpoint(tmp_path, engine):
    """plan_run asks the engine before it reads the checkpoints, for either engine."""
    run, train, logged = tmp_path / "run", train_of("megatron"), []
    identity = {"what": "the same training"}
    assert plan_run(run, identity, get_engine(engine), train).state == "fresh"
    if engine == "local":
        for step in (1, 3):
            save_checkpoint(run / "checkpoints", step)
        truncate(run / "checkpoints" / "checkpoint-3" / "model.safetensors", 100)
    else:
        saved_run(tmp_path, "megatron", [0, 2])  # iter_0000000 (1 rollout trained), iter_0000002 (3)
        truncate(run / "checkpoints" / "iter_0000002" / SHARD, 100)
    plan = plan_run(run, identity, get_engine(engine), train, log=logged.append)
    assert plan.state == "resume" and plan.checkpoint.rollouts == 1
    assert any("not usable" in line for line in logged)
    assert any("resuming the run" in line and "from rollout 1" in line for line in logged)
