"""miles' deepscaler rule as the pipeline grades with it: what a sample must say to score 1."""

from __future__ import annotations

import time

import pytest

from mileage.rewards import (
    REWARDS,
    answers_match,
    deepscaler,
    deepscaler_nothink,
    extract_answer,
    get_reward,
    normalize_answer,
    requires_think,
)

THINK = "<think>\nLet me work this out. Maybe \\boxed{7}? No, recheck.\n</think>\n\n"


def respond(answer_text: str) -> str:
    return THINK + answer_text


@pytest.mark.parametrize(
    "answer, label",
    [
        ("\\frac{1}{2}", "1/2"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{1}{2}", "\\frac12"),
        ("\\tfrac{3}{4}", "0.75"),
        ("1/2", "\\frac{1}{2}"),
        ("0 .5", "1/2"),
        ("025", "25"),
        ("25", "025"),
        ("-3", "-3"),
        ("- 3", "-3"),
        ("-\\frac{1}{2}", "-0.5"),
        ("10\\text{ cm}", "10"),
        ("30^\\circ", "30"),
        ("30^{\\circ}", "30"),
        ("30 degrees", "30"),
        ("1{,}000", "1000"),
        ("1,000", "1000"),
        ("\\$18", "18"),
        ("x = 5", "5"),
        ("50\\%", "50"),
        ("\\left( 3 \\right)", "3"),
        ("204.", "204"),
        ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}"),
        ("4\\sqrt{2}", "\\sqrt{32}"),
        ("2\\pi", "2*pi"),
        ("\\pi/2", "\\frac{\\pi}{2}"),
        ("(x+1)^2", "x^2+2x+1"),
        ("(1, 2)", "(1,2)"),
        ("\\infty", "\\infty"),
    ],
)
def test_equivalent_answers_score_one(answer: str, label: str) -> None:
    assert deepscaler(respond(f"The answer is $\\boxed{{{answer}}}$."), label) == 1.0


@pytest.mark.parametrize(
    "answer, label",
    [
        ("26", "25"),
        ("0.333", "1/3"),
        ("-3", "3"),
        ("\\frac{1}{3}", "0.5"),
        ("2m", "2"),  # an expression, not a unit
        ("\\sqrt{2}", "1.414"),
        ("x", "y"),
        ("(1, 2)", "(2, 1)"),
        ("ABC", "ABD"),
    ],
)
def test_different_answers_score_zero(answer: str, label: str) -> None:
    assert deepscaler(respond(f"\\boxed{{{answer}}}"), label) == 0.0


@pytest.mark.parametrize(
    "answer, label, reward",
    [
        ("12 \\text{cm}^2", "12", 0.0),  # only `\text{ ` (with its space) cuts; `cm` goes, the `^2` stays: 144
        ("12\\text{ cm}^2", "12", 1.0),
        ("\\sqrt[3]{8}", "2", 0.0),  # the root's index is not read: sqrt(8)
        ("\\sqrt[3]{8}", "\\sqrt{8}", 1.0),
        ("\\frac{8}{14}", "\\frac{4}{7}", 0.0),  # integer fractions as written
        ("4\\frac{1}{2}", "4.5", 1.0),  # a mixed number is a sum
        ("(0, 105]", "(0, 104]", 1.0),  # `, NNN` is a thousands comma; `0105` reads as 0 * 105
        ("[0, 999)", "(0, 104]", 1.0),
        ("(0, 56]", "(0, 143]", 0.0),  # two elements against one
        ("5", "(0, 104]", 0.0),
        ("(0, 56]", "(0, 57]", 0.0),
        ("(4, 5)", "[4, 5)", 0.0),  # the brackets must match
        ("1\\,000", "1000", 0.0),  # a thin space is a space: `1 000` reads as 1 + 000
        ("3°", "3", 0.0),  # a Unicode degree sign stays
        ("ab = 3", "3", 0.0),  # only a prefix of at most two characters before `=` goes
        ("\\text{3}", "3", 1.0),
        ("\\mathbf{x}", "x", 0.0),  # a bold letter is another letter
        ("\\boxed{3}", "3", 1.0),
    ],
)
def test_miles_quirks_are_kept(answer: str, label: str, reward: float) -> None:
    assert deepscaler(respond(f"\\boxed{{{answer}}}"), label) == reward


def test_glm_z1_style_answer_line() -> None:
    response = respond("So $a+b+c = 34$.\n\nAnswer: \\boxed{34}")
    assert deepscaler(response, "34") == 1.0
    assert extract_answer(response, require_think=True) == "34"


def test_last_box_after_last_think_wins() -> None:
    # The box inside the thinking (7) and the earlier box (12) are not graded.
    response = respond("First guess \\boxed{12}, corrected: \\boxed{204}")
    assert deepscaler(response, "204") == 1.0
    assert deepscaler(response, "12") == 0.0
    assert deepscaler(response, "7") == 0.0
    twice = "<think>a</think> \\boxed{1} <think>b</think> \\boxed{2}"
    assert extract_answer(twice, require_think=True) == "2"


def test_nested_braces() -> None:
    response = respond("\\boxed{\\frac{\\sqrt{3}}{2}}")
    assert extract_answer(response, require_think=True) == "\\frac{\\sqrt{3}}{2}"
    assert deepscaler(response, "\\frac{\\sqrt{3}}{2}") == 1.0
    assert deepscaler(response, "\\frac{1}{2}\\sqrt{3}") == 1.0


def test_fbox_and_braceless_box_are_no_answer_as_in_miles() -> None:
    # miles' rule takes the last `\\boxed` and needs its brace at once; `\\fbox` never yields an answer.
    for written in ("\\fbox{17}", "$\\boxed 17$", "$\\boxed {17}$", "\\boxed{17} \\boxedtext"):
        assert extract_answer(respond(written), require_think=True) is None, written
        assert deepscaler(respond(written), "17") == 0.0
    assert deepscaler(respond("\\boxed{17}. Summary: \\fbox{4}"), "17") == 1.0


def test_no_box_scores_zero() -> None:
    response = respond("The answer is 204.")
    assert extract_answer(response, require_think=True) is None
    assert deepscaler(response, "204") == 0.0


def test_unclosed_last_box_is_not_graded() -> None:
    response = respond("\\boxed{3} hmm, actually \\boxed{\\frac{1}{")
    assert extract_answer(response, require_think=True) is None
    assert deepscaler(response, "3") == 0.0


def test_truncated_thinking_scores_zero_for_deepscaler_only() -> None:
    cut_off = "<think>\nSo the answer is \\boxed{204} probably, but let me verify by"
    assert deepscaler(cut_off, "204") == 0.0
    assert extract_answer(cut_off, require_think=True) is None
    # The no-think variant grades the whole response when there is no </think>.
    assert deepscaler_nothink(cut_off, "204") == 1.0
    assert extract_answer(cut_off, require_think=False) == "204"


def test_nothink_still_uses_text_after_think_when_present() -> None:
    response = "<think>\\boxed{1}</think> \\boxed{2}"
    assert deepscaler_nothink(response, "2") == 1.0
    assert deepscaler_nothink(response, "1") == 0.0
    assert deepscaler_nothink("12 + 30 = \\boxed{42}", "42") == 1.0


def test_response_marker_counts_as_end_of_thinking() -> None:
    assert deepscaler("question ###Response The answer is \\boxed{9}", "9") == 1.0


def test_label_written_as_box() -> None:
    assert deepscaler(respond("\\boxed{9}"), "\\boxed{9}") == 1.0


def test_rewards_are_binary_floats() -> None:
    for response in (respond("\\boxed{1}"), respond("\\boxed{2}"), "nothing"):
        value = deepscaler(response, "1")
        assert isinstance(value, float) and value in (0.0, 1.0)


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "</think>",
        "</think>\\boxed{}",
        "</think>\\boxed{",
        "</think>\\boxed{}}}}{{{",
        "</think>\\boxed{__import__('os').system('echo hacked')}",
        "</think>\\boxed{9^{9^{9^{9^{9}}}}}",
        "</think>\\boxed{" + "(" * 500 + "}",
        "</think>\\boxed{\\frac{1}{0}}",
        "</think>\\boxed{1/0}",
        "</think>\\boxed{\\sqrt{-1}}",
        "</think>\\boxed{x=}",
        "</think>\\boxed{\\\\\\\\}",
        "</think>\\boxed{" + "9" * 5000 + "}",
        "</think>\\boxed{\ud800}",
        "</think>" + "\\boxed{1}" * 2000,
    ],
)
def test_garbage_never_raises(garbage: str) -> None:
    start = time.monotonic()
    for reward in REWARDS.values():
        assert reward.grade(garbage, "1") in (0.0, 1.0)
    extract_answer(garbage, require_think=True)
    assert time.monotonic() - start < 5.0


def test_non_string_response_scores_zero() -> None:
    assert deepscaler(None, "1") == 0.0  # type: ignore[arg-type]


def test_power_tower_is_refused_quickly() -> None:
    start = time.monotonic()
    assert not answers_match("9^{9^{9^9}}", "1")
    assert time.monotonic() - start < 2.0


def test_normalize_pools_equivalent_spellings() -> None:
    assert normalize_answer("\\dfrac{1}{2}") == normalize_answer("\\frac12")
    assert normalize_answer("$025$") == normalize_answer("25")


def test_registry() -> None:
    assert get_reward("deepscaler") is deepscaler
    assert get_reward("deepscaler_nothink") is deepscaler_nothink
    assert requires_think("deepscaler") and not requires_think("deepscaler_nothink")
    with pytest.raises(ValueError, match="deepscaler, deepscaler_nothink"):
        get_reward("math")


def test_the_schema_offers_exactly_the_registered_rewards() -> None:
    """A reward added to the registry is one the config accepts, and the schema names no reward that is not one;
    docs/contracts.md lists each with its registry description."""
    import yaml
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    schema = yaml.safe_load((root / "config" / "schema.yaml").read_text(encoding="utf-8"))
    rollout = schema["$defs"]["experiment"]["properties"]["rollout"]["properties"]
    assert sorted(rollout["reward"]["enum"]) == sorted(REWARDS)
    assert rollout["reward"]["default"] in REWARDS
    docs = (root / "docs" / "contracts.md").read_text(encoding="utf-8")
    for entry in REWARDS.values():
        assert f"| `{entry.name}` | {entry.description} |" in docs, f"docs/contracts.md lacks reward {entry.name}"


def test_string_path_is_fast() -> None:
    # The common case (integer labels) must not reach sympy: thousands of grades in well under a second.
    responses = [respond(f"Answer: \\boxed{{{i}}}") for i in range(2000)]
    start = time.monotonic()
    scores = [deepscaler(r, "204") for r in responses]
    assert time.monotonic() - start < 1.0
    assert sum(scores) == 1.0


# ---- parity with miles' own deepscaler code (../shared/miles/reward-parity) ----------------------------------------

import collections  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402

PARITY = Path(__file__).resolve().parents[2] / "shared" / "miles" / "reward-parity" / "deepscaler-v0.1.0.jsonl"


def parity_rows() -> list[dict]:
    if not PARITY.is_file():
        pytest.skip(f"{PARITY} is not here (the shared fixtures sit beside the repository)")
    return [json.loads(line) for line in PARITY.read_text().splitlines() if line.strip()]


def test_deepscaler_agrees_with_miles_on_every_graded_pair():
    rows = parity_rows()
    wrong = collections.Counter((r["wrapper"], r["form"]) for r in rows
                                if deepscaler(r["response"], r["label"]) != r["miles_deepscaler"])
    agree = len(rows) - sum(wrong.values())
    assert not wrong, f"parity {agree}/{len(rows)}; disagreeing (wrapper, form): {wrong.most_common(10)}"


@pytest.mark.parametrize("wrapper", ["fbox_only", "boxed_nobrace", "boxed_space_brace", "boxedword_then_box",
                                     "response_marker_twice_first_right", "response_marker_twice_last_right",
                                     "boxed_then_fbox_wrong"])
def test_every_pair_of_the_extraction_rules_the_fixture_shows_agrees(wrapper):
    rows = [r for r in parity_rows() if r["wrapper"] == wrapper]
    assert rows
    assert all(deepscaler(r["response"], r["label"]) == r["miles_deepscaler"] for r in rows)


def test_an_integer_label_matches_only_the_same_integer():
    ok = "</think> \\boxed{7}"
    assert deepscaler(ok, "7") == 1.0 and deepscaler("</think> \\boxed{7.0}", "7") == 1.0
    for written in ("\\frac{14}{2}", "6 + 1", "\\sqrt{49}", "14/2"):
        assert deepscaler(f"</think> \\boxed{{{written}}}", "7") == 0.0, written


def test_a_pathological_answer_scores_zero_quickly_off_the_main_thread():
    results = {}

    def grade():
        start = time.perf_counter()
        results["reward"] = deepscaler("</think> \\boxed{((9^999)^999)^99}", "\\sqrt{2}")
        results["seconds"] = time.perf_counter() - start

    deepscaler("</think> \\boxed{\\sqrt{4}/2}", "\\frac{\\sqrt{2}}{\\sqrt{2}}")  # starts the worker
    thread = threading.Thread(target=grade)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "the reward hung its thread"
    assert results["reward"] == 0.0 and results["seconds"] < 10.0, results
    # The killed worker is replaced: the next symbolic check still works.
    assert deepscaler("</think> \\boxed{\\frac{\\sqrt{8}}{2}}", "\\sqrt{2}") == 1.0


def test_an_overrunning_check_is_killed_and_its_worker_replaced():
    from mileage.symbolic import call_with_time_limit

    start = time.perf_counter()
    assert call_with_time_limit(time.sleep, (60,), 0.5, default="late") == "late"
    assert time.perf_counter() - start < 10.0
    assert call_with_time_limit(divmod, (7, 2), 30.0, default=None) == (3, 1)
    assert call_with_time_limit(divmod, (7, 0), 30.0, default="raised") == "raised"


def test_symbolic_checks_from_threads_at_once():
    pairs = [("\\sqrt{8}", "2\\sqrt{2}", 1.0), ("\\frac{\\pi}{2}", "\\pi/2", 1.0), ("\\sqrt{3}", "\\sqrt{2}", 0.0),
             ("2\\pi", "\\pi+\\pi", 1.0), ("9**9**9", "\\sqrt{2}", 0.0)] * 4
    results: dict[int, float] = {}

    def grade(i: int, answer: str, label: str) -> None:
        results[i] = deepscaler(f"</think> \\boxed{{{answer}}}", label)

    threads = [threading.Thread(target=grade, args=(i, a, b)) for i, (a, b, _) in enumerate(pairs)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [results.get(i) for i in range(len(pairs))] == [want for _, _, want in pairs]
    assert time.perf_counter() - start < 60.0


def test_a_none_reward_from_miles_counts_zero_in_the_records():
    from mileage.engines.miles.eval_hook import sample_records

    correct = "</think> \\boxed{3}"
    samples = [SimpleNamespace(index=0, label="3", response=correct, reward=None, response_length=4, status="aborted"),
               SimpleNamespace(index=1, label="3", response=correct, reward=1.0, response_length=4, status="completed")]
    records = sample_records("aime", samples, None, 2, None, "deepscaler")
    assert [r["reward"] for r in records] == [0.0, 1.0]


def test_math_verify_accepts_equivalences_deepscaler_rejects_and_keeps_the_answer_region():
    from mileage.rewards import math_verify

    assert deepscaler("</think> \\boxed{\\frac{10}{2}}", "5") == 0.0
    assert math_verify("</think> \\boxed{\\frac{10}{2}}", "5") == 1.0
    assert math_verify("</think> \\boxed{0.5}", "\\frac{1}{2}") == 1.0
    assert math_verify("</think> \\boxed{6}", "5") == 0.0
    assert math_verify("\\boxed{5} with no think end", "5") == 0.0  # the same region as deepscaler
