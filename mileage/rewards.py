"""Rule-based math rewards: miles' `deepscaler` rule, re-implemented from its behaviour, and `math_verify`.

miles v0.1.0's `--rm-type deepscaler`, as its graded pairs in ../shared/miles/reward-parity show it (FACTS.md
section 4; the module agrees with every pair there):

1. The graded text: after the last `</think>`; else the text between the first `###Response` and the next
   one; else nothing (0), so a reply cut off inside its thinking is wrong.
2. The answer: the last occurrence of `\\boxed` in that text, with the braces from there on counted up to the
   one that closes; it must read `\\boxed{...}` at once. So `\\boxed 7` and `\\boxed {7}` are no answer, a later
   word that starts with `\\boxed` (`\\boxedtext`) hides an earlier box, an unclosed box is none, and `\\fbox` never
   yields an answer (miles looks for it only when there is no `\\boxed`, then wants `\\boxed{`).
3. Correct (1.0) when the answer and the label agree by either of two tests, else 0.0:
   - a string test: both cleaned the way the MATH benchmark cleans answers (`_string_form`): `\\left`, `\\circ`,
     `\\$`, `\\%` and spaces dropped, everything from `\\text{ ` on cut, `a=` prefixes of at most two characters
     dropped, `\\frac12` braced, integer `a/b` written as `\\frac{a}{b}`;
   - a symbolic test (`_sympy_form`, `_symbolic_match`): the LaTeX rendered as plain text (`\\frac{a}{b}` ->
     `a/b`, `\\sqrt{x}` -> `sqrt(x)`, a mixed number `4\\frac{1}{2}` -> `4+1/2`), units and `$`/`%` dropped,
     lower-cased; tuples and intervals compared element by element with matching brackets; two integer
     fractions only as written (`\\frac{8}{14}` is not `\\frac{4}{7}`); an integer only against an integer (so
     `\\frac{10}{2}`, `6+1`, `\\sqrt{49}` are not 7); otherwise sympy must simplify their difference to 0.
   Its quirks come with it: a comma before exactly three digits is a thousands separator everywhere, so
   `(0, 105]` is the "number" `(0105]`; a number with a leading zero reads as 0 times the rest, which is how
   `(0, 105]` matches `(0, 104]`; a Unicode degree sign is never removed; `\\mathbf{x}` is a different letter.

Both engines call these functions for every sample of every rollout, so the string test and exact number
comparisons come first and sympy is reached only by answers that still differ. Every sympy or math-verify check
runs in a worker process under a hard time limit (mileage.symbolic), so it is bounded in any thread; inputs
that would blow up (power towers, huge factorials) are refused before evaluation. Nothing here raises on model
output.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable, Mapping

THINK_END = "</think>"
RESPONSE_MARKER = "###Response"
_BOX_OPEN = "\\boxed{"

# A symbolic check gets this long; normal answers take milliseconds, so only a runaway computation hits it.
SYMBOLIC_TIMEOUT_S = 5.0
# Refused before sympy evaluates: results this large (in decimal digits) or expressions this long.
_MAX_RESULT_DIGITS = 20000
_MAX_SYMBOLIC_CHARS = 2000


# ---------------------------------------------------------------------------------------------------
# Finding the graded text and the boxed answer


def answer_region(response: str, require_think: bool) -> str | None:
    """The part of `response` the rule grades: after the last `</think>`, else the first `###Response` segment.

    With `require_think` a response with neither marker has no gradable region (None); without it the
    whole response is graded (for models that have no thinking phase).
    """
    if THINK_END in response:
        return response.rsplit(THINK_END, 1)[1]
    if RESPONSE_MARKER in response:
        return response.split(RESPONSE_MARKER)[1]  # with the marker twice, up to the second one
    return None if require_think else response


def _box_content(text: str) -> str | None:
    """What miles grades in `text`: the raw content of the last `\\boxed{...}`, or None (rule 2 above)."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    depth = 0
    for i in range(start, len(text)):  # every brace counts, escaped or not, as in miles
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                box = text[start : i + 1]
                return box[len(_BOX_OPEN) : -1] if box.startswith(_BOX_OPEN) else None
    return None


def _stripped(content: str | None) -> str | None:
    return (content.strip() or None) if content is not None else None


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` in `text` as the rule takes it, stripped; None if none or empty."""
    return _stripped(_box_content(text))


def _graded_answer(response: str, require_think: bool) -> str | None:
    if not isinstance(response, str):
        return None
    region = answer_region(response, require_think)
    return None if region is None else _box_content(region)


def extract_answer(response: str, require_think: bool) -> str | None:
    """The boxed answer the rule grades (stripped), or None when there is none."""
    return _stripped(_graded_answer(response, require_think))


# ---------------------------------------------------------------------------------------------------
# The string test

_WHOLE_TEXT = re.compile(r"^\\text\{(?P<text>.+?)\}$")
_STRING_REPLACEMENTS = (
    ("\n", ""), ("\\!", ""), ("\\\\", "\\"), ("tfrac", "frac"), ("dfrac", "frac"), ("\\left", ""),
    ("\\right", ""), ("^{\\circ}", ""), ("^\\circ", ""), ("\\$", ""),
)


class _Malformed(Exception):
    """An answer the cleaning cannot handle (the rule then compares it as it is)."""


def _brace_sqrt_arguments(s: str) -> str:
    """`\\sqrt3` -> `\\sqrt{3}` (one character taken as the argument, as MATH's cleaning does)."""
    head, *parts = s.split("\\sqrt")
    out = [head]
    for part in parts:
        if not part:
            raise _Malformed
        out.append("\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:]))
    return "".join(out)


def _brace_frac_arguments(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{2}` -> `\\frac{1}{2}`."""
    head, *parts = s.split("\\frac")
    out = [head]
    for part in parts:
        if not part:
            raise _Malformed
        if part[0] == "{":
            out.append("\\frac" + part)
        elif len(part) < 2:
            return s
        elif part[1] == "{":
            out.append("\\frac{" + part[0] + "}" + part[1:])
        else:
            out.append("\\frac{" + part[0] + "}{" + part[1] + "}" + part[2:])
    return "".join(out)


def _integer_slash_as_frac(s: str) -> str:
    parts = s.split("/")
    if len(parts) != 2:
        return s
    try:
        a, b = int(parts[0]), int(parts[1])
    except ValueError:
        return s
    return f"\\frac{{{a}}}{{{b}}}" if s == f"{a}/{b}" else s


def _clean_for_string_test(s: str) -> str:
    for old, new in _STRING_REPLACEMENTS:
        s = s.replace(old, new)
    if "\\text{ " in s:  # a unit or a remark: cut; twice is ambiguous
        parts = s.split("\\text{ ")
        if len(parts) != 2:
            raise _Malformed
        s = parts[0]
    s = s.replace("\\%", "").replace(" .", " 0.").replace("{.", "{0.")
    if not s:
        return s
    if s[0] == ".":
        s = "0" + s
    sides = s.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # `x = 5`, `n=5`; not `ab = 5` or `m+n=5`
        s = sides[1]
    s = _brace_frac_arguments(_brace_sqrt_arguments(s).replace(" ", ""))
    if s == "0.5":
        s = "\\frac{1}{2}"
    return _integer_slash_as_frac(s)


def _string_form(answer: str) -> str:
    s = answer.strip()
    m = _WHOLE_TEXT.search(s)
    if m:
        s = m.group("text").strip()
    try:
        return _clean_for_string_test(s)
    except _Malformed:
        return s


# ---------------------------------------------------------------------------------------------------
# LaTeX as plain text (for the symbolic test): the rendering miles' rule applies before sympy

_SYMBOLS = {
    "pi": "π", "infty": "∞", "cdot": "·", "times": "×", "cup": "∪", "cap": "∩", "circ": "∘", "le": "≤",
    "leq": "≤", "ge": "≥", "geq": "≥", "neq": "≠", "pm": "±", "mp": "∓", "in": "∈", "notin": "∉", "to": "→",
    "rightarrow": "→", "Rightarrow": "⇒", "leftarrow": "←", "Leftrightarrow": "⇔", "div": "÷", "approx": "≈",
    "sim": "∼", "simeq": "≃", "cong": "≅", "equiv": "≡", "propto": "∝", "ll": "≪", "gg": "≫",
    "subset": "⊂", "subseteq": "⊆", "supset": "⊃", "setminus": "∖", "emptyset": "∅", "varnothing": "∅",
    "forall": "∀", "exists": "∃", "wedge": "∧", "vee": "∨", "oplus": "⊕", "otimes": "⊗", "ast": "∗",
    "star": "⋆", "bullet": "∙", "prime": "'", "dagger": "†", "ell": "ℓ", "hbar": "ħ", "nabla": "∇",
    "partial": "∂", "sum": "∑", "prod": "∏", "int": "∫", "angle": "∠", "perp": "⊥", "parallel": "∥",
    "mid": "|", "vert": "|", "lvert": "|", "rvert": "|", "lfloor": "⌊", "rfloor": "⌋", "lceil": "⌈",
    "rceil": "⌉", "langle": "⟨", "rangle": "⟩", "lbrace": "{", "rbrace": "}", "backslash": "\\",
    "textbackslash": "\\", "textdollar": "$", "textdegree": "°", "dots": "…", "ldots": "…", "dotsc": "…",
    "dotsb": "…", "cdots": "⋯", "vdots": "⋮", "ddots": "⋱", "quad": "  ", "qquad": "    ",
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ϵ", "varepsilon": "ε", "zeta": "ζ",
    "eta": "η", "theta": "θ", "vartheta": "ϑ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "ϕ", "varphi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π",
    "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
_SYMBOLS.update({name: name for name in ("log", "ln", "exp", "sin", "cos", "tan", "sinh", "cosh", "tanh",
                                          "arcsin", "arccos", "arctan", "lim", "max", "min", "gcd", "det",
                                          "inf", "sup")})
# Macros whose argument is dropped; any other unknown macro renders as nothing and leaves its argument be.
_DROPPED_ARGUMENT = {"mbox", "textup", "label"}
# Letters of these fonts become Unicode mathematical letters (a different symbol than the plain letter).
_FONTS = {"mathbf": "BOLD", "mathit": "ITALIC", "mathbb": "DOUBLE-STRUCK", "mathcal": "SCRIPT",
          "mathfrak": "FRAKTUR"}
_CHARACTER_MACROS = {",": " ", ";": " ", ":": " ", " ": " ", "!": "", "\\": "\n"}
_MACRO_NAME = re.compile(r"\\([a-zA-Z]+)")


@functools.lru_cache(maxsize=512)
def _font_letter(font: str, ch: str) -> str:
    if not ch.isascii() or not ch.isalpha():
        return ch
    case = "CAPITAL" if ch.isupper() else "SMALL"
    for name in (f"MATHEMATICAL {font} {case} {ch.upper()}", f"{font} {case} {ch.upper()}"):
        try:
            return unicodedata.lookup(name)
        except KeyError:
            continue
    return ch


def _skip_blanks(s: str, i: int) -> int:
    while i < len(s) and s[i] in " \t\n":
        i += 1
    return i


def _group_end(s: str, i: int) -> int:
    """Index of the `}` closing the `{` at `i` (escaped braces skipped), or len(s) if it never closes."""
    depth = 0
    j = i
    while j < len(s):
        if s[j] == "\\":
            j += 2
            continue
        depth += s[j] == "{"
        depth -= s[j] == "}"
        if depth == 0:
            return j
        j += 1
    return len(s)


def _argument(s: str, i: int) -> tuple[str, int]:
    """One macro argument from `i`: a `{group}`, a macro with its own arguments, or one character."""
    i = _skip_blanks(s, i)
    if i >= len(s):
        raise _Malformed  # a `\frac` or `\sqrt` without its arguments
    if s[i] == "{":
        end = _group_end(s, i)
        return _latex_to_text(s[i + 1 : end]), end + 1
    if s[i] == "\\":
        return _macro(s, i)
    return s[i], i + 1


def _macro(s: str, i: int) -> tuple[str, int]:
    """The text of the macro at `s[i]` (a backslash) and the index after it and its arguments."""
    m = _MACRO_NAME.match(s, i)
    if not m:
        ch = s[i + 1 : i + 2]
        return _CHARACTER_MACROS.get(ch, ch), i + 2
    name, j = m.group(1), _skip_blanks(s, m.end())  # blanks after a macro name are no text
    if name == "frac":
        numerator, j = _argument(s, j)
        denominator, j = _argument(s, j)
        return f"{numerator}/{denominator}", j
    if name == "sqrt":
        if j < len(s) and s[j] == "[":  # the root's index is not rendered
            close = s.find("]", j)
            j = close + 1 if close >= 0 else len(s)
        radicand, j = _argument(s, j)
        return f"√({radicand})", j
    if name in _FONTS:
        content, j = _argument(s, j)
        return "".join(_font_letter(_FONTS[name], ch) for ch in content), j
    if name in _DROPPED_ARGUMENT:
        return "", _argument(s, j)[1]
    return _SYMBOLS.get(name, ""), j


def _latex_to_text(s: str) -> str:
    out = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            piece, i = _macro(s, i)
            out.append(piece)
            continue
        if ch == "~":
            out.append("\xa0")
        elif ch == "&":
            out.append("   ")
        elif ch not in "{}":  # a group is its content
            out.append(ch)
        i += 1
    return "".join(out)


def _latex_as_plain(s: str) -> str:
    # The space before `\frac` makes a mixed number `4\frac{1}{2}` read `4 1/2`, later a sum.
    s = s.replace("\\tfrac", "\\frac").replace("\\dfrac", "\\frac").replace("\\frac", " \\frac")
    s = _latex_to_text(s)
    for old, new in (("√", "sqrt"), ("π", "pi"), ("∞", "inf"), ("∪", "U"), ("·", "*"), ("×", "*")):
        s = s.replace(old, new)
    return s.strip()


# ---------------------------------------------------------------------------------------------------
# The symbolic test

_UNITS = ("degree", "cm", "centimeter", "meter", "mile", "second", "minute", "hour", "day", "week", "month",
          "year", "foot", "feet", "inch", "yard")
_UNIT_PATTERNS = tuple(re.compile(unit + r"(es)?(s)? *(\^[0-9]+)?") for unit in _UNITS)
_THOUSANDS_COMMA = re.compile(r"(\d)(,)(\d\d\d)($|\D)")
_BRACKETS = "()[]"
_INTEGER_FRACTION = re.compile(r"^-?[0-9]+.?/0*[1-9][0-9]*.?$")


class _NotANumber(Exception):
    """`inf` or `nan` written as the answer: miles' rule raises on it (the sample then scores 0)."""


def _drop_thousands_commas(s: str) -> str:
    while True:
        shorter = _THOUSANDS_COMMA.sub(r"\1\3\4", s)
        if shorter == s:
            return s
        s = shorter


def _float_or_none(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _is_integral(s: str) -> bool:
    try:
        x = float(_drop_thousands_commas(s))
        return abs(x - int(round(x))) <= 1e-7
    except (ValueError, OverflowError):
        return False


def _sympy_form(answer: str) -> str:
    s = answer
    m = _WHOLE_TEXT.search(s)
    if m:
        s = m.group("text")
    s = s.replace("\\%", "%").replace("\\$", "$").replace("$", "").replace("%", "")
    s = s.replace(" or ", " , ").replace(" and ", " , ")
    s = s.replace("million", "*10^6").replace("billion", "*10^9").replace("trillion", "*10^12")
    for pattern in _UNIT_PATTERNS:
        s = pattern.sub("", s)
    s = re.sub(r"\^ *\\circ", "", s)
    if s and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    s = re.sub(r",\\! *", "", s)
    value = _float_or_none(s)
    if value is not None:
        if not math.isfinite(value):
            raise _NotANumber(s)
        if abs(value - round(value)) <= 1e-7:
            s = str(int(round(value)))
    if "\\" in s:
        try:
            s = _latex_as_plain(s)
        except (_Malformed, RecursionError):
            pass  # compared as written
    s = re.sub("- *", "-", s)
    s = re.sub(r"([0-9]) +([0-9])", r"\1+\2", s)  # a mixed number is a sum
    s = s.replace(" ", "").replace("{", "").replace("}", "").lower()
    if _is_integral(s):
        s = str(int(float(_drop_thousands_commas(s))))
    return s


def _elements(s: str) -> list[str]:
    """A tuple or interval's elements (`(1,2]` -> 1, 2), else the whole; thousands commas are no separators."""
    s = _drop_thousands_commas(s)
    if not s:
        return []
    if len(s) > 2 and s[0] in _BRACKETS and s[-1] in _BRACKETS and not any(c in s[1:-1] for c in _BRACKETS):
        return [e.strip() for e in s[1:-1].split(",")]
    return [s]


def _may_reach_sympy(expr: str) -> bool:
    """miles' own gate: at most two distinct letters, and no exponent in braces or parentheses, of two or more
    digits, or chained."""
    if len({c for c in expr.replace("sqrt", "").replace("frac", "") if c.isalpha()}) > 2:
        return False
    if "^{" in expr or "^(" in expr:
        return False
    return not (re.search(r"\^[0-9]+\^", expr) or re.search(r"\^[0-9][0-9]+", expr))


_EXACT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})(?:/(?:[1-9][0-9]{0,14}))?")
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")


def _plain_number(s: str) -> Fraction | float | None:
    """An integer or integer ratio (exact) or a short decimal (a double, as sympy's Float reads it); else None."""
    if _EXACT.fullmatch(s):
        return Fraction(s)
    if _DECIMAL.fullmatch(s) and sum(c.isdigit() for c in s) <= 15:
        return float(s)
    return None


def _numbers_equal(a: str, b: str) -> bool | None:
    """What sympy would say of `(a)-(b)` for two plain numbers, without sympy; None for anything else.

    A decimal is a double to sympy, and a difference with one is rounded to a double, so equal means the
    same double; integers and ratios compare exactly.
    """
    x, y = _plain_number(a), _plain_number(b)
    if x is None or y is None:
        return None
    if isinstance(x, float) or isinstance(y, float):
        return float(x) == float(y)
    return x == y


def _difference_is_zero(expr: str) -> bool:
    """In the symbolic worker: whether sympy simplifies `expr` to 0, parsed as miles' rule parses it (`^` is a
    power, implicit products), sympy's names only (no Python builtins reachable). A result too large to compute
    (a power tower, a huge power) is refused from the unevaluated tree first."""
    import sympy
    from sympy.parsing import sympy_parser as sp

    transformations = sp.standard_transformations + (sp.implicit_multiplication_application,)
    code = expr.replace("^", "**")
    names = _sympy_names()
    try:
        tree = sp.parse_expr(code, global_dict=dict(names), transformations=transformations, evaluate=False)
    except Exception:  # noqa: BLE001 - the evaluating parse below decides
        tree = None
    try:
        if tree is not None and _digits(tree) > _MAX_RESULT_DIGITS:
            return False
        value = sp.parse_expr(code, global_dict=dict(names), transformations=transformations)
        return bool(sympy.simplify(value) == 0)
    except Exception:  # noqa: BLE001 - what sympy cannot read or compare is not shown equal
        return False


@functools.lru_cache(maxsize=1)
def _sympy_names() -> dict:
    namespace: dict = {}
    exec("from sympy import *", namespace)  # noqa: S102 - fixed string, as parse_expr builds its default
    namespace["__builtins__"] = {}
    return namespace


def _digits(node) -> float:
    """An upper estimate of the decimal digits evaluating `node` (an unevaluated sympy tree) would produce."""
    import sympy

    if node.is_Integer:
        return int(node).bit_length() * 0.302 + 1
    if node.is_Rational:
        return (node.p.bit_length() + node.q.bit_length()) * 0.302 + 2
    if node.is_Atom:
        return 1.0
    if isinstance(node, sympy.Pow):
        if _digits(node.exp) > 7:
            return math.inf
        try:
            power = abs(complex(node.exp.evalf(15))) if node.exp.is_number else 1.0
        except (TypeError, ValueError, OverflowError):
            return math.inf
        return _digits(node.base) * max(power, 1.0)
    if isinstance(node, (sympy.factorial, sympy.factorial2, sympy.subfactorial, sympy.gamma)):
        if _digits(node.args[0]) > 7:
            return math.inf
        try:
            n = abs(complex(node.args[0].evalf(15)))
        except (TypeError, ValueError, OverflowError):
            return math.inf
        return n * math.log10(n + 2) + 1
    return sum(_digits(arg) for arg in node.args) + 1


_BIG_FACTORIAL = re.compile(r"[0-9]{6,}\s*!")


def _refused(expr: str) -> bool:
    """Inputs refused before the worker: very long expressions and huge factorials (sympy would compute them
    while parsing). Power towers the gate lets through (`9**9**9`) are refused in the worker, before evaluation."""
    return len(expr) > _MAX_SYMBOLIC_CHARS or bool(_BIG_FACTORIAL.search(expr))


@functools.lru_cache(maxsize=16384)
def _symbolic_zero_cached(expr: str) -> bool:
    from mileage.symbolic import SymbolicTimeout, call_with_time_limit

    result = call_with_time_limit(_difference_is_zero, (expr,), SYMBOLIC_TIMEOUT_S, default=None)
    if result is None:
        raise SymbolicTimeout(expr)  # not cached: a later call may have the time
    return result


def _sympy_same(truth: str, given: str) -> bool:
    from mileage.symbolic import SymbolicTimeout

    expr = f"({truth})-({given})"
    if not _may_reach_sympy(expr):
        return False
    quick = _numbers_equal(truth, given)
    if quick is not None:
        return quick
    if _refused(expr):
        return False
    try:
        return _symbolic_zero_cached(expr)
    except SymbolicTimeout:
        return False


def _symbolic_match(given: str, truth: str) -> bool:
    t, g = _sympy_form(truth), _sympy_form(given)
    if t == g:
        return True
    if not g:
        return False
    t_elements, g_elements = _elements(t), _elements(g)
    if len(t_elements) > 1 and (t[0] != g[0] or t[-1] != g[-1]):
        return False  # a tuple or interval needs the same brackets
    if len(t_elements) != len(g_elements):
        return False
    for te, ge in zip(t_elements, g_elements):
        if _INTEGER_FRACTION.search(te) and _INTEGER_FRACTION.search(ge):
            same = te == ge  # fractions as written: an unreduced one is wrong
        elif _is_integral(te) != _is_integral(ge):
            same = False  # an integer only as an integer
        else:
            same = _sympy_same(te, ge)
        if not same:
            return False
    return True


def _label_answer(label: str) -> str | None:
    """The label as the rule compares it: a `\\boxed{...}` label by its content; an empty one is no label."""
    label = str(label)
    if not label:
        return None
    return _box_content(label) if "\\boxed" in label else label


def _deepscaler_match(answer: str, label: str) -> bool:
    truth = _label_answer(label)
    if truth is None:
        return False
    if _string_form(answer) == _string_form(truth):
        return True
    try:
        return _symbolic_match(answer, truth)
    except (_NotANumber, RecursionError):
        return False


def answers_match(answer: str, label: str) -> bool:
    """Whether an answer (a box's content) equals the label by miles' deepscaler rule."""
    try:
        return _deepscaler_match(str(answer), label)
    except Exception:  # noqa: BLE001 - model output must never raise
        return False


@functools.lru_cache(maxsize=65536)
def normalize_answer(answer: str) -> str:
    """Canonical form of an answer for majority voting: the plain text the symbolic test compares.

    `\\dfrac{1}{2}` and `\\frac12` both become `1/2`, `$025$` becomes `25`; units, `$`, `%` and spaces go.
    """
    s = str(answer)
    try:
        return _sympy_form(_string_form(s) if "\\text{ " in s else s)
    except Exception:  # noqa: BLE001 - `inf` and the like: voted on as written
        return s.strip()


# ---------------------------------------------------------------------------------------------------
# Reward functions and registry


def _grade(response: str, label: str, require_think: bool) -> float:
    try:
        answer = _graded_answer(response, require_think)
        if answer is None:
            return 0.0
        return 1.0 if _deepscaler_match(answer, label) else 0.0
    except Exception:  # noqa: BLE001 - a reward must never take down a rollout
        return 0.0


def deepscaler(response: str, label: str) -> float:
    """miles' `--rm-type deepscaler`: 1.0 if the last box after `</think>` matches the label, else 0.0."""
    return _grade(response, label, require_think=True)


def deepscaler_nothink(response: str, label: str) -> float:
    """Like `deepscaler`, but a response without `</think>` is graded whole (models with no thinking phase)."""
    return _grade(response, label, require_think=False)


_INTEGER = re.compile(r"[-+]?[0-9]{1,15}")
_MAX_MATH_VERIFY_CHARS = 1000
_MAX_NESTING = 30


def _latex_blows_up(latex: str) -> bool:
    """LaTeX too costly to hand to math-verify (it evaluates while parsing): an exponent that holds another
    exponent or a long number, a huge factorial, deep nesting or a very long answer."""
    if len(latex) > _MAX_MATH_VERIFY_CHARS or _BIG_FACTORIAL.search(latex):
        return True
    depth = 0
    for i, ch in enumerate(latex):
        depth += ch in "({["
        depth -= ch in ")}]"
        if depth > _MAX_NESTING:
            return True
        if ch == "^":
            j = _skip_blanks(latex, i + 1)
            exponent = latex[j + 1 : _group_end(latex, j)] if latex[j : j + 1] == "{" else latex[j : j + 12]
            if "^" in exponent or re.match(r"\s*[-+]?\s*[0-9]{4,}", exponent) or "!" in exponent:
                return True
    return False


def _math_verify_equal(answer: str, label: str) -> bool:
    """In the symbolic worker: Hugging Face math-verify's equivalence of a boxed answer and the label (its own
    signal timers off: the worker is killed when it overruns)."""
    from math_verify import parse, verify

    gold = parse(label if "\\boxed" in label or "$" in label else f"${label}$", parsing_timeout=None)
    target = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    return bool(gold) and bool(target) and bool(verify(gold, target, timeout_seconds=None))


def math_verify(response: str, label: str) -> float:
    """The answer deepscaler grades (the last `\\boxed{...}` after `</think>`, so a reply cut off in its thinking
    scores 0 here too), judged by Hugging Face's math-verify instead: broader equivalence (`\\frac{10}{2}` is 5,
    `0.5` is `\\frac{1}{2}`), under the same hard time limit. Not miles' rule: a reward of its own name."""
    try:
        answer = extract_answer(response, require_think=True)
        if answer is None:
            return 0.0
        label = str(label).strip()
        if _INTEGER.fullmatch(answer) and _INTEGER.fullmatch(label):
            return 1.0 if int(answer) == int(label) else 0.0  # the common case, without a worker round trip
        if _latex_blows_up(answer) or _latex_blows_up(label):
            return 0.0
        from mileage.symbolic import call_with_time_limit

        equal = call_with_time_limit(_math_verify_equal, (answer, label), SYMBOLIC_TIMEOUT_S, default=False)
        return 1.0 if equal else 0.0
    except Exception:  # noqa: BLE001 - a reward must never take down a rollout
        return 0.0


@dataclass(frozen=True)
class Reward:
    """One reward rule, with what the engines and the evaluation records need to know of it."""

    name: str  # the config's rollout.reward value
    grade: Callable[[str, str], float]  # (response, label) -> 0.0 or 1.0; never raises on model output
    requires_think: bool  # grades only what follows `</think>`: evaluation records extract the same answer
    description: str  # one line for the schema and the docs
    # Engines that ship this very rule themselves, by their own name for it (they call theirs; every other engine
    # calls `grade` through its generic hook). The engine reads its own entry; nothing else interprets it.
    engine_builtin: Mapping[str, str] = field(default_factory=dict)


# The registry: adding a reward is adding an entry here (and its name to config/schema.yaml's enum, which
# tests/test_rewards.py holds against this list).
REWARDS: dict[str, Reward] = {entry.name: entry for entry in (
    Reward("deepscaler", deepscaler, requires_think=True, engine_builtin={"miles": "deepscaler"},
           description="miles' deepscaler rule: the last \\boxed{} after </think> against the label"),
    Reward("deepscaler_nothink", deepscaler_nothink, requires_think=False,
           description="deepscaler without the </think> requirement, for models with no thinking phase"),
    Reward("math_verify", math_verify, requires_think=True,
           description="deepscaler's boxed answer judged by Hugging Face's math-verify (broader equivalence)"),
)}


def registered(name: str) -> Reward:
    """The registry entry of reward `name`."""
    try:
        return REWARDS[name]
    except KeyError:
        raise ValueError(f"unknown reward {name!r}; known rewards: {', '.join(sorted(REWARDS))}") from None


def get_reward(name: str) -> Callable[[str, str], float]:
    """The grading function of reward `name`."""
    return registered(name).grade


def requires_think(name: str) -> bool:
    """Whether reward `name` grades only the text after `</think>`."""
    return registered(name).requires_think
