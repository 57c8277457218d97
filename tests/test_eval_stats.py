"""Evaluation: per-sample records (build, validate, read, write) and the statistics summarised from them."""

from __future__ import annotations

import itertools
import json
import random
import time
from math import comb
from pathlib import Path

import pytest

from mileage.evaluation.records import RecordError, make_record, read_records, write_records
from mileage.evaluation.stats import (
    StatsError,
    bootstrap_ci,
    majority_vote,
    pass_at_j,
    summarize,
    summary_document,
)


def record(problem_id: str, index: int, label: str, answer: str | None, reward: float) -> dict:
    return {
        "problem_id": problem_id,
        "sample_index": index,
        "label": label,
        "extracted_answer": answer,
        "reward": reward,
        "response_length": 10,
        "truncated": False,
        "response": "",
    }


def problem(problem_id: str, label: str, answers: list[str | None]) -> list[dict]:
    return [record(problem_id, i, label, a, 1.0 if a == label else 0.0) for i, a in enumerate(answers)]


def random_records(n_problems: int, k: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for p in range(n_problems):
        difficulty = rng.random()
        answers = [str(p) if rng.random() < difficulty else rng.choice(["x", "y", None]) for _ in range(k)]
        records += problem(f"prob-{p}", str(p), answers)
    return records


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def brute_force_pass(outcomes: list[bool], j: int) -> float:
    """Fraction of all j-subsets of the samples that contain at least one correct sample."""
    subsets = list(itertools.combinations(outcomes, j))
    return sum(any(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_pass_at_j_matches_subset_enumeration(n: int) -> None:
    for c in range(n + 1):
        outcomes = [True] * c + [False] * (n - c)
        for j in range(1, n + 1):
            assert pass_at_j(n, c, j) == pytest.approx(brute_force_pass(outcomes, j), abs=1e-12)


def test_pass_at_j_is_stable_for_large_n() -> None:
    # The naive ratio of binomials overflows floats here; the product form must not.
    n, c, j = 2000, 3, 1000
    assert comb(n, j) > 1e300
    value = pass_at_j(n, c, j)
    exact = 1 - comb(n - c, j) / comb(n, j)  # Python ints: exact, then one division
    assert value == pytest.approx(exact, rel=1e-9)


def test_summary_metrics_match_brute_force() -> None:
    records = (
        problem("a", "1", ["1", "2", "1", None])  # 2 of 4 correct, majority "1"
        + problem("b", "5", ["3", "3", "5", "4"])  # 1 of 4, majority "3" (wrong)
        + problem("c", "9", [None, None, None, None])  # nothing answered
    )
    summary = summarize(records, n_boot=200)
    metrics = summary["metrics"]
    outcomes = {"a": [1, 0, 1, 0], "b": [0, 0, 1, 0], "c": [0, 0, 0, 0]}
    assert metrics["avg@4"]["value"] == pytest.approx(sum(map(sum, outcomes.values())) / 12)
    for j in range(1, 5):
        expected = sum(brute_force_pass([bool(x) for x in o], j) for o in outcomes.values()) / 3
        assert metrics[f"pass@{j}"]["value"] == pytest.approx(expected)
    assert metrics["maj@4"]["value"] == pytest.approx(1 / 3)
    assert metrics["pass@1"]["value"] == pytest.approx(metrics["avg@4"]["value"])
    assert set(metrics) == {"avg@4", "pass@1", "pass@2", "pass@3", "pass@4", "maj@4", "answer_avg@4", "format@4"}
    assert metrics["format@4"]["value"] == pytest.approx(7 / 12)  # 7 of 12 samples gave an answer

    rows = {row["problem_id"]: row for row in summary["per_problem"]}
    assert rows["a"] == {"problem_id": "a", "label": "1", "n": 4, "n_correct": 2, "mean_reward": 0.5,
                         "majority_answer": "1", "majority_correct": True, "n_answer_correct": 0,
                         "n_formatted": 3}
    assert rows["b"]["majority_answer"] == "3" and rows["b"]["majority_correct"] is False
    assert rows["c"]["majority_answer"] is None and rows["c"]["majority_correct"] is False
    assert summary["n_problems"] == 3 and summary["n_samples"] == 12 and summary["k"] == 4


def test_majority_ignores_missing_answers_and_breaks_ties_by_first_appearance() -> None:
    samples = problem("p", "2", [None, None, None, "2", "3", "3", "2"])
    assert majority_vote(samples) == ("2", True)  # 2 and 3 tie twice each; "2" came first
    samples = problem("p", "2", [None, "3", "2", "2", "3"])
    assert majority_vote(samples) == ("3", False)


def test_majority_pools_equivalent_spellings() -> None:
    samples = [
        record("p", 0, "1/2", "\\frac{1}{2}", 1.0),
        record("p", 1, "1/2", "0.7", 0.0),
        record("p", 2, "1/2", "0.7", 0.0),
        record("p", 3, "1/2", "\\dfrac12", 1.0),
        record("p", 4, "1/2", "1/2", 1.0),
    ]
    answer, correct = majority_vote(samples)
    assert correct and answer == "\\frac{1}{2}"


def test_bootstrap_interval_contains_point_and_is_deterministic() -> None:
    records = random_records(30, 16, seed=3)
    first = summarize(records, seed=7)
    again = summarize(list(reversed(records)), seed=7)  # record order must not matter
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    other_seed = summarize(records, seed=8)
    assert first["metrics"]["avg@16"]["ci95"] != other_seed["metrics"]["avg@16"]["ci95"]
    for name, metric in first["metrics"].items():
        low, high = metric["ci95"]
        assert low <= metric["value"] <= high, name  # with 1000 resamples of 30 problems it holds here
        assert 0.0 <= low and high <= 1.0
    # With 30 problems of varied difficulty the interval is a real interval, not a point.
    low, high = first["metrics"]["avg@16"]["ci95"]
    assert high - low > 0.05


def test_bootstrap_interval_width_shrinks_with_more_problems() -> None:
    small = summarize(random_records(10, 4, seed=1), seed=0)["metrics"]["avg@4"]["ci95"]
    large = summarize(random_records(400, 4, seed=1), seed=0)["metrics"]["avg@4"]["ci95"]
    assert (large[1] - large[0]) < (small[1] - small[0])


def test_intervals_are_reported_as_computed_not_clamped_to_the_estimate() -> None:
    # One resample: the "interval" is that resample's mean, which need not be the data's mean (0.25). It is
    # shown as computed, so an interval that misses its estimate tells the reader the resamples were too few.
    values = [[0.0], [0.0], [0.0], [1.0]]
    intervals = [tuple(bootstrap_ci(values, n_boot=1, seed=s)[0]) for s in range(10)]
    assert any(low > 0.25 or high < 0.25 for low, high in intervals)
    assert all(low == high for low, high in intervals)


def test_bootstrap_of_constant_values_is_a_point() -> None:
    ci = bootstrap_ci([[0.3]] * 30, n_boot=100, seed=0)
    assert ci[0, 0] == pytest.approx(0.3) and ci[0, 1] == pytest.approx(0.3)


def test_bootstrap_is_fast() -> None:
    records = random_records(30, 16, seed=0)
    start = time.monotonic()
    summarize(records, n_boot=1000)
    assert time.monotonic() - start < 1.0


def test_k_defaults_to_smallest_sample_count_and_truncates_by_sample_index() -> None:
    records = problem("a", "1", ["1", "1", "0", "0", "0", "0"]) + problem("b", "2", ["0", "2", "2", "2"])
    summary = summarize(records)
    assert summary["k"] == 4 and summary["n_samples"] == 8
    rows = {row["problem_id"]: row for row in summary["per_problem"]}
    assert rows["a"]["n"] == 4 and rows["a"]["n_correct"] == 2  # samples 0..3 of problem a
    assert summarize(records, k=2)["per_problem"][1]["n_correct"] == 1


def test_too_few_samples_names_the_problem() -> None:
    records = problem("enough", "1", ["1"] * 4) + problem("short-one", "1", ["1"] * 2)
    with pytest.raises(StatsError, match="short-one"):
        summarize(records, k=4)


@pytest.mark.parametrize(
    "records, message",
    [
        ([], "no records"),
        (problem("a", "1", ["1"]) + problem("a", "1", ["1"]), "duplicate sample_index"),
        ([record("a", 0, "1", "1", 1.0), record("a", 1, "2", "1", 0.0)], "inconsistent labels"),
    ],
)
def test_bad_records_are_rejected(records: list[dict], message: str) -> None:
    with pytest.raises(StatsError, match=message):
        summarize(records)


def test_problems_sort_naturally() -> None:
    records = []
    for p in (10, 2, 1):
        records += problem(f"aime-2024-{p}", "1", ["1"])
    ids = [row["problem_id"] for row in summarize(records, n_boot=10)["per_problem"]]
    assert ids == ["aime-2024-1", "aime-2024-2", "aime-2024-10"]


def test_summary_document_shape_and_common_k() -> None:
    base = random_records(5, 8, seed=1)
    final = random_records(5, 6, seed=2)
    doc = summary_document("demo", "aime", base, final, n_boot=50, seed=1)
    assert set(doc) == {"experiment", "dataset", "k", "reward", "base", "final", "paired"}
    assert doc["experiment"] == "demo" and doc["dataset"] == "aime"
    assert doc["k"] == 6 and doc["base"]["k"] == 6 and doc["final"]["k"] == 6
    for side in ("base", "final"):
        assert set(doc[side]) == {"n_problems", "n_samples", "k", "metrics", "per_problem"}
        assert set(doc[side]["metrics"]) == ({"avg@6", "maj@6", "answer_avg@6", "format@6"}
                                             | {f"pass@{j}" for j in range(1, 7)})
    json.dumps(doc)  # plain JSON types only
    assert summary_document("demo", "aime", base, final, k=3, n_boot=50)["final"]["k"] == 3


# --- per-sample eval records ------------------------------------------------------------------------


def test_make_record_grades_with_the_named_reward() -> None:
    response = "<think>hmm</think>Answer: \\boxed{025}"
    rec = make_record("aime-2024-0", 3, "25", response, 812, False, "deepscaler")
    assert rec == {
        "problem_id": "aime-2024-0", "sample_index": 3, "label": "25", "extracted_answer": "025",
        "reward": 1.0, "response_length": 812, "truncated": False, "response": response,
    }
    cut = make_record("aime-2024-0", 4, "25", "<think>so \\boxed{25} maybe", 16384, True, "deepscaler")
    assert cut["extracted_answer"] is None and cut["reward"] == 0.0
    demo = make_record("arith-1", 0, "42", "6*7 = \\boxed{42}", 9, False, "deepscaler_nothink")
    assert demo["extracted_answer"] == "42" and demo["reward"] == 1.0
    with pytest.raises(ValueError, match="unknown reward 'nope'"):
        make_record("p", 0, "1", "", 0, False, "nope")


def test_records_round_trip(tmp_path: Path) -> None:
    records = [make_record("p", i, "1", f"</think>\\boxed{{{i}}}", i, False, "deepscaler") for i in range(3)]
    records[0]["extra"] = "kept"
    path = tmp_path / "eval" / "base.samples.jsonl"
    write_records(path, records)
    assert read_records(path) == records


@pytest.mark.parametrize(
    "change, message",
    [
        ({"reward": ...}, r"line 2: missing key 'reward'"),
        ({"sample_index": "0"}, r"line 2: key 'sample_index' must be int"),
        ({"sample_index": True}, r"line 2: key 'sample_index' must be int"),
        ({"truncated": 0}, r"line 2: key 'truncated' must be bool"),
        ({"extracted_answer": 5}, r"line 2: key 'extracted_answer' must be str or null"),
        ({"reward": "1"}, r"line 2: key 'reward' must be int or float"),
        ({"response_length": -1}, r"line 2: key 'response_length' must be >= 0"),
    ],
)
def test_bad_records_name_file_line_and_key(tmp_path: Path, change: dict, message: str) -> None:
    good = make_record("p", 0, "1", "</think>\\boxed{1}", 5, False, "deepscaler")
    bad = {k: v for k, v in {**good, **change}.items() if v is not ...}
    path = write_lines(tmp_path / "r.jsonl", [json.dumps(good), json.dumps(bad)])
    with pytest.raises(RecordError, match=message) as info:
        read_records(path)
    assert "r.jsonl" in str(info.value)


def test_write_records_refuses_invalid_records_and_writes_nothing(tmp_path: Path) -> None:
    good = make_record("p", 0, "1", "</think>\\boxed{1}", 5, False, "deepscaler")
    path = tmp_path / "out.jsonl"
    with pytest.raises(RecordError, match="record 1.*missing key 'label'"):
        write_records(path, [good, {k: v for k, v in good.items() if k != "label"}])
    assert not path.exists()


def test_not_json_record_names_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "r.jsonl", ["", "oops"])
    with pytest.raises(RecordError, match="r.jsonl:line 2: not valid JSON"):
        read_records(path)


def test_records_from_file_summarise(tmp_path: Path) -> None:
    answers = {"p-0": ["7", "7", "3", None], "p-1": ["9", "1", "1", "1"]}
    labels = {"p-0": "7", "p-1": "9"}
    records = [
        make_record(pid, i, labels[pid], "</think>" + ("no box" if a is None else f"\\boxed{{{a}}}"), 20, False,
                    "deepscaler")
        for pid, row in answers.items() for i, a in enumerate(row)
    ]
    path = tmp_path / "final.samples.jsonl"
    write_records(path, records)
    summary = summarize(read_records(path), n_boot=100)
    assert summary["metrics"]["avg@4"]["value"] == pytest.approx(3 / 8)
    assert summary["metrics"]["maj@4"]["value"] == pytest.approx(0.5)  # p-0 right by vote, p-1 wrong


# --- votes by the reward's equivalence, accuracy irrespective of format, final minus base ------------------------


def test_votes_pool_what_the_reward_deems_equal_not_what_reads_alike() -> None:
    # Two samples say 1/2, three say 0.5, two say 3. By string "0.5" would win with 3 votes either way; with 3/2/2
    # split differently it matters: here "3" leads by string (3 vs 2 vs 2) but 1/2 = 0.5 pools 4 votes.
    answers = ["3", "1/2", "3", "0.5", "\\frac{1}{2}", "3", "0.5"]
    samples = [record("p", i, "1/2", a, 0.0 if a == "3" else 1.0) for i, a in enumerate(answers)]
    assert majority_vote(samples, "deepscaler") == ("1/2", True)
    assert majority_vote(samples, "math_verify") == ("1/2", True)


def test_votes_stay_apart_when_the_reward_says_they_differ() -> None:
    # deepscaler compares integer fractions as written: 2/4 is not 1/2 for it, so they are two answers.
    answers = ["2/4", "2/4", "1/2", "7", "7"]
    samples = [record("p", i, "1/2", a, 1.0 if a == "1/2" else 0.0) for i, a in enumerate(answers)]
    assert majority_vote(samples, "deepscaler") == ("2/4", False)  # 2/4 and 7 tie; 2/4 came first


def test_answer_accuracy_irrespective_of_format() -> None:
    def sample(i: int, response: str, label: str = "6") -> dict:
        rec = make_record("p", i, label, response, 5, False, "deepscaler")
        return rec
    records = [sample(0, "</think>\\boxed{6}"), sample(1, "</think>Answer: 6"), sample(2, "<think>it is \\boxed{6}"),
               sample(3, "</think>Answer: 5")]
    side = summarize(records, reward="deepscaler", n_boot=50)
    assert side["metrics"]["avg@4"]["value"] == pytest.approx(0.25)  # only the closed think block with a box
    assert side["metrics"]["answer_avg@4"]["value"] == pytest.approx(0.75)  # three say 6, in any format
    assert side["metrics"]["format@4"]["value"] == pytest.approx(0.25)


def test_summary_pairs_final_against_base() -> None:
    base = [record(f"p{p}", i, "1", "1" if (p + i) % 4 == 0 else "2", 1.0 if (p + i) % 4 == 0 else 0.0)
            for p in range(20) for i in range(4)]
    final = [dict(r, extracted_answer="1", reward=1.0) if r["problem_id"] < "p5" or r["reward"] else r for r in base]
    doc = summary_document("demo", "arith", base, final, n_boot=500)
    avg = doc["paired"]["avg@4"]
    expected = doc["final"]["metrics"]["avg@4"]["value"] - doc["base"]["metrics"]["avg@4"]["value"]
    assert avg["estimate"] == pytest.approx(expected) and avg["estimate"] > 0
    assert avg["ci95"][0] > 0 and avg["p_value"] < 0.05 and avg["n_problems"] == 20
    assert set(doc["paired"]) == {"avg@4", "pass@4", "maj@4", "answer_avg@4", "format@4"}  # pass@1 is avg@4


def test_summary_refuses_to_pair_different_problems() -> None:
    base = problem("a", "1", ["1", "2"]) + problem("b", "1", ["1", "1"])
    final = problem("a", "1", ["1", "1"]) + problem("c", "1", ["1", "1"])
    doc = summary_document("demo", "arith", base, final, n_boot=20)
    assert doc["paired"] == {}
    assert "not evaluated on the same problems" in doc["paired_refused"] and "'b'" in doc["paired_refused"]
