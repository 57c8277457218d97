"""Live metrics: the tables and figures of a training as far as it has come, for both engines, read with the engine's
own reader and written outside the results tree, the run's files untouched."""

from __future__ import annotations

from pathlib import Path

import pytest

from mileage.cli import main
from mileage.engines import get_engine
from mileage.engines.miles.launch import train_entrypoint
from mileage.live_metrics import LiveMetricsError, check_outdir, write_live
from mileage.metrics.tables import read_table
from test_miles_engine import card, fake_run  # noqa: F401 (fixtures: the stand-in miles run)
from test_status import fake_training, files_under, write_config


def steps(path: Path) -> list[int]:
    columns, rows = read_table(path)
    return [int(row[columns[0]]) for row in rows]


def test_a_local_run_midway_gives_its_tables_and_figures(tmp_path, capsys):
    config = write_config(tmp_path)
    run = fake_training(config, "demo", rollouts=6, evals={4: 0.5})
    before = files_under(run)
    out = tmp_path / "live" / "demo"
    assert main(["--config", str(config), "live", "demo", str(out)]) == 0
    assert steps(out / "metrics" / "rollout.tsv") == list(range(6))
    assert steps(out / "metrics" / "eval.tsv") == [4]
    assert list((out / "figures").glob("reward.*"))  # the training figures, as the plots rule draws them
    assert "rollout 6" in capsys.readouterr().out
    assert files_under(run) == before  # the run is only read


def test_live_metrics_never_go_into_the_results_tree(tmp_path, capsys):
    config = write_config(tmp_path)
    fake_training(config, "demo", rollouts=1)
    with pytest.raises(LiveMetricsError, match="inside the results tree"):
        check_outdir(tmp_path / "results" / "demo" / "live", tmp_path / "results")
    assert main(["--config", str(config), "live", "demo", str(tmp_path / "results" / "x")]) == 2
    assert "inside the results tree" in capsys.readouterr().err
    assert main(["--config", str(config), "live", "nope", str(tmp_path / "x")]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_a_run_not_started_or_without_a_metric_yet_says_so(tmp_path):
    with pytest.raises(LiveMetricsError, match="has not started"):
        write_live(tmp_path / "run", get_engine("local").collect_events, tmp_path / "out")
    (tmp_path / "run").mkdir()  # started, no events.jsonl yet
    with pytest.raises(LiveMetricsError, match="no metric yet"):
        write_live(tmp_path / "run", get_engine("local").collect_events, tmp_path / "out")


def test_the_miles_stand_in_midway_gives_its_tables(fake_run, card, tmp_path):  # noqa: F811
    """The stand-in writes what miles writes as it trains (TensorBoard scalars, debug events); killed at rollout 3,
    its run is what a live reader sees of a training at rollout 3."""
    experiment, paths, run = fake_run
    died = run(train_entrypoint(experiment, card, paths), FAKE_MILES_DIE_AT="3")
    assert died.returncode == 3, died.stderr
    run_dir = Path(paths.tensorboard_dir).parent
    before = files_under(run_dir)
    written = write_live(run_dir, get_engine("miles").collect_events, tmp_path / "live")
    assert steps(tmp_path / "live" / "metrics" / "rollout.tsv") == [0, 1, 2]
    assert written["rows"]["rollout"] == 3 and written["rows"]["train"] > 0
    assert files_under(run_dir) == before
