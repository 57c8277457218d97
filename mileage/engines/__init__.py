"""The engines, by the name the config's `engine:` key gives. Each implements mileage.engines.contract.Engine in its
own folder; adding one means that folder, a line here, its name in the schema's `engine` enum (tests/test_layering.py
holds the two together) and its conda env in mileage.pins.ENV_FILES."""

from __future__ import annotations

import importlib
from functools import lru_cache

# engine name -> "module:class"; imported on first use (the miles engine never loads TRL, and the reverse).
_ENGINES = {
    "local": "mileage.engines.local.engine:LocalEngine",
    "miles": "mileage.engines.miles.engine:MilesEngine",
}

ENGINE_NAMES = tuple(_ENGINES)


@lru_cache(maxsize=None)
def get_engine(name: str):
    if name not in _ENGINES:
        raise ValueError(f"engine {name!r} is not one of {', '.join(ENGINE_NAMES)}")
    module, cls = _ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def engine_of(exp) -> object:
    """The engine of a resolved experiment (or of a params dict that carries `engine`)."""
    return get_engine(exp["engine"])
