"""The `mileage` command says each thing once and fits a terminal: argv on a local experiment shows what it can,
plan's header once, import-log's warnings once."""

from __future__ import annotations

from mileage.cli import main
from test_miles_log import _write_small_log


def test_argv_of_a_local_experiment_shows_its_jobs_settings(capsys):
    assert main(["argv", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# demo: engine local has no command line of its own")
    assert "lr: 0.0005" in out and "num_rollout: 30" in out  # the train rule's params, as its job gets them


def test_plan_names_the_experiment_once(capsys):
    assert main(["plan", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.count("mileage plan: demo") == 1


def test_import_log_says_each_warning_once(tmp_path, capsys):
    log = tmp_path / "train.log"
    _write_small_log(log)  # its last line is cut short
    assert main(["import-log", str(log), str(tmp_path / "out"), "--no-plots"]) == 0
    captured = capsys.readouterr()
    said = (captured.out + captured.err).splitlines()
    assert len([line for line in said if "truncated last line" in line]) == 1, said
