"""Model cards (`config/models/<name>.yaml`): the HF repo, Megatron model arguments and size facts of a model.

A card is what the miles engine needs to know about a model that miles itself no longer ships (its GLM-4-9B
model-arguments file was deleted upstream). `load_card` validates a card (the miles engine checks that its
Megatron arguments agree with its shapes); `check_hf_config` mirrors the check miles makes at start-up between the
Megatron arguments and the checkpoint's config.json, so a wrong download fails before a GPU job starts.
`check_config_before_download` makes that check on config.json alone, before the fetch downloads the weights.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from mileage.yaml_strict import DuplicateKeyError, load_yaml_strict

DEFAULT_MODELS_DIR = Path("config/models")


class CardError(ValueError):
    """A model card that is missing, malformed, or disagrees with a checkpoint."""


_SHAPE_KEYS = {
    "vocab_size": "integer", "hidden_size": "integer", "intermediate_size": "integer", "num_layers": "integer",
    "num_attention_heads": "integer", "num_kv_heads": "integer", "head_dim": "integer",
    "partial_rotary_factor": "number", "tie_word_embeddings": "boolean", "rms_norm_eps": "number",
    "rope_theta": "number",
}

CARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "hf", "megatron_args", "parameter_count", "weight_bytes_bf16", "shapes",
                 "expected_files", "startup_checks"],
    "properties": {
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
        "description": {"type": "string"},
        "architecture": {"type": "string"},
        "hf": {
            "type": "object", "additionalProperties": False, "required": ["repo"],
            "properties": {"repo": {"type": "string", "minLength": 3},
                           "revision": {"type": ["string", "null"]}},
        },
        "megatron_args": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "parameter_count": {"type": "integer", "minimum": 1},
        "weight_bytes_bf16": {"type": "integer", "minimum": 1},
        "shapes": {
            "type": "object", "additionalProperties": False, "required": sorted(_SHAPE_KEYS),
            "properties": {key: {"type": kind} for key, kind in _SHAPE_KEYS.items()},
        },
        "expected_files": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "startup_checks": {
            "type": "object",
            "additionalProperties": {"type": "string", "enum": sorted(_SHAPE_KEYS)},
        },
    },
}

# config.json keys that transformers 5 may nest under `rope_parameters` (older files: top level or rope_scaling).
_ROPE_KEYS = ("rope_theta", "partial_rotary_factor")


def known_cards(models_dir: Path | str = DEFAULT_MODELS_DIR) -> list[str]:
    return sorted(p.stem for p in Path(models_dir).glob("*.yaml"))


def load_card(name: str, models_dir: Path | str = DEFAULT_MODELS_DIR) -> dict[str, Any]:
    """The validated card `<models_dir>/<name>.yaml`; an unknown name lists the known ones."""
    path = Path(models_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(known_cards(models_dir)) or "none"
        raise CardError(f"unknown model card {name!r} (no {path}); known cards: {known}")
    try:
        card = load_yaml_strict(path)
    except DuplicateKeyError as err:
        raise CardError(str(err)) from None
    except yaml.YAMLError as err:
        raise CardError(f"{path}: not valid YAML: {err}") from None
    validate_card(card, str(path))
    if card["name"] != name:
        raise CardError(f"{path}: key 'name' is {card['name']!r}, expected the file's name {name!r}")
    return card


def validate_card(card: Any, where: str = "<card>") -> None:
    """Raise CardError if `card` breaks the card schema or its sizes disagree. (That its Megatron arguments agree
    with its shapes is the miles engine's check: mileage.engines.miles.card_args.)"""
    errors = sorted(jsonschema.Draft202012Validator(CARD_SCHEMA).iter_errors(card), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        key = "/".join(str(p) for p in first.path) or "(top level)"
        raise CardError(f"{where}: key {key}: {first.message}")
    if card["weight_bytes_bf16"] != 2 * card["parameter_count"]:
        raise CardError(f"{where}: weight_bytes_bf16 must be 2 x parameter_count "
                        f"({2 * card['parameter_count']}), got {card['weight_bytes_bf16']}")


def same_value(a: Any, b: Any) -> bool:
    """Equal as the card means it: booleans as booleans, numbers to 1e-9 relative, anything else by ==."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return a == b


def _hf_value(hf_config: Mapping[str, Any], key: str) -> Any:
    if key in hf_config:
        return hf_config[key]
    if key in _ROPE_KEYS:
        for nested in ("rope_parameters", "rope_scaling"):
            inner = hf_config.get(nested)
            if isinstance(inner, Mapping) and key in inner:
                return inner[key]
    raise KeyError(key)


def config_checks(card: Mapping[str, Any]) -> dict[str, Any]:
    """What config.json must say for this card: the model class and each checked field's value (plain values, so
    the fetch rule can carry them in its params and rerun only when they change)."""
    return {
        "card": card["name"],
        "architecture": card.get("architecture"),
        "fields": {hf_key: card["shapes"][shape_key] for hf_key, shape_key in card["startup_checks"].items()},
    }


def check_config_values(checks: Mapping[str, Any], hf_config: Mapping[str, Any], where: str = "config.json") -> None:
    """Raise CardError naming every config.json field that disagrees with `checks` (config_checks), with both values."""
    name = checks["card"]
    problems = []
    architectures = hf_config.get("architectures")
    if checks.get("architecture") and architectures and checks["architecture"] not in architectures:
        problems.append(f"architectures = {architectures!r}, but card {name} says {checks['architecture']!r}")
    for hf_key, expected in checks["fields"].items():
        try:
            actual = _hf_value(hf_config, hf_key)
        except KeyError:
            problems.append(f"{hf_key} is missing (card {name} expects {expected!r})")
            continue
        if not same_value(actual, expected):
            problems.append(f"{hf_key} = {actual!r}, but card {name} says {expected!r}")
    if problems:
        raise CardError(f"{where} does not match model card {name!r}: " + "; ".join(problems))


def check_hf_config(card: Mapping[str, Any], hf_config: Mapping[str, Any], where: str = "config.json") -> None:
    """Raise CardError naming every config.json field that disagrees with the card (what miles checks at start-up).

    A missing field is an error too: miles would compare against the transformers default, which for
    Glm4Config is not always the 9B value (its rms_norm_eps default is 1.5625e-07, the 9B model's is 1e-5).
    """
    check_config_values(config_checks(card), hf_config, where)


def check_config_before_download(checks: Mapping[str, Any], repo_id: str, revision_sha: str,
                                 cache_dir: str | Path) -> Path:
    """Download config.json alone (into the same hub cache) and check it against the card, so a checkpoint whose
    shape disagrees is refused before any weights come down. Offline (HF_HUB_OFFLINE) the cache must hold it."""
    from huggingface_hub import hf_hub_download

    from mileage.fetch.revision_lock import hub_offline

    path = Path(hf_hub_download(repo_id, "config.json", revision=revision_sha, cache_dir=str(cache_dir),
                                token=os.environ.get("HF_TOKEN"), local_files_only=hub_offline()))
    check_config_values(checks, json.loads(path.read_text(encoding="utf-8")),
                        where=f"config.json of {repo_id} @ {revision_sha}")
    return path


def check_snapshot_files(card: Mapping[str, Any], hf_dir: Path | str) -> None:
    """Raise CardError naming the expected files a downloaded snapshot lacks."""
    missing = [name for name in card["expected_files"] if not (Path(hf_dir) / name).is_file()]
    if missing:
        raise CardError(f"{hf_dir}: missing {', '.join(missing)} (expected by model card {card['name']!r})")
