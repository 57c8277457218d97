"""Model cards: the GLM-Z1-9B card says what miles' recipe says, and catches a mismatched checkpoint."""

from __future__ import annotations

import copy
import json

import pytest
from transformers import Glm4Config

from fake_miles.experiments import MODELS_DIR
from mileage.models.cards import (CardError, check_config_before_download, check_hf_config, check_snapshot_files,
                                  config_checks, known_cards, load_card, validate_card)
from mileage.engines.miles.card_args import check_card_arguments
from mileage.layout import Layout

# miles/FACTS.md section 1, "GLM-Z1-9B-0414 model arguments", spelled out by hand.
FACTS_MODEL_ARGS = (
    "--spec miles_plugins.models.glm4 get_glm_spec --swiglu --num-layers 40 --hidden-size 4096 --ffn-hidden-size 13696 "
    "--num-attention-heads 32 --group-query-attention --num-query-groups 2 --use-rotary-position-embeddings "
    "--disable-bias-linear --add-qkv-bias --normalization RMSNorm --norm-epsilon 1e-5 --rotary-base 10000 "
    "--vocab-size 151552 --post-self-attn-layernorm --post-mlp-layernorm --rotary-interleaved --rotary-percent 0.5 "
    "--no-rope-fusion --untie-embeddings-and-output-weights"
).split()

# The fields of GLM-Z1-9B-0414's config.json that matter here (transformers 4.x style, top-level rope keys).
GLM_Z1_CONFIG = {
    "architectures": ["Glm4ForCausalLM"], "model_type": "glm4", "vocab_size": 151552, "hidden_size": 4096,
    "intermediate_size": 13696, "num_hidden_layers": 40, "num_attention_heads": 32, "num_key_value_heads": 2,
    "head_dim": 128, "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "tie_word_embeddings": False,
}


@pytest.fixture(scope="module")
def card():
    return load_card("glm-z1-9b-0414", MODELS_DIR)


def test_card_carries_the_recipe_model_arguments(card):
    assert card["megatron_args"] == FACTS_MODEL_ARGS
    assert card["hf"]["repo"] == "zai-org/GLM-Z1-9B-0414"
    assert card["hf"]["revision"] is None
    assert card["parameter_count"] == 9_400_279_040
    assert "model.safetensors.index.json" in card["expected_files"]


def test_parameter_count_agrees_with_the_shapes(card):
    s = card["shapes"]
    h, i, v = s["hidden_size"], s["intermediate_size"], s["vocab_size"]
    q = s["num_attention_heads"] * s["head_dim"]
    kv = s["num_kv_heads"] * s["head_dim"]
    per_layer = h * q + q + 2 * (h * kv + kv) + q * h + 3 * h * i + 4 * h  # qkv(+bias), o, swiglu mlp, 4 norms
    embeddings = v * h * (1 if s["tie_word_embeddings"] else 2)
    assert embeddings + s["num_layers"] * per_layer + h == card["parameter_count"]


def test_unknown_card_lists_known_ones():
    with pytest.raises(CardError, match="glm-z1-9b-0414"):
        load_card("glm-5-900b", MODELS_DIR)


def test_real_config_passes_and_transformers5_nesting_is_understood(card):
    check_hf_config(card, GLM_Z1_CONFIG)
    nested = {k: v for k, v in GLM_Z1_CONFIG.items() if k not in ("rope_theta", "partial_rotary_factor")}
    nested["rope_parameters"] = {"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"}
    check_hf_config(card, nested)


def test_mismatched_field_is_named(card):
    bad = {**GLM_Z1_CONFIG, "hidden_size": 5120}
    with pytest.raises(CardError, match=r"hidden_size = 5120"):
        check_hf_config(card, bad)
    tied = {**GLM_Z1_CONFIG, "tie_word_embeddings": True}
    with pytest.raises(CardError, match="tie_word_embeddings"):
        check_hf_config(card, tied)
    missing = {k: v for k, v in GLM_Z1_CONFIG.items() if k != "rope_theta"}
    with pytest.raises(CardError, match="rope_theta is missing"):
        check_hf_config(card, missing)


def test_transformers_default_glm4_config_differs_only_in_rms_eps(card):
    # Glm4Config's defaults are the 9B shape except rms_norm_eps (1.5625e-07): exactly what the check must catch.
    with pytest.raises(CardError) as err:
        check_hf_config(card, Glm4Config().to_dict())
    message = str(err.value)
    assert "rms_norm_eps" in message
    assert "hidden_size" not in message and "rope_theta" not in message


def test_card_arguments_must_agree_with_shapes(card):
    broken = copy.deepcopy(card)
    broken["megatron_args"][broken["megatron_args"].index("--hidden-size") + 1] = "5120"
    with pytest.raises(CardError, match="--hidden-size 5120"):
        check_card_arguments(broken, "x.yaml")
    extra = {**copy.deepcopy(card), "colour": "red"}
    with pytest.raises(CardError, match="colour"):
        validate_card(extra, "x.yaml")


def test_snapshot_files_checked(card, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(GLM_Z1_CONFIG))
    with pytest.raises(CardError, match="tokenizer.json"):
        check_snapshot_files(card, tmp_path)
    for name in card["expected_files"]:
        (tmp_path / name).write_text("{}")
    check_snapshot_files(card, tmp_path)


# ---- the Qwen3 cards of the 1 x RTX 5090 experiments ----------------------------------------------------------------

# The fields of Qwen3's config.json that matter here, as FACTS section 9 gives them (transformers 4.x layout).
QWEN3_CONFIGS = {
    "qwen3-1.7b": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
                   "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28, "num_attention_heads": 16,
                   "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True, "rope_theta": 1000000,
                   "rms_norm_eps": 1e-06, "attention_bias": False},
    "qwen3-4b": {"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
                 "hidden_size": 2560, "intermediate_size": 9728, "num_hidden_layers": 36, "num_attention_heads": 32,
                 "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True, "rope_theta": 1000000,
                 "rms_norm_eps": 1e-06, "attention_bias": False},
}


def qwen3_parameters(s: dict) -> int:
    """Qwen3 dense: q/k/v/o without bias, per-head q/k norms, SwiGLU MLP, 2 norms per layer, final norm."""
    h, i, v = s["hidden_size"], s["intermediate_size"], s["vocab_size"]
    q, kv = s["num_attention_heads"] * s["head_dim"], s["num_kv_heads"] * s["head_dim"]
    per_layer = 2 * h * q + 2 * h * kv + 3 * h * i + 2 * s["head_dim"] + 2 * h
    return v * h * (1 if s["tie_word_embeddings"] else 2) + s["num_layers"] * per_layer + h


@pytest.mark.parametrize("name", sorted(QWEN3_CONFIGS))
def test_qwen3_cards_agree_with_their_config_and_count(name):
    card = load_card(name, MODELS_DIR)
    assert card["parameter_count"] == qwen3_parameters(card["shapes"])
    check_hf_config(card, QWEN3_CONFIGS[name])
    # A pinned 40-hex commit, not a branch (the card says where it comes from).
    assert len(card["hf"]["revision"]) == 40 and int(card["hf"]["revision"], 16) >= 0
    assert card["shapes"]["tie_word_embeddings"] is True
    assert "--untie-embeddings-and-output-weights" not in card["megatron_args"]


def test_qwen3_4b_is_about_4_billion_parameters_as_facts_say():
    card = load_card("qwen3-4b", MODELS_DIR)
    s = card["shapes"]
    assert card["parameter_count"] / 1e9 == pytest.approx(4.0, abs=0.05)
    assert (card["parameter_count"] - s["vocab_size"] * s["hidden_size"]) / 1e9 == pytest.approx(3.6, abs=0.05)


@pytest.mark.parametrize("field, value", [("head_dim", 64), ("tie_word_embeddings", False), ("num_key_value_heads", 4),
                                          ("rope_theta", 10000.0), ("num_hidden_layers", 28)])
def test_qwen3_disagreement_names_the_field_and_both_values(field, value):
    card = load_card("qwen3-4b", MODELS_DIR)
    expected = QWEN3_CONFIGS["qwen3-4b"][field]
    with pytest.raises(CardError) as err:
        check_hf_config(card, {**QWEN3_CONFIGS["qwen3-4b"], field: value})
    assert f"{field} = {value!r}, but card qwen3-4b says" in str(err.value)
    assert repr(expected) in str(err.value) or repr(float(expected)) in str(err.value)


def test_wrong_model_class_is_named():
    card = load_card("qwen3-4b", MODELS_DIR)
    with pytest.raises(CardError, match=r"architectures = \['Qwen2ForCausalLM'\].*'Qwen3ForCausalLM'"):
        check_hf_config(card, {**QWEN3_CONFIGS["qwen3-4b"], "architectures": ["Qwen2ForCausalLM"]})


def test_kv_channels_must_agree_with_head_dim():
    card = load_card("qwen3-4b", MODELS_DIR)
    broken = copy.deepcopy(card)
    broken["megatron_args"][broken["megatron_args"].index("--kv-channels") + 1] = "64"
    with pytest.raises(CardError, match="--kv-channels 64 disagrees with shapes.head_dim = 128"):
        check_card_arguments(broken, "x.yaml")


def test_every_card_is_valid_and_named_by_its_file():
    assert {"glm-z1-9b-0414", "qwen3-1.7b", "qwen3-4b"} <= set(known_cards(MODELS_DIR))
    for name in known_cards(MODELS_DIR):
        check_card_arguments(load_card(name, MODELS_DIR), name)  # its Megatron arguments say its shapes


# ---- config.json first: a disagreeing checkpoint is refused before any weights come down ----------------------------

def test_fetch_rule_params_carry_the_cards_config_checks():
    from fake_miles.experiments import REPO, load_experiment

    _, params = Layout(results="results", base_dir=REPO).hf_model_key(load_experiment("qwen3-4b-1x5090"))
    assert params["config_checks"] == config_checks(load_card("qwen3-4b", MODELS_DIR))
    assert params["config_checks"]["fields"]["head_dim"] == 128


def _online(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)  # the local engine's job sets it in-process
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def _qwen_repo(config: dict) -> dict[str, bytes]:
    from hf_cache_fixture import safetensors_bytes

    weights = safetensors_bytes({"model.embed_tokens.weight": [0.0] * 8})
    return {"config.json": json.dumps(config).encode(), "tokenizer.json": b"{}", "tokenizer_config.json": b"{}",
            "model.safetensors.index.json": json.dumps({"weight_map": {"model.embed_tokens.weight":
                                                                       "model-00001-of-00001.safetensors"}}).encode(),
            "model-00001-of-00001.safetensors": weights}


def test_disagreeing_config_is_refused_before_the_weights_are_requested(tmp_path, monkeypatch):
    from hf_cache_fixture import FakeHub
    from mileage.stages.models import fetch_hf_model

    _online(monkeypatch)
    card = load_card("qwen3-4b", MODELS_DIR)
    hub = FakeHub()
    sha = hub.add("Qwen/Qwen3-4B", "model", _qwen_repo({**QWEN3_CONFIGS["qwen3-4b"], "hidden_size": 4096}))
    model = {"repo": "Qwen/Qwen3-4B", "revision": sha, "expected_files": card["expected_files"],
             "allow_patterns": None, "config_checks": config_checks(card)}
    marker = tmp_path / "snapshot.json"
    with hub, pytest.raises(CardError) as err:
        fetch_hf_model(str(marker), model, str(tmp_path / "lock.json"), str(tmp_path / "hub"))
    assert "hidden_size = 4096, but card qwen3-4b says 2560" in str(err.value)
    assert sha in str(err.value)
    asked = [r.url.path for r in hub.requests]
    assert any(p.endswith("/config.json") for p in asked)
    assert not [p for p in asked if "safetensors" in p or "/tree/" in p], asked  # no weights, no listing
    assert not marker.exists()
    assert not list((tmp_path / "hub").rglob("*.safetensors"))


def test_agreeing_config_then_the_whole_snapshot(tmp_path, monkeypatch):
    from hf_cache_fixture import FakeHub
    from mileage.stages.models import fetch_hf_model

    _online(monkeypatch)
    card = load_card("qwen3-4b", MODELS_DIR)
    hub = FakeHub()
    sha = hub.add("Qwen/Qwen3-4B", "model", _qwen_repo(QWEN3_CONFIGS["qwen3-4b"]))
    model = {"repo": "Qwen/Qwen3-4B", "revision": sha, "expected_files": card["expected_files"],
             "allow_patterns": None, "config_checks": config_checks(card)}
    marker = tmp_path / "snapshot.json"
    with hub:
        fetch_hf_model(str(marker), model, str(tmp_path / "lock.json"), str(tmp_path / "hub"))
    assert json.loads(marker.read_text())["revision"] == sha
    assert "model-00001-of-00001.safetensors" in json.loads(marker.read_text())["files"]


def test_offline_the_cached_config_is_checked(tmp_path, monkeypatch):
    import huggingface_hub.constants
    from hf_cache_fixture import make_hf_cache

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    card = load_card("qwen3-1.7b", MODELS_DIR)
    bad = {**QWEN3_CONFIGS["qwen3-1.7b"], "tie_word_embeddings": False}
    sha = make_hf_cache(tmp_path, "Qwen/Qwen3-1.7B", "model", _qwen_repo(bad))
    with pytest.raises(CardError, match="tie_word_embeddings = False, but card qwen3-1.7b says True"):
        check_config_before_download(config_checks(card), "Qwen/Qwen3-1.7B", sha, tmp_path)
    good = make_hf_cache(tmp_path / "ok", "Qwen/Qwen3-1.7B", "model", _qwen_repo(QWEN3_CONFIGS["qwen3-1.7b"]))
    assert check_config_before_download(config_checks(card), "Qwen/Qwen3-1.7B", good, tmp_path / "ok").is_file()
