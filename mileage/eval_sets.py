"""The evaluation-set axis: every set of `data.eval` by name, and the views each kind of rule reads.

A resolved experiment keeps its sets as `data.eval` (the first) and `data.extra_eval` (the others): the shape the
engines' declared reads (`data.eval.name`, `data.extra_eval`) and every existing run's identity were made with. No
set is special beyond that storage: each rule sees the experiment through one of these views.
- `set_view(exp, name)`: one set as `data.eval` (its base and final evaluation, its summary), the same for every set;
- `training_view(exp)`: the sets evaluated inside training (`eval.sets`, default the first) as `data.eval` and
  `data.extra_eval`: adding a set to `data.eval` leaves the training's params, and so the run, untouched;
- `headline_view(exp)`: the headline set (`data.headline_eval`, default the first) as `data.eval` and the others as
  `data.extra_eval`: what the report, the figures and the comparison lead with.
"""

from __future__ import annotations

from typing import Any, Mapping

from mileage.errors import ConfigError


def all_sets(exp: Mapping[str, Any]) -> list[dict]:
    """Every evaluation set of `exp`, in the order `data.eval` lists them."""
    return [exp["data"]["eval"], *exp["data"]["extra_eval"]]


def set_names(exp: Mapping[str, Any]) -> list[str]:
    return [data["name"] for data in all_sets(exp)]


def headline_name(exp: Mapping[str, Any]) -> str:
    return exp["data"].get("headline_eval") or exp["data"]["eval"]["name"]


def training_names(exp: Mapping[str, Any]) -> list[str]:
    return list(exp["eval"].get("sets") or [exp["data"]["eval"]["name"]])


def _with_sets(exp: Mapping[str, Any], first: str, others: list[str]) -> dict:
    by_name = {data["name"]: data for data in all_sets(exp)}
    data = {**exp["data"], "eval": by_name[first], "extra_eval": [by_name[n] for n in others]}
    return {**exp, "data": data}


def set_view(exp: Mapping[str, Any], name: str) -> dict:
    """`exp` as if `name` were its only evaluation set: what that set's evaluation and summary rules read."""
    return _with_sets(exp, name, [])


def training_view(exp: Mapping[str, Any]) -> dict:
    """`exp` with only the sets evaluated inside training, in the order `eval.sets` gives them."""
    first, *others = training_names(exp)
    return _with_sets(exp, first, others)


def headline_view(exp: Mapping[str, Any]) -> dict:
    """`exp` with the headline set first and the others after it, in `data.eval`'s order."""
    head = headline_name(exp)
    return _with_sets(exp, head, [n for n in set_names(exp) if n != head])


def check_set_names(exp: Mapping[str, Any], where: str) -> None:
    """Unique set names; `eval.sets` and `data.headline_eval` name sets of `data.eval`."""
    names = set_names(exp)
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"{where}.data.eval[{i}].name: {name!r} names two evaluation sets (also "
                              f"data.eval[{names.index(name)}]); each needs its own name")
    known = ", ".join(names)
    for i, name in enumerate(exp["eval"].get("sets") or []):
        if name not in names:
            raise ConfigError(f"{where}.eval.sets[{i}]: {name!r} is not an evaluation set of data.eval ({known})")
    head = exp["data"].get("headline_eval")
    if head is not None and head not in names:
        raise ConfigError(f"{where}.data.headline_eval: {head!r} is not an evaluation set of data.eval ({known})")
