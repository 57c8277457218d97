"""Duplicate YAML keys are an error naming the key path, the file and both lines: in the config files
(also through Snakemake, whose own loader keeps the last value), experiment files and model cards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from mileage.config import ConfigError, ExperimentResolver, load_yaml
from mileage.models.cards import CardError, load_card
from mileage.yaml_strict import DuplicateKeyError, check_files, load_yaml_strict
from pipeline_helpers import ROOT, copy_repo, snakemake

SHIPPED = sorted((ROOT / "config").glob("*.yaml")) + sorted((ROOT / "config").glob("*/*.yaml"))


def write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def duplicate_error(path: Path) -> str:
    with pytest.raises(DuplicateKeyError) as info:
        load_yaml_strict(path)
    return str(info.value)


def test_top_level_duplicate_names_key_file_and_both_lines(tmp_path):
    path = write(tmp_path, "a: 1\nb: 2\n\na: 3\n")
    assert duplicate_error(path) == f"{path}:4: duplicate key 'a' (first at line 1)"


def test_nested_duplicate_names_the_key_path(tmp_path):
    path = write(tmp_path, "experiments:\n  demo:\n    seed: 1\n  other: {}\n  demo:\n    seed: 2\n")
    assert duplicate_error(path) == f"{path}:5: duplicate key 'experiments.demo' (first at line 2)"
    path = write(tmp_path, "l:\n  - {a: 1}\n  - a: 1\n    b: 2\n    a: 3\n")
    assert duplicate_error(path) == f"{path}:5: duplicate key 'l[1].a' (first at line 3)"


def test_flow_mapping_duplicate(tmp_path):
    path = write(tmp_path, "train: {lr: 0.1, batch: 4, lr: 0.2}\n")
    assert duplicate_error(path) == f"{path}:1: duplicate key 'train.lr' (first at line 1)"


def test_keys_that_the_dict_would_merge_are_duplicates(tmp_path):
    # 1 and 0x1 are the same int key, so yaml.safe_load keeps only one of them.
    assert "duplicate key '0x1' (first at line 1)" in duplicate_error(write(tmp_path, "1: a\n0x1: b\n"))
    assert load_yaml_strict(write(tmp_path, "'1': a\n1: b\n")) == {"1": "a", 1: "b"}


def test_merge_keys_still_merge_and_override(tmp_path):
    text = (
        "base: &base {lr: 0.1, seed: 1}\n"
        "more: &more {seed: 2, batch: 8}\n"
        "one:\n  <<: *base\n  lr: 0.5\n"           # an explicit key overrides the merged one
        "two:\n  <<: [*base, *more]\n  batch: 4\n"  # PyYAML: the later merged map wins on seed
    )
    path = write(tmp_path, text)
    loaded = load_yaml_strict(path)
    assert loaded == yaml.safe_load(text)
    assert loaded["one"] == {"lr": 0.5, "seed": 1}
    assert loaded["two"] == {"lr": 0.1, "seed": 2, "batch": 4}
    # A key repeated beside a merge key is still a duplicate.
    assert ":12: duplicate key 'three.lr' (first at line 11)" in duplicate_error(
        write(tmp_path, text + "three:\n  <<: *base\n  lr: 1\n  lr: 2\n")
    )


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_yaml_loads_exactly_as_safe_load(path):
    assert load_yaml_strict(path) == yaml.safe_load(path.read_text(encoding="utf-8"))


def test_config_loader_raises_config_error_with_file_and_lines(tmp_path):
    path = write(tmp_path, "results_dir: a\nresults_dir: b\n", "config.yaml")
    with pytest.raises(ConfigError, match=r"config\.yaml:2: duplicate key 'results_dir' \(first at line 1\)"):
        load_yaml(path)


def test_experiment_file_duplicate_through_extends(tmp_path):
    write(tmp_path, "engine: local\nseed: 1\nrollout:\n  num_rollout: 2\n  num_rollout: 3\n", "exp.yaml")
    config = {"experiments": {"mine": {"extends": "exp.yaml"}}}
    with pytest.raises(ConfigError) as info:
        ExperimentResolver(config, base_dir=tmp_path).resolve("mine")
    assert str(info.value) == f"{tmp_path / 'exp.yaml'}:5: duplicate key 'rollout.num_rollout' (first at line 4)"


def test_model_card_duplicate(tmp_path):
    card = ROOT / "config" / "models" / "glm-z1-9b-0414.yaml"
    lines = card.read_text().splitlines()
    first = next(i for i, line in enumerate(lines, 1) if line.startswith("architecture:"))
    shutil.copy(card, tmp_path / card.name)
    with open(tmp_path / card.name, "a") as fh:
        fh.write("architecture: Glm4ForCausalLM\n")
    with pytest.raises(CardError) as info:
        load_card(card.stem, tmp_path)
    assert str(info.value) == (
        f"{tmp_path / card.name}:{len(lines) + 1}: duplicate key 'architecture' (first at line {first})"
    )


def test_check_files_also_reads_json_that_yaml_cannot(tmp_path):
    good = write(tmp_path, '{\n\t"a": 1,\n\t"b": {"c": 2}\n}\n', "good.json")
    check_files([good, ROOT / "config" / "config.yaml"])
    bad = write(tmp_path, '{\n\t"a": 1,\n\t"a": 2\n}\n', "bad.json")
    with pytest.raises(DuplicateKeyError, match=r"bad\.json: duplicate key 'a'$"):
        check_files([good, bad])


@pytest.mark.slow
def test_snakemake_refuses_a_config_naming_an_experiment_twice(tmp_path):
    repo = copy_repo(tmp_path / "repo")
    config = repo / "config" / "config.yaml"
    lines = config.read_text().splitlines()
    first = lines.index("  demo:") + 1
    second = lines.index("plots:")  # the blank line before plots: becomes the second demo
    assert lines[second - 1] == ""
    lines[second - 1] = "  demo: {engine: local}"
    config.write_text("\n".join(lines) + "\n")

    proc = snakemake(repo, "-n", check=False)
    assert proc.returncode != 0
    assert (
        f"mileage: configuration error: config/config.yaml:{second}: duplicate key 'experiments.demo' "
        f"(first at line {first})"
    ) in proc.stdout + proc.stderr
    assert not (repo / "results").exists()

    # A --configfile is checked too (Snakemake passes it on as an absolute path; it is named relative).
    config.write_text((ROOT / "config" / "config.yaml").read_text())
    write(repo, "plots: {context: paper, context: talk}\n", "extra.yaml")
    proc = snakemake(repo, "-n", "--configfile", "extra.yaml", check=False)
    assert proc.returncode != 0
    assert "mileage: configuration error: extra.yaml:1: duplicate key 'plots.context' (first at line 1)" in (
        proc.stdout + proc.stderr
    )
    assert not (repo / "results").exists()
