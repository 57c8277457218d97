"""What an experiment changes relative to the baseline, from the two resolved configs: `train.lr 0.0005 -> 0.001`.

Every legend and table of the comparison names an experiment by this text (beside its name), so a reader sees
what `demo-lr` is without opening the YAML. The keys compared are the leaves of the resolved experiments (the
schema's defaults filled in), so an experiment that spells out a default changes nothing. Left out: what names or
describes an experiment (`description`, `label`, `extends`, the sweep bookkeeping) and the seeds (`seed`,
`seeds`, `rollout_seed`: replicates of one recipe, which the tables count separately).
"""

from __future__ import annotations

from typing import Any, Mapping

# Keys that say what an experiment is called or how it is replicated, not what it does.
IGNORED: tuple[str, ...] = ("description", "label", "extends", "sweep", "sweep_point", "name", "seed", "seeds",
                            "rollout_seed")
NO_CHANGE = "no config change"
BASELINE = "baseline"


def _leaves(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping) and node:
        out: dict[str, Any] = {}
        for key in sorted(node, key=str):
            if not prefix and key in IGNORED:
                continue
            out.update(_leaves(node[key], f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): node}


def config_changes(baseline: Mapping[str, Any], experiment: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, baseline value, experiment value) of every leaf that differs, sorted by key; a key only one
    side has shows `None` on the other."""
    old, new = _leaves(baseline), _leaves(experiment)
    return [(key, old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key)]


def format_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)  # 0.0005, 1e-06: what the YAML would say
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, Mapping):  # an evaluation set in a list: its name; any other mapping in key order
        if "name" in value:
            return str(value["name"])
        return "{" + ", ".join(f"{k}: {format_value(value[k])}" for k in sorted(value, key=str)) + "}"
    return str(value)


def change_text(baseline: Mapping[str, Any], experiment: Mapping[str, Any], max_keys: int = 3) -> str:
    """`train.lr 0.0005 -> 0.001; rollout.temperature 1.0 -> 0.8`, at most `max_keys` keys and then `+N more`;
    "no config change" when the recipes agree (replicates of the baseline, for example)."""
    changes = config_changes(baseline, experiment)
    if not changes:
        return NO_CHANGE
    shown = [f"{key} {format_value(old)} -> {format_value(new)}" for key, old, new in changes[:max_keys]]
    more = len(changes) - max_keys
    return "; ".join(shown) + (f"; +{more} more" if more > 0 else "")


def changes_against(baseline: str, experiments: Mapping[str, Mapping[str, Any]], max_keys: int = 3) -> dict[str, str]:
    """{experiment: its change text relative to `baseline`} for every experiment (the baseline's own: "baseline")."""
    if baseline not in experiments:
        raise KeyError(f"compare.baseline: no experiment {baseline!r} (experiments: {', '.join(experiments)})")
    return {name: BASELINE if name == baseline else change_text(experiments[baseline], exp, max_keys)
            for name, exp in experiments.items()}
