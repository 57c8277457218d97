"""Canonical metric events (events.jsonl) and the wide metric tables (metrics/*.tsv)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mileage.metrics.events import (
    MetricEvent,
    MetricEventError,
    append_event,
    drop_after,
    merge_events,
    read_events,
    write_events,
)
from mileage.metrics.tables import MetricTableError, load_table, read_table, read_tables, write_tables


# ------------------------------------------------------------------------------------------------ events


def test_event_rejects_unknown_kind_negative_step_and_non_numbers():
    with pytest.raises(MetricEventError, match="kind 'loss'"):
        MetricEvent("loss", 0, {})
    with pytest.raises(MetricEventError, match="non-negative"):
        MetricEvent("train", -1, {})
    with pytest.raises(MetricEventError, match="'train/loss'"):
        MetricEvent("train", 0, {"train/loss": "0.5"})
    with pytest.raises(MetricEventError, match="'train/ok'"):
        MetricEvent("train", 0, {"train/ok": True})


def test_event_turns_numpy_scalars_into_builtins():
    event = MetricEvent("eval", np.int64(3), {"eval/aime-pass@1": np.float64(0.4), "eval/n": np.int64(16)})
    assert event.step == 3 and type(event.step) is int
    assert type(event.metrics["eval/aime-pass@1"]) is float and event.metrics["eval/aime-pass@1"] == 0.4
    assert type(event.metrics["eval/n"]) is int


def test_write_then_read_events_round_trips_in_order_with_nan(tmp_path):
    events = [
        MetricEvent("rollout", 0, {"rollout/raw_reward": 0.25}),
        MetricEvent("train", 0, {"train/loss": float("nan"), "train/grad_norm": 0.36285679128745674}),
        MetricEvent("rollout", 0, {"rollout/truncated": 0.5}),
    ]
    path = tmp_path / "events.jsonl"
    write_events(path, events)
    back = read_events(path)
    assert [(e.kind, e.step) for e in back] == [("rollout", 0), ("train", 0), ("rollout", 0)]
    assert math.isnan(back[1].metrics["train/loss"])
    assert back[1].metrics["train/grad_norm"] == 0.36285679128745674
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]  # no temp file left behind


def test_read_events_names_file_and_line_of_a_bad_line(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"kind": "rollout", "step": 0, "metrics": {}}\n'
        "\n"
        '{"kind": "rollout", "step": 1, "metrics": {"rollout/raw_reward": null}}\n'
    )
    with pytest.raises(MetricEventError, match=rf"{path}:3: .*'rollout/raw_reward'"):
        read_events(path)
    path.write_text('{"kind": "rollout", "step": 0, "metrics": {}}\n{"kind": "roll')
    with pytest.raises(MetricEventError, match=rf"{path}:2: not valid JSON"):
        read_events(path)
    assert len(read_events(path, allow_partial_last_line=True)) == 1


def test_append_event_adds_lines_and_survives_a_partial_line(tmp_path):
    path = tmp_path / "run" / "events.jsonl"
    append_event(path, MetricEvent("rollout", 0, {"rollout/raw_reward": 0.0}))
    append_event(path, MetricEvent("train", 0, {"train/loss": 1.0}))
    assert [(e.kind, e.step) for e in read_events(path)] == [("rollout", 0), ("train", 0)]
    # A writer killed mid-line: the next event must still land on a line of its own.
    with open(path, "a") as fh:
        fh.write('{"kind": "perf", "st')
    append_event(path, MetricEvent("perf", 0, {"perf/step_time": 3.5}))
    lines = path.read_text().splitlines()
    assert lines[-1] == '{"kind": "perf", "step": 0, "metrics": {"perf/step_time": 3.5}}'
    with pytest.raises(MetricEventError, match=":3: not valid JSON"):
        read_events(path)


def test_merge_events_unions_keys_and_later_value_wins():
    merged = merge_events([
        MetricEvent("train", 4, {"train/loss": 1.0, "train/pg_loss": 2.0}),
        MetricEvent("train", 4, {"train/loss": 3.0, "train/grad_norm": 0.5}),
        MetricEvent("perf", 4, {"perf/rollout_time": 9.0}),
    ])
    assert merged["train"] == {4: {"train/loss": 3.0, "train/pg_loss": 2.0, "train/grad_norm": 0.5}}
    assert merged["perf"] == {4: {"perf/rollout_time": 9.0}}
    assert merged["rollout"] == {} and merged["eval"] == {}


def test_drop_after_keeps_events_up_to_the_checkpointed_rollout(tmp_path):
    path = tmp_path / "events.jsonl"
    events = []
    for rollout in range(4):
        events.append(MetricEvent("rollout", rollout, {"rollout/raw_reward": rollout / 10}))
        for step_id in range(2):  # 2 optimizer steps per rollout: train/step = rollout * 2 + step_id
            events.append(MetricEvent("train", rollout * 2 + step_id, {"train/loss": 1.0}))
        events.append(MetricEvent("perf", rollout, {"perf/step_time": 1.0}))
    write_events(path, events)
    with open(path, "a") as fh:
        fh.write('{"kind": "rollout", "step": 4, "metr')  # the crash that made us resume

    dropped = drop_after(path, last_rollout=1, steps_per_rollout=2)

    kept = read_events(path)
    assert dropped == 8
    assert sorted({(e.kind, e.step) for e in kept}) == sorted(
        [("rollout", 0), ("rollout", 1), ("perf", 0), ("perf", 1), ("train", 0), ("train", 1), ("train", 2), ("train", 3)]
    )
    assert drop_after(path, last_rollout=-1, steps_per_rollout=2) == 8
    assert read_events(path) == []
    assert drop_after(tmp_path / "missing.jsonl", 3, 1) == 0
    assert not (tmp_path / "missing.jsonl").exists()
    with pytest.raises(MetricEventError, match="steps_per_rollout"):
        drop_after(path, 1, 0)


# ------------------------------------------------------------------------------------------------ tables


def _sample_events() -> list[MetricEvent]:
    return [
        MetricEvent("rollout", 1, {"rollout/step": 1, "rollout/raw_reward": 0.375, "rollout/truncated": 0.03125}),
        MetricEvent("rollout", 0, {"rollout/raw_reward": 0.1 + 0.2, "rollout/response_lengths": 4023.29296875}),
        MetricEvent("train", 0, {"train/step": 0, "train/lr-pg_0": 1e-06, "train/grad_norm": 0.36285679128745674}),
        MetricEvent("train", 0, {"train/step": 0, "train/lr-pg_0": 1e-06, "train/grad_norm": 0.36285679128745674}),
        MetricEvent("perf", 0, {"rollout/response_len/max": 4096, "perf/rollout_time": 371.1796889305115}),
        MetricEvent("perf", 0, {"perf/step_time": 412.3236815929413}),
    ]


def test_write_tables_follows_the_contract_byte_for_byte(tmp_path):
    paths = write_tables(_sample_events(), tmp_path)
    assert set(paths) == {"rollout", "train", "perf", "eval"}
    assert (tmp_path / "rollout.tsv").read_bytes() == (
        b"rollout/step\trollout/raw_reward\trollout/response_lengths\trollout/truncated\n"
        b"0\t0.30000000000000004\t4023.29296875\t\n"
        b"1\t0.375\t\t0.03125\n"
    )
    # The step key metric is the first column and is not repeated; ints stay ints; repr() floats.
    assert (tmp_path / "train.tsv").read_bytes() == b"train/step\ttrain/grad_norm\ttrain/lr-pg_0\n0\t0.36285679128745674\t1e-06\n"
    assert (tmp_path / "perf.tsv").read_bytes() == (
        b"rollout/step\tperf/rollout_time\tperf/step_time\trollout/response_len/max\n"
        b"0\t371.1796889305115\t412.3236815929413\t4096\n"
    )
    # A kind with no events still gets its header.
    assert (tmp_path / "eval.tsv").read_bytes() == b"eval/step\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval.tsv", "perf.tsv", "rollout.tsv", "train.tsv"]


def test_same_events_give_the_same_bytes(tmp_path):
    write_tables(_sample_events(), tmp_path / "a")
    write_tables(merge_events(_sample_events()), tmp_path / "b")
    write_tables(_sample_events(), tmp_path / "a")  # rewriting in place changes nothing either
    for kind in ("rollout", "train", "perf", "eval"):
        assert (tmp_path / "a" / f"{kind}.tsv").read_bytes() == (tmp_path / "b" / f"{kind}.tsv").read_bytes()


def test_empty_events_give_four_header_only_files(tmp_path):
    write_tables([], tmp_path)
    assert (tmp_path / "rollout.tsv").read_text() == "rollout/step\n"
    assert (tmp_path / "train.tsv").read_text() == "train/step\n"
    assert (tmp_path / "perf.tsv").read_text() == "rollout/step\n"
    assert (tmp_path / "eval.tsv").read_text() == "eval/step\n"
    columns, rows = read_table(tmp_path / "eval.tsv")
    assert columns == ["eval/step"] and rows == []
    assert list(load_table(tmp_path / "eval.tsv").columns) == ["eval/step"]


def test_tables_read_back_to_the_merged_events(tmp_path):
    events = _sample_events() + [MetricEvent("train", 1, {"train/loss": float("nan"), "train/kl": float("-inf")})]
    write_tables(events, tmp_path)
    back = read_tables(tmp_path)
    expected = merge_events(events)
    for kind, step_key in (("rollout", "rollout/step"), ("train", "train/step")):
        for step, metrics in expected[kind].items():
            metrics = {k: v for k, v in metrics.items() if k != step_key}
            assert back[kind][step].keys() == metrics.keys()
    assert back["perf"][0]["rollout/response_len/max"] == 4096 and type(back["perf"][0]["rollout/response_len/max"]) is int
    assert back["rollout"][0]["rollout/raw_reward"] == 0.1 + 0.2
    assert math.isnan(back["train"][1]["train/loss"]) and back["train"][1]["train/kl"] == float("-inf")


def test_load_table_gives_nan_for_cells_not_logged(tmp_path):
    write_tables(_sample_events(), tmp_path)
    frame = load_table(tmp_path / "rollout.tsv")
    assert list(frame.columns) == ["rollout/step", "rollout/raw_reward", "rollout/response_lengths", "rollout/truncated"]
    assert frame["rollout/step"].tolist() == [0, 1]
    assert math.isnan(frame.loc[1, "rollout/response_lengths"])
    assert frame.loc[1, "rollout/raw_reward"] == 0.375


def test_read_table_names_the_bad_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("train/step\ttrain/loss\n0\t1.0\n1\n")
    with pytest.raises(MetricTableError, match=rf"{path}:3: 1 cells"):
        read_table(path)
    path.write_text("train/step\ttrain/loss\n0\tabc\n")
    with pytest.raises(MetricTableError, match=rf"{path}:2: column 'train/loss'"):
        read_table(path)
    path.write_text("step\ttrain/loss\n")
    with pytest.raises(MetricTableError, match="not a step key"):
        read_table(path)
