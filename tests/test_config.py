"""The configuration: defaults, merging, the batch identity, and errors that name the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from mileage.config import ConfigError, ExperimentResolver, deep_merge, load_experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def resolve(config: dict, name: str = "demo") -> dict:
    return ExperimentResolver(config, base_dir=ROOT).resolve(name)


def with_demo(**sections) -> dict:
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo"] = deep_merge(config["experiments"]["demo"], sections)
    return config


def error_of(config: dict, name: str = "demo") -> str:
    with pytest.raises(ConfigError) as info:
        ExperimentResolver(config, base_dir=ROOT).resolve(name)
    return str(info.value)


def test_shipped_config_resolves_with_every_default_filled():
    exp = resolve(CONFIG)
    assert exp["engine"] == "local"
    assert exp["train"]["adam_beta2"] == 0.98  # a schema default the demo does not set
    assert exp["final_eval"]["top_p"] == 1.0
    assert exp["data"]["train"]["demo"]["operations"] == ["+"]


def test_every_schema_property_has_a_default_and_a_description():
    schema = yaml.safe_load((ROOT / "config" / "schema.yaml").read_text())
    missing = []

    def walk(node, path):
        for key, prop in node.get("properties", {}).items():
            if "description" not in prop:
                missing.append(f"{path}.{key}: description")
            if "default" not in prop and key != "experiments":
                missing.append(f"{path}.{key}: default")
            walk(prop, f"{path}.{key}")

    walk(schema, "")
    for name, node in schema["$defs"].items():
        walk(node, f"$defs.{name}")
    assert not missing, missing


@pytest.mark.parametrize(
    "train, expected",
    [
        ({"global_batch_size": None, "num_steps_per_rollout": 2}, (32, 2)),
        ({"global_batch_size": 16, "num_steps_per_rollout": None}, (16, 4)),
        ({"global_batch_size": None, "num_steps_per_rollout": None}, (64, 1)),
        ({"global_batch_size": 32, "num_steps_per_rollout": 2}, (32, 2)),
    ],
)
def test_batch_identity_is_filled_like_miles(train, expected):
    sizes = {"rollout_batch_size": 8, "n_samples_per_prompt": 8}
    exp = resolve(with_demo(rollout=sizes, train={**train, "micro_batch_size": 1}))
    assert (exp["train"]["global_batch_size"], exp["train"]["num_steps_per_rollout"]) == expected


def test_micro_batch_must_divide_global_batch():
    message = error_of(with_demo(
        rollout={"rollout_batch_size": 8, "n_samples_per_prompt": 8},
        train={"global_batch_size": 64, "num_steps_per_rollout": None, "micro_batch_size": 48},
    ))
    assert message.startswith("experiments.demo.train.micro_batch_size")


def test_batch_identity_mismatch_prints_both_sides():
    message = error_of(with_demo(
        rollout={"rollout_batch_size": 8, "n_samples_per_prompt": 8},
        train={"global_batch_size": 32, "num_steps_per_rollout": 1, "micro_batch_size": 1},
    ))
    assert message.startswith("experiments.demo.train.global_batch_size")
    assert "8 x 8 = 64" in message and "32 x 1 = 32" in message


def test_batch_identity_indivisible():
    message = error_of(with_demo(
        rollout={"rollout_batch_size": 8, "n_samples_per_prompt": 8},
        train={"global_batch_size": 48, "num_steps_per_rollout": None, "micro_batch_size": 1},
    ))
    assert "experiments.demo.train.global_batch_size" in message and "not divisible" in message


@pytest.mark.parametrize(
    "sections, path, words",
    [
        ({"train": {"learning_rate": 1e-5}}, "experiments.demo.train", "unknown key 'learning_rate'"),
        ({"rollout": {"rollout_batch_size": "eight"}}, "experiments.demo.rollout.rollout_batch_size", "expected integer"),
        ({"rollout": {"n_samples_per_prompt": 0}}, "experiments.demo.rollout.n_samples_per_prompt", ">= 1"),
        ({"train": {"lr": -1.0}}, "experiments.demo.train.lr", "> 0"),
        ({"engine": "vllm"}, "experiments.demo.engine", "expected one of ['local', 'miles']"),
        ({"data": {"eval": {"source": "file", "path": "nope.jsonl"}}}, "experiments.demo.data.eval.path", "not found"),
        ({"model": {"source": "hf", "card": "llama-9000"}}, "experiments.demo.model.card", "unknown model card"),
        ({"engine": "miles"}, "experiments.demo.model.card", "needs a model card"),
        # a credential in the config would reach fingerprint.json and Ray's job info
        ({"miles": {"extra_args": ["--wandb-key", "0123456789abcdef"]}}, "experiments.demo.miles.extra_args",
         "--wandb-key takes a secret"),
    ],
)
def test_bad_input_names_the_key(sections, path, words):
    message = error_of(with_demo(**sections))
    assert message.startswith(path), message
    assert words in message, message


@pytest.mark.parametrize("written", ["1e-3", "1.0e3", "5E-4"])
def test_exponent_yaml_reads_as_string_gets_a_spelling_that_loads_as_a_float(written):
    config = with_demo(train=yaml.safe_load(f"lr: {written}"))
    message = error_of(config)
    assert message.startswith("experiments.demo.train.lr: expected number"), message
    suggested = message.rsplit("write ", 1)[1].rstrip(")")
    assert yaml.safe_load(f"lr: {suggested}")["lr"] == pytest.approx(float(written))


def test_unknown_top_level_key_is_named():
    config = {**CONFIG, "plot": {}}
    with pytest.raises(ConfigError, match="unknown key 'plot'"):
        ExperimentResolver(config, base_dir=ROOT)


def test_extends_another_experiment_and_overrides():
    config = copy.deepcopy(CONFIG)
    config["experiments"]["demo-fast-lr"] = {"extends": "demo", "train": {"lr": 0.002}}
    exp = resolve(config, "demo-fast-lr")
    base = resolve(config, "demo")
    assert exp["train"]["lr"] == 0.002
    assert exp["rollout"] == base["rollout"]


def test_extends_cycle_is_an_error():
    config = copy.deepcopy(CONFIG)
    config["experiments"]["a"] = {"extends": "b"}
    config["experiments"]["b"] = {"extends": "a"}
    assert "cycle" in error_of(config, "a")


def test_defaults_apply_to_every_experiment_and_lose_to_the_experiment():
    config = copy.deepcopy(CONFIG)
    config["defaults"] = {"seed": 7, "train": {"weight_decay": 0.5}}
    exp = resolve(config)
    assert exp["seed"] == CONFIG["experiments"]["demo"]["seed"]
    assert exp["train"]["weight_decay"] == CONFIG["experiments"]["demo"]["train"]["weight_decay"]
    config["experiments"]["demo"].pop("seed")
    assert resolve(config)["seed"] == 7


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    bad = tmp_path / "config" / "config.yaml"
    bad.parent.mkdir()
    bad.write_text("experiments:\n  demo: {engine: local\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:\d+: not valid YAML"):
        load_experiment("demo", bad)


def test_experiment_file_resolves_on_its_own():
    files = sorted((ROOT / "config" / "experiments").glob("*.yaml"))
    if not files:
        pytest.skip("no experiment files shipped yet")
    for file in files:
        name, exp = load_experiment(str(file), ROOT / "config" / "config.yaml")
        assert name == file.stem and exp["engine"] == "miles"


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "gpu-node-1"])
def test_a_routable_ray_host_is_refused_unless_allowed(host, capsys):
    message = error_of(with_demo(ray={"host": host}))
    assert message.startswith("experiments.demo.ray.host") and "allow_remote" in message and "CVE-2023-48022" in message
    resolve(with_demo(ray={"host": host, "allow_remote": True}))
    assert "CVE-2023-48022" in capsys.readouterr().err


def test_a_loopback_ray_host_needs_no_permission(capsys):
    for host in ("127.0.0.1", "localhost", "::1"):
        resolve(with_demo(ray={"host": host}))
    assert "WARNING" not in capsys.readouterr().err
