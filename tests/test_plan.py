"""Memory preflight: the reference fits, one RTX 5090 is refused with numbers and what would fit."""

from __future__ import annotations

import copy

import pytest

from fake_miles.experiments import MODELS_DIR, load_experiment, resolve
from mileage.engines.miles.plan import PlanError, activation_gib, estimate_memory, plan_main
from mileage.models.cards import load_card


@pytest.fixture(scope="module")
def card():
    return load_card("glm-z1-9b-0414", MODELS_DIR)


def test_calibration_reproduces_the_measured_h100_peaks(card):
    # FACTS section 7: weights 17.55 GiB + gradients 17.51 GiB + one micro-batch = measured peak.
    for tokens, peak in [(2048, 35.75), (4096, 36.40), (8192, 38.51)]:
        assert 17.55 + 17.51 + activation_gib(tokens, card) == pytest.approx(peak, abs=0.01)


def test_reference_8xh100_fits(card):
    plan = estimate_memory(load_experiment("glm-z1-9b-8xh100"), card)
    assert plan.fits, plan.summary
    trainer = plan.phases[0]
    items = dict(trainer.items)
    # bf16 weights of 9.4e9 params over TP 2: 8.75 GiB; fp32 gradients twice that.
    assert items["weights bf16 / (TP 2 x PP 1)"] == pytest.approx(9_400_279_040 * 2 / 2 / 2**30)
    assert items["gradients fp32 / (TP x PP)"] == pytest.approx(2 * items["weights bf16 / (TP 2 x PP 1)"])
    assert 40 < trainer.total < 79.6


@pytest.mark.parametrize("name", ["glm-z1-9b-2x5090", "glm-z1-9b-4x5090"])
def test_5090_experiments_fit_with_stated_host_ram(name, card):
    experiment = load_experiment(name)
    plan = estimate_memory(experiment, card)
    assert plan.fits, plan.summary
    assert experiment["resources"]["host_memory_gb"] == plan.host_memory_gib
    # CPU Adam puts ~113 GB (105 GiB) of fp32 master + moments in host RAM (FACTS section 7).
    host = dict(plan.host_items)
    assert host["CPU Adam: fp32 master + 2 moments (12 B/param)"] == pytest.approx(105.06, abs=0.01)
    # ...and the same experiment with too little RAM is refused for the host, not the GPUs.
    small = estimate_memory(experiment, card, host_memory_gb=128)
    assert not small.fits and any("host RAM" in p for p in small.problems)


def test_one_5090_is_refused_with_numbers_and_suggestions(card, capsys):
    experiment = load_experiment("glm-z1-9b-1x5090")
    plan = estimate_memory(experiment, card)
    assert not plan.fits
    train = dict(plan.phases[0].items)
    assert train["weights bf16 / (TP 1 x PP 1)"] + train["gradients bf16 / (TP x PP)"] > 31.8  # FACTS section 7
    assert any("train phase needs" in p and "31.8" in p for p in plan.problems)
    joined = " | ".join(plan.suggestions)
    assert "2 x 31.8 GiB GPUs" in joined and "TP 2" in joined
    assert "79.6 GiB" in joined and "smaller model" in joined
    assert plan_main(experiment) == 1
    out = capsys.readouterr().out
    assert "DOES NOT FIT" in out and "what would fit" in out


def test_fp32_gradients_and_long_micro_batches_do_not_fit_two_5090s(card):
    experiment = copy.deepcopy(load_experiment("glm-z1-9b-2x5090"))
    experiment["miles"]["max_tokens_per_gpu"] = 16384
    experiment["miles"]["accumulate_allreduce_grads_in_fp32"] = True
    assert not estimate_memory(experiment, card).fits


def test_too_few_gpus_for_the_placement(card):
    plan = estimate_memory(load_experiment("glm-z1-9b-8xh100"), card, gpus=4)
    assert not plan.fits and any("needs 8 GPUs" in p for p in plan.problems)


def test_local_engine_is_not_sized(capsys):
    demo = resolve({"engine": "local", "model": {"source": "demo"},
                    "data": {"train": {"source": "demo"}, "eval": {"source": "demo"}}, "resources": {"gpus": 0}})
    plan = estimate_memory(demo)
    assert plan.fits and not plan.applicable
    assert plan_main(demo) == 0
    assert "local engine: n/a" in capsys.readouterr().out


def test_unknown_gpu_memory_is_an_error_without_nvidia_smi(card, monkeypatch):
    experiment = copy.deepcopy(load_experiment("glm-z1-9b-8xh100"))
    experiment["resources"]["gpu_memory_gb"] = None
    monkeypatch.setattr("mileage.engines.miles.plan.detect_gpu_memory_gib", lambda: None)
    with pytest.raises(PlanError, match="resources.gpu_memory_gb"):
        estimate_memory(experiment, card)
