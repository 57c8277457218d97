"""Sweeps: `sweep: {dotted.key: [values]}` expands an experiment into one experiment per point of the grid, with
readable, stable, path-safe names that show the values; it composes with extends, seeds and evaluation sets, and a
bad sweep is an error naming the key."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from mileage.config import ConfigError, ExperimentResolver
from mileage.layout import Layout, expand_replicates
from mileage.stages.params import experiment_paths, rule_params
from mileage.sweeps import format_value, point_name
from pipeline_helpers import ROOT, copy_repo, edit_config, planned_jobs

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
DEMO_LR = {"extends": "demo", "seeds": [1, 2], "sweep": {"train.lr": [0.0002, 0.001]}}


def resolve(**experiments) -> dict:
    config = copy.deepcopy(CONFIG)
    config["experiments"].update(experiments)
    return ExperimentResolver(config, base_dir=ROOT).resolve_all()


def test_a_sweep_is_one_experiment_per_point_named_by_its_values():
    found = resolve(**{"demo-lr": DEMO_LR})
    assert sorted(found) == ["demo", "demo-lr~train.lr=0.0002", "demo-lr~train.lr=0.001"]
    point = found["demo-lr~train.lr=0.001"]
    assert point["train"]["lr"] == 0.001 and point["seeds"] == [1, 2]
    assert point["sweep_point"] == {"of": "demo-lr", "values": {"train.lr": 0.001}}
    assert found["demo"]["sweep_point"] is None
    assert point["label"] == "demo-lr (train.lr=0.001)"
    runs, replicated = expand_replicates(found)
    assert len(runs) == 5 and replicated["demo-lr~train.lr=0.001"]["runs"] == [
        "demo-lr~train.lr=0.001/seeds/1", "demo-lr~train.lr=0.001/seeds/2"]


def test_a_grid_is_the_product_and_its_names_do_not_depend_on_the_mappings_order():
    one = resolve(grid={"extends": "demo", "sweep": {"train.lr": [0.001, 0.002], "rollout.max_response_len": [16, 12]}})
    other = resolve(grid={"extends": "demo", "sweep": {"rollout.max_response_len": [16, 12], "train.lr": [0.001, 0.002]}})
    points = sorted(n for n in one if n.startswith("grid"))
    assert points == sorted(n for n in other if n.startswith("grid")) and len(points) == 4
    assert "grid~rollout.max_response_len=12~train.lr=0.002" in points
    for name in points:
        assert one[name] == other[name]


@pytest.mark.parametrize("value, shown", [
    (0.001, "0.001"), (1e-05, "1e-05"), (3, "3"), (True, "true"), (None, "null"), ("math", "math"),
    (["+", "-"], "+,-"), ({"a": 1}, "__a__1_"), ("a/b c", "a_b_c"),
])
def test_values_in_names_are_safe_path_parts(value, shown):
    assert format_value(value) == shown
    assert "/" not in point_name("x", {"k": value})


def test_points_share_model_data_and_base_evaluation():
    found = resolve(**{"demo-lr": DEMO_LR})
    runs, _ = expand_replicates(found)
    layout = Layout(results="results", base_dir=ROOT)
    config = ExperimentResolver(copy.deepcopy(CONFIG), base_dir=ROOT).config
    paths = {name: experiment_paths(layout, name, exp, config) for name, exp in runs.items()}
    assert len({p["start_model"] for p in paths.values()}) == 1
    assert len({p["eval_sets"]["arith"]["base_eval"] for p in paths.values()}) == 1
    assert len(layout.base_evals) == 1 and len(layout.warm_models) == 1
    lrs = {rule_params("train", n, e, config, layout)["train"]["lr"] for n, e in runs.items()}
    assert lrs == {0.0005, 0.0002, 0.001}


def test_a_sweep_composes_with_extends_and_eval_sets():
    found = resolve(**{
        "demo-lr": {"extends": "demo", "sweep": {"train.lr": [0.0002, 0.001]}},
        "demo-lr-sub": {"extends": "demo-lr", "data": {"eval": [
            CONFIG["experiments"]["demo"]["data"]["eval"], {"name": "sub", "source": "demo"}]}},
        "no-sweep": {"extends": "demo-lr", "sweep": None},
    })
    assert "demo-lr-sub~train.lr=0.001" in found and "no-sweep" in found
    assert [d["name"] for d in found["demo-lr-sub~train.lr=0.001"]["data"]["extra_eval"]] == ["sub"]


@pytest.mark.parametrize("sweep, message", [
    ({"train.learning_rate": [0.1]}, r"experiments\.bad\.sweep\.train\.learning_rate: not a key of an experiment"),
    ({"train.lr": []}, r"experiments\.bad\.sweep\.train\.lr: an empty list"),
    ({"train.lr": 0.1}, r"experiments\.bad\.sweep\.train\.lr: expected array, got 0\.1"),
    ({"train.lr": [0.1, "fast"]}, r"experiments\.bad\.sweep\.train\.lr\[1\]: 'fast' is not a value of train\.lr"),
    ({"engine": ["local", "miles"]}, r"experiments\.bad\.sweep\.engine: 'engine' cannot vary"),
    ({"seeds": [[1], [2]]}, r"experiments\.bad\.sweep\.seeds: 'seeds' cannot vary"),
    ({"extends": ["demo"]}, r"experiments\.bad\.sweep\.extends: 'extends' cannot vary"),
    ({"train.lr": [0.001, 0.001]}, r"experiments\.bad\.sweep\.train\.lr\[1\]: 0\.001 is given twice"),
    # 128 is what global_batch_size resolves to by default: two points, one experiment
    ({"train.global_batch_size": [None, 128]}, r"experiments\.bad\.sweep: the points .* resolve to the same experiment"),
])
def test_a_bad_sweep_is_an_error_naming_the_key(sweep, message):
    with pytest.raises(ConfigError, match=message):
        resolve(bad={"extends": "demo", "sweep": sweep})


def test_a_point_resolves_by_name_and_the_sweep_itself_is_not_one_experiment():
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo-lr"] = DEMO_LR
    resolver = ExperimentResolver(config, base_dir=ROOT)
    assert resolver.resolve("demo-lr~train.lr=0.001")["train"]["lr"] == 0.001
    with pytest.raises(ConfigError, match=r"demo-lr is a sweep, not one experiment.*demo-lr~train\.lr=0\.0002"):
        resolver.resolve("demo-lr")
    with pytest.raises(ConfigError, match=r"the sweep has no point 'demo-lr~train\.lr=0\.5'"):
        resolver.resolve("demo-lr~train.lr=0.5")


def test_mileage_experiments_lists_every_point_with_its_values(tmp_path):
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo-lr"] = DEMO_LR
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run([sys.executable, "-m", "mileage.cli", "--config", str(path), "experiments"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = {line.split("\t")[0]: line for line in out.splitlines()}
    assert set(lines) == {"demo", "demo-lr~train.lr=0.0002", "demo-lr~train.lr=0.001"}
    assert "sweep demo-lr: train.lr=0.0002" in lines["demo-lr~train.lr=0.0002"] and "seeds=1,2" in lines[
        "demo-lr~train.lr=0.0002"]


@pytest.mark.slow
def test_demo_plus_a_two_point_two_seed_sweep_schedules_five_trainings(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    edit_config(repo, lambda c: c["experiments"].update({"demo-lr": DEMO_LR}))
    jobs = planned_jobs(repo)
    assert jobs["train"] == 5 and jobs["demo_model"] == 1 and jobs["warm_start"] == 1 and jobs["eval_base"] == 1
    assert jobs["aggregate"] == 2 and jobs["compare"] == 1


def test_a_point_and_its_seeds_name_valid_ray_jobs():
    from mileage.launch.ray_job import new_job_id
    from mileage.stages.runner import ray_job_prefix

    for name in ("demo-lr~train.lr=0.001/seeds/2", "grid~data.train.demo.operations=+,-~rollout.reward=math"):
        assert new_job_id(ray_job_prefix(name)).startswith(ray_job_prefix(name) + "-")
    assert ray_job_prefix("demo-lr~train.lr=0.001/seeds/2") == "demo-lr-train.lr-0.001-seeds-2"
