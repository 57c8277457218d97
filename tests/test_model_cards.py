"""Model cards: the GLM-Z1-9B card says what miles' recipe says, and catches a mismatched checkpoint."""

from __future__ import annotations

import copy
import json

import pytest
from transformers import Glm4Config

from fake_miles.experiments import MODELS_DIR
from mileage.models.cards import CardError, check_hf_config, check_snapshot_files, load_card, validate_card

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
        validate_card(broken, "x.yaml")
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
