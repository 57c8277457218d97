"""The sweep axis: `sweep: {dotted.key: [values]}` on an experiment expands into one experiment per point of the grid.

A point is the experiment's own layer with the point's values set on top, resolved like any experiment, so a sweep
composes with `extends`, `seeds` and evaluation sets, and what the points share (model, data, warm start, base
evaluation) is keyed by content and built once. A point's name shows its values, is the same whatever order the
mapping was written in, and is safe as a path part: `demo-lr~train.lr=0.001`.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any, Iterator, Mapping

import jsonschema

from mileage.errors import ConfigError

# Keys that say what an experiment is rather than how it trains: a point varies none of them.
FIXED_KEYS = {
    "engine": "a sweep compares settings of one engine: write one experiment per engine",
    "extends": "a sweep varies settings, not the experiment it starts from",
    "sweep": "a sweep cannot sweep itself",
    "seeds": "replicates are `seeds:`, which every point gets",
    "seed": "replicates are `seeds:`, which every point gets",
    "label": "each point's label is made from the experiment's and the point's values",
    "description": "free text, not a setting",
}
POINT_SEPARATOR = "~"
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._+,-]+$")


def format_value(value: Any) -> str:
    """A value as it appears in a point's name: numbers and plain strings as written, a list as its items joined by
    commas, anything else as JSON; characters a path part should not hold become `_`."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return ",".join(format_value(v) for v in value)
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text if _SAFE_VALUE.match(text) else re.sub(r"[^A-Za-z0-9._+,-]", "_", text)


def point_name(experiment: str, values: Mapping[str, Any]) -> str:
    return POINT_SEPARATOR.join([experiment, *(f"{key}={format_value(values[key])}" for key in sorted(values))])


def set_dotted(layer: dict, dotted: str, value: Any) -> dict:
    """A copy of `layer` with `dotted` set to `value`, creating the mappings on the way."""
    out = copy.deepcopy(layer)
    node = out
    *parents, last = dotted.split(".")
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = copy.deepcopy(value)
    return out


def _leaf_schema(schema: dict, dotted: str) -> dict | None:
    """The schema of experiment key `dotted` (a leaf or a whole section), or None when the experiment has no such key."""
    defs = schema["$defs"]
    node: dict = defs["experiment"]
    for part in dotted.split("."):
        while "$ref" in node:
            node = {**defs[node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
        properties = node.get("properties")
        if not properties or part not in properties:
            return None
        node = properties[part]
    return node


def check_sweep(sweep: Mapping[str, Any], schema: dict, where: str) -> None:
    """Every key a settable experiment key, every list non-empty with values of the key's type, no value twice."""
    for key, values in sweep.items():
        at = f"{where}.sweep.{key}"
        top = key.split(".")[0]
        if top in FIXED_KEYS:
            raise ConfigError(f"{at}: {top!r} cannot vary in a sweep ({FIXED_KEYS[top]})")
        node = _leaf_schema(schema, key)
        if node is None:
            raise ConfigError(f"{at}: not a key of an experiment (see config/schema.yaml; write the dotted path of "
                              f"a key, e.g. train.lr)")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{at}: give a non-empty list of values, got {values!r}")
        validator = jsonschema.Draft202012Validator({**node, "$defs": schema["$defs"]})
        for i, value in enumerate(values):
            errors = sorted(validator.iter_errors(value), key=lambda e: len(e.absolute_path))
            if errors:
                raise ConfigError(f"{at}[{i}]: {value!r} is not a value of {key}: {errors[0].message}")
            if value in values[:i]:
                raise ConfigError(f"{at}[{i}]: {value!r} is given twice")


def points(sweep: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every point of the grid, as {key: value}, keys sorted and values in the order the lists give them."""
    keys = sorted(sweep)
    for combo in itertools.product(*(sweep[k] for k in keys)):
        yield dict(zip(keys, combo))
