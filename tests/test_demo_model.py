"""The demo's tiny model and data: load like a downloaded model, deterministic, held-out eval."""

from __future__ import annotations

import json

import pytest

from mileage.data.demo_problems import DemoDataError, draw_problems, write_demo_dataset
from mileage.data.problems import read_problems
from mileage.models.tiny import DemoModelError, build_demo_model

SHAPE = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 32}
HF_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "model"
    build_demo_model(out, SHAPE, seed=3)
    return out


def test_loads_with_auto_classes_and_renders_chat_prompt(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for name in HF_FILES:
        assert (model_dir / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.model_type == "glm4"
    assert model.config.hidden_size == 16 and model.config.num_hidden_layers == 1
    messages = [{"role": "user", "content": "What is 3 + 5?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith("[gMASK]<sop><|user|>\nWhat is 3 + 5?")
    assert text.endswith("<|assistant|>\n")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text
    answer = "Answer: \\boxed{12}"
    assert tokenizer.decode(tokenizer(answer, add_special_tokens=False)["input_ids"]) == answer
    assert tokenizer.convert_tokens_to_ids("\\boxed{") != tokenizer.unk_token_id
    assert tokenizer.eos_token_id in model.generation_config.eos_token_id


def test_same_seed_same_bytes_other_seed_other_weights(model_dir, tmp_path):
    build_demo_model(tmp_path / "again", SHAPE, seed=3)
    build_demo_model(tmp_path / "other", SHAPE, seed=4)
    for name in HF_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (model_dir / name).read_bytes(), name
    assert (tmp_path / "other" / "model.safetensors").read_bytes() != (model_dir / "model.safetensors").read_bytes()


def test_bad_shape_names_the_key(tmp_path):
    with pytest.raises(DemoModelError, match="hidden_size"):
        build_demo_model(tmp_path / "m", {**SHAPE, "hidden_size": 15}, seed=0)
    with pytest.raises(DemoModelError, match="num_layer"):
        build_demo_model(tmp_path / "m", {**SHAPE, "num_layer": 2}, seed=0)
    assert not (tmp_path / "m").exists()


def test_demo_dataset_is_deterministic_and_in_the_schema(tmp_path):
    kwargs = dict(name="arith", n_problems=40, seed=5, max_operand=9, operations=["+", "*"], split="train")
    write_demo_dataset(tmp_path / "a.jsonl", **kwargs)
    write_demo_dataset(tmp_path / "b.jsonl", **kwargs)
    write_demo_dataset(tmp_path / "c.jsonl", **{**kwargs, "seed": 6})
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert (tmp_path / "a.jsonl").read_bytes() != (tmp_path / "c.jsonl").read_bytes()
    problems = read_problems(tmp_path / "a.jsonl")
    assert len(problems) == 40
    row = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert row["prompt"][0]["role"] == "user" and "\\boxed{" in row["prompt"][0]["content"]
    for p in problems:  # the label is the value of the expression in the prompt
        expr = p.prompt[0]["content"].rsplit("What is ", 1)[1].rstrip("?")
        assert str(eval(expr)) == p.label  # noqa: S307 - our own generated digits and operator


def test_eval_problems_never_appear_in_train(tmp_path):
    space = dict(max_operand=12, operations=["+", "-"])
    eval_set = {(p.a, p.op, p.b) for p in draw_problems(40, seed=2, split="eval", **space)}
    assert len(eval_set) == 40  # distinct
    for seed in range(5):
        train = {(p.a, p.op, p.b) for p in draw_problems(500, seed=seed, split="train", **space)}
        assert not train & eval_set
    # the warm start draws its examples from the train part too
    from mileage.data.demo_problems import problem_space

    assert not {(p.a, p.op, p.b) for p in problem_space(split="train", **space)} & eval_set


def test_eval_larger_than_held_out_part_is_refused():
    with pytest.raises(DemoDataError, match="n_problems"):
        draw_problems(10_000, seed=0, max_operand=9, operations=["+"], split="eval")
    with pytest.raises(DemoDataError, match="operations"):
        draw_problems(5, seed=0, max_operand=9, operations=["/"], split="train")


def test_warm_start_boxes_only_the_asked_fraction_of_answers():
    from mileage.data.demo_problems import ArithmeticProblem, response_for
    from mileage.engines.local.warm_start import worked_examples
    from mileage.models.tiny import build_tokenizer
    from mileage.rewards import deepscaler_nothink

    tokenizer = build_tokenizer()
    box = tokenizer.convert_tokens_to_ids("\\boxed{")
    kwargs = dict(n_examples=40, seed=3, max_operand=9, operations=["+"])

    def n_boxed(fraction: float) -> int:
        examples = worked_examples(tokenizer, boxed_fraction=fraction, **kwargs)
        return sum(box in ids[n_prompt:] for ids, n_prompt in examples)

    assert n_boxed(1.0) == 40 and n_boxed(0.0) == 0 and n_boxed(0.35) == 14
    # same problems whatever the fraction: only the ending changes
    prompts = lambda f: [ids[:n] for ids, n in worked_examples(tokenizer, boxed_fraction=f, **kwargs)]  # noqa: E731
    assert prompts(0.35) == prompts(1.0)
    # an unboxed answer is right but earns no reward: the behaviour GRPO has to learn
    p = ArithmeticProblem(4, "+", 8)
    assert response_for(p, boxed=False) == "Answer: 12"
    assert deepscaler_nothink(response_for(p, boxed=False), "12") == 0.0
    assert deepscaler_nothink(response_for(p), "12") == 1.0


def test_warm_start_refuses_a_bad_boxed_fraction(tmp_path):
    from mileage.engines.local.warm_start import WarmStartError, warm_start

    with pytest.raises(WarmStartError, match="boxed_fraction"):
        warm_start(tmp_path / "missing", tmp_path / "out", n_examples=4, epochs=1, lr=1e-3, batch_size=2, seed=0,
                   max_operand=3, operations=["+"], boxed_fraction=1.5)
    assert not (tmp_path / "out").exists()
