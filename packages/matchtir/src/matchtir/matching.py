"""MatchTIR's matching reward: score each predicted tool call against the gold trace by bipartite matching.

- `call_similarity(p, g)`: S = 0 when the names differ (case-insensitive), else
  (1 + J(keys_p, keys_g) + #{k in keys_g : p[k] == g[k]}) / (2 + |keys_g|), with J the multiset Jaccard of the
  argument names (the release returns 1 for two identical key lists, including two empty ones).
- Hard assignment: one-to-one matching maximising the summed S, by Kuhn-Munkres (scipy's
  `linear_sum_assignment`, as the paper says) or by the release's greedy pass (pairs sorted by S, taken while
  both ends are free and S > 0). A matched call earns S_ij; an unmatched one earns `unmatched_penalty`.
- Soft assignment: entropic optimal transport with cost -S and uniform marginals (1/P, 1/G), solved by a
  log-domain Sinkhorn; call i earns sum_j T_ij S_ij (not rescaled by P, as in the release).
- `answer_f1`: token-set F1 after lower-casing and turning punctuation into spaces (the release's answer score).
The matching runs over all calls of a trajectory at once, so repeating a correct call earns nothing the second
time; each turn's reward is then the mean of its calls' rewards (see `rewards.turn_rewards`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

ASSIGNMENTS = ("hungarian", "greedy")


def _args(call: Mapping[str, Any]) -> Mapping[str, Any]:
    """Arguments of a call written either FTRL-style (`parameters`) or in the tool-call format (`arguments`)."""
    args = call.get("arguments", call.get("parameters", {}))
    return args if isinstance(args, Mapping) else {}


def key_jaccard(pred_keys: Sequence[str], gold_keys: Sequence[str]) -> float:
    """Multiset Jaccard |A & B| / (|A| + |B| - |A & B|); identical lists (even empty ones) give 1."""
    pred_keys, gold_keys = list(pred_keys), list(gold_keys)
    if sorted(pred_keys) == sorted(gold_keys):
        return 1.0
    if not pred_keys or not gold_keys:
        return 0.0
    inter = sum((Counter(pred_keys) & Counter(gold_keys)).values())
    return inter / (len(pred_keys) + len(gold_keys) - inter)


def call_similarity(pred: Mapping[str, Any], gold: Mapping[str, Any]) -> float:
    """S(p, g) in [0, 1]: name gate, argument-name Jaccard and exact argument values, normalised."""
    if str(pred.get("name", "")).lower() != str(gold.get("name", "")).lower():
        return 0.0
    p, g = _args(pred), _args(gold)
    values = sum(1.0 for k, v in g.items() if k in p and p[k] == v)
    return (1.0 + key_jaccard(list(p), list(g)) + values) / (2.0 + len(g))


def similarity_matrix(preds: Sequence[Mapping[str, Any]], golds: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """S as a [P, G] float matrix."""
    return np.array([[call_similarity(p, g) for g in golds] for p in preds], dtype=float).reshape(len(preds),
                                                                                                  len(golds))


def hungarian_assignment(scores: np.ndarray) -> list[int | None]:
    """Maximum-weight one-to-one matching (Kuhn-Munkres); pairs with S = 0 count as unmatched."""
    scores = np.asarray(scores, dtype=float)
    out: list[int | None] = [None] * scores.shape[0]
    if scores.size == 0:
        return out
    rows, cols = linear_sum_assignment(scores, maximize=True)
    for i, j in zip(rows, cols):
        if scores[i, j] > 0:
            out[int(i)] = int(j)
    return out


def greedy_assignment(scores: np.ndarray) -> list[int | None]:
    """The release's matching: visit pairs by decreasing S (stable, row-major ties), keep those with S > 0
    whose prediction and gold call are both still free."""
    scores = np.asarray(scores, dtype=float)
    out: list[int | None] = [None] * scores.shape[0]
    if scores.size == 0:
        return out
    pairs = sorted(((scores[i, j], i, j) for i in range(scores.shape[0]) for j in range(scores.shape[1])),
                   key=lambda x: -x[0])
    used: set[int] = set()
    for s, i, j in pairs:
        if s > 0 and out[i] is None and j not in used:
            out[i] = j
            used.add(j)
    return out


def hard_call_rewards(scores: np.ndarray, assignment: str = "hungarian", unmatched_penalty: float = 0.0) -> list[float]:
    """Per predicted call: S of its matched gold call, or the penalty when it has none."""
    if assignment == "hungarian":
        match = hungarian_assignment(scores)
    elif assignment == "greedy":
        match = greedy_assignment(scores)
    else:
        raise ValueError(f"unknown assignment {assignment!r}; known: {ASSIGNMENTS}")
    return [float(scores[i, j]) if j is not None else float(unmatched_penalty) for i, j in enumerate(match)]


def sinkhorn(mu: np.ndarray, nu: np.ndarray, cost: np.ndarray, reg: float = 0.1, iters: int = 1000,
             tol: float = 1e-7) -> np.ndarray:
    """Entropic OT plan argmin <T, C> - reg H(T) with marginals mu, nu, by Sinkhorn iterations in the log
    domain (stable for small reg): f = reg (log mu - LSE((g - C) / reg)), g likewise, T = exp((f + g - C) / reg)."""
    mu, nu, cost = (np.asarray(x, dtype=float) for x in (mu, nu, cost))
    if cost.shape != (mu.size, nu.size):
        raise ValueError(f"cost has shape {cost.shape}, expected ({mu.size}, {nu.size})")
    if reg <= 0:
        raise ValueError(f"Sinkhorn needs reg > 0, got {reg}")
    log_mu, log_nu = np.log(mu), np.log(nu)
    f, g = np.zeros(mu.size), np.zeros(nu.size)
    for it in range(iters):
        f = reg * (log_mu - logsumexp((g[None, :] - cost) / reg, axis=1))
        g = reg * (log_nu - logsumexp((f[:, None] - cost) / reg, axis=0))
        # after the g update the column sums are exact; check the rows every 10 sweeps (the check costs a sweep)
        if it % 10 == 9 and np.abs(np.exp((f[:, None] + g[None, :] - cost) / reg).sum(axis=1) - mu).max() < tol:
            break
    return np.exp((f[:, None] + g[None, :] - cost) / reg)


def soft_call_rewards(scores: np.ndarray, reg: float = 0.1) -> list[float]:
    """Per predicted call: sum_j T_ij S_ij under the Sinkhorn plan with cost -S and uniform marginals."""
    scores = np.asarray(scores, dtype=float)
    p, g = scores.shape
    if p == 0:
        return []
    if g == 0:
        return [0.0] * p
    plan = sinkhorn(np.full(p, 1.0 / p), np.full(g, 1.0 / g), -scores, reg=reg)
    return [float(x) for x in (plan * scores).sum(axis=1)]


def call_rewards(
    preds: Sequence[Mapping[str, Any]],
    golds: Sequence[Mapping[str, Any]],
    mode: str = "hard",
    assignment: str = "hungarian",
    unmatched_penalty: float = 0.0,
    reg: float = 0.1,
) -> list[float]:
    """Rewards of the predicted calls of one trajectory against its gold trace (`mode` "hard" or "soft")."""
    if not preds:
        return []
    if not golds:
        return [float(unmatched_penalty) if mode == "hard" else 0.0] * len(preds)
    scores = similarity_matrix(preds, golds)
    if mode == "hard":
        return hard_call_rewards(scores, assignment, unmatched_penalty)
    if mode == "soft":
        return soft_call_rewards(scores, reg)
    raise ValueError(f"unknown matching mode {mode!r}; known: hard, soft")


_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def answer_tokens(text: str) -> set[str]:
    """Lower-cased tokens with punctuation turned into spaces, as a set."""
    return set(_PUNCT.sub(" ", str(text).lower()).split())


def answer_f1(pred: str, gold: str) -> float:
    """Token-set F1 between a predicted and a gold answer (0 when either side has no tokens)."""
    p, g = answer_tokens(pred), answer_tokens(gold)
    common = len(p & g)
    if not common:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def exact_call_matches(preds: Sequence[Mapping[str, Any]], golds: Sequence[Mapping[str, Any]]) -> int:
    """How many predicted calls match a distinct gold call exactly (S = 1: same name, keys and values)."""
    scores = similarity_matrix(preds, golds) if preds and golds else np.zeros((len(preds), len(golds)))
    exact = np.where(np.isclose(scores, 1.0), 1.0, 0.0)
    return sum(j is not None for j in hungarian_assignment(exact))


def solve_scores(n_matched: int, n_pred: int, n_gold: int) -> dict[str, float]:
    """The release's test metrics: solve F1 = 2 m / (P + G), solve rate = m / G, precision = m / P (1 if P = 0)."""
    return {
        "solve_f1": 2 * n_matched / (n_pred + n_gold) if n_pred + n_gold else 1.0,
        "solve_rate": n_matched / n_gold if n_gold else 1.0,
        "precision": n_matched / n_pred if n_pred else 1.0,
    }
