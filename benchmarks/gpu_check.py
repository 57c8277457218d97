"""What only a GPU can show: the local engine's GRPO training and in-training evaluation steps on CUDA for a
Qwen3-0.6B-shaped model, and their peak memory against what the arithmetic expects.

    python benchmarks/gpu_check.py [--device cuda|cpu] [--layers 28] [--rollouts 2] [--out DIR]

The model has Qwen3-0.6B's shape (FACTS section 9: 28 layers, hidden 1024, intermediate 3072, 16 heads, 8 KV heads,
head_dim 128, tied embeddings) with random weights and this project's tiny tokenizer (mileage.models.tiny), so its
vocabulary, and with it the embedding, is small: about 0.44e9 parameters. Training runs in-process through the
engine's own `run_grpo` (TRL's GRPOTrainer; no Ray), evaluating in training after every rollout.

Expected peak: on CUDA the engine trains in bf16 (weights, gradients and AdamW's two moments in bf16: 8 bytes per
parameter), plus activations, logits and generation caches, which at these short sequences stay small. The check
passes when the peak allocated CUDA memory lies within 1.0 to 1.5 times 8 bytes x parameters. On CPU (fp32) it
prints the process' peak resident memory and checks nothing about it: the CPU mode shows that the script runs end
to end, not what a GPU does.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

QWEN3_0_6B = {"num_hidden_layers": 28, "hidden_size": 1024, "intermediate_size": 3072, "num_attention_heads": 16,
              "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True, "rope_theta": 1e6,
              "rms_norm_eps": 1e-6, "max_position_embeddings": 4096}
EXPECTED_RATIO = (1.0, 1.5)


def build_model(out: Path, layers: int) -> int:
    """A random Qwen3-0.6B-shaped model with the tiny tokenizer in `out`; returns its parameter count."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    from mileage.models.tiny import END_OF_TURN_TOKENS, build_tokenizer

    tokenizer = build_tokenizer()
    eos = [tokenizer.convert_tokens_to_ids(t) for t in END_OF_TURN_TOKENS]
    config = Qwen3Config(**{**QWEN3_0_6B, "num_hidden_layers": layers}, vocab_size=len(tokenizer),
                         pad_token_id=tokenizer.pad_token_id, eos_token_id=eos, dtype="float32")
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                                               do_sample=True, temperature=1.0, top_p=1.0)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.model_max_length = QWEN3_0_6B["max_position_embeddings"]
    tokenizer.save_pretrained(out)
    return sum(p.numel() for p in model.parameters())


def job_spec(root: Path, device: str, rollouts: int) -> dict:
    # On the CPU a smaller batch and shorter responses: the CPU mode shows that the path runs, nothing more.
    small = device == "cpu"
    return {
        "experiment": "gpu-check", "model_path": str(root / "model"), "train_data": str(root / "train.jsonl"),
        "eval_data": [{"name": "arith", "path": str(root / "eval.jsonl")}], "run_dir": str(root / "run"),
        "seed": 1, "rollout_seed": 2, "data": {"apply_chat_template": True},
        "rollout": {"num_rollout": rollouts, "rollout_batch_size": 4 if small else 8,
                    "n_samples_per_prompt": 4 if small else 8, "max_response_len": 16 if small else 64,
                    "temperature": 1.0, "top_p": 1.0, "shuffle": True, "reward": "deepscaler_nothink"},
        "train": {"global_batch_size": 16 if small else 64, "num_steps_per_rollout": 1,
                  "micro_batch_size": 8 if small else 16, "lr": 1e-5, "lr_decay_style": "constant",
                  "weight_decay": 0.0, "save_interval": rollouts},
        "eval": {"interval": 1, "n_samples_per_prompt": 2 if small else 4, "max_response_len": 16 if small else 64},
        "resources": {"device": device, "gpus": 1 if device == "cuda" else 0},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--layers", type=int, default=QWEN3_0_6B["num_hidden_layers"],
                        help="decoder layers (28 = Qwen3-0.6B; fewer for a quick CPU run)")
    parser.add_argument("--rollouts", type=int, default=2)
    parser.add_argument("--out", default="results/bench/gpu_check")
    args = parser.parse_args(argv)

    import torch

    from mileage.data.demo_problems import write_demo_dataset
    from mileage.engines.local.grpo import run_grpo
    from mileage.metrics.events import read_events

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: FAIL: --device cuda but torch sees no CUDA device", flush=True)
        return 1
    root = Path(args.out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    params = build_model(root / "model", args.layers)
    for split, n in (("train", 64), ("eval", 8 if args.device == "cpu" else 16)):
        write_demo_dataset(root / f"{split}.jsonl", name="arith", n_problems=n, seed=1, max_operand=9,
                           operations=["+"], split=split)
    print(f"gpu_check: torch {torch.__version__} (CUDA {torch.version.cuda}), device {args.device}"
          + (f" ({torch.cuda.get_device_name(0)})" if args.device == "cuda" else ""), flush=True)
    print(f"gpu_check: Qwen3-0.6B-shaped model, {args.layers} layers, {params / 1e9:.3f}e9 parameters", flush=True)
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run_grpo(job_spec(root, args.device, args.rollouts))
    seconds = time.perf_counter() - t0
    events = read_events(root / "run" / "events.jsonl")
    steps = sorted({e.step for e in events if e.kind == "train"})
    evals = sorted({e.step for e in events if e.kind == "eval"})
    result = {"device": args.device, "layers": args.layers, "parameters": params, "seconds": round(seconds, 1),
              "train_steps": len(steps), "eval_rollouts": evals}
    ok = bool(steps) and len(evals) >= args.rollouts
    if args.device == "cuda":
        peak = torch.cuda.max_memory_allocated()
        bf16 = torch.cuda.is_bf16_supported()
        expected = params * (8 if bf16 else 16)
        ratio = peak / expected
        within = EXPECTED_RATIO[0] <= ratio <= EXPECTED_RATIO[1]
        result.update(peak_gib=round(peak / 2**30, 3), expected_gib=round(expected / 2**30, 3),
                      ratio=round(ratio, 3), dtype="bf16" if bf16 else "fp32", memory_within_expectation=within)
        ok = ok and within
        print(f"gpu_check: peak CUDA memory {peak / 2**30:.2f} GiB; expected {expected / 2**30:.2f} GiB "
              f"({8 if bf16 else 16} B x parameters): ratio {ratio:.2f} (pass: {EXPECTED_RATIO[0]} to "
              f"{EXPECTED_RATIO[1]})", flush=True)
    else:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        result["peak_rss_gib"] = round(rss, 3)
        print(f"gpu_check: CPU run, peak resident memory {rss:.2f} GiB (not checked: fp32 on CPU)", flush=True)
    print(f"gpu_check: {len(steps)} training steps and evaluations at rollouts {evals} in {seconds:.0f} s", flush=True)
    (root / "gpu_check.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"gpu_check: {'PASS' if ok else 'FAIL'} {json.dumps(result)}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
