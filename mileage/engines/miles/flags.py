"""The flags miles' `train.py` accepts, and a check that an argv uses only those.

miles parses with one argparse parser (Megatron-LM's flags + miles' own), abbreviations off, unknown flags a
hard error (FACTS section 1). The lists in `flags/` are copies of the flag lists read from the reference
commits, shipped with the package so that a typo is caught here, before a GPU job starts, not in Ray's logs.
Flags generated from other parsers (SGLang's server arguments, the router's) are not listed: they are
recognised by prefix.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Iterable

FLAG_LIST_DIR = Path(__file__).resolve().parent / "flags"
FLAG_LIST_FILES = ("miles.txt", "megatron.txt")
# One flag per SGLang ServerArgs / router argument; validated by miles against those parsers, not here.
GENERATED_PREFIXES = ("--sglang-", "--eval-sglang-", "--router-")


class UnknownFlagError(ValueError):
    """An argv token names a flag miles' parser would reject."""


def read_flag_list(path: Path) -> set[str]:
    """The flags of one list file: one `--flag` per line, `#` comments, an optional trailing `*` mark."""
    flags: set[str] = set()
    for line_number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split()[0]
        if not name.startswith("-"):
            raise UnknownFlagError(f"{path} line {line_number}: expected a -flag, got {raw!r}")
        flags.add(name)
    return flags


@lru_cache(maxsize=1)
def known_flags() -> frozenset[str]:
    """Every flag listed for miles' train.py (miles' own and Megatron-LM's)."""
    flags: set[str] = set()
    for name in FLAG_LIST_FILES:
        flags |= read_flag_list(FLAG_LIST_DIR / name)
    return frozenset(flags)


def is_known_flag(flag: str) -> bool:
    if flag in known_flags():
        return True
    return any(flag.startswith(prefix) and len(flag) > len(prefix) for prefix in GENERATED_PREFIXES)


def flag_tokens(argv: Iterable[str]) -> list[str]:
    """The tokens of `argv` that are flags (`--x`; `--x=value` counts as `--x`)."""
    return [token.split("=", 1)[0] for token in argv if token.startswith("--") and len(token) > 2]


def validate_flags(argv: Iterable[str]) -> None:
    """Raise UnknownFlagError naming every flag of `argv` that miles would reject, with the nearest known ones."""
    problems = []
    for flag in flag_tokens(argv):
        if is_known_flag(flag):
            continue
        near = difflib.get_close_matches(flag, sorted(known_flags()), n=3, cutoff=0.75)
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        problems.append(f"{flag}{hint}")
    if problems:
        raise UnknownFlagError("miles train.py does not accept: " + "; ".join(problems))
