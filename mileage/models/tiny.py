"""A tiny GLM-4-architecture causal LM with a locally built tokenizer: the offline demo's "download".

The directory it writes looks like a Hugging Face snapshot (config.json, generation_config.json,
model.safetensors, tokenizer.json, tokenizer_config.json, special_tokens_map.json) and loads with
AutoModelForCausalLM / AutoTokenizer, so every later stage treats it like a real model.

Tokenizer: a word-level vocabulary over the demo prompt's words, `\\boxed{`, every printable ASCII
character and newline (so any ASCII text encodes, unknown words letter by letter), plus GLM-4's special
tokens. Its chat template renders messages the way GLM-4's does: `[gMASK]<sop><|user|>\\n...<|assistant|>\\n`.
"""

from __future__ import annotations

import os
import re
import string
from pathlib import Path

from mileage.atomic import atomic_dir
from mileage.data.demo_problems import PROMPT_HEAD, PROMPT_TAIL, RESPONSE_TEMPLATE


class DemoModelError(ValueError):
    """Bad shape for the demo model (names the offending key)."""


EOS_TOKEN = "<|endoftext|>"
UNK_TOKEN = "[UNK]"
# GLM-4's special tokens, in its order; `<|user|>` also ends an assistant turn (as in GLM-4's generation config).
SPECIAL_TOKENS: tuple[str, ...] = (
    EOS_TOKEN, "[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>",
    "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", UNK_TOKEN,
)
END_OF_TURN_TOKENS: tuple[str, ...] = (EOS_TOKEN, "<|user|>", "<|observation|>")
MULTI_CHAR_TOKENS: tuple[str, ...] = ("\\boxed{",)
EXTRA_WORDS: tuple[str, ...] = ("What", "is", "Answer", "think", "answer", "the")

CHAT_TEMPLATE = (
    "[gMASK]<sop>"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

SHAPE_KEYS = ("hidden_size", "num_layers", "num_heads", "num_kv_heads", "intermediate_size", "max_position_embeddings")
SHAPE_DEFAULTS = {"max_position_embeddings": 256}


def vocabulary() -> list[str]:
    """Token strings in id order: specials, characters, multi-character pieces, words (all distinct)."""
    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]  # printable ASCII + space + newline
    words = sorted(set(re.findall(r"[A-Za-z]{2,}", PROMPT_HEAD + PROMPT_TAIL + RESPONSE_TEMPLATE)) | set(EXTRA_WORDS))
    words = [w for w in words if w != "boxed"]
    tokens = list(SPECIAL_TOKENS) + chars + list(MULTI_CHAR_TOKENS) + words
    assert len(tokens) == len(set(tokens))
    return tokens


def _split_pattern(words: list[str]) -> str:
    # Longest alternatives first; a known word only as a whole word, anything else one character at a time.
    pieces = [re.escape(t) for t in MULTI_CHAR_TOKENS]
    pieces.append(r"\b(?:" + "|".join(sorted(words, key=lambda w: (-len(w), w))) + r")\b")
    pieces.append(r"[\s\S]")
    return "|".join(pieces)


def build_tokenizer():
    """The demo tokenizer as a PreTrainedTokenizerFast (left padding, for generation)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary()
    words = [t for t in vocab if t.isalpha() and len(t) > 1]
    backend = Tokenizer(models.WordLevel({tok: i for i, tok in enumerate(vocab)}, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(_split_pattern(words)), behavior="isolated")
    backend.decoder = decoders.Fuse()  # tokens are pieces of text: join them without spaces
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token=EOS_TOKEN,
        pad_token=EOS_TOKEN,  # as GLM-4
        unk_token=UNK_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, UNK_TOKEN)],
        padding_side="left",
        clean_up_tokenization_spaces=False,
        model_max_length=SHAPE_DEFAULTS["max_position_embeddings"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _resolved_shape(shape: dict) -> dict:
    unknown = sorted(set(shape) - set(SHAPE_KEYS))
    if unknown:
        raise DemoModelError(f"model.demo: unknown key(s) {', '.join(unknown)}; expected {', '.join(SHAPE_KEYS)}")
    resolved = {**SHAPE_DEFAULTS, **shape}
    for key in SHAPE_KEYS:
        value = resolved.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise DemoModelError(f"model.demo: key {key!r} must be a positive integer, got {value!r}")
    if resolved["hidden_size"] % resolved["num_heads"]:
        raise DemoModelError(
            f"model.demo: key 'hidden_size' ({resolved['hidden_size']}) must be divisible by num_heads ({resolved['num_heads']})"
        )
    if resolved["num_heads"] % resolved["num_kv_heads"]:
        raise DemoModelError(
            f"model.demo: key 'num_heads' ({resolved['num_heads']}) must be divisible by num_kv_heads ({resolved['num_kv_heads']})"
        )
    return resolved


def _place_digits_on_an_arc(model, tokenizer, generator) -> None:
    """Give the digit embeddings a shared number-line component, as a pretrained model's would have.

    Digit d gets `r (cos t_d u + sin t_d v)` added, t_d = d * pi / 10, with u, v two random orthonormal
    directions. An attention average of two digits then points at angle (t_a + t_b) / 2: a function of the
    sum alone, so what the model learns about `3 + 5` carries over to the held-out `5 + 3` or `2 + 6`.
    Without this, a model this small memorises the train facts and stays near chance on held-out ones.
    """
    import math

    import torch

    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        basis, _ = torch.linalg.qr(torch.randn(weight.shape[1], 2, generator=generator))
        radius = 2.0 * weight.norm(dim=1).mean()
        for d in range(10):
            angle = d * math.pi / 10
            direction = math.cos(angle) * basis[:, 0] + math.sin(angle) * basis[:, 1]
            weight[tokenizer.convert_tokens_to_ids(str(d))] += radius * direction


def build_demo_model(out_dir: str | os.PathLike, shape: dict, seed: int) -> None:
    """Write a randomly initialised tiny Glm4ForCausalLM and its tokenizer to `out_dir` (atomic, deterministic)."""
    import torch
    from transformers import GenerationConfig, Glm4Config, Glm4ForCausalLM

    dims = _resolved_shape(shape)
    tokenizer = build_tokenizer()
    tokenizer.model_max_length = dims["max_position_embeddings"]
    eos_ids = [tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN_TOKENS]
    config = Glm4Config(
        vocab_size=len(tokenizer),
        hidden_size=dims["hidden_size"],
        intermediate_size=dims["intermediate_size"],
        num_hidden_layers=dims["num_layers"],
        num_attention_heads=dims["num_heads"],
        num_key_value_heads=dims["num_kv_heads"],
        head_dim=dims["hidden_size"] // dims["num_heads"],
        max_position_embeddings=dims["max_position_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=eos_ids,
        tie_word_embeddings=False,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = Glm4ForCausalLM(config)
    _place_digits_on_an_arc(model, tokenizer, generator=torch.Generator().manual_seed(seed))
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tokenizer.pad_token_id, do_sample=True, temperature=1.0, top_p=1.0
    )
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        # transformers 5 keeps the special tokens in tokenizer_config.json; a downloaded GLM-4 also ships this file.
        special = Path(tmp) / "special_tokens_map.json"
        if not special.exists():
            import json

            special.write_text(
                json.dumps(
                    {
                        "eos_token": EOS_TOKEN,
                        "pad_token": EOS_TOKEN,
                        "unk_token": UNK_TOKEN,
                        "additional_special_tokens": [t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, UNK_TOKEN)],
                    },
                    indent=2,
                    sort_keys=True,
                )
                + "\n",
                encoding="utf-8",
            )
