"""Scores of an agent on synthesised questions, per item and per level.

Greedy multi-turn rollouts (`eval.temperature`, 0) in the search environment give, per item: `correct` (accuracy
by the judge: exact match first, else the judge endpoint; no answer = incorrect), `em` (exact match of the final
answer), `reward` (the response-scope outcome reward with the release constants, whatever the training reward
was), `turns` (generated turns) and `format_ok` (the think -> (search -> information -> think)* -> answer machine).
`hard` comes from `eval.hard_attempts` sampled rollouts (T = 1) of the first `eval.hard_items_per_level` items of
each level: hard = none of them judged correct (the calibration stage's rule, applied to the agent).
Metrics (`METRICS`) are means over items; `hard_rate` over the items that got sampled attempts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

METRICS = ("accuracy", "em", "reward", "mean_turns", "hard_rate")


def rollouts(cfg: Any, model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], env_factory: Callable,
             temperature: float, n: int = 1, seed: int = 0) -> list[Any]:
    """n trajectories per row (row order, each row's n together)."""
    from shared.generation import HFGenerator

    from dr9k.train import agent_loop, rl_records

    if not rows:
        return []
    generator = HFGenerator(model, tokenizer, batch_size=cfg.rollout.gen_batch_size)
    was_training = model.training
    model.eval()
    try:
        return agent_loop(cfg, generator, env_factory, temperature).run(rl_records(rows, cfg.rollout.prompt), n=n,
                                                                          seed=seed)
    finally:
        model.train(was_training)


def judge_correct(judge: Any, rows: Sequence[Mapping[str, Any]], predictions: Sequence[str | None],
                  workers: int = 4) -> list[bool]:
    from dr9k.judge import grade

    items = [{"id": f"{r['id']}#{i}", "question": r["question"], "golds": r["golden_answers"],
              "prediction": p or ""} for i, (r, p) in enumerate(zip(rows, predictions))]
    return [v.correct for v in grade(judge, items, workers)]


def score_items(cfg: Any, trajs: Sequence[Any], rows: Sequence[Mapping[str, Any]], tokenizer: Any, judge: Any
                ) -> list[dict]:
    """Per-item scores of one trajectory per row (module docstring); the answer is read from the policy's own
    turns, never from an observation."""
    from shared.rewards.qa import exact_match

    from dr9k.config import RewardSettings
    from dr9k.rewards import Response, check_format, last_answer, outcome_reward

    responses = [Response.of_trajectory(t, tokenizer) for t in trajs]
    answers = [last_answer(x.generated) for x in responses]
    correct = judge_correct(judge, rows, answers, cfg.judge.workers)
    scoring = RewardSettings()  # the release constants in response scope: one yardstick for every row
    out = []
    for t, x, r, a, c in zip(trajs, responses, rows, answers, correct):
        out.append({"id": r["id"], "level": r["level"], "answer": a, "correct": bool(c),
                    "em": float(a is not None and exact_match(a, list(r["golden_answers"])) == 1.0),
                    "reward": outcome_reward(x, r["golden_answers"], "", scoring),
                    "turns": int(t.metadata.get("num_turns", 0)), "format_ok": check_format(x.text)[0],
                    "finish": t.finish_reason})
    return out


def hard_flags(cfg: Any, model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], env_factory: Callable,
               judge: Any, seed: int) -> dict[str, bool]:
    """{row id: hard} for the first `hard_items_per_level` rows of each level: no sampled attempt correct."""
    from dr9k.rewards import Response, last_answer

    e = cfg.eval
    picked: list[Mapping[str, Any]] = []
    for level in sorted({r["level"] for r in rows}):
        of_level = [r for r in rows if r["level"] == level]
        picked += of_level[: e.hard_items_per_level] if e.hard_items_per_level > 0 else of_level
    k = e.hard_attempts
    trajs = rollouts(cfg, model, tokenizer, picked, env_factory, temperature=1.0, n=k, seed=seed + 7)
    expanded = [r for r in picked for _ in range(k)]
    answers = [last_answer(Response.of_trajectory(t, tokenizer).generated) for t in trajs]
    correct = judge_correct(judge, expanded, answers, cfg.judge.workers)
    return {r["id"]: not any(correct[i * k : (i + 1) * k]) for i, r in enumerate(picked)}


def evaluate(cfg: Any, model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], env_factory: Callable,
             judge: Any, seed: int = 0, hard: bool = True) -> list[dict]:
    """Per-item scores of greedy rollouts, with `hard` flags where sampled attempts were made."""
    trajs = rollouts(cfg, model, tokenizer, rows, env_factory, cfg.eval.temperature, n=1, seed=seed)
    items = score_items(cfg, trajs, rows, tokenizer, judge)
    if hard and cfg.eval.hard_attempts > 0:
        flags = hard_flags(cfg, model, tokenizer, rows, env_factory, judge, seed)
        for it in items:
            if it["id"] in flags:
                it["hard"] = flags[it["id"]]
    return items


def summarize(items: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The row metrics (`METRICS`) of per-item scores."""
    if not items:
        raise ValueError("no items to summarise")
    hard = [it["hard"] for it in items if "hard" in it]
    return {"accuracy": float(np.mean([it["correct"] for it in items])),
            "em": float(np.mean([it["em"] for it in items])),
            "reward": float(np.mean([it["reward"] for it in items])),
            "mean_turns": float(np.mean([it["turns"] for it in items])),
            "hard_rate": float(np.mean(hard)) if hard else None}


def by_level(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    return {lv: summarize([it for it in items if it["level"] == lv]) for lv in sorted({it["level"] for it in items})}


def extra_metrics(items: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per-level accuracy and the format-valid share, for results.json's extra fields."""
    out = {f"accuracy_{lv}": m["accuracy"] for lv, m in by_level(items).items()}
    out["format_ok"] = float(np.mean([it["format_ok"] for it in items]))
    return out
