"""Load, merge and check the configuration once, at the edge.

An experiment is resolved as: schema defaults < config `defaults` < what it `extends` (another experiment of
the config, or an experiment YAML file) < its own keys. Every layer is checked against the schema on its own, so
an error names the place the user wrote it (`experiments.demo.train.lr`, `config/experiments/x.yaml: rollout`),
then the merged experiment gets the semantic checks: the batch identity, files that must exist, engine needs.
Code past this point receives complete, plain values.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from mileage.cluster import gpu_memory_default
from mileage.batch import BatchIdentityError, batch_identity
from mileage.engines import ENGINE_NAMES, get_engine
from mileage.errors import ConfigError  # noqa: F401 - re-exported: mileage.config.ConfigError
from mileage.eval_sets import check_set_names
from mileage.sweeps import POINT_SEPARATOR, check_sweep, point_name, points, set_dotted
from mileage.launch.ray_cluster import remote_host_problem
from mileage.secrets import secret_config_problems

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"
MODELS_DIR = "config/models"


def load_yaml(path: str | Path, what: str = "config file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    from mileage.yaml_strict import DuplicateKeyError, load_yaml_strict

    try:
        return load_yaml_strict(path) or {}
    except DuplicateKeyError as exc:
        raise ConfigError(str(exc)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    return load_yaml(path, "schema")


def _sub_schema(schema: dict, name: str) -> dict:
    """A schema for one $defs entry that can still resolve the other $defs."""
    return {"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]}


def _resolve_ref(node: dict, schema: dict) -> dict:
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/"), ref
        extra = {k: v for k, v in node.items() if k != "$ref"}
        node = {**schema["$defs"][ref.split("/")[-1]], **extra}
    return node


def fill_defaults(instance: dict, node: dict, schema: dict) -> dict:
    """Return a copy of `instance` with every missing key that has a schema default filled, recursively."""
    node = _resolve_ref(node, schema)
    out = copy.deepcopy(instance)
    for key, prop in node.get("properties", {}).items():
        prop = _resolve_ref(prop, schema)
        if key not in out and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
        if isinstance(out.get(key), dict) and "properties" in prop:
            out[key] = fill_defaults(out[key], prop, schema)
    return out


def _yaml_number_hint(error: jsonschema.ValidationError) -> str:
    """YAML 1.1 (PyYAML, Snakemake) reads `1e-3` and `1.0e3` as strings: a float needs a dot and a signed
    exponent (`1.0e-3`, `1.0e+3`). Say so, with the spelling that works."""
    wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
    if "number" not in wanted or not isinstance(error.instance, str):
        return ""
    try:
        float(error.instance)
    except ValueError:
        return ""
    mantissa, _, exponent = error.instance.strip().lower().partition("e")
    if not exponent:
        return ""  # a quoted plain number: the quotes are the problem, nothing to rewrite
    mantissa = mantissa if "." in mantissa else f"{mantissa}.0"
    exponent = exponent if exponent[0] in "+-" else f"+{exponent}"
    return f" (YAML reads {error.instance} as a string: write {mantissa}e{exponent})"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown key {', '.join(map(repr, extra))} (expected one of: {', '.join(allowed)})"
    if error.validator == "type":
        return f"expected {error.validator_value}, got {error.instance!r}{_yaml_number_hint(error)}"
    if error.validator == "enum":
        return f"expected one of {error.validator_value}, got {error.instance!r}"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        ops = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
        return f"expected a value {ops[error.validator]} {error.validator_value}, got {error.instance!r}"
    if error.validator == "minItems" and error.validator_value == 1:
        return f"an empty list: give at least one item, got {error.instance!r}"
    if error.validator == "uniqueItems":
        repeated = sorted({repr(v) for v in error.instance if error.instance.count(v) > 1})
        return f"{', '.join(repeated)} given more than once in {error.instance!r}: items must be unique"
    return error.message


def check_against(instance: Any, schema: dict, where: str, root: dict) -> None:
    """Validate `instance`; raise ConfigError naming `where.<path>` of the first (deepest) problem."""
    validator = jsonschema.Draft202012Validator({**schema, "$defs": root.get("$defs", {})})
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), str(e.absolute_path)))
    if not errors:
        return
    error = errors[-1]
    path = ".".join([where] + [str(p) for p in error.absolute_path]).strip(".")
    extra = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    raise ConfigError(f"{path}: {_describe(error)}{extra}")


def deep_merge(base: dict, override: dict) -> dict:
    """Merge dicts recursively; lists and scalars in `override` replace those in `base`."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def fill_batch_identity(rollout: dict, train: dict, where: str) -> tuple[int, int]:
    """The batch identity (mileage.batch), its error named by the experiment's key path."""
    try:
        return batch_identity(rollout, train)
    except BatchIdentityError as err:
        raise ConfigError(f"{where}.{err.key}: {err}") from None


def normalise_numbers(instance: Any, node: dict, schema: dict) -> Any:
    """Integers where the schema wants a number become floats (`lr: 1` and `lr: 1.0` are one value), so params
    and fingerprints never see a spelling as a change."""
    node = _resolve_ref(node, schema)
    if isinstance(instance, dict) and "properties" in node:
        return {
            key: normalise_numbers(value, node["properties"][key], schema) if key in node["properties"] else value
            for key, value in instance.items()
        }
    wanted = node.get("type")
    wanted = wanted if isinstance(wanted, list) else [wanted]
    if "number" in wanted and "integer" not in wanted and isinstance(instance, int) and not isinstance(instance, bool):
        return float(instance)
    return instance


class ExperimentResolver:
    """Resolves experiments of one config (and stand-alone experiment files) into complete dicts."""

    def __init__(self, config: dict, base_dir: str | Path = ".", schema: dict | None = None):
        self.base_dir = Path(base_dir)
        self.schema = schema if schema is not None else load_schema()
        check_against(config, {k: v for k, v in self.schema.items() if k != "$defs"}, "", self.schema)
        self.config = normalise_numbers(fill_defaults(config, self.schema, self.schema), self.schema, self.schema)
        self._experiment_schema = _sub_schema(self.schema, "experiment")
        self.config["defaults"] = self._eval_list(self.config["defaults"], "defaults")
        check_against(self.config["defaults"], self._experiment_schema, "defaults", self.schema)

    def _path(self, p: str | Path) -> Path:
        p = Path(p)
        return p if p.is_absolute() else self.base_dir / p

    def _eval_list(self, entry: Any, where: str) -> Any:
        """A layer whose `data.eval` is a list of datasets, as `data.eval` (the first) and `data.extra_eval` (the
        others); each item is checked on its own, so an error names `data.eval[i]`."""
        data = entry.get("data") if isinstance(entry, dict) else None
        if not isinstance(data, dict) or not isinstance(data.get("eval"), list):
            return entry
        sets = data["eval"]
        if not sets:
            raise ConfigError(f"{where}.data.eval: an empty list: give one dataset or several")
        if "extra_eval" in data:
            raise ConfigError(f"{where}.data.extra_eval: give it or a data.eval list, not both")
        for i, item in enumerate(sets):
            check_against(item, _sub_schema(self.schema, "dataset"), f"{where}.data.eval[{i}]", self.schema)
        entry = copy.deepcopy(entry)
        entry["data"]["eval"], entry["data"]["extra_eval"] = entry["data"]["eval"][0], entry["data"]["eval"][1:]
        return entry

    def _layer_chain(self, name: str, entry: dict, where: str, seen: tuple[str, ...]) -> list[dict]:
        entry = self._eval_list(entry, where)
        check_against(entry, self._experiment_schema, where, self.schema)
        parent = entry.get("extends")
        if not parent:
            return [entry]
        if parent in seen:
            raise ConfigError(f"{where}.extends: cycle through {' -> '.join(seen + (parent,))}")
        if parent in self.config["experiments"]:
            base = self.config["experiments"][parent]
            return self._layer_chain(parent, base, f"experiments.{parent}", seen + (parent,)) + [entry]
        if parent.endswith((".yaml", ".yml")):
            file = self._path(parent)
            if not file.is_file():
                raise ConfigError(f"{where}.extends: experiment file {parent} not found")
            data = load_yaml(file, "experiment file")
            if not isinstance(data, dict):
                raise ConfigError(f"{parent}: an experiment file must be a mapping of experiment keys")
            return self._layer_chain(parent, data, str(parent), seen + (parent,)) + [entry]
        known = ", ".join(sorted(self.config["experiments"]))
        raise ConfigError(
            f"{where}.extends: {parent!r} is neither an experiment of this config ({known}) nor a .yaml file"
        )

    def _merged(self, name: str, entry: Any, where: str) -> dict:
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping of experiment keys, got {entry!r}")
        merged = copy.deepcopy(self.config["defaults"])
        for layer in self._layer_chain(name, entry, where, (name,)):
            merged = deep_merge(merged, layer)
        return merged

    def resolve(self, name: str, entry: dict | None = None, where: str | None = None) -> dict:
        """One experiment, or one point of a sweep by its name (`demo-lr~train.lr=0.001`)."""
        if entry is None:
            if name not in self.config["experiments"]:
                parent = name.split(POINT_SEPARATOR)[0]
                if POINT_SEPARATOR in name and parent in self.config["experiments"]:
                    found = self.resolve_points(parent)
                    if name in found:
                        return found[name]
                    raise ConfigError(f"experiments.{parent}: the sweep has no point {name!r} "
                                      f"(its points: {', '.join(found)})")
                known = ", ".join(sorted(self.config["experiments"]))
                raise ConfigError(f"experiments.{name}: no such experiment (known: {known})")
            entry = self.config["experiments"][name]
        where = where or f"experiments.{name}"
        merged = self._merged(name, entry, where)
        if merged.get("sweep"):
            listed = ", ".join(point_name(name, values) for values in points(merged["sweep"]))
            raise ConfigError(f"{where}.sweep: {name} is a sweep, not one experiment: name one of its points "
                              f"({listed})")
        merged.pop("extends", None)
        merged["label"] = entry.get("label")  # a display name is the experiment's own: never inherited
        exp = fill_defaults(merged, self._experiment_schema, self.schema)
        dataset = {"$ref": "#/$defs/dataset"}  # fill_defaults does not enter lists
        exp["data"]["extra_eval"] = [fill_defaults(d, dataset, self.schema) for d in exp["data"]["extra_eval"]]
        check_against(exp, self._experiment_schema, where, self.schema)
        exp = normalise_numbers(exp, self._experiment_schema, self.schema)
        # A named GPU model gives the GPU size, so the plan can be judged where no GPU is (a SLURM submit host).
        exp["resources"]["gpu_memory_gb"] = gpu_memory_default(exp["resources"])
        self._semantic_checks(exp, where)
        # What the config itself sets (its defaults, the extends chain, the entry), not the schema's defaults.
        get_engine(exp["engine"]).check_explicit_keys(exp, explicit_keys(merged), where)
        return exp

    def resolve_points(self, name: str, entry: dict | None = None, where: str | None = None) -> dict[str, dict]:
        """{name: experiment} of one configured experiment: itself, or every point of its sweep."""
        entry = self.config["experiments"][name] if entry is None else entry
        where = where or f"experiments.{name}"
        sweep = self._merged(name, entry, where).get("sweep")
        if not sweep:
            exp = self.resolve(name, entry, where)
            exp["sweep_point"] = None
            return {name: exp}
        check_sweep(sweep, self.schema, where)
        out: dict[str, dict] = {}
        seen: dict[str, str] = {}
        for values in points(sweep):
            layer = {**entry, "sweep": None}
            for key, value in values.items():
                layer = set_dotted(layer, key, value)
            shown = ", ".join(f"{key}={value}" for key, value in values.items())
            layer["label"] = f"{entry.get('label') or name} ({shown})"
            point = point_name(name, values)
            exp = self.resolve(point, layer, f"{where} (sweep point {shown})")
            same = fingerprint({k: v for k, v in exp.items() if k != "label"})
            if same in seen:
                raise ConfigError(f"{where}.sweep: the points {seen[same]} and {point} resolve to the same "
                                  f"experiment (a value equal to another once defaults apply)")
            seen[same] = point
            exp["sweep_point"] = {"of": name, "values": values}
            out[point] = exp
        return out

    def resolve_all(self) -> dict[str, dict]:
        experiments: dict[str, dict] = {}
        for name in self.config["experiments"]:
            experiments.update(self.resolve_points(name))
        labels: dict[str, str] = {}
        for name, exp in experiments.items():  # one display name per experiment in every figure and table
            label = exp["label"]
            if label is not None and label in labels:
                raise ConfigError(f"experiments.{name}.label: {label!r} is also the label of experiments.{labels[label]}")
            if label is not None:
                labels[label] = name
        return experiments

    def _semantic_checks(self, exp: dict, where: str) -> None:
        gbs, steps = fill_batch_identity(exp["rollout"], exp["train"], where)
        exp["train"]["global_batch_size"], exp["train"]["num_steps_per_rollout"] = gbs, steps
        if gbs % exp["train"]["micro_batch_size"]:
            raise ConfigError(
                f"{where}.train.micro_batch_size: {exp['train']['micro_batch_size']} does not divide "
                f"global_batch_size {gbs}"
            )
        model = exp["model"]
        if model["source"] == "path":
            if not model["path"]:
                raise ConfigError(f"{where}.model.path: required when model.source is 'path'")
            if not self._path(model["path"]).is_dir():
                raise ConfigError(f"{where}.model.path: directory {model['path']} not found")
        if model["source"] == "hf":
            if model["card"]:
                card = self._path(MODELS_DIR) / f"{model['card']}.yaml"
                if not card.is_file():
                    known = sorted(p.stem for p in self._path(MODELS_DIR).glob("*.yaml"))
                    raise ConfigError(
                        f"{where}.model.card: unknown model card {model['card']!r} (known: {', '.join(known) or 'none'})"
                    )
            elif not model["repo"]:
                raise ConfigError(f"{where}.model: source 'hf' needs model.card or model.repo")
        check_set_names(exp, where)
        splits = [("train", exp["data"]["train"]), ("eval", exp["data"]["eval"])]
        splits += [(f"eval[{i}]", d) for i, d in enumerate(exp["data"]["extra_eval"], start=1)]
        for split, data in splits:
            key = f"{where}.data.{split}"
            if data["source"] == "file":
                if not data["path"]:
                    raise ConfigError(f"{key}.path: required when source is 'file'")
                if not self._path(data["path"]).is_file():
                    raise ConfigError(f"{key}.path: file {data['path']} not found")
            elif data["source"] == "hf" and not data["repo"]:
                raise ConfigError(f"{key}.repo: required when source is 'hf'")
        # Every engine's free-form keys, whatever this experiment's engine: a token in a key its engine ignores
        # still lands in the config copy that provenance and the results keep.
        free_form = tuple(key for name in ENGINE_NAMES for key in get_engine(name).free_form_keys)
        for key, problem in secret_config_problems(exp, free_form):
            raise ConfigError(f"{where}.{key}: {problem}")
        error, warning = remote_host_problem(exp["ray"]["host"], exp["ray"]["allow_remote"])
        if error:
            raise ConfigError(f"{where}.ray.host: {error}")
        if warning:
            print(f"mileage: WARNING: {where}.{warning}", file=sys.stderr)
        get_engine(exp["engine"]).check_config(exp, where)
        if exp["warm_start"]["enabled"] and model["source"] != "demo":
            raise ConfigError(f"{where}.warm_start.enabled: the warm start is built for the demo model only")


def explicit_keys(layer: Mapping[str, Any], prefix: str = "") -> set[str]:
    """The dotted keys a config layer sets: every mapping on the way and every value (`miles`, `miles.fsdp`,
    `miles.fsdp.cpu_offload`)."""
    keys: set[str] = set()
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        keys.add(dotted)
        if isinstance(value, Mapping):
            keys |= explicit_keys(value, dotted + ".")
    return keys


def load_experiment(name_or_path: str, config_path: str | Path = "config/config.yaml") -> tuple[str, dict]:
    """Resolve EXPERIMENT for the command line: a name in the config, or the path of an experiment file."""
    config_path = Path(config_path)
    base_dir = config_path.parent.parent if config_path.parent.name == "config" else Path(".")
    if name_or_path.endswith((".yaml", ".yml")) or Path(name_or_path).is_file():
        file = Path(name_or_path)
        config = load_yaml(config_path) if config_path.is_file() else {}
        config = {**config, "experiments": {file.stem: {"extends": str(file)}}}
        resolver = ExperimentResolver(config, base_dir=base_dir if not file.is_absolute() else ".")
        return file.stem, resolver.resolve(file.stem, where=str(file))
    resolver = ExperimentResolver(load_yaml(config_path), base_dir=base_dir)
    return name_or_path, resolver.resolve(name_or_path)


def fingerprint(values: Any) -> str:
    """A stable short hash of plain values (dict key order does not matter)."""
    blob = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
