"""Test-time scores of a policy on tool-use samples: greedy multi-turn rollouts in the real tool environment.

Per sample: solve F1 = 2 m / (#predicted calls + #gold calls) with m the exact one-to-one call matches, solve rate
= m / #gold, precision = m / #predicted (1 without calls, as in the release), answer F1 of the final answer, and
the number of generated turns; the table reports means over samples (`mean_turns` for the turns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from matchtir.config import MatchTIRConfig
from matchtir.data import to_record
from matchtir.rewards import parse_turn, trajectory_metrics, turn_texts

METRICS = ("solve_f1", "solve_rate", "precision", "answer_f1", "mean_turns")


def score_trajectories(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], tokenizer: Any
                       ) -> list[dict[str, float]]:
    """Per-trajectory metrics (trajectories in record order, as AgentLoop returns them with n = 1)."""
    out = []
    for traj in trajs:
        rec = records[traj.metadata.get("record_index", 0)]
        turns = [parse_turn(t) for t in turn_texts(traj, tokenizer)]
        out.append(trajectory_metrics(turns, rec["gold_trace"], rec["answer"]))
    return out


def mean_metrics(per_item: Sequence[Mapping[str, float]]) -> dict[str, float]:
    if not per_item:
        raise ValueError("no items to average")
    means = {k: float(np.mean([m[k] for m in per_item])) for k in per_item[0]}
    means["mean_turns"] = means.pop("turns")
    return {k: means[k] for k in METRICS}


def evaluate_policy(cfg: MatchTIRConfig, model: Any, tokenizer: Any, samples: Sequence[Mapping[str, Any]],
                    seed: int = 0) -> dict[str, float]:
    """Mean test metrics of greedy (cfg.eval.temperature) rollouts over the samples."""
    from shared.generation import HFGenerator

    from matchtir.train import agent_loop

    records = [to_record(s, cfg.data.prompt_style) for s in samples]
    generator = HFGenerator(model, tokenizer, batch_size=cfg.rollout.gen_batch_size)
    trajs = agent_loop(cfg, generator, cfg.eval.temperature).run(records, n=1, seed=seed)
    return mean_metrics(score_trajectories(trajs, records, tokenizer))
