"""Test helper: a mapping that records which config leaves the code reads.

`Recording(view)` wraps an experiment (or a rule's params) recursively: reading a leaf (`exp["rollout"]["lr"]`,
`.get`, `**section`, iterating its items, a deep copy, JSON encoding) records its dotted path; reading a section
records nothing until a leaf under it is read. Keys that are not config leaves (`name`, `card`, `which`) are never
recorded.
"""

from __future__ import annotations

import copy

from mileage.keys import schema_leaves

_MISSING = object()


class Recording(dict):
    def __init__(self, data=None, prefix: str = "", reads: set | None = None, leaves: frozenset | None = None):
        self.reads = reads if reads is not None else set()
        self.prefix = prefix
        self.leaves = leaves if leaves is not None else frozenset(schema_leaves())
        super().__init__()
        for key, value in (data or {}).items():
            path = f"{prefix}{key}"
            if isinstance(value, dict) and path not in self.leaves and not isinstance(value, Recording):
                value = Recording(value, f"{path}.", self.reads, self.leaves)
            dict.__setitem__(self, key, value)

    def _note(self, key) -> None:
        path = f"{self.prefix}{key}"
        if path in self.leaves:
            self.reads.add(path)

    def _note_all(self) -> None:
        for key, value in dict.items(self):
            if isinstance(value, Recording):
                value._note_all()
            else:
                self._note(key)

    def __getitem__(self, key):
        value = dict.__getitem__(self, key)
        self._note(key)
        return value

    def get(self, key, default=None):
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            return default
        self._note(key)
        return value

    # Iterating makes `**section` and `dict(section)` take the slow path through __getitem__.
    def __iter__(self):
        return iter(list(dict.keys(self)))

    def items(self):
        self._note_all()
        return dict.items(self)

    def values(self):
        self._note_all()
        return dict.values(self)

    def __deepcopy__(self, memo):
        # A copy records into the same set: what the code reads of its copy counts as read.
        return Recording({k: copy.deepcopy(v, memo) for k, v in dict.items(self)}, self.prefix, self.reads, self.leaves)

    def copy(self):
        return Recording(dict(dict.items(self)), self.prefix, self.reads, self.leaves)
