"""YAML that refuses duplicate keys.

PyYAML (and Snakemake, which loads the configfile with it) keeps the last of two equal keys without a word,
so a config naming the same experiment twice silently drops the first. `StrictSafeLoader` is `yaml.SafeLoader`
that raises `DuplicateKeyError` instead, naming the file, the key path and both lines. Merge keys (`<<:`) keep
their meaning: a key written next to `<<:` overrides the merged one, as YAML says, and is no duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping that names one key twice; str() is `FILE:LINE: duplicate key 'PATH' (first at line N)`."""

    def __init__(self, file: str, key_path: str, line: int, first_line: int | None):
        self.file, self.key_path, self.line, self.first_line = file, key_path, line, first_line
        where = f"{file}:{line}" if line else file
        first = f" (first at line {first_line})" if first_line else ""
        super().__init__(f"{where}: duplicate key {key_path!r}{first}")


class StrictSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader, but a duplicate key at any depth raises DuplicateKeyError before anything is built."""

    def construct_document(self, node: Node) -> Any:
        self._check_duplicates(node, [], set())
        return super().construct_document(node)

    def _check_duplicates(self, node: Node, path: list[str], seen: set[int]) -> None:
        # Aliases make the node tree a graph (possibly cyclic): visit each node once.
        if id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                self._check_duplicates(item, path[:-1] + [f"{path[-1] if path else ''}[{index}]"], seen)
        elif isinstance(node, MappingNode):
            first_lines: dict[Any, int] = {}
            for key_node, value_node in node.value:
                label = str(key_node.value) if isinstance(key_node, ScalarNode) else "?"
                if key_node.tag != _MERGE_TAG:
                    self._check_key(key_node, path + [label], first_lines)
                self._check_duplicates(value_node, path + [label], seen)

    def _check_key(self, key_node: Node, path: list[str], first_lines: dict[Any, int]) -> None:
        if not isinstance(key_node, ScalarNode):
            return  # a complex key; SafeLoader refuses unhashable ones itself
        # Compare constructed keys, as the dict will: `1` and `0x1`, `yes` and `true` collide.
        key = self.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in first_lines:
            raise DuplicateKeyError(key_node.start_mark.name, ".".join(path), line, first_lines[key])
        first_lines[key] = line


def load_yaml_strict(path: str | Path) -> Any:
    """The YAML document in `path`, like yaml.safe_load, but a duplicate key raises DuplicateKeyError."""
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass


def _json_duplicate(path: Path) -> DuplicateKeyError | None:
    """For a JSON config PyYAML cannot parse (e.g. tab-indented): its first duplicate key (json gives no lines)."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise DuplicateKeyError(str(path), key, 0, None)
            seen.add(key)
        return dict(items)

    try:
        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=pairs)
    except DuplicateKeyError as err:
        return err
    except ValueError:
        pass
    return None


def check_files(paths: Iterable[str | Path]) -> None:
    """Re-read config files another loader (Snakemake's) already accepted; raise on the first duplicate key."""
    for path in map(Path, paths):
        if path.is_absolute() and path.is_relative_to(Path.cwd()):
            path = path.relative_to(Path.cwd())  # Snakemake makes --configfile paths absolute
        try:
            load_yaml_strict(path)
        except DuplicateKeyError:
            raise
        except yaml.YAMLError:
            # Snakemake reads JSON first; JSON that is not YAML is checked as JSON.
            if (err := _json_duplicate(path)) is not None:
                raise err from None
