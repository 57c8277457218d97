"""Rule-based math rewards: miles' `deepscaler` rule, re-implemented from its documented behaviour.

The rule (FACTS.md section 4): grade only the text after the last `</think>` (or after `###Response`),
and a response with neither scores 0, so a reply cut off inside its thinking is wrong. In that text take
the last `\\boxed{...}` (or `\\fbox{...}`); none scores 0. The answer is correct (1.0) when it equals the
label after string normalisation or, failing that, when sympy finds the two equal. Binary.

Both engines call these functions for every sample of every rollout, so the cheap paths come first:
normalised string equality, then exact rational comparison with `fractions`, and sympy only when both
sides look like mathematics and still differ. Nothing here raises on model output.
"""

from __future__ import annotations

import functools
import re
import signal
import threading
from fractions import Fraction
from typing import Callable

THINK_END = "</think>"
RESPONSE_MARKER = "###Response"
_BOX_COMMANDS = ("\\boxed", "\\fbox")

# Model output is arbitrary text: bound what reaches sympy (its parser evaluates Python expressions).
_MAX_SYMPY_CHARS = 120
_MAX_EXPONENT = 1000
_SYMPY_TIMEOUT_S = 2.0


# ---------------------------------------------------------------------------------------------------
# Finding the graded text and the boxed answer


def answer_region(response: str, require_think: bool) -> str | None:
    """The part of `response` the rule grades: after the last `</think>`, else after `###Response`.

    With `require_think` a response with neither marker has no gradable region (None); without it the
    whole response is graded (for models that have no thinking phase).
    """
    if THINK_END in response:
        return response.rsplit(THINK_END, 1)[1]
    if RESPONSE_MARKER in response:
        # The fixture: with the marker twice, the text between the first and the second is graded.
        return response.split(RESPONSE_MARKER)[1]
    return None if require_think else response


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the `}` that closes the `{` at `open_index`, or None if it is never closed."""
    depth = 0
    i = open_index
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # an escaped brace `\{` does not count
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text` (nested braces matched), as miles' rule takes it.

    What the parity fixture shows: the last occurrence of the characters `\\boxed` is the box, so a later word
    that starts with them (`\\boxedtext`) hides an earlier box; it must be followed at once by `{` (`\\boxed 7`
    and `\\boxed {7}` are no answer); an unclosed box (a truncated reply) is none. `\\fbox` is looked at only when
    there is no `\\boxed`, and then never yields an answer.
    """
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = start + len("\\boxed")
    if i >= len(text) or text[i] != "{":
        return None
    close = _matching_brace(text, i)
    if close is None:
        return None
    content = text[i + 1 : close].strip()
    return content or None


def extract_answer(response: str, require_think: bool) -> str | None:
    """The boxed answer the rule would grade, or None when there is none."""
    if not isinstance(response, str):
        return None
    region = answer_region(response, require_think)
    if region is None:
        return None
    answer = last_boxed(region)
    if answer is not None and "\\text{ " in answer:  # miles drops a box's text from `\text{ ` on
        answer = answer.split("\\text{ ", 1)[0].strip() or None
    return answer


# ---------------------------------------------------------------------------------------------------
# Normalisation: LaTeX-ish answer -> canonical plain string

_UNIT_WORDS = (
    "degrees|degree|deg|cm|mm|km|m|meters|meter|metres|inches|inch|in|feet|foot|ft|yards|yard|miles|mile|"
    "units|unit|sq|square|cubic|dollars|dollar|cents|cent|seconds|second|sec|s|minutes|minute|min|"
    "hours|hour|hr|days|day|years|year|kg|g|grams|gram|pounds|lbs|lb|mph|percent|ways|points|people|students"
)
_TEXT_UNIT = re.compile(
    r"\\(?:text|textrm|textnormal|mathrm|mbox)\s*\{\s*(?:" + _UNIT_WORDS + r")(?:\s+(?:" + _UNIT_WORDS + r"))*"
    r"\s*\}(?:\s*\^\s*\{?\s*[23]\s*\}?)?\s*$"
)
# A bare unit needs a space before it ("5 cm"), so "2m" (an expression) is left alone.
_BARE_UNIT = re.compile(r"(?<=[\d}).])\s+(?:" + _UNIT_WORDS + r")(?:\s*\^\s*\{?[23]\}?)?\s*$")
_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|~")
_LEADING_ZEROS = re.compile(r"^([-+]?)0+(?=\d)")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_ASSIGNMENT = re.compile(r"^[a-zA-Z](?:_\{?\w+\}?)?\s*=(?!=)")
_FRACTION_COMMANDS = ("frac", "dfrac", "tfrac", "cfrac")
_TEXT_COMMANDS = ("text", "textrm", "textnormal", "textbf", "mathrm", "mathbf", "mbox", "operatorname", "mathit")
_SYMBOL_COMMANDS = {
    "pi": "pi",
    "infty": "oo",
    "cdot": "*",
    "times": "*",
    "div": "/",
    "ast": "*",
    "le": "<=",
    "leq": "<=",
    "ge": ">=",
    "geq": ">=",
    "ne": "!=",
    "neq": "!=",
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "log": "log",
    "ln": "log",
    "exp": "exp",
}


def _read_argument(text: str, i: int) -> tuple[str, int]:
    """One LaTeX argument starting at `i`: a `{group}`, a `\\command`, or a single character."""
    while i < len(text) and text[i] == " ":
        i += 1
    if i >= len(text):
        return "", i
    if text[i] == "{":
        close = _matching_brace(text, i)
        if close is None:
            return text[i + 1 :], len(text)
        return text[i + 1 : close], close + 1
    if text[i] == "\\":
        m = re.match(r"\\[a-zA-Z]+", text[i:])
        if m:
            return m.group(0), i + len(m.group(0))
        return text[i : i + 2], i + 2
    return text[i], i + 1


def _latex_to_plain(text: str) -> str:
    """Rewrite the LaTeX an answer uses into plain infix (`\\frac{a}{b}` -> `(a)/(b)`, ...)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            m = re.match(r"\\([a-zA-Z]+)", text[i:])
            if not m:  # `\{`, `\%`, `\$`: the escaped character itself
                out.append(text[i + 1 : i + 2])
                i += 2
                continue
            name = m.group(1)
            i += len(m.group(0))
            if name in _FRACTION_COMMANDS:
                num, i = _read_argument(text, i)
                den, i = _read_argument(text, i)
                out.append(f"({_latex_to_plain(num)})/({_latex_to_plain(den)})")
            elif name == "sqrt":
                index = None
                if i < len(text) and text[i] == "[":
                    close = text.find("]", i)
                    if close > 0:
                        index, i = text[i + 1 : close], close + 1
                radicand, i = _read_argument(text, i)
                if index is None:
                    out.append(f"sqrt({_latex_to_plain(radicand)})")
                else:
                    out.append(f"({_latex_to_plain(radicand)})^(1/({_latex_to_plain(index)}))")
            elif name in _TEXT_COMMANDS:
                content, i = _read_argument(text, i)
                out.append(_latex_to_plain(content))
            elif name in _SYMBOL_COMMANDS:
                out.append(_SYMBOL_COMMANDS[name])
            else:  # unknown command: kept, so the answer can still match by string
                out.append("\\" + name)
        elif ch == "{":
            out.append("(")
            i += 1
        elif ch == "}":
            out.append(")")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _strip_redundant_parens(text: str) -> str:
    """`(5)` -> `5`, `((1)/(2))` -> `(1)/(2)`: parentheses around the whole string add nothing."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for pos, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and pos < len(text) - 1:
                return text
        text = text[1:-1]
    return text


@functools.lru_cache(maxsize=65536)
def normalize_answer(answer: str) -> str:
    """Canonical plain form of an answer, for string comparison and majority voting.

    `\\dfrac{1}{2}` and `\\frac12` both become `(1)/(2)`; units, `$`, spacing, `\\left`/`\\right`,
    a trailing `.`, `x =` prefixes, thousands separators and leading zeros of integers go away.
    """
    s = str(answer).strip()
    inner = last_boxed(s)  # a label written as `\boxed{...}`
    if inner is not None:
        s = inner
    s = s.replace("\\$", "").replace("$", "")
    s = s.replace("\\left", "").replace("\\right", "")
    s = s.replace("{,}", "")
    s = _SPACING.sub(" ", s)
    s = s.replace("\n", " ").strip()
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)
    s = s.replace("°", "").replace("\\circ", "")
    s = re.sub(r"\\?%", "", s)
    s = s.rstrip(". ").strip()
    s = _TEXT_UNIT.sub("", s).strip()
    s = _BARE_UNIT.sub("", s).strip()
    s = _ASSIGNMENT.sub("", s).strip()
    s = _latex_to_plain(s)
    s = re.sub(r"\s+", "", s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    s = _strip_redundant_parens(s)
    s = s.rstrip(".")
    if re.fullmatch(r"[-+]?\d+", s):
        s = _LEADING_ZEROS.sub(r"\1", s).lstrip("+")
        if s == "-0":
            s = "0"
    return s


# ---------------------------------------------------------------------------------------------------
# Equivalence


def _as_fraction(s: str) -> Fraction | None:
    """Exact value of a plain number (`25`, `-0.5`, `(1)/(2)`, `-(3)/(4)`), else None."""
    if not re.fullmatch(r"[-+]?\(?[-+]?\d*\.?\d+\)?(/\(?[-+]?\d*\.?\d+\)?)?", s):
        return None
    try:
        return Fraction(s.replace("(", "").replace(")", ""))
    except (ValueError, ZeroDivisionError):
        return None


_ALLOWED_SYMPY = re.compile(r"^[0-9a-zA-Z+\-*/^().]+$")
_ALLOWED_WORDS = {"sqrt", "pi", "oo", "sin", "cos", "tan", "log", "exp"}


def _looks_mathematical(s: str) -> bool:
    if not s or len(s) > _MAX_SYMPY_CHARS or not _ALLOWED_SYMPY.match(s):
        return False
    words = re.findall(r"[a-zA-Z]+", s)
    return all(len(w) == 1 or w in _ALLOWED_WORDS for w in words)


def _parse_sympy(s: str):
    """Parse a vetted plain string without evaluating it (so `9^9^9` is not computed while parsing)."""
    import sympy
    from sympy.parsing.sympy_parser import (
        convert_xor,
        implicit_multiplication_application,
        parse_expr,
        rationalize,
        standard_transformations,
    )

    names = {ch: sympy.Symbol(ch) for ch in "abcdfghjklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    names.update(e=sympy.E, i=sympy.I, pi=sympy.pi, oo=sympy.oo, sqrt=sympy.sqrt, log=sympy.log,
                 exp=sympy.exp, sin=sympy.sin, cos=sympy.cos, tan=sympy.tan)
    transformations = standard_transformations + (convert_xor, rationalize, implicit_multiplication_application)
    return parse_expr(s, local_dict=names, global_dict=dict(_sympy_globals()),
                      transformations=transformations, evaluate=False)


@functools.lru_cache(maxsize=1)
def _sympy_globals() -> dict:
    """sympy's names for the code parse_expr generates, with no Python builtins reachable."""
    namespace: dict = {}
    exec("from sympy import *", namespace)  # noqa: S102 - fixed string, the way parse_expr builds its default
    namespace["__builtins__"] = {}
    return namespace


def _exponents_bounded(expr) -> bool:
    """Refuse power towers before evaluating: every numeric exponent must be small."""
    import sympy

    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Pow):
            exponent = node.exp
            if exponent.is_number:
                if not _exponents_bounded(exponent):
                    return False
                try:
                    if abs(complex(exponent.doit())) > _MAX_EXPONENT:
                        return False
                except (TypeError, ValueError, OverflowError):
                    return False
    return True


def _sympy_equal_unguarded(a: str, b: str) -> bool:
    import sympy

    left, right = _parse_sympy(a), _parse_sympy(b)
    if not (_exponents_bounded(left) and _exponents_bounded(right)):
        return False
    diff = sympy.simplify(left.doit() - right.doit())
    if diff == 0:
        return True
    if diff.is_number:
        # Numbers sympy cannot simplify to 0 (nested radicals): equal to 50 significant digits counts.
        value = complex(diff.evalf(50))
        return abs(value) < 1e-40
    return bool(diff.equals(0))


def _sympy_equal_or_false(a: str, b: str) -> bool:
    """In the worker process: any failure on weird input means "not shown equal"."""
    try:
        return bool(_sympy_equal_unguarded(a, b))
    except Exception:  # noqa: BLE001
        return False


@functools.lru_cache(maxsize=16384)
def sympy_equal(a: str, b: str) -> bool:
    """Whether two normalised answers are mathematically equal; False on anything sympy cannot handle, and False
    after a hard time limit in any thread or process (mileage.symbolic runs the check in a worker process that is
    killed when it overruns: a signal cannot stop a big-integer power, and miles calls rewards off the main
    thread)."""
    if not (_looks_mathematical(a) and _looks_mathematical(b)):
        return False
    from mileage.symbolic import call_with_time_limit

    return call_with_time_limit(_sympy_equal_or_false, (a, b), _SYMPY_TIMEOUT_S, default=False)


def _split_top_level(s: str) -> list[str]:
    """Split a tuple/list answer `1,2` or `(1,2)` on commas outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _values_equal(a: str, b: str) -> bool:
    if a == b:
        return True
    fa, fb = _as_fraction(a), _as_fraction(b)
    if fa is not None and fb is not None:
        return fa == fb
    return sympy_equal(a, b)


_INTEGER = re.compile(r"[-+]?\d+")
_BRACED_EXPONENT = re.compile(r"\^\{([^{}]*)\}")
_THOUSANDS_GROUP = re.compile(r"(?<!\\),\s*(\d{3})(?!\d)")
_THIN_SPACE_IN_NUMBER = re.compile(r"\d\\,\d")
_MISMATCHED_BRACKETS = re.compile(r"\(\d+\]|\[\d+\)")
_MIXED = re.compile(r"^([-+]?\d+)(\(\d+\)/\(\d+\))$")


def _integral(s: str) -> str:
    if re.fullmatch(r"[-+]?\d+\.0*", s):
        return s.split(".")[0].lstrip("+") or "0"
    return s


def _mixed_number_as_sum(s: str) -> str:
    """`6(1)/(2)` (from `6\\frac{1}{2}`) is read as a sum, as miles reads a mixed number."""
    m = _MIXED.match(s)
    return f"{m.group(1)}+{m.group(2)}" if m else s


def _top_level_slashes(s: str) -> list[int]:
    depth, found = 0, []
    for i, ch in enumerate(s):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "/" and depth == 0:
            found.append(i)
    return found


def _group_end(s: str, start: int) -> int | None:
    """Index of the `)` closing the `(` at `start`."""
    depth = 0
    for i in range(start, len(s)):
        depth += s[i] == "("
        depth -= s[i] == ")"
        if depth == 0:
            return i
    return None


def _is_fraction(s: str) -> bool:
    """Exactly `(a)/(b)` (what `\\frac{a}{b}` normalises to) or `a/b` of integers: a fraction as written."""
    if re.fullmatch(r"\d+/\d+", s):
        return True
    if not s.startswith("("):
        return False
    end = _group_end(s, 0)
    if end is None or s[end + 1 : end + 3] != "/(":
        return False
    return _group_end(s, end + 2) == len(s) - 1


def _set_elements(s: str) -> str:
    """`{1,4}` (from `\\{1, 4\\}`) -> `1,4`: miles reads a set's elements without its braces."""
    return s[1:-1] if len(s) > 2 and s[0] == "{" and s[-1] == "}" else s


def _bracketed_tuple(text: str) -> bool:
    """`(4, 5)` or `[1, 2]` as written (a set `\\{1, 4\\}` is not: its bare elements match it)."""
    s = re.sub(r"\s+", "", str(text).replace("$", "").replace("\\left", "").replace("\\right", ""))
    return len(s) > 2 and s[0] in "([" and s[-1] in ")]" and len(_split_top_level(s[1:-1])) > 1


def _fraction_form(s: str) -> str:
    """A fraction as written, parentheses aside: `(4)/(7)` and `4/7` are one; `(2)/(14)` is not `(1)/(7)`."""
    return s.replace("(", "").replace(")", "")
_PLAIN_FRACTION = re.compile(r"\(?[-+]?\d+\)?/\(?[-+]?\d+\)?")


def answers_match(answer: str, label: str) -> bool:
    """Whether a model's answer equals the label, by miles' deepscaler rule as its graded pairs show: an integer
    label matches only an answer that normalises to the same integer (`\\frac{10}{2}`, `6 + 1`, `\\sqrt{49}`
    are not 7); two fractions match only as written (an unreduced fraction is not the reduced one); a Unicode
    degree sign is not stripped; otherwise normalised strings, exact numbers, then sympy."""
    if "°" in answer and "°" not in label:
        return False
    # miles reads `, NNN` (a comma, then exactly three digits) as a thousands separator, inside tuples too:
    # `(104, 105)` is the number 104105, and `104, 105` matches it.
    if _THIN_SPACE_IN_NUMBER.search(answer) and not _THIN_SPACE_IN_NUMBER.search(label):
        return False  # miles keeps a thin space inside a number: `1\\,099` is not 1099
    answer, label = _THOUSANDS_GROUP.sub(r"\1", answer), _THOUSANDS_GROUP.sub(r"\1", label)
    # miles drops the braces of an exponent before its symbolic check: `11^{1/2}` is read as `11^1/2`.
    answer, label = _BRACED_EXPONENT.sub(r"^\1", answer), _BRACED_EXPONENT.sub(r"^\1", label)
    if _MISMATCHED_BRACKETS.fullmatch(re.sub(r"\s+", "", label)):
        # `(0, 104]` merged into `(0104]` is no expression miles can read, and its graded pairs then count every
        # numeric answer as equal (`0`, `(0, 105]`, `[0, 104]`), though not one with words.
        return bool(re.fullmatch(r"[-+\d.,()\[\]\s]+", re.sub(r"\\left|\\right|\$", "", answer)))
    a, b = _set_elements(normalize_answer(answer)), _set_elements(normalize_answer(label))
    if not a or not b:
        return False
    if _INTEGER.fullmatch(b) or _INTEGER.fullmatch(a):
        return _integral(a) == _integral(b)  # an integral decimal (`3.0`) is that integer
    a, b = _mixed_number_as_sum(a), _mixed_number_as_sum(b)
    if _is_fraction(a) and _is_fraction(b):
        return _fraction_form(a) == _fraction_form(b)
    if _bracketed_tuple(label) and not _bracketed_tuple(answer):
        return False  # a tuple label needs its brackets: `4, 5` is not `(4, 5)`
    if _values_equal(a, b):
        return True
    a_parts = _split_top_level(_strip_redundant_parens(a))
    b_parts = _split_top_level(_strip_redundant_parens(b))
    if len(a_parts) > 1 and len(a_parts) == len(b_parts):
        return all(_values_equal(_strip_redundant_parens(x), _strip_redundant_parens(y))
                   for x, y in zip(a_parts, b_parts))
    return False


# ---------------------------------------------------------------------------------------------------
# Reward functions and registry


def _grade(response: str, label: str, require_think: bool) -> float:
    try:
        answer = extract_answer(response, require_think)
        if answer is None:
            return 0.0
        region = answer_region(response, require_think) or ""
        boxed = last_boxed(region) or ""
        if "\\text{ " in boxed and _INTEGER.fullmatch(str(label).strip()):
            # What is left of a box cut at `\\text{ ` gets no more cleaning in miles: for an integer label it must
            # be that integer as written (`211 cm`, `0270901`, `\\text{-3}` score 0).
            written = answer.replace("\\%", "").replace("\\$", "").strip()
            return 1.0 if written == str(label).strip() else 0.0
        return 1.0 if answers_match(answer, str(label)) else 0.0
    except Exception:  # noqa: BLE001 - a reward must never take down a rollout
        return 0.0


def deepscaler(response: str, label: str) -> float:
    """miles' `--rm-type deepscaler`: 1.0 if the last box after `</think>` matches the label, else 0.0."""
    return _grade(response, label, require_think=True)


def deepscaler_nothink(response: str, label: str) -> float:
    """Like `deepscaler`, but a response without `</think>` is graded whole (models with no thinking phase)."""
    return _grade(response, label, require_think=False)


def _math_verify_equal(answer: str, label: str) -> bool:
    """In the worker process: Hugging Face math-verify's equivalence of a boxed answer and the label (its own
    signal timeouts off: the worker is killed when it overruns)."""
    from math_verify import parse, verify

    gold = parse(label if "\\boxed" in label or "$" in label else f"${label}$", parsing_timeout=None)
    target = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    return bool(gold) and bool(target) and bool(verify(gold, target, timeout_seconds=None))


def math_verify(response: str, label: str) -> float:
    """The answer deepscaler would grade (the last `\\boxed{}` after `</think>`), judged by Hugging Face's
    math-verify library instead: broader equivalence (`\\frac{10}{2}` is 5, `0.5` is `\\frac{1}{2}`), under the
    same hard time limit. Not miles' rule: a reward of its own name, for those who want it."""
    try:
        answer = extract_answer(response, require_think=True)
        if answer is None:
            return 0.0
        from mileage.symbolic import call_with_time_limit

        equal = call_with_time_limit(_math_verify_equal, (answer, str(label)), _SYMPY_TIMEOUT_S, default=False)
        return 1.0 if equal else 0.0
    except Exception:  # noqa: BLE001 - a reward must never take down a rollout
        return 0.0


REWARDS: dict[str, Callable[[str, str], float]] = {
    "deepscaler": deepscaler,
    "deepscaler_nothink": deepscaler_nothink,
    "math_verify": math_verify,
}

# Whether each reward grades only what follows `</think>`: evaluation records extract the same answer.
REQUIRES_THINK: dict[str, bool] = {
    "deepscaler": True,
    "deepscaler_nothink": False,
    "math_verify": True,
}


def get_reward(name: str) -> Callable[[str, str], float]:
    """The reward function registered as `name`."""
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}") from None


def requires_think(name: str) -> bool:
    """Whether reward `name` grades only the text after `</think>`."""
    get_reward(name)
    return REQUIRES_THINK[name]
