"""Parsing miles/slime stdout logs into metric events, and `import_log` (log -> TSVs [+ plots])."""

from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import pytest

from mileage.metrics.events import merge_events
from mileage.metrics.import_log import LogImportError, import_log
from mileage.metrics.miles_log import MilesLogError, parse_metric_dict, parse_miles_lines, parse_miles_log
from mileage.metrics.tables import read_table, read_tables

SHARED = Path(__file__).resolve().parents[2] / "shared"
LOGS_MD = SHARED / "miles" / "LOGS.md"
REPO = Path(__file__).resolve().parents[1]


def _logs_md_blocks() -> dict[str, list[str]]:
    """The ```text blocks of LOGS.md keyed by their section title."""
    if not LOGS_MD.is_file():
        pytest.skip(f"real log fixtures not found at {LOGS_MD} (shared/ is expected beside the repo)")
    blocks: dict[str, list[str]] = {}
    for match in re.finditer(r"^## (.+?)\n.*?```text\n(.*?)```", LOGS_MD.read_text(encoding="utf-8"), re.S | re.M):
        blocks[match.group(1)] = match.group(2).splitlines()
    return blocks


def _block(title_start: str) -> list[str]:
    blocks = _logs_md_blocks()
    matches = [lines for title, lines in blocks.items() if title.startswith(title_start)]
    assert len(matches) == 1, f"LOGS.md has no single section starting {title_start!r}: {list(blocks)}"
    return matches[0]


def _merged(lines: list[str]):
    events, report = parse_miles_lines(lines)
    return merge_events(events), report


# ------------------------------------------------------------------------------ the real lines of LOGS.md


def test_real_rollout_line_slime_1527():
    merged, report = _merged(_block("slime issue 1527"))
    rollout = merged["rollout"][0]
    assert rollout["rollout/raw_reward"] == 0.0
    assert rollout["rollout/response_lengths"] == 4023.29296875
    assert rollout["rollout/truncated"] == 0.1640625
    assert rollout["rollout/ref_log_probs"] == -0.22009427845478058
    assert len(rollout) == 10
    assert report.parsed_lines == 1 and report.skipped == []


def test_real_perf_line_with_ray_prefix_slime_1837():
    merged, report = _merged(_block("slime issue 1837"))
    perf = merged["perf"][0]
    assert perf["perf/rollout_time"] == 371.1796889305115
    assert perf["rollout/response_len/max"] == 4096 and isinstance(perf["rollout/response_len/max"], int)
    assert perf["rollout/truncated_ratio"] == 0.46484375
    assert perf["perf/longest_effective_sample_tokens_per_sec"] == 11.035086568992766
    assert len(perf) == 13
    # The "Abort request for [...]" line beside it is noise, not a metric line.
    assert report.metric_lines == 1 and merged["rollout"] == {}


def test_real_elided_eval_line_is_skipped_with_a_reason():
    events, report = parse_miles_lines(_block("slime issue 1413"))
    assert events == []
    assert report.metric_lines == 1
    assert len(report.skipped) == 1 and "'x'" in report.skipped[0][1]
    assert any("skipped 1 metric line" in w for w in report.warnings())


def test_real_walkthrough_lines():
    merged, _ = _merged(_block("A metrics walkthrough"))
    step0 = merged["train"][0]
    assert step0["train/grad_norm"] == 0.36285679128745674
    assert step0["train/loss"] == 9.569339454174042e-07
    assert step0["train/lr-pg_0"] == 1e-06
    assert step0["train/tis_clipfrac"] == 1.3600041711470112e-05
    rollout1 = merged["rollout"][1]
    assert rollout1["rollout/raw_reward"] == 0.375
    assert rollout1["rollout/advantages"] == -2.7939677238464355e-09
    perf1 = merged["perf"][1]
    assert perf1["perf/step_time"] == 412.3236815929413
    assert perf1["perf/actor_train_time"] == 46.9120090007782
    assert set(merged["rollout"]) == {1} and set(merged["train"]) == {0} and set(merged["perf"]) == {1}


def test_real_lora_smoke_run_with_progress_bar_and_job_lines():
    merged, report = _merged(_block("A LoRA smoke run"))
    assert merged["train"][0]["train/entropy_loss"] == 9.197
    assert merged["train"][1]["train/entropy_loss"] == 9.188
    assert report.metric_lines == 2 and report.skipped == []


# ------------------------------------------------------------------------------ shapes real logs take

RAY_TRAIN = "\x1b[36m(MegatronTrainRayActor pid=2207)\x1b[0m [2026-04-15 08:04:51] model.py:612 - "
RAY_ROLLOUT = "\x1b[36m(RolloutManager pid=1805485)\x1b[0m [2026-04-15 07:57:53] rollout.py:1193 - "


def test_duplicate_step_lines_merge_into_one_event():
    line = RAY_TRAIN + "step 3: {'train/step': 3, 'train/loss': 0.5, 'train/grad_norm': 0.25}"
    events, report = parse_miles_lines([line, line, RAY_TRAIN + "step 3: {'train/loss': 0.75}"])
    assert len(events) == 1
    assert events[0].step == 3 and events[0].metrics == {"train/step": 3, "train/loss": 0.75, "train/grad_norm": 0.25}
    assert report.parsed_lines == 3 and report.duplicate_lines == 2


def test_two_perf_lines_of_one_rollout_merge():
    events, _ = parse_miles_lines([
        RAY_ROLLOUT + "perf 7: {'perf/rollout_time': 371.5, 'rollout/truncated_ratio': 0.25}",
        RAY_TRAIN + "perf 7: {'perf/actor_train_time': 46.5, 'perf/step_time': 412.0}",
    ])
    assert [(e.kind, e.step) for e in events] == [("perf", 7)]
    assert events[0].metrics == {"perf/rollout_time": 371.5, "rollout/truncated_ratio": 0.25,
                                 "perf/actor_train_time": 46.5, "perf/step_time": 412.0}


def test_ansi_codes_anywhere_and_ray_repeat_suffix():
    lines = [
        "\x1b[32m(RolloutManager pid=9)\x1b[0m \x1b[1mrollout 2\x1b[0m: {'rollout/raw_reward': \x1b[33m0.5\x1b[0m}",
        "(MegatronTrainRayActor pid=10, ip=10.0.0.2) step 4: {'train/loss': 1.5} [repeated 2x across cluster]",
    ]
    merged, report = _merged(lines)
    assert merged["rollout"] == {2: {"rollout/raw_reward": 0.5}}
    assert merged["train"] == {4: {"train/loss": 1.5}}
    assert report.skipped == []


def test_numpy_torch_and_special_values():
    metrics, dropped = parse_metric_dict(
        "{'eval/aime-pass@1': np.float64(0.4), 'eval/aime-pass@16': np.float32(0.5), 'eval/n': np.int64(3), "
        "'train/kl': tensor(2.0), 'train/tis': tensor(1.25, device='cuda:0'), 'train/x': tensor([3.0]), "
        "'train/loss': nan, 'train/max': inf, 'train/min': -inf, 'train/neg': -np.float64(1e-3), "
        "'train/note': 'text', 'train/none': None}"
    )
    assert metrics["eval/aime-pass@1"] == 0.4 and metrics["eval/aime-pass@16"] == 0.5
    assert metrics["eval/n"] == 3 and isinstance(metrics["eval/n"], int)
    assert metrics["train/kl"] == 2.0 and metrics["train/tis"] == 1.25 and metrics["train/x"] == 3.0
    assert math.isnan(metrics["train/loss"]) and metrics["train/max"] == math.inf and metrics["train/min"] == -math.inf
    assert metrics["train/neg"] == -0.001
    assert "train/note" not in metrics and "train/none" not in metrics and dropped == 2


def test_the_dict_is_never_evaluated(tmp_path):
    marker = tmp_path / "pwned"
    line = f"rollout 0: {{'rollout/raw_reward': 0.5, 'rollout/x': __import__('os').mkdir({str(marker)!r})}}"
    events, report = parse_miles_lines([line])
    assert not marker.exists()
    assert events[0].metrics == {"rollout/raw_reward": 0.5} and report.dropped_values == 1


def test_interleaved_actors_keep_each_kind_and_step_apart():
    lines = [
        RAY_ROLLOUT + "rollout 0: {'rollout/raw_reward': 0.125}",
        RAY_TRAIN + "step 0: {'train/loss': 1.0}",
        RAY_ROLLOUT + "Abort request for ['http://10.0.0.1:15006']",
        RAY_ROLLOUT + "rollout 1: {'rollout/raw_reward': 0.25}",
        RAY_TRAIN + "step 0: {'train/loss': 1.0}",
        RAY_TRAIN + "step 1: {'train/loss': 0.5}",
        RAY_ROLLOUT + "eval 1: {'eval/aime': 0.0698958333333333}",
    ]
    merged, _ = _merged(lines)
    assert merged["rollout"] == {0: {"rollout/raw_reward": 0.125}, 1: {"rollout/raw_reward": 0.25}}
    assert merged["train"] == {0: {"train/loss": 1.0}, 1: {"train/loss": 0.5}}
    assert merged["eval"] == {1: {"eval/aime": 0.0698958333333333}}


def test_train_step_printed_in_the_dict_wins_over_the_line_id():
    events, _ = parse_miles_lines(["step 1: {'train/step': 5, 'train/loss': 0.5}"])
    assert events[0].step == 5


def test_truncated_last_line_is_counted_and_never_crashes(tmp_path):
    log = tmp_path / "train.log"
    log.write_text(
        "rollout 0: {'rollout/raw_reward': 0.5}\n"
        "step 0: {'train/loss': 1.0}\n"
        + RAY_ROLLOUT + "rollout 1: {'rollout/raw_reward': 0.7, 'rollout/respo"
    )
    events, report = parse_miles_log(log)
    assert [(e.kind, e.step) for e in events] == [("rollout", 0), ("train", 0)]
    assert report.truncated_lines == 1 and report.skipped[0][0] == 3
    assert any("truncated" in w for w in report.warnings())


def test_a_broken_line_mid_file_is_skipped_not_counted_as_truncated():
    events, report = parse_miles_lines([
        "rollout 0: {'rollout/raw_reward': 0.5, (RolloutManager pid=1) Abort request",
        "rollout 1: {'rollout/raw_reward': 0.25}",
        "eval 1: {'eval/aime': 0.07, ....}",
        "",
    ])
    assert [(e.kind, e.step) for e in events] == [("rollout", 1)]
    assert report.truncated_lines == 0
    assert [n for n, _ in report.skipped] == [1, 3] and "elided" in report.skipped[1][1]


def test_carriage_returns_of_progress_bars_split_lines(tmp_path):
    log = tmp_path / "train.log"
    log.write_bytes(b"Rollout generation:  50%|#####     | 16/32\rRollout generation: 100%|##########| 32/32\r"
                    b"rollout 0: {'rollout/raw_reward': 0.5}\n\xff\xfe noise\n")
    events, _ = parse_miles_log(log)
    assert events[0].metrics == {"rollout/raw_reward": 0.5}


def test_missing_log_file(tmp_path):
    with pytest.raises(MilesLogError, match="no such log"):
        parse_miles_log(tmp_path / "nope.log")


# ------------------------------------------------------------------------------ import_log


def _write_small_log(path: Path) -> None:
    path.write_text(
        "Job submission server address: http://127.0.0.1:8265\n"
        + RAY_ROLLOUT + "eval 0: {'eval/aime': 0.0698958333333333}\n"
        + RAY_ROLLOUT + "perf 0: {'perf/rollout_time': 371.1796889305115}\n"
        + RAY_ROLLOUT + "rollout 0: {'rollout/raw_reward': 0.0, 'rollout/response_lengths': 4023.29296875}\n"
        + RAY_TRAIN + "step 0: {'train/step': 0, 'train/grad_norm': 0.36285679128745674}\n"
        + RAY_TRAIN + "step 0: {'train/step': 0, 'train/grad_norm': 0.36285679128745674}\n"
        + RAY_TRAIN + "perf 0: {'perf/step_time': 412.3236815929413}\n"
        + RAY_ROLLOUT + "rollout 1: {'rollout/raw_reward': 0.37"
    )


def test_import_log_writes_the_four_tables(tmp_path):
    log = tmp_path / "train.log"
    _write_small_log(log)
    report = import_log(log, tmp_path / "out")
    metrics = tmp_path / "out" / "metrics"
    assert (metrics / "train.tsv").read_text() == "train/step\ttrain/grad_norm\n0\t0.36285679128745674\n"
    assert (metrics / "perf.tsv").read_text() == (
        "rollout/step\tperf/rollout_time\tperf/step_time\n0\t371.1796889305115\t412.3236815929413\n"
    )
    assert read_tables(metrics)["eval"] == {0: {"eval/aime": 0.0698958333333333}}
    assert read_table(metrics / "rollout.tsv")[1] == [
        {"rollout/step": 0, "rollout/raw_reward": 0.0, "rollout/response_lengths": 4023.29296875}
    ]
    assert report.events == {"eval": 1, "perf": 1, "rollout": 1, "train": 1}
    assert report.parse["truncated_lines"] == 1 and report.parse["duplicate_lines"] == 2
    assert report.plots == [] and report.plot_note == "not requested"
    assert (tmp_path / "out" / "import_report.json").is_file()


def test_import_log_calls_the_plotting_code(tmp_path):
    calls = []

    def plot(metrics_dir, outdir):
        calls.append((metrics_dir, outdir))
        return [Path(outdir) / "reward.pdf"]

    log = tmp_path / "train.log"
    _write_small_log(log)
    report = import_log(log, tmp_path / "out", plot=plot)
    assert calls == [(tmp_path / "out" / "metrics", tmp_path / "out" / "report")]
    assert report.plots == [tmp_path / "out" / "report" / "reward.pdf"]


def test_import_log_with_figures_draws_the_training_figures(tmp_path):
    from mileage.stages.import_log import import_log_with_figures

    log = tmp_path / "train.log"
    _write_small_log(log)
    report = import_log_with_figures(log, tmp_path / "out", style={"context": "paper"})
    assert report.plots and all(p.parent == tmp_path / "out" / "report" and p.is_file() for p in report.plots)


def test_the_metrics_package_never_imports_the_report_package():
    # Layering: import-log's figures are composed in mileage.stages, above both.
    for file in (REPO / "mileage" / "metrics").glob("*.py"):
        assert "mileage.report" not in file.read_text(), file


@pytest.mark.parametrize(
    "content, message",
    [(None, "no such log"), ("", "empty"), ("INFO starting\nINFO done\n", "no metric lines in 2 line")],
)
def test_import_log_rejects_logs_without_metrics(tmp_path, content, message):
    log = tmp_path / "train.log"
    if content is not None:
        log.write_text(content)
    with pytest.raises(LogImportError, match=message):
        import_log(log, tmp_path / "out")
    assert not (tmp_path / "out" / "metrics").exists()


def test_import_log_rejects_a_log_whose_metric_lines_all_fail(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("eval x: {'eval/aime': 0.0698958333333333, ....}\n")
    with pytest.raises(LogImportError, match="no metric could be read.*line 1"):
        import_log(log, tmp_path / "out")


# ------------------------------------------------------------------------------ the benchmark's synthetic log


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("bench_import_log", REPO / "benchmarks" / "import_log.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_synthetic_log_imports_every_rollout(tmp_path):
    bench = _benchmark_module()
    log = tmp_path / "train.log"
    n_metric = bench.write_synthetic_log(log, n_rollouts=41, steps_per_rollout=2, eval_interval=20)
    report = import_log(log, tmp_path / "out")
    assert report.events == {"eval": 3, "perf": 41, "rollout": 41, "train": 82}
    assert report.parse["metric_lines"] == n_metric
    assert report.parse["duplicate_lines"] == 82 + 41  # every step line twice, two perf lines per rollout
    assert report.parse["truncated_lines"] == 1
    columns, rows = read_table(tmp_path / "out" / "metrics" / "train.tsv")
    assert [row["train/step"] for row in rows] == list(range(82))
    assert "train/tis" in columns and all(row["train/tis"] is not None for row in rows)
