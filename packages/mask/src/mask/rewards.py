"""Turn-level rewards of one M-ASK episode: every agent call is its own sample with its own reward.

- `answer_score(pred, golds)`: token F1 (SQuAD normalisation), EM for a gold that is "yes" or "no" (max over golds).
- `call_rewards(calls, golds, ...)`: with F1_0 the plan's final-answer score and F1_t the answer role's score at
  iteration t:
  - plan: F1_0 + its format penalty;
  - search, summary, update at iteration t: turn_penalty + (F1_t - F1_{t-1}) + their own format penalty, so each is
    credited by how much its iteration moved the answer (F1_0 for t = 1 is our reading of F1_{t-1}, inferred);
  - answer at t: F1_t + its format penalty;
  - a search that ends the loop (`<end>`): 0 + its format penalty (no answer follows it).
  The format penalty is 0 for a legal output and `format_penalty` (-1) for an illegal one. Each call's reward sits
  on the last token of its completion (`Trajectory.reward`).
- `final_answer(calls)`: the episode's answer, the last answer call's (the plan's when no iteration answered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.rewards.qa import exact_match, f1_score, normalize_answer, sub_exact_match

_YES_NO = ("yes", "no")


def answer_score(pred: str, golds: str | Sequence[str]) -> float:
    """F1 against each gold, EM against a yes/no gold; the best over golds."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    if not golds:
        raise ValueError("answer_score needs at least one gold answer")
    return max(exact_match(pred, g) if normalize_answer(g) in _YES_NO else f1_score(pred, g) for g in golds)


def qa_scores(pred: str, golds: Sequence[str]) -> dict[str, float]:
    """Test metrics of one answer: f1 (`answer_score`), em, acc (a normalised gold inside the prediction)."""
    return {"f1": answer_score(pred, golds), "em": exact_match(pred, list(golds)),
            "acc": sub_exact_match(pred, list(golds))}


def _field(call: Any, name: str) -> Any:
    return call[name] if isinstance(call, Mapping) else getattr(call, name)


def call_rewards(calls: Sequence[Any], golds: Sequence[str], turn_penalty: float = 0.0,
                 format_penalty: float = -1.0) -> list[float]:
    """Reward of every call of one episode, in order. Each call (a mapping or an object) has `role`, `iteration`,
    `legal`, and for plan/answer calls `answer`; search calls have `action` ("search" or "end")."""
    if not calls or _field(calls[0], "role") != "plan":
        raise ValueError("an episode's calls start with the plan call")
    # F1_t per iteration, from the answer calls (and the plan's for t = 0)
    scores: dict[int, float] = {0: answer_score(_field(calls[0], "answer"), golds)}
    for c in calls[1:]:
        if _field(c, "role") == "answer":
            scores[int(_field(c, "iteration"))] = answer_score(_field(c, "answer"), golds)
    out = []
    for c in calls:
        role, t = _field(c, "role"), int(_field(c, "iteration"))
        penalty = 0.0 if _field(c, "legal") else float(format_penalty)
        if role in ("plan", "answer"):
            out.append(scores[t] + penalty)
        elif role == "search" and _field(c, "action") == "end":
            out.append(0.0 + penalty)
        elif role in ("search", "summary", "update"):
            if t not in scores:
                raise ValueError(f"iteration {t} has a {role} call but no answer call")
            out.append(float(turn_penalty) + scores[t] - scores[t - 1] + penalty)
        else:
            raise ValueError(f"unknown role {role!r}")
    return out


def final_answer(calls: Sequence[Any]) -> str:
    """The answer the episode ends with: the last answer call's, else the plan's final answer."""
    answers = [_field(c, "answer") for c in calls if _field(c, "role") in ("plan", "answer")]
    return answers[-1] if answers else ""
