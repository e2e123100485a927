"""Sampling and scoring the policy on verifiable problems: greedy accuracy and k-sample probes.

Both go through a `shared.generation` Generator, so the same code runs on the tiny CPU policy (HFGenerator) and on
a served model (vLLM). Answers are checked with `shared.rewards.math_reward` (last `\\boxed{}` or `#### n`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sage.config import SamplingConfig
from sage.pairs import Problem


def _chunks(items: Sequence, size: int):
    for start in range(0, len(items), max(size, 1)):
        yield items[start : start + size]


def rewards_of(problems: Sequence[Problem], samples: Sequence[Sequence[str]]) -> list[list[float]]:
    """math_reward of every sample against its problem's gold answer."""
    from shared.rewards import math_reward

    return [[math_reward(text, p.answer) for text in texts] for p, texts in zip(problems, samples)]


def greedy_accuracy(
    generator, problems: Sequence[Problem], max_new_tokens: int, batch_size: int = 100
) -> tuple[float, list[str]]:
    """Share of problems whose greedy completion has the right final answer, and the completions."""
    from shared.generation import SamplingParams

    if not problems:
        raise ValueError("greedy_accuracy: no problems")
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0, n=1)
    texts: list[str] = []
    for part in _chunks(list(problems), batch_size):
        outs = generator.generate([p.prompt for p in part], params)
        texts.extend(o[0].text for o in outs)
    rewards = rewards_of(problems, [[t] for t in texts])
    return sum(r[0] for r in rewards) / len(problems), texts


def sample_solutions(
    generator, problems: Sequence[Problem], sampling: SamplingConfig, seed: int
) -> list[list[str]]:
    """k = `sampling.samples_per_problem` sampled completions per problem (seeded per chunk)."""
    from shared.generation import SamplingParams

    out: list[list[str]] = []
    for i, part in enumerate(_chunks(list(problems), sampling.batch_size)):
        params = SamplingParams(
            max_new_tokens=sampling.max_new_tokens,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            n=sampling.samples_per_problem,
            seed=seed * 100_003 + i,
        )
        outs = generator.generate([p.prompt for p in part], params)
        out.extend([c.text for c in completions] for completions in outs)
    return out
