"""Memory preflight: the reference fits, one RTX 5090 is refused with numbers and what would fit."""

from __future__ import annotations

import copy

import pytest

from fake_miles.experiments import MODELS_DIR, REPO, load_experiment, resolve
from mileage.config import load_experiment as load_experiment_file
from mileage.config import ConfigError, ExperimentResolver
from mileage.engines.miles.plan import PlanError, activation_gib, estimate_memory, learning_checks, plan_main
from mileage.engines.miles.plan_fsdp import bf16_rounding_threshold
from mileage.models.cards import load_card

# The Megatron recipe on one RTX 5090, refused (the shipped glm-z1-9b-1x5090 runs through FSDP instead).
MEGATRON_1X5090 = REPO / "tests" / "fixtures" / "glm-z1-9b-1x5090-megatron.yaml"
ONE_5090 = ["qwen3-1_7b-1x5090", "qwen3-4b-1x5090", "glm-z1-9b-1x5090"]


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


def megatron_1x5090() -> dict:
    return load_experiment_file(str(MEGATRON_1X5090), config_path=REPO / "config" / "config.yaml")[1]


def test_one_5090_megatron_is_refused_with_numbers_and_suggestions(card, capsys):
    experiment = megatron_1x5090()
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


# ---- the FSDP backend ---------------------------------------------------------------------------------------------

def fsdp_plan(name: str, edit=None, **kwargs):
    experiment = copy.deepcopy(load_experiment(name))
    if edit:
        edit(experiment)
    return estimate_memory(experiment, **kwargs)


def phase(plan, prefix: str):
    return next(p for p in plan.phases if p.name.startswith(prefix))


@pytest.mark.parametrize("name", ONE_5090)
def test_every_1x5090_experiment_fits_its_card_and_stated_host_ram(name, capsys):
    experiment = load_experiment(name)
    assert experiment["miles"]["train_backend"] == "fsdp"
    plan = estimate_memory(experiment)
    assert plan.fits, plan.summary
    assert plan.gpu_memory_gib == 31.8 and plan.host_memory_gib == experiment["resources"]["host_memory_gb"]
    assert plan.gpu_peak_gib <= 31.8 and plan.host_total_gib <= plan.host_memory_gib
    assert plan_main(experiment, name=name) == 0
    out = capsys.readouterr().out
    for heading in ("rollout phase", "initialisation", "train: loss + output-layer backward",
                    "train: decoder-layer backward", "train: end of backward", "log-probs", "host RAM"):
        assert heading in out, heading
    assert "fsdp backend" in out and "verdict: fits" in out


def test_glm_on_one_5090_lands_in_facts_ranges():
    # FACTS section 9 (inference): rollout ~27-28 GiB at fraction 0.8, training ~21-24 GiB at 8192 tokens,
    # host ~80-100 GiB in bf16 and ~150-170 GiB with the fp32 master.
    plan = fsdp_plan("glm-z1-9b-1x5090")
    assert 27 <= phase(plan, "rollout").total <= 28.5
    training = max(p.total for p in plan.phases if p.name.startswith("train:"))
    assert 21 <= training <= 24
    assert 80 <= plan.host_total_gib <= 100
    host = dict(plan.host_items)
    assert host["AdamW moments (4 B/param)"] == pytest.approx(9_400_279_040 * 4 / 2**30)
    fp32 = fsdp_plan("glm-z1-9b-1x5090", lambda e: e["miles"]["fsdp"].update(keep_fp32_master=True),
                     host_memory_gb=512)
    assert 150 <= fp32.host_total_gib <= 170
    # 16K tokens per micro-batch does not fit (FACTS section 9); the plan names the key and the budget that does.
    long = fsdp_plan("glm-z1-9b-1x5090", lambda e: e["miles"].update(max_tokens_per_gpu=16384))
    assert not long.fits
    assert any("16384 tokens (miles.max_tokens_per_gpu)" in p and "31.8" in p for p in long.problems)
    best = next(s for s in long.suggestions if s.startswith("miles.max_tokens_per_gpu at most"))
    assert 8192 <= int(best.split()[-1]) < 16384


def test_fp32_initialisation_larger_than_the_gpu_is_refused_naming_key_and_numbers():
    plan = fsdp_plan("glm-z1-9b-1x5090", lambda e: e["miles"]["fsdp"].update(keep_fp32_master=True),
                     host_memory_gb=512)
    assert not plan.fits
    (problem,) = [p for p in plan.problems if "initialisation" in p]
    assert problem.startswith("miles.fsdp.keep_fp32_master true")
    assert "9.40e9 params x 4 B / 1 GPU(s) = 35.0 GiB" in problem and "31.8" in problem
    assert "bf16 (keep_fp32_master false, with a bf16_master_reason) needs 17.5 GiB" in problem
    # Two GPUs halve rank 0's shard: the same fp32 model initialises.
    two = fsdp_plan("glm-z1-9b-1x5090", lambda e: (e["miles"]["fsdp"].update(keep_fp32_master=True),
                    e["miles"]["placement"].update(actor_num_gpus_per_node=2, num_gpus_per_node=2),
                    e["resources"].update(gpus=2)), host_memory_gb=512)
    assert not [p for p in two.problems if "initialisation" in p], two.problems


def test_bf16_master_needs_the_opt_in_at_small_learning_rates(capsys):
    assert bf16_rounding_threshold(1e-6) == pytest.approx(2.56e-4)  # FACTS section 9: "above about 2.6e-4"

    def no_reason(e):
        e["miles"]["fsdp"]["bf16_master_reason"] = None

    refused = copy.deepcopy(load_experiment("glm-z1-9b-1x5090"))
    no_reason(refused)
    problems, warnings = learning_checks(refused)
    (problem,) = problems
    assert problem.startswith("miles.fsdp.keep_fp32_master false") and not warnings
    assert "train.lr = 1e-06" in problem and "2^8 = 0.00026" in problem and "bf16_master_reason" in problem
    assert plan_main(refused) == 1 and "miles.fsdp.keep_fp32_master false" in capsys.readouterr().out
    # The memory plan itself does not judge the learning rate: an lr edit must not rerun the preflight.
    assert estimate_memory(refused).fits
    accepted = load_experiment("glm-z1-9b-1x5090")
    assert learning_checks(accepted)[0] == [] and any("Accepted:" in w for w in learning_checks(accepted)[1])
    assert plan_main(accepted) == 0 and "Accepted:" in capsys.readouterr().out
    # A learning rate whose steps survive bf16 for typical weights (|w| ~ 1/sqrt(4096)) needs no opt-in.
    fast = copy.deepcopy(refused)
    fast["train"]["lr"] = 1e-4
    assert learning_checks(fast) == ([], [])


def test_a_bf16_master_without_the_opt_in_is_refused_when_the_config_loads():
    entry = {"extends": "config/experiments/glm-z1-9b-1x5090.yaml", "miles": {"fsdp": {"bf16_master_reason": None}}}
    with pytest.raises(ConfigError, match=r"^experiments\.x\.miles\.fsdp\.keep_fp32_master false: AdamW steps"):
        ExperimentResolver({"experiments": {"x": entry}}, base_dir=REPO).resolve("x")


def test_host_ram_too_small_is_refused_naming_the_key():
    plan = fsdp_plan("qwen3-4b-1x5090", host_memory_gb=64)
    assert not plan.fits
    (problem,) = plan.problems
    assert problem.startswith("host RAM: needs 79 GiB, resources.host_memory_gb is 64")
    assert "resources.host_memory_gb of at least 79" in plan.suggestions
    # The reference model (use_kl_loss) adds its bf16 copy to host RAM.
    kl = fsdp_plan("qwen3-4b-1x5090", lambda e: e["train"].update(use_kl_loss=True, kl_loss_coef=0.0))
    assert dict(kl.host_items)["reference model bf16 (use_kl_loss; FSDP2 CPU offload)"] == pytest.approx(
        4_022_468_096 * 2 / 2**30)
    assert kl.host_total_gib == pytest.approx(plan.host_total_gib + 4_022_468_096 * 2 / 2**30)


def test_sglang_share_that_cannot_hold_weights_and_a_sequence_is_refused():
    # miles' run_simple.py fraction for Qwen3-4B (0.2, for 80+ GB cards) leaves no KV cache on a 5090.
    plan = fsdp_plan("qwen3-4b-1x5090", lambda e: e["miles"]["sglang"].update(mem_fraction_static=0.2))
    assert not plan.fits
    assert any(p.startswith("miles.sglang.mem_fraction_static 0.2") and "7.5 GiB" in p for p in plan.problems)
    assert any(s.startswith("miles.sglang.mem_fraction_static between") for s in plan.suggestions)
    too_much = fsdp_plan("glm-z1-9b-1x5090", lambda e: e["miles"]["sglang"].update(mem_fraction_static=0.95))
    assert any(p.startswith("rollout phase needs") and "mem_fraction_static 0.95" in p for p in too_much.problems)


def test_state_on_the_gpu_without_cpu_offload():
    # Without cpu_offload the 16 B/param of Qwen3-4B (60 GiB) sit on the one GPU: refused, cpu_offload suggested.
    plan = fsdp_plan("qwen3-4b-1x5090", lambda e: e["miles"]["fsdp"].update(cpu_offload=False))
    assert not plan.fits
    items = dict(phase(plan, "train: loss").items)
    assert items["sharded state on the GPU: fp32 master (16 B/param / 1)"] == pytest.approx(4_022_468_096 * 16 / 2**30)
    assert any(s.startswith("miles.fsdp.cpu_offload: true") for s in plan.suggestions)
    # Without gradient checkpointing every layer keeps its activations.
    nock = fsdp_plan("qwen3-4b-1x5090", lambda e: e["miles"]["fsdp"].update(gradient_checkpointing=False))
    assert phase(nock, "train: loss").total > phase(fsdp_plan("qwen3-4b-1x5090"), "train: loss").total + 20
