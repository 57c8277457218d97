"""The architecture stays visible: no engine switch outside mileage/engines/, the library's layers import
downwards only, and the batch identity is computed in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mileage.batch import BatchIdentityError, batch_identity
from mileage.config import ConfigError, fill_batch_identity
from mileage.engines.local.grpo import LocalEngineError, batch_layout
from mileage.engines.miles.argv import MilesConfigError, batch_identity as miles_batch_identity

REPO = Path(__file__).resolve().parents[1]
ENGINE_NAMES = ("local", "miles")
# `engine == "local"`, `["engine"] != 'miles'`, `engine in ("local", ...)`: a question about which engine it is.
SWITCH = re.compile(r"""engine["']?\]?\s*(==|!=|\bin\b|\bnot in\b)\s*\(?["'](local|miles)["']""")


def outside_engines():
    for pattern in ("mileage/**/*.py", "rules/*.smk", "scripts/*.py", "Snakefile"):
        for file in REPO.glob(pattern):
            if "engines" not in file.relative_to(REPO).parts:
                yield file


def test_no_engine_switch_outside_the_engines():
    found = [f"{f.relative_to(REPO)}:{n}" for f in outside_engines()
             for n, line in enumerate(f.read_text().splitlines(), 1) if SWITCH.search(line)]
    assert not found, f"engine switches outside mileage/engines/: {found}"


def test_the_switch_pattern_catches_a_switch():
    assert SWITCH.search('if exp["engine"] == "miles":') and SWITCH.search("engine != 'local'")


def test_no_rule_has_per_engine_twins():
    rules = re.findall(r"^rule (\w+):", "".join(f.read_text() for f in (REPO / "rules").glob("*.smk")), re.M)
    assert not [r for r in rules if r.endswith(tuple(f"_{e}" for e in ENGINE_NAMES))], rules


def test_config_never_imports_an_engines_internals_and_metrics_never_import_report():
    assert not re.search(r"mileage\.engines\.(miles|local)", (REPO / "mileage" / "config.py").read_text())
    for file in (REPO / "mileage" / "metrics").glob("*.py"):
        assert "mileage.report" not in file.read_text(), file


def test_no_engine_imports_a_stage():
    for file in (REPO / "mileage" / "engines").rglob("*.py"):
        assert "mileage.stages" not in file.read_text(), file


@pytest.mark.parametrize("rollout, train", [
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": None, "num_steps_per_rollout": 2}),
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": 16, "num_steps_per_rollout": None}),
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": 48, "num_steps_per_rollout": None}),
    ({"rollout_batch_size": 8, "n_samples_per_prompt": 8}, {"global_batch_size": 32, "num_steps_per_rollout": 1}),
])
def test_config_argv_and_the_local_engine_agree_on_the_batch_identity(rollout, train):
    try:
        expected = batch_identity(rollout, train)
    except BatchIdentityError as err:
        with pytest.raises(ConfigError, match=re.escape(err.key)):
            fill_batch_identity(rollout, train, "x")
        with pytest.raises(MilesConfigError, match=re.escape(err.key)):
            miles_batch_identity({"rollout": rollout, "train": train})
        return
    assert fill_batch_identity(rollout, train, "x") == expected
    assert miles_batch_identity({"rollout": rollout, "train": train}) == expected
    gbs, steps = expected
    filled = {**train, "global_batch_size": gbs, "num_steps_per_rollout": steps, "micro_batch_size": 1}
    assert batch_layout(rollout, filled)["steps_per_rollout"] == steps
    with pytest.raises(LocalEngineError):
        batch_layout(rollout, {**filled, "num_steps_per_rollout": steps + 1})
