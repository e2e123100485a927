"""Preference pairs from self-generated, verified solutions, and the frontier pool of the coarse curriculum.

A problem's k sampled solutions are split by the verifier into correct and incorrect; every pair is
(correct, incorrect), never two of a kind. The pass rate is the share of correct samples. The coarse curriculum
keeps exactly the frontier problems, 0 < pass rate < 1: the only ones that yield pairs at all, and the ones whose
pairs sit at the policy's current competence.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One verifiable problem: `prompt` is what the policy sees, `answer` the gold final answer."""

    problem_id: str
    prompt: str
    answer: str


@dataclass(frozen=True)
class Pair:
    """One preference pair; `pair_id` hashes the texts, so a pair re-drawn at a later refresh keeps its history."""

    pair_id: str
    problem_id: str
    prompt: str
    chosen: str
    rejected: str


def pair_id_of(prompt: str, chosen: str, rejected: str) -> str:
    digest = hashlib.sha1("\x1f".join((prompt, chosen, rejected)).encode("utf-8")).hexdigest()
    return digest[:16]


def pass_rate(rewards: Sequence[float], threshold: float = 1.0) -> float:
    """Share of samples whose reward reaches `threshold` (math rewards are 0 or 1)."""
    if not rewards:
        raise ValueError("pass_rate: no samples")
    return sum(r >= threshold for r in rewards) / len(rewards)


def build_pairs(
    problem: Problem,
    completions: Sequence[str],
    rewards: Sequence[float],
    max_pairs: int,
    rng: random.Random,
    threshold: float = 1.0,
) -> list[Pair]:
    """(correct, incorrect) pairs from one problem's samples; duplicate texts are merged first.

    At most `max_pairs` of the |correct| x |incorrect| combinations are kept, drawn without replacement by `rng`.
    A problem whose samples are all correct or all incorrect yields no pair.
    """
    if len(completions) != len(rewards):
        raise ValueError(
            f"build_pairs: problem {problem.problem_id} has {len(completions)} completions but {len(rewards)} rewards"
        )
    if max_pairs < 1:
        raise ValueError(f"build_pairs: max_pairs must be >= 1, got {max_pairs}")
    correct: list[str] = []
    incorrect: list[str] = []
    for text, r in zip(completions, rewards):
        bucket = correct if r >= threshold else incorrect
        if text not in bucket:
            bucket.append(text)
    # the same text cannot be both correct and incorrect under a deterministic verifier; guard anyway
    incorrect = [t for t in incorrect if t not in correct]
    combos = [(c, w) for c in correct for w in incorrect]
    if len(combos) > max_pairs:
        combos = rng.sample(combos, max_pairs)
    return [
        Pair(pair_id_of(problem.prompt, c, w), problem.problem_id, problem.prompt, c, w) for c, w in combos
    ]


def frontier(pass_rates: Mapping[str, float]) -> list[str]:
    """Problem ids with 0 < pass rate < 1, in the mapping's order."""
    return [pid for pid, p in pass_rates.items() if 0.0 < p < 1.0]


class FrontierEmptyError(RuntimeError):
    """No probed problem is on the frontier: every one is always solved or never solved."""


@dataclass(frozen=True)
class PoolSummary:
    """What one probe of the problem pool found (logged at every refresh)."""

    step: int
    n_probed: int
    n_frontier: int
    n_solved: int
    n_unsolved: int
    n_pairs: int
    mean_pass_rate: float

    def as_dict(self) -> dict[str, float]:
        return {
            "step": self.step,
            "n_probed": self.n_probed,
            "n_frontier": self.n_frontier,
            "n_solved": self.n_solved,
            "n_unsolved": self.n_unsolved,
            "n_pairs": self.n_pairs,
            "mean_pass_rate": self.mean_pass_rate,
        }


def summarize_pool(step: int, pass_rates: Mapping[str, float], n_pairs: int) -> PoolSummary:
    rates = list(pass_rates.values())
    return PoolSummary(
        step=step,
        n_probed=len(rates),
        n_frontier=sum(0.0 < p < 1.0 for p in rates),
        n_solved=sum(p >= 1.0 for p in rates),
        n_unsolved=sum(p <= 0.0 for p in rates),
        n_pairs=n_pairs,
        mean_pass_rate=sum(rates) / len(rates) if rates else 0.0,
    )


def refresh_pool(
    problems: Sequence[Problem],
    samples: Sequence[Sequence[str]],
    rewards: Sequence[Sequence[float]],
    max_pairs_per_problem: int,
    rng: random.Random,
    step: int = 0,
) -> tuple[list[Pair], dict[str, float], PoolSummary]:
    """Pass rates of every probed problem, and the pairs of the frontier problems only.

    Raises FrontierEmptyError when no problem is on the frontier; the caller decides whether to keep its old
    pool or stop (config `curriculum.on_empty_frontier`).
    """
    if not (len(problems) == len(samples) == len(rewards)):
        raise ValueError(
            f"refresh_pool: {len(problems)} problems, {len(samples)} sample lists, {len(rewards)} reward lists"
        )
    rates = {p.problem_id: pass_rate(r) for p, r in zip(problems, rewards)}
    keep = set(frontier(rates))
    pairs: list[Pair] = []
    for problem, texts, rs in zip(problems, samples, rewards):
        if problem.problem_id in keep:
            pairs.extend(build_pairs(problem, texts, rs, max_pairs_per_problem, rng))
    summary = summarize_pool(step, rates, len(pairs))
    if not keep:
        raise FrontierEmptyError(
            f"no frontier problem at step {step}: {summary.n_solved} of {summary.n_probed} probed problems are "
            f"always solved and {summary.n_unsolved} never solved (k samples each); no preference pair can be built"
        )
    return pairs, rates, summary
