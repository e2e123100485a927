"""Benchmark: HF-backend generation throughput (tokens/s) of the tiny Qwen2 at batch 1, 8 and 32.

Measures shared.generation.HFGenerator (own KV-cache loop) greedy and sampled, and transformers' model.generate
greedy as a reference, all with a fixed number of new tokens (end tokens ignored), in one process, and prints
tokens/s with the ratio to batch 1. Each figure is the best of --repeats timed runs after one warm-up, which is
the most stable statistic on a shared CPU.

The long case (--long-tokens new tokens at --long-batch, seeded sampling, stop strings that never hit, end tokens
ignored) times the loop with incremental stop detection against the loop it replaced, which re-decoded each row's
whole text after every token (kept as the reference in shared/tests/test_generation_stop_equivalence.py), checks
both give the same token ids, and prints both tokens/s and their ratio; --long-tokens 0 skips it.

    uv run python tools/bench/generation_throughput.py --new-tokens 64 --long-tokens 384
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


def best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator, kernels, lazy imports
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def reference_generator_class() -> type:
    """The pre-incremental generation loop, from the equivalence test that keeps it as the reference."""
    path = Path(__file__).resolve().parents[2] / "shared" / "tests" / "test_generation_stop_equivalence.py"
    spec = importlib.util.spec_from_file_location("generation_stop_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ReferenceHFGenerator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tokens/s of the HF generation backend on the tiny Qwen2 (CPU).")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="batch sizes to measure")
    parser.add_argument("--new-tokens", type=int, default=64, help="new tokens per sequence (fixed)")
    parser.add_argument("--long-tokens", type=int, default=384, help="new tokens of the long stop-string case")
    parser.add_argument("--long-batch", type=int, default=8, help="batch of the long stop-string case")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting; the best is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids stalls on shared cores)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--model-dir", default=None, help="existing tiny model dir (default: build one in a temp dir)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    from shared.generation import HFGenerator, SamplingParams
    from shared.modeling import load_model
    from shared.modeling.tiny import cached_tiny

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model_dir or cached_tiny("qwen2", tmp)
        model, tok = load_model(model_dir, device=args.device, dtype="float32")
        n_params = sum(p.numel() for p in model.parameters())
        gen = HFGenerator(model, tok, batch_size=max(args.batches))
        greedy = SamplingParams(max_new_tokens=args.new_tokens, temperature=0, ignore_eos=True)
        sampled = SamplingParams(max_new_tokens=args.new_tokens, temperature=1.0, top_p=0.95, seed=0,
                                 ignore_eos=True)

        def hf_generate(prompts: list[str]) -> None:
            enc = tok(prompts, return_tensors="pt", padding=True).to(model.device)
            model.generate(**enc, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
                           pad_token_id=tok.pad_token_id)

        rows = []
        for bsz in args.batches:
            prompts = [f"Q: {i % 90 + 10}+{i % 9}-{i % 7}=?\nA: " for i in range(bsz)]
            tokens = bsz * args.new_tokens
            rows.append((bsz, {
                "HFGenerator greedy": tokens / best_seconds(lambda p=prompts: gen.generate(p, greedy), args.repeats),
                "HFGenerator sampled": tokens / best_seconds(lambda p=prompts: gen.generate(p, sampled), args.repeats),
                "model.generate greedy": tokens / best_seconds(lambda p=prompts: hf_generate(p), args.repeats),
            }))

        long_figures = None
        if args.long_tokens:
            reference = reference_generator_class()(model, tok, batch_size=args.long_batch)
            long_params = SamplingParams(max_new_tokens=args.long_tokens, temperature=1.0, seed=0, ignore_eos=True,
                                         stop=("never there", "\u2603\u2603", "Q: 99"))
            prompts = [f"Q: {i % 90 + 10}+{i % 9}-{i % 7}=?\nA: " + "x" * (3 * i) for i in range(args.long_batch)]
            same = ([c.token_ids for r in gen.generate(prompts, long_params) for c in r]
                    == [c.token_ids for r in reference.generate(prompts, long_params) for c in r])
            tokens = args.long_batch * args.long_tokens
            long_figures = (
                tokens / best_seconds(lambda: reference.generate(prompts, long_params), args.repeats),
                tokens / best_seconds(lambda: gen.generate(prompts, long_params), args.repeats),
                same,
            )

    print(f"tiny Qwen2 ({n_params / 1e6:.2f}M params), device={args.device}, threads={args.threads}, "
          f"{args.new_tokens} new tokens per sequence, best of {args.repeats}")
    names = list(rows[0][1])
    print(f"{'batch':>5} | " + " | ".join(f"{n:>30}" for n in names))
    base = rows[0][1]
    for bsz, figures in rows:
        cells = [f"{figures[n]:9.0f} tok/s ({figures[n] / base[n]:5.1f}x b{rows[0][0]})" for n in names]
        print(f"{bsz:>5} | " + " | ".join(f"{c:>30}" for c in cells))
    last = rows[-1][1]
    ratio = last["HFGenerator greedy"] / last["model.generate greedy"]
    print(f"own loop vs model.generate (greedy, batch {rows[-1][0]}): {ratio:.2f}x")
    if long_figures is not None:
        before, after, same = long_figures
        print(f"long case: batch {args.long_batch} (ragged prompts), {args.long_tokens} new tokens, sampled, "
              f"3 stop strings never hit: before (whole-text decode per token) {before:.0f} tok/s, "
              f"after (incremental) {after:.0f} tok/s, ratio {after / before:.2f}x, same token ids: {same}")


if __name__ == "__main__":
    main()
