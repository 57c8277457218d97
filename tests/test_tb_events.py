"""miles' structured metric sinks: TensorBoard event files and `--save-debug-event-data` JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mileage.metrics.debug_events import DebugEventsError, read_debug_events
from mileage.metrics.events import merge_events
from mileage.metrics.import_log import import_log
from mileage.metrics.miles_log import parse_metric_dict, parse_miles_lines
from mileage.metrics.tables import read_tables
from mileage.metrics.tensorboard_events import TensorBoardEventsError, read_tensorboard_dir

SummaryWriter = pytest.importorskip("torch.utils.tensorboard").SummaryWriter

# Values exactly representable in float32: TensorBoard stores scalars as float32.
T0 = 1_700_000_000.0


def _write_three_process_dir(directory):
    """What miles leaves in $TENSORBOARD_DIR: one event file per process, all in one directory."""
    rollout = SummaryWriter(log_dir=str(directory), filename_suffix=".rollout_manager")
    actor = SummaryWriter(log_dir=str(directory), filename_suffix=".actor_rank0")
    driver = SummaryWriter(log_dir=str(directory), filename_suffix=".driver")
    for r in range(3):
        rollout.add_scalar("rollout/raw_reward", r / 4, global_step=r, walltime=T0 + 10 * r)
        rollout.add_scalar("perf/rollout_time", 300.5 + r, global_step=r, walltime=T0 + 10 * r + 1)
        for step_id in range(2):
            actor.add_scalar("train/loss", 0.125 * step_id + r, global_step=2 * r + step_id, walltime=T0 + 10 * r + 2)
        actor.add_scalar("perf/actor_train_time", 46.5, global_step=r, walltime=T0 + 10 * r + 3)
    driver.add_scalar("eval/aime", 0.0625, global_step=0, walltime=T0)
    driver.add_scalar("misc/gpu_memory", 70.0, global_step=0, walltime=T0)
    driver.add_histogram("rollout/reward_hist", np.array([0.0, 1.0, 1.0]), global_step=0, walltime=T0)
    for writer in (rollout, actor, driver):
        writer.close()


def test_reads_scalars_from_the_three_event_files(tmp_path):
    _write_three_process_dir(tmp_path)
    events, report = read_tensorboard_dir(tmp_path)
    assert len(report.files) == 3
    merged = merge_events(events)
    assert merged["rollout"] == {0: {"rollout/raw_reward": 0.0}, 1: {"rollout/raw_reward": 0.25},
                                 2: {"rollout/raw_reward": 0.5}}
    assert merged["train"][5] == {"train/loss": 2.125}
    assert sorted(merged["train"]) == list(range(6))
    # perf metrics of one rollout from two processes land in one row.
    assert merged["perf"][1] == {"perf/rollout_time": 301.5, "perf/actor_train_time": 46.5}
    assert merged["eval"] == {0: {"eval/aime": 0.0625}}
    assert report.skipped_tags == {"misc/gpu_memory": 1}
    assert report.non_scalar_values >= 1  # the histogram is neither a metric nor an error
    assert any("misc/gpu_memory" in w for w in report.warnings())


def test_tag_kinds_maps_other_prefixes(tmp_path):
    _write_three_process_dir(tmp_path)
    events, report = read_tensorboard_dir(tmp_path, tag_kinds={"misc": "perf"})
    assert merge_events(events)["perf"][0]["misc/gpu_memory"] == 70.0
    assert report.skipped_tags == {}
    with pytest.raises(TensorBoardEventsError, match="unknown kind 'gpu'"):
        read_tensorboard_dir(tmp_path, tag_kinds={"misc": "gpu"})


def test_a_step_logged_again_after_resume_keeps_the_later_value(tmp_path):
    first = SummaryWriter(log_dir=str(tmp_path), filename_suffix=".a")
    first.add_scalar("rollout/raw_reward", 0.25, global_step=20, walltime=T0 + 100)
    first.close()
    resumed = SummaryWriter(log_dir=str(tmp_path), filename_suffix=".b")
    resumed.add_scalar("rollout/raw_reward", 0.75, global_step=20, walltime=T0 + 900)
    resumed.close()
    events, _ = read_tensorboard_dir(tmp_path)
    assert merge_events(events)["rollout"] == {20: {"rollout/raw_reward": 0.75}}


def test_directory_without_event_files_is_an_error(tmp_path):
    with pytest.raises(TensorBoardEventsError, match="no TensorBoard event files"):
        read_tensorboard_dir(tmp_path)
    with pytest.raises(TensorBoardEventsError, match="not a directory"):
        read_tensorboard_dir(tmp_path / "missing")


def test_import_log_reads_a_tensorboard_directory(tmp_path):
    tb = tmp_path / "tensorboard"
    _write_three_process_dir(tb)
    report = import_log(tb, tmp_path / "out")
    assert report.source_format == "tensorboard"
    tables = read_tables(tmp_path / "out" / "metrics")
    assert tables["rollout"][2] == {"rollout/raw_reward": 0.5}
    assert (tmp_path / "out" / "metrics" / "train.tsv").read_text().splitlines()[0] == "train/step\ttrain/loss"


# ------------------------------------------------------------------------------ --save-debug-event-data


def _jsonl(path, rows, tail: str = ""):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows) + tail)


def test_debug_event_files_give_events_per_kind(tmp_path):
    _jsonl(tmp_path / "rollout_manager.jsonl", [
        {"type": "rollout_start", "rollout_id": 0},
        {"type": "metric", "metrics": {"rollout/step": 0, "rollout/raw_reward": 0.5, "perf/rollout_time": 371.25}},
        {"type": "metric", "rollout_id": 1, "metrics": {"rollout/raw_reward": 0.75, "rollout/note": "text"}},
        {"type": "metric", "metrics": {"eval/step": 1, "eval/aime": 0.0625}},
    ], tail='{"type": "metric", "metrics": {"rollout/st')  # the process died mid-write
    _jsonl(tmp_path / "actor_cell0_rank0.jsonl", [
        {"type": "metric", "metrics": {"train/step": 3, "train/loss": 0.25, "train/grad_norm": 0.5}},
        {"type": "metric", "step": 4, "metrics": {"train/loss": 0.125}},
        {"type": "metric", "metrics": {"train/loss": 9.0}},
    ])
    events, report = read_debug_events(tmp_path)
    merged = merge_events(events)
    assert merged["rollout"] == {0: {"rollout/raw_reward": 0.5}, 1: {"rollout/raw_reward": 0.75}}
    assert merged["perf"] == {0: {"perf/rollout_time": 371.25}}
    assert merged["eval"] == {1: {"eval/aime": 0.0625}}
    assert merged["train"] == {3: {"train/loss": 0.25, "train/grad_norm": 0.5}, 4: {"train/loss": 0.125}}
    assert report.truncated_lines == 1
    assert report.dropped_values == 1  # the string value
    assert report.no_step == [("actor_cell0_rank0.jsonl", 3, "train")]


def test_debug_event_bad_line_mid_file_names_file_and_line(tmp_path):
    path = tmp_path / "rollout_manager.jsonl"
    path.write_text('{"type": "metric", "metrics": {"rollout/step": 0, "rollout/raw_reward": 0.5}}\nnot json\n{}\n')
    with pytest.raises(DebugEventsError, match=rf"{path}:2: not valid JSON"):
        read_debug_events(tmp_path)
    with pytest.raises(DebugEventsError, match="no debug-event JSONL"):
        read_debug_events(tmp_path / "empty_dir_that_is_missing")


def test_import_log_reads_a_debug_event_directory(tmp_path):
    debug = tmp_path / "debug"
    debug.mkdir()
    _jsonl(debug / "rollout_manager.jsonl",
           [{"type": "metric", "metrics": {"rollout/step": 2, "rollout/raw_reward": 0.5}}])
    report = import_log(debug, tmp_path / "out")
    assert report.source_format == "debug-events"
    assert (tmp_path / "out" / "metrics" / "rollout.tsv").read_text() == "rollout/step\trollout/raw_reward\n2\t0.5\n"


# ------------------------------------------------------------------------------ passrate/*: every reader keeps it

LOGS_MD = Path(__file__).resolve().parents[2] / "shared" / "miles" / "LOGS.md"
PASSRATE = {"passrate/pass@1": 0.375, "passrate/pass@2": 0.5, "passrate/pass@8": 0.75}


def _real_rollout_perf_dict() -> dict:
    """slime issue 1837's rollout-side `perf 0: {...}` dict (LOGS.md) with the `passrate/*` keys that
    `--log-passrate` adds to that same dict (miles v0.1.0 log_rollout_data), step key as miles logs it."""
    if not LOGS_MD.is_file():
        pytest.skip(f"real log fixtures not found at {LOGS_MD}")
    line = next(x for x in LOGS_MD.read_text(encoding="utf-8").splitlines() if "rollout.py:1193 - perf 0:" in x)
    metrics, dropped = parse_metric_dict(line[line.index("{"):])
    assert dropped == 0
    return {**metrics, **PASSRATE}


def test_passrate_is_kept_as_perf_by_the_log_the_tensorboard_and_the_debug_event_readers(tmp_path):
    metrics = _real_rollout_perf_dict()
    prefix = "(RolloutManager pid=1805485) [2026-04-15 07:57:53] rollout.py:1193 - "
    from_log = merge_events(parse_miles_lines([f"{prefix}perf 0: {metrics!r}"])[0])

    writer = SummaryWriter(log_dir=str(tmp_path / "tb"), filename_suffix=".rollout_manager")
    for key, value in {**metrics, "rollout/step": 0}.items():
        writer.add_scalar(key, value, global_step=0, walltime=T0)
    writer.close()
    tb_events, tb_report = read_tensorboard_dir(tmp_path / "tb")

    (tmp_path / "debug").mkdir()
    _jsonl(tmp_path / "debug" / "rollout_manager.jsonl",
           [{"type": "metric", "metrics": {**metrics, "rollout/step": 0}}])
    debug_events, debug_report = read_debug_events(tmp_path / "debug")

    for merged in (from_log, merge_events(tb_events), merge_events(debug_events)):
        assert {k: merged["perf"][0][k] for k in PASSRATE} == PASSRATE
    assert not any(tag.startswith("passrate/") for tag in tb_report.skipped_tags)
    assert debug_report.dropped_values == 0
