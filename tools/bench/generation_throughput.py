"""Benchmark: HF-backend generation throughput (tokens/s) of the tiny Qwen2, new loop against the old one.

One process times, interleaved round by round (so that load changes on a shared CPU hit every variant alike):

* the short case: --new-tokens new tokens at batch 1, 8 and 32, end tokens ignored (fixed length), greedy and
  sampled, for the generation loop of shared.generation.HFGenerator ("new") and the loop it replaced ("old", kept
  as the reference in shared/tests/test_generation_stop_equivalence.py), and transformers' model.generate greedy;
* the long case: --long-prompts ragged prompts x --long-n samples each, up to --long-tokens new tokens, seeded
  sampling with log-probs (what an RL rollout asks), stop strings that end rows at scattered lengths; new loop, old
  loop and model.generate (sampling, same stop strings, num_return_sequences = n). Tokens counted are each row's
  tokens up to its stop (model.generate's rows are cut at the same rule after timing).

Each figure is the best of --repeats rounds after one warm-up round (the most stable statistic on a shared CPU);
the new and old loops' token ids are checked equal in the long case. --long-tokens 0 skips the long case.

    uv run python tools/bench/generation_throughput.py --new-tokens 64 --long-tokens 512 --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

# two-character stops: on the random tiny model each ends a row with a small chance per token, so rows finish at
# scattered lengths (a few run to the limit), which is what finished-row removal is for
LONG_STOPS = tuple(f"{d}{d}" for d in "0123456789") + ("Q:",)


def interleaved_best(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best seconds of each function over ``repeats`` rounds, every round running each once, after a warm-up."""
    for fn in fns.values():
        fn()  # warm-up: allocator, kernels, lazy imports
    best = {name: float("inf") for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def reference_generator_class() -> type:
    """The old generation loop, from the equivalence test that keeps it as the reference."""
    path = Path(__file__).resolve().parents[2] / "shared" / "tests" / "test_generation_stop_equivalence.py"
    spec = importlib.util.spec_from_file_location("generation_stop_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ReferenceHFGenerator


def stop_length(tok, ids: list[int], stops: tuple[str, ...], pad_id: int) -> int:
    """Tokens of a model.generate row up to and including the one completing a stop string (pad after it)."""
    from shared.generation.base import cut_at_stop

    for k in range(1, len(ids) + 1):
        if cut_at_stop(tok.decode(ids[:k], skip_special_tokens=True), stops) is not None:
            return k
    while ids and ids[-1] == pad_id:
        ids = ids[:-1]
    return len(ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Tokens/s of the HF generation backend on the tiny Qwen2 (CPU).")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32], help="batch sizes, short case")
    parser.add_argument("--new-tokens", type=int, default=64, help="new tokens per sequence, short case (fixed)")
    parser.add_argument("--long-tokens", type=int, default=512, help="most new tokens per row, long case")
    parser.add_argument("--long-prompts", type=int, default=4, help="ragged prompts of the long case")
    parser.add_argument("--long-n", type=int, default=8, help="samples per prompt of the long case")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the best is reported")
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
        width = max(max(args.batches), args.long_prompts * args.long_n)
        new, old = HFGenerator(model, tok, batch_size=width), reference_generator_class()(model, tok, batch_size=width)
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
            seconds = interleaved_best({
                "new greedy": lambda p=prompts: new.generate(p, greedy),
                "old greedy": lambda p=prompts: old.generate(p, greedy),
                "new sampled": lambda p=prompts: new.generate(p, sampled),
                "old sampled": lambda p=prompts: old.generate(p, sampled),
                "model.generate greedy": lambda p=prompts: hf_generate(p),
            }, args.repeats)
            rows.append((bsz, {name: bsz * args.new_tokens / s for name, s in seconds.items()}))

        long_figures = None
        if args.long_tokens:
            params = SamplingParams(max_new_tokens=args.long_tokens, temperature=1.0, seed=0, n=args.long_n,
                                    ignore_eos=True, stop=LONG_STOPS, logprobs=True)
            prompts = [f"Q: {i % 90 + 10}+{i % 9}-{i % 7}=?\nA: " + "x" * (5 * i) for i in range(args.long_prompts)]
            got_new, got_old = new.generate(prompts, params), old.generate(prompts, params)
            same = [c.token_ids for r in got_new for c in r] == [c.token_ids for r in got_old for c in r]
            lengths = [len(c.token_ids) for r in got_new for c in r]
            made: dict[str, int] = {}

            def hf_long() -> None:
                torch.manual_seed(0)
                enc = tok(prompts, return_tensors="pt", padding=True).to(model.device)
                out = model.generate(**enc, max_new_tokens=args.long_tokens, min_new_tokens=args.long_tokens,
                                     do_sample=True, temperature=1.0, top_k=0, num_return_sequences=args.long_n,
                                     stop_strings=list(LONG_STOPS), tokenizer=tok, pad_token_id=tok.pad_token_id)
                made["ids"] = out[:, enc["input_ids"].shape[1]:].tolist()

            seconds = interleaved_best({
                "new": lambda: new.generate(prompts, params),
                "old": lambda: old.generate(prompts, params),
                "model.generate": hf_long,
            }, args.repeats)
            hf_tokens = sum(stop_length(tok, ids, LONG_STOPS, tok.pad_token_id) for ids in made["ids"])
            long_figures = (sum(lengths) / seconds["new"], sum(lengths) / seconds["old"],
                            hf_tokens / seconds["model.generate"], same, lengths)

    print(f"tiny Qwen2 ({n_params / 1e6:.2f}M params), device={args.device}, threads={args.threads}, "
          f"best of {args.repeats} interleaved rounds")
    print(f"short case: {args.new_tokens} new tokens per sequence (end tokens ignored), tokens/s")
    names = list(rows[0][1])
    print(f"{'batch':>5} | " + " | ".join(f"{n:>21}" for n in names) + " | new/old greedy | new/old sampled")
    for bsz, f in rows:
        print(f"{bsz:>5} | " + " | ".join(f"{f[n]:21.0f}" for n in names)
              + f" | {f['new greedy'] / f['old greedy']:14.2f}x | {f['new sampled'] / f['old sampled']:15.2f}x")
    last = rows[-1][1]
    print(f"new loop vs model.generate (greedy, batch {rows[-1][0]}): "
          f"{last['new greedy'] / last['model.generate greedy']:.2f}x")
    if long_figures is not None:
        after, before, hf, same, lengths = long_figures
        print(f"long case: {args.long_prompts} ragged prompts x n={args.long_n}, up to {args.long_tokens} new tokens, "
              f"seeded sampling with log-probs, {len(LONG_STOPS)} stop strings; row lengths min/median/max "
              f"{min(lengths)}/{sorted(lengths)[len(lengths) // 2]}/{max(lengths)}, "
              f"{sum(x == args.long_tokens for x in lengths)} of {len(lengths)} rows at the limit")
        print(f"  new loop {after:.0f} tok/s, old loop {before:.0f} tok/s, model.generate {hf:.0f} tok/s; "
              f"new/old {after / before:.2f}x, new/model.generate {after / hf:.2f}x; "
              f"same token ids new vs old: {same}")


if __name__ == "__main__":
    main()
