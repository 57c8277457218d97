"""One declaration of the config's keys: which rule reads each, and whether a change may continue a training run.

Everything that must agree on config keys derives from here: each rule's `params` (exactly the leaves it reads,
canonical, so Snakemake reruns what an edit made stale and nothing else), the training run's resume identity
(what it reads minus what may change under a running run) and `mileage keys`. The engine stages' reads are each
engine's own declaration (`Engine.reads`); the stages every engine shares are declared here.
tests/test_keys.py proves the declaration complete by recording what the code reads while it builds each
rule's work.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping

from mileage.config import _resolve_ref, load_schema
from mileage.engines import ENGINE_NAMES, get_engine
from mileage.engines.contract import ENGINE_STAGES

# Top-level config sections that an experiment's rules read beside the experiment's own keys.
CONFIG_SECTIONS = ("report", "plots", "compare")

# What the rules every engine shares read. The cache rules (datasets, demo model, warm start, model download)
# are keyed by these values through mileage.layout, so an edit elsewhere never rebuilds them.
SHARED_READS: dict[str, tuple[str, ...]] = {
    "summarize": ("data.eval.name", "rollout.reward", "report.bootstrap_samples", "report.bootstrap_seed"),
    "report": ("label", "data.eval.name", "report.title", "plots.formats"),
    "headline": ("data.eval.name",),
    "plots": ("plots", "eval.n_samples_per_prompt"),
    "compare": ("plots", "eval.n_samples_per_prompt", "label", "compare"),
    "dataset": ("data.train", "data.eval"),
    "demo_model": ("model.demo",),
    "warm_start": ("warm_start", "data.train.source", "data.train.demo.max_operand", "data.train.demo.operations"),
    "fetch_model": ("model.source", "model.card", "model.repo", "model.revision", "model.path"),
}

STAGES = ENGINE_STAGES + tuple(SHARED_READS)

# Keys a training run reads that may change under it: the run continues from its checkpoints (why, beside each).
# Every other key a training reads starts a fresh run when it changes (the old one kept aside), in-training
# evaluation settings included: a resumed run never keeps evaluations made with other settings.
RESUME_SAFE: dict[str, str] = {
    "rollout.num_rollout": "the absolute number of rollouts: a longer run continues, a shorter one ends at its "
                           "checkpoint (only under a constant learning rate)",
    "train.save_interval": "which checkpoints are written",
    "ray": "where the job runs",
    "tracking": "trackers",
    "resources": "the hardware the job asks for",
}  # each engine adds its own keys (Engine.resume_safe): resume_safe_keys

# Conditions under which a RESUME_SAFE key is safe, read on the training's own params.
RESUME_CONDITIONS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    # A decaying schedule spans num_rollout: more rollouts would change the steps already taken.
    "rollout.num_rollout": lambda params: params["train"]["lr_decay_style"] == "constant",
}


class KeyDeclarationError(ValueError):
    """A declared key that the schema does not have."""


# ---- the schema's leaves ----------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def schema_leaves() -> tuple[str, ...]:
    """Every leaf of an experiment (`rollout.num_rollout`) and of the config sections rules read (`plots.dpi`).
    A mapping without declared properties (an engine's free-form section, `sweep`) is one leaf."""
    schema = load_schema()

    def walk(node: dict, prefix: tuple[str, ...]) -> Iterable[str]:
        node = _resolve_ref(node, schema)
        if "properties" in node:
            for key, child in node["properties"].items():
                yield from walk(child, prefix + (key,))
        else:
            yield ".".join(prefix)

    leaves = [leaf for leaf in walk(schema["$defs"]["experiment"], ()) if leaf != "extends"]
    for section in CONFIG_SECTIONS:
        leaves += walk(schema["properties"][section], (section,))
    return tuple(leaves)


def expand(paths: Iterable[str]) -> tuple[str, ...]:
    """The leaves a list of keys stands for: a leaf itself, a section all the leaves under it."""
    leaves = schema_leaves()
    out: list[str] = []
    for path in paths:
        matched = [leaf for leaf in leaves if leaf == path or leaf.startswith(path + ".")]
        if not matched:
            raise KeyDeclarationError(f"declared key {path!r} is not a key of config/schema.yaml")
        out += matched
    return tuple(sorted(set(out)))


# Keys that choose which view of the experiment a rule reads (mileage.eval_sets) rather than being read: the rule
# reads their effect (the evaluation sets as data.eval / data.extra_eval), so they are in no rule's params.
VIEW_KEYS: dict[str, str] = {
    "eval.sets": "training reads the sets it evaluates as data.eval and data.extra_eval (eval_sets.training_view)",
    "data.headline_eval": "the report, figures and comparison read the headline set as data.eval "
                          "(eval_sets.headline_view)",
}


def stage_reads(stage: str, engine: str) -> tuple[str, ...]:
    """The leaves rule `stage` reads for an experiment of `engine`."""
    if stage in SHARED_READS:
        declared = expand(SHARED_READS[stage])
    elif stage in ENGINE_STAGES:
        declared = expand(get_engine(engine).reads[stage])
    else:
        raise KeyError(f"no rule {stage!r} (known: {', '.join(STAGES)})")
    return tuple(leaf for leaf in declared if leaf not in VIEW_KEYS)


# ---- params ---------------------------------------------------------------------------------------------------------

def canonical(value: Any) -> Any:
    """Plain values with every mapping's keys sorted: Snakemake compares params by repr, so key order (and with the
    config's number normalisation, `1.0e-3` vs `0.001` or `1` vs `1.0`) never makes a job stale."""
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def _get(view: Mapping[str, Any], leaf: str) -> Any:
    node: Any = view
    for part in leaf.split("."):
        node = node[part]
    return node


def project(view: Mapping[str, Any], leaves: Iterable[str]) -> dict:
    """A nested dict of exactly `leaves` of `view`, canonical."""
    out: dict = {}
    for leaf in leaves:
        *parents, last = leaf.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = _get(view, leaf)
    return canonical(out)


def experiment_view(exp: Mapping[str, Any], config: Mapping[str, Any]) -> dict:
    """An experiment with the config sections its rules read (report, plots) beside its own keys."""
    return {**exp, **{section: config[section] for section in CONFIG_SECTIONS if section in config}}


def stage_params(stage: str, name: str | None, exp: Mapping[str, Any], config: Mapping[str, Any],
                 **extra: Any) -> dict:
    """The `params` of rule `stage` for experiment `name`: the leaves it reads, plus `extra` plain values (the
    experiment's name, the model card, which evaluation) that are not config keys."""
    view = experiment_view(exp, config)
    params = project(view, stage_reads(stage, exp["engine"]))
    return canonical({**params, "name": name, **extra})


# ---- resume -----------------------------------------------------------------------------------------------------------

def resume_safe_keys(engine: str) -> dict[str, str]:
    """The keys a training run of `engine` may continue across (why, beside each): the shared ones and its own."""
    return {**RESUME_SAFE, **get_engine(engine).resume_safe}


def resume_safe(leaf: str, params: Mapping[str, Any] | None = None, engine: str | None = None) -> bool:
    """Whether a change of `leaf` may continue an existing run of `engine` (default: the params' engine; with
    `params`, the conditional ones decided)."""
    engine = engine or (params or {}).get("engine")
    for key in resume_safe_keys(engine) if engine else RESUME_SAFE:
        if leaf == key or leaf.startswith(key + "."):
            condition = RESUME_CONDITIONS.get(key)
            return condition is None or params is None or condition(params)
    return False


def identity_of(train_params: Mapping[str, Any]) -> dict:
    """What a training run's checkpoints depend on: its params minus the resume-safe leaves (plus `name`, `card`
    and any other non-config value the params carry)."""
    engine = train_params["engine"]
    keep = [leaf for leaf in stage_reads("train", engine) if not resume_safe(leaf, train_params)]
    identity = project(train_params, keep)
    for key, value in train_params.items():
        if key not in identity and not any(leaf.split(".")[0] == key for leaf in stage_reads("train", engine)):
            identity[key] = value  # name, card: not config keys
    return canonical(identity)


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@lru_cache(maxsize=1)
def _default_experiment() -> dict:
    from mileage.config import fill_defaults

    schema = load_schema()
    return fill_defaults({}, schema["$defs"]["experiment"], schema)


def _default_of(dotted: str) -> Any:
    node: Any = _default_experiment()
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return KeyError  # no default: never taken as one
        node = node[part]
    return canonical(node)


def upgrade_added_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str] | None:
    """The keys a newer mileage added to a run's identity, when that is the only difference and each is at its schema
    default (what the older mileage did without the key): the same training, so a finished run is never trained
    again by an upgrade. None when the identities differ otherwise."""
    old_flat, new_flat = _flat(old), _flat(new)
    if any(key not in new_flat or new_flat[key] != value for key, value in old_flat.items()):
        return None
    added = sorted(set(new_flat) - set(old_flat))
    return added if all(new_flat[key] == _default_of(key) for key in added) else None


# ---- the table -------------------------------------------------------------------------------------------------------

def declaration(stage: str | None = None) -> list[tuple[str, list[str], str]]:
    """(leaf, the rules that read it (engine stages as `rule[engine]`), resume policy) for every leaf, or only for
    those `stage` reads."""
    readers: dict[str, list[str]] = {leaf: [] for leaf in schema_leaves()}
    for rule in STAGES:
        if stage is not None and rule != stage:
            continue
        if rule in SHARED_READS:
            for leaf in stage_reads(rule, ENGINE_NAMES[0]):
                readers[leaf].append(rule)
            continue
        for engine in ENGINE_NAMES:
            for leaf in stage_reads(rule, engine):
                readers[leaf].append(f"{rule}[{engine}]")
    rows = []
    for leaf, rules in readers.items():
        if stage is not None and not rules:
            continue
        if any(r.startswith("train[") for r in rules):
            engine = next(r[len("train["):-1] for r in rules if r.startswith("train["))
            policy = "continues the run" if resume_safe(leaf, engine=engine) else "starts afresh"
            if leaf in RESUME_CONDITIONS:
                policy += " (constant lr only)"
        else:
            policy = "-"
        rows.append((leaf, rules, policy))
    return rows


def _rules_text(rules: list[str]) -> str:
    """`train[local], train[miles], eval_base[miles]` as `train, eval_base[miles]`; all of one engine as
    `train, eval_base (miles)`."""
    engines: dict[str, set[str]] = {}
    for rule in rules:
        name, _, engine = rule.partition("[")
        engines.setdefault(name, set()).add(engine.rstrip("]"))
    every = set(ENGINE_NAMES)
    only = {e for es in engines.values() for e in es}
    if len(only) == 1 and "" not in only and all(es != every for es in engines.values()):
        return f"{', '.join(engines)} ({only.pop()})"
    return ", ".join(name if es == every or "" in es else ", ".join(f"{name}[{e}]" for e in sorted(es))
                     for name, es in engines.items())


POLICY_SHORT = {"starts afresh": "afresh", "continues the run": "continues",
                "continues the run (constant lr only)": "continues*"}
LEGEND = ("on a run: what a change of the key does to a training run with checkpoints: afresh = it starts afresh "
          "(the old run kept aside); continues = it continues the run; * = only with a constant learning rate")


def format_declaration(rows: list[tuple[str, list[str], str]], columns: int = 100) -> str:
    """The table of `mileage keys`, at most `columns` wide: the rules column wraps."""
    import textwrap

    width = max([len("key")] + [len(leaf) for leaf, _, _ in rows])
    policies = [POLICY_SHORT.get(policy, policy) for _, _, policy in rows]
    policy_width = max([len("on a run")] + [len(p) for p in policies])
    indent = width + policy_width + 4
    lines = [f"{'key':<{width}}  {'on a run':<{policy_width}}  rules that read it", "-" * min(columns, indent + 40)]
    for (leaf, rules, _), policy in zip(rows, policies):
        wrapped = textwrap.wrap(_rules_text(rules) or "(none)", max(columns - indent, 20)) or [""]
        lines.append(f"{leaf:<{width}}  {policy:<{policy_width}}  {wrapped[0]}")
        lines += [" " * indent + more for more in wrapped[1:]]
    if any(policy != "-" for policy in policies):
        lines += ["", *textwrap.wrap(LEGEND, columns)]
    return "\n".join(lines) + "\n"
