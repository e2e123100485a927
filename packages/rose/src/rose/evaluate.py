"""Evaluation: pass@1 over k samples, mean response length (all and correct), answer diversity, verbose share.

pass@1 is the mean over prompts of the share of k sampled responses (temperature `eval.temperature`, 0.6 in the
paper) whose last \\boxed{} equals the gold answer. Lengths are in generated tokens. `boxed_rate` (share of
responses with any \\boxed{}) is the format-level signal that remains for tiny models on MATH-500/GSM8K/AIME.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.generation import HFGenerator, SamplingParams
from shared.rewards import math_reward
from tqdm.auto import tqdm

from rose.advantages import distinct_answers
from rose.data import final_answer, is_verbose


def evaluate(
    model: Any,
    tokenizer: Any,
    records: Sequence[Mapping[str, Any]],
    samples: int = 8,
    temperature: float = 0.6,
    max_new_tokens: int = 64,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, float | None]:
    """Sample k responses per record and score them; returns the metrics dict (None where nothing was correct)."""
    if not records:
        raise ValueError("evaluate: no records")
    gen = HFGenerator(model, tokenizer, batch_size=batch_size)
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=temperature, n=samples, seed=seed)
    per_call = max(1, batch_size // samples)
    hits, lengths, correct_lengths, verbose, boxed, distinct = [], [], [], [], [], []
    for start in tqdm(range(0, len(records), per_call), desc="eval", disable=not progress, dynamic_ncols=True):
        chunk = records[start:start + per_call]
        prompts = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in chunk]
        for rec, comps in zip(chunk, gen.generate(prompts, params)):
            ok = [math_reward(c.text, str(rec["answer"])) for c in comps]
            hits.append(sum(ok) / len(ok))
            distinct.append(distinct_answers([final_answer(c.text) for c in comps]))
            for c, r in zip(comps, ok):
                lengths.append(len(c.token_ids))
                boxed.append(final_answer(c.text) is not None)
                if r > 0:
                    correct_lengths.append(len(c.token_ids))
                    verbose.append(is_verbose(c.text))
    return {
        "accuracy": sum(hits) / len(hits),
        "mean_length": sum(lengths) / len(lengths),
        "mean_length_correct": sum(correct_lengths) / len(correct_lengths) if correct_lengths else None,
        "verbose_share_correct": sum(verbose) / len(verbose) if verbose else None,
        "boxed_rate": sum(boxed) / len(boxed),
        "eval_distinct_answers": sum(distinct) / len(distinct),
        "n_prompts": float(len(records)),
        "samples": float(samples),
    }
