"""A model card's Megatron arguments (its `megatron_args`, what miles' train.py gets for the model) against the
card's own shapes: a card whose arguments say another model than its shapes is refused before anything runs."""

from __future__ import annotations

from typing import Any, Mapping

from mileage.models.cards import CardError, load_card, same_value

# Megatron flag -> shape key: the arguments must say what the shapes say.
ARG_SHAPES = {
    "--num-layers": "num_layers", "--hidden-size": "hidden_size", "--ffn-hidden-size": "intermediate_size",
    "--num-attention-heads": "num_attention_heads", "--num-query-groups": "num_kv_heads",
    "--norm-epsilon": "rms_norm_eps", "--rotary-base": "rope_theta", "--vocab-size": "vocab_size",
    "--rotary-percent": "partial_rotary_factor", "--kv-channels": "head_dim",
}
UNTIED = "--untie-embeddings-and-output-weights"


def check_card_arguments(card: Mapping[str, Any], where: str = "<card>") -> None:
    """Raise CardError naming the first Megatron argument of `card` that disagrees with its shapes."""
    args, shapes = card["megatron_args"], card["shapes"]
    for flag, shape_key in ARG_SHAPES.items():
        if flag not in args:
            continue
        index = args.index(flag)
        if index + 1 >= len(args):
            raise CardError(f"{where}: megatron_args ends with {flag}, which needs a value")
        if not same_value(float(args[index + 1]), shapes[shape_key]):
            raise CardError(f"{where}: megatron_args {flag} {args[index + 1]} disagrees with "
                            f"shapes.{shape_key} = {shapes[shape_key]}")
    tied = UNTIED not in args
    if tied != shapes["tie_word_embeddings"]:
        raise CardError(f"{where}: shapes.tie_word_embeddings is {shapes['tie_word_embeddings']} but megatron_args "
                        f"{'lacks' if tied else 'has'} {UNTIED}")


def load_miles_card(name: str, **kwargs: Any) -> dict[str, Any]:
    """The validated card `name` (mileage.models.cards.load_card), its Megatron arguments checked too."""
    card = load_card(name, **kwargs)
    check_card_arguments(card, f"model card {name}")
    return card
