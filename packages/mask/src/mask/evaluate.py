"""Test-time measures of both rows (greedy episodes) and the run-level statistics of the replication.

Per row, over the episodes: `f1`, `em`, `acc` (a normalised gold inside the prediction) of the final answer;
`context_tokens_per_turn` (mean prompt tokens per model call: a mask call's rebuilt prompt, a monolithic turn's
prompt + transcript so far), `context_tokens_max`, `generated_tokens` (mean per episode), `mean_iterations`
(mask: iterations that searched; monolithic: search turns). `context_curve` gives the mean context per iteration
index (mask: that iteration's four calls; monolithic: turn i), `illegal` the share of illegal outputs per role.

`reward_std_across_seeds` (fixed before the test run): for each training step the sample sd over seeds of the mean
final-answer F1 of that step's training episodes, after a trailing 5-step moving average, averaged over steps
(`shared.eval.curve_spread`). `seed_bootstrap` resamples seeds (pairs kept) for a CI of a difference of spreads.
`context_slope` is the least-squares slope of a context curve over iterations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from shared.eval import curve_spread

from mask.config import ROLES, MaskConfig
from mask.rewards import qa_scores

METRICS = ("f1", "em", "acc", "reward_std_across_seeds", "context_tokens_per_turn", "context_tokens_max",
           "generated_tokens", "mean_iterations")


def mask_episode_stats(logs: Sequence[Any], trajs: Sequence[Any], records: Sequence[Mapping[str, Any]]
                       ) -> dict[str, Any]:
    """Metrics of greedy mask episodes (one per record, in order) from their logs and call trajectories."""
    scores = [qa_scores(log.answer, r["golden_answers"]) for log, r in zip(logs, records)]
    contexts = [c.prompt_tokens for log in logs for c in log.calls]
    by_iter: dict[int, list[int]] = {}
    for log in logs:
        for c in log.calls:
            if c.iteration >= 1:  # the plan (iteration 0) is outside the loop
                by_iter.setdefault(c.iteration, []).append(c.prompt_tokens)
    gen = sum(len(t.response_ids) for t in trajs) / max(1, len(logs))
    illegal = {role: _share([not c.legal for log in logs for c in log.calls if c.role == role]) for role in ROLES}
    fallback = {role: _share([c.fallback for log in logs for c in log.calls if c.role == role]) for role in ROLES}
    return {**_means(scores), "context_tokens_per_turn": float(np.mean(contexts)) if contexts else 0.0,
            "context_tokens_max": float(max(contexts, default=0)), "generated_tokens": float(gen),
            "mean_iterations": float(np.mean([log.iterations for log in logs])),
            "context_curve": {int(i): float(np.mean(v)) for i, v in sorted(by_iter.items()) if i >= 1},
            "illegal": illegal, "fallback": fallback,
            "overflow": int(sum(c.overflow for log in logs for c in log.calls))}


def monolithic_episode_stats(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of greedy monolithic episodes (one trajectory per record, in order)."""
    from mask.baseline import turn_contexts

    scores = [qa_scores(t.metadata.get("answer", "") or "", records[t.metadata["record_index"]]["golden_answers"])
              for t in trajs]
    contexts = [turn_contexts(t) for t in trajs]
    flat = [c for cs in contexts for c in cs]
    by_iter: dict[int, list[int]] = {}
    for cs in contexts:
        for i, c in enumerate(cs, start=1):
            by_iter.setdefault(i, []).append(c)
    searches = [sum(1 for a in t.metadata.get("actions", []) if a["kind"] == "search") for t in trajs]
    return {**_means(scores), "context_tokens_per_turn": float(np.mean(flat)) if flat else 0.0,
            "context_tokens_max": float(max(flat, default=0)),
            "generated_tokens": float(np.mean([t.num_policy_tokens for t in trajs])) if trajs else 0.0,
            "mean_iterations": float(np.mean(searches)) if searches else 0.0,
            "context_curve": {i: float(np.mean(v)) for i, v in sorted(by_iter.items())},
            "illegal": {"policy": _share([t.metadata.get("invalid_actions", 0) > 0 for t in trajs])},
            "no_answer": _share(["answer" not in t.metadata for t in trajs])}


def _share(flags: Sequence[bool]) -> float:
    return float(np.mean(flags)) if flags else 0.0


def _means(scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not scores:
        raise ValueError("no episodes to score")
    return {k: float(np.mean([s[k] for s in scores])) for k in ("f1", "em", "acc")}


def evaluate(cfg: MaskConfig, row: str, model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]],
             retriever: Any, retrieve: Callable, seed: int = 0) -> dict[str, Any]:
    """Greedy (cfg.eval.temperature) episodes of one row on `records`; `episode_stats` of the row."""
    from shared.generation import HFGenerator

    from mask import baseline, episode
    from mask.data import check_record

    for r in records:
        check_record(r, "eval record")
    if not records:
        raise ValueError("evaluate: no records")
    gen = HFGenerator(model, tokenizer, batch_size=cfg.eval.batch_size)
    if row == "mask":
        trajs, logs = episode.run_episodes(gen, records, cfg, retrieve, n=1, temperature=cfg.eval.temperature,
                                           seed=seed)
        return mask_episode_stats(logs, trajs, records)
    if row == "monolithic":
        trajs = baseline.run_episodes(cfg, gen, retriever, records, n=1, temperature=cfg.eval.temperature, seed=seed)
        return monolithic_episode_stats(trajs, records)
    raise ValueError(f"unknown row {row!r}; known: mask, monolithic")


def row_metrics(stats: Mapping[str, Any]) -> dict[str, float | None]:
    """The results.json metrics of one evaluation (reward_std_across_seeds is filled at aggregation)."""
    return {k: (None if k == "reward_std_across_seeds" else float(stats[k])) for k in METRICS}


def reward_std_across_seeds(curves: Sequence[Sequence[float]], smooth: int = 5) -> float | None:
    """The stability metric (see the module docstring); None with fewer than two seeds."""
    if len(curves) < 2:
        return None
    return curve_spread([list(enumerate(c, start=1)) for c in curves], smooth=smooth, ddof=1)["mean_sd"]


def seed_bootstrap(curves_a: Sequence[Sequence[float]], curves_b: Sequence[Sequence[float]], smooth: int = 5,
                   n_resamples: int = 2000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any] | None:
    """Bootstrap over seeds (seed k of a paired with seed k of b) of spread(a) - spread(b); resamples whose seeds are
    all the same one (sd undefined) are skipped and counted."""
    k = len(curves_a)
    if k != len(curves_b):
        raise ValueError(f"seed_bootstrap: {k} curves in a, {len(curves_b)} in b (seeds must be paired)")
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    diffs, skipped = [], 0
    for _ in range(n_resamples):
        idx = rng.integers(0, k, size=k)
        if len(set(idx.tolist())) < 2:
            skipped += 1
            continue
        diffs.append(reward_std_across_seeds([curves_a[i] for i in idx], smooth)
                     - reward_std_across_seeds([curves_b[i] for i in idx], smooth))
    point = reward_std_across_seeds(curves_a, smooth) - reward_std_across_seeds(curves_b, smooth)
    tail = (1 - confidence) / 2
    low, high = (np.quantile(diffs, [tail, 1 - tail]).tolist() if diffs else (None, None))
    return {"difference": point, "low": low, "high": high, "resamples": n_resamples, "skipped": skipped,
            "confidence": confidence, "seed": seed}


def context_slope(curve: Mapping[Any, float]) -> float | None:
    """Least-squares slope of a {iteration: mean context} curve (tokens per iteration); None under 2 points."""
    points = sorted((int(i), float(v)) for i, v in curve.items())
    if len(points) < 2:
        return None
    x, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    return float(np.polyfit(x, y, 1)[0])
