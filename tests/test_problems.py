"""Dataset reader (miles' JSONL schema): the real files parse, broken ones say file and line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from mileage.data.problems import DatasetError, Problem, prompt_text, read_problems, write_problems

SHARED = Path(__file__).resolve().parents[2] / "shared"
AIME = SHARED / "data" / "aime-2024" / "aime-2024.jsonl"
DAPO = SHARED / "data" / "dapo-math-17k" / "dapo-math-17k.head84.jsonl"
QWEN_AIME = SHARED / "data" / "aime-2024" / "qwen2.5-math-aime24-test.jsonl"
needs_shared = pytest.mark.skipif(not AIME.exists(), reason=f"shared data fixtures not found at {SHARED}")


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def row(**fields) -> str:
    base = {"prompt": [{"role": "user", "content": "What is 1+1?"}], "label": "2"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


# --- real data --------------------------------------------------------------------------------------


@needs_shared
def test_aime_2024_has_30_problems_with_integer_labels() -> None:
    problems = read_problems(AIME)
    assert len(problems) == 30
    assert [p.id for p in problems] == [f"aime-2024-{i}" for i in range(30)]
    assert problems[0].label == "204"
    for p in problems:
        assert p.label.isdigit() and 0 <= int(p.label) <= 999
        assert len(prompt_text(p)) > 50


@needs_shared
def test_aime_labels_agree_with_the_zero_padded_source() -> None:
    source = [json.loads(line) for line in QWEN_AIME.read_text().splitlines() if line.strip()]
    problems = read_problems(AIME)
    assert [int(p.label) for p in problems] == [int(r["answer"]) for r in source]


@needs_shared
def test_dapo_head_parses_every_row() -> None:
    problems = read_problems(DAPO)
    assert len(problems) == 84
    for p in problems:
        assert isinstance(p.prompt, list) and p.prompt[0]["role"] == "user"
        assert prompt_text(p).startswith("Solve the following math problem step by step.")
        int(p.label)  # labels are integers (possibly negative) written as strings


@needs_shared
def test_qwen_schema_is_rejected_with_the_missing_key() -> None:
    with pytest.raises(DatasetError, match=r"qwen2.5-math-aime24-test.jsonl:line 1: missing key 'prompt'"):
        read_problems(QWEN_AIME)


# --- reading and writing ----------------------------------------------------------------------------


def test_ids_labels_and_blank_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "mini.jsonl", [
        row(label=7),
        "",
        row(id="special", label="\\frac{1}{2}"),
        "   ",
        row(prompt="Plain string prompt", label=-3),
        row(id=42),
    ])
    problems = read_problems(path)
    assert [p.id for p in problems] == ["mini-0", "special", "mini-2", "42"]
    assert [p.label for p in problems] == ["7", "\\frac{1}{2}", "-3", "2"]
    assert prompt_text(problems[0]) == "What is 1+1?"
    assert prompt_text(problems[2]) == "Plain string prompt"


def test_prompt_text_takes_the_last_user_message(tmp_path: Path) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]
    (problem,) = read_problems(write_lines(tmp_path / "d.jsonl", [row(prompt=messages)]))
    assert prompt_text(problem) == "Q?"
    assert problem.prompt == messages


def test_problem_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Problem(id="a", prompt="q", label="1").label = "2"  # type: ignore[misc]


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    problems = [
        Problem(id="a", prompt=[{"role": "user", "content": "Q1 ünïcode"}], label="1"),
        Problem(id="b", prompt="Q2", label="-5"),
    ]
    out = tmp_path / "sub" / "out.jsonl"
    write_problems(out, problems)
    assert read_problems(out) == problems
    assert not [p for p in out.parent.iterdir() if p.name != "out.jsonl"]  # no temp files left


@pytest.mark.parametrize(
    "lines, message",
    [
        ([row(), "{not json"], r"line 2: not valid JSON"),
        (["[1, 2]"], r"line 1: a row must be a JSON object"),
        ([row(prompt=...)], r"line 1: missing key 'prompt'"),
        ([row(label=...)], r"line 1: missing key 'label'"),
        ([row(), row(), row(label="")], r"line 3: key 'label' is empty"),
        ([row(label=None)], r"line 1: key 'label' must be a string or number"),
        ([row(label=True)], r"line 1: key 'label' must be a string or number"),
        ([row(prompt="")], r"line 1: key 'prompt' is an empty string"),
        ([row(prompt=[])], r"line 1: key 'prompt' must be a non-empty"),
        ([row(prompt=["hi"])], r"line 1: prompt message 0 is not an object"),
        ([row(prompt=[{"role": "robot", "content": "x"}])], r"line 1: prompt message 0 has key 'role'"),
        ([row(prompt=[{"role": "user"}])], r"line 1: prompt message 0 has no string key 'content'"),
        ([row(prompt=[{"role": "system", "content": "x"}])], r"line 1: key 'prompt' has no non-empty user message"),
        ([row(id="x"), "", row(id="x")], r"line 3: duplicate id 'x' \(first at .*:line 1\)"),
        ([row(id="")], r"line 1: key 'id' is empty"),
        (["", "  "], r"no problems"),
    ],
)
def test_broken_datasets_name_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_lines(tmp_path / "broken.jsonl", lines)
    with pytest.raises(DatasetError, match=message) as info:
        read_problems(path)
    assert "broken.jsonl" in str(info.value)


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bytes.jsonl"
    path.write_bytes(row().encode() + b"\n" + b'{"prompt": "\xff", "label": "1"}\n')
    with pytest.raises(DatasetError, match="bytes.jsonl:line 2: not UTF-8"):
        read_problems(path)
