"""Dataset-level QA and math scores: means of the per-example rewards in `shared.rewards`."""

from __future__ import annotations

from collections.abc import Sequence

from shared.rewards.math import math_reward
from shared.rewards.qa import exact_match, f1_score, sub_exact_match


def _check_pairs(preds: Sequence[object], golds: Sequence[object]) -> None:
    if len(preds) != len(golds):
        raise ValueError(f"got {len(preds)} predictions but {len(golds)} gold answers")
    if not preds:
        raise ValueError("cannot score an empty list of predictions")


def qa_metrics(preds: Sequence[str], golds: Sequence[str | Sequence[str]]) -> dict[str, float]:
    """Mean exact match, token F1 and substring EM; golds[i] is one answer or a list of accepted answers."""
    _check_pairs(preds, golds)
    totals = {"em": 0.0, "f1": 0.0, "sub_em": 0.0}
    for i, (pred, gold) in enumerate(zip(preds, golds)):
        try:
            totals["em"] += exact_match(pred, gold)
            totals["f1"] += f1_score(pred, gold)
            totals["sub_em"] += sub_exact_match(pred, gold)
        except (TypeError, ValueError) as err:
            raise ValueError(f"example {i}: {err}") from err
    return {name: value / len(preds) for name, value in totals.items()}


def math_accuracy(preds: Sequence[str], golds: Sequence[str]) -> float:
    """Fraction of completions whose final answer (last \\boxed{}, else ``#### n``) equals the gold answer."""
    _check_pairs(preds, golds)
    total = 0.0
    for i, (pred, gold) in enumerate(zip(preds, golds)):
        try:
            total += math_reward(pred, gold)
        except TypeError as err:
            raise ValueError(f"example {i}: {err}") from err
    return total / len(preds)
