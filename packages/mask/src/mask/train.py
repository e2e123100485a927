"""RL for both rows on the shared engine: the same questions, episodes and optimiser per step; only the agent differs.

Each step takes the next `train.questions_per_step` training questions (a seeded order, epoch after epoch), plays
`train.episodes_per_question` episodes of each at the sampling temperature, and updates the policy once with
`shared.rl.trainer.RLTrainer.step_on` (PPO with GAE, gamma = lam = 1, by default):
- mask: every agent call of every episode is one single-turn sample whose reward (`rewards.call_rewards`) sits on
  its last token; the five roles share the policy (and so the update);
- monolithic: every episode is one multi-turn sample (observations masked) with the answer's score as reward.
The step's statistics (`train_f1`: the mean final-answer F1 of the step's episodes, the stability metric's input;
the mean call reward, samples, generated tokens, mean context, illegal shares) go to the trainer's history, which
its checkpoints keep; a killed run resumes from the last checkpoint (`rl.checkpoint_every`), and sampling seeds
follow (seed, step), so the resumed steps draw what the uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from mask.config import MaskConfig
from mask.rewards import answer_score


def step_questions(records: Sequence[Any], step: int, per_step: int, seed: int) -> list[Any]:
    """The questions of a step: consecutive slices of seeded permutations of `records` (one per epoch)."""
    if not records:
        raise ValueError("no training questions")
    out, pos = [], step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(pos, len(records))
        order = list(range(len(records)))
        random.Random(f"mask-order|{seed}|{epoch}").shuffle(order)
        out.append(records[order[offset]])
        pos += 1
    return out


def rollout(cfg: MaskConfig, row: str, generator: Any, records: Sequence[Mapping[str, Any]], retriever: Any,
            retrieve: Callable, n: int, group_ids: Sequence[Any], seed: int) -> tuple[list[Any], dict[str, float]]:
    """Training episodes of one step: the samples to update on (rewards set) and the step's statistics."""
    from mask import baseline, episode

    temperature = cfg.rl.temperature
    if row == "mask":
        trajs, logs = episode.run_episodes(generator, records, cfg, retrieve, n=n, temperature=temperature,
                                           group_ids=group_ids, seed=seed)
        golds = [records[i // n]["golden_answers"] for i in range(len(logs))]
        finals = [answer_score(log.answer, g) for log, g in zip(logs, golds)]
        calls = [c for log in logs for c in log.calls]
        stats = {"train_f1": float(np.mean(finals)), "call_reward": float(np.mean([t.reward for t in trajs])),
                 "samples": float(len(trajs)), "illegal": float(np.mean([not c.legal for c in calls])),
                 "context_tokens": float(np.mean([c.prompt_tokens for c in calls])),
                 "iterations": float(np.mean([log.iterations for log in logs]))}
    elif row == "monolithic":
        trajs = baseline.run_episodes(cfg, generator, retriever, records, n=n, temperature=temperature,
                                      group_ids=group_ids, seed=seed)
        stats = {"train_f1": float(np.mean([t.reward for t in trajs])), "call_reward": float(np.mean(
            [t.reward for t in trajs])), "samples": float(len(trajs)),
            "illegal": float(np.mean([t.metadata.get("invalid_actions", 0) > 0 for t in trajs])),
            "context_tokens": float(np.mean([c for t in trajs for c in baseline.turn_contexts(t)] or [0])),
            "iterations": float(np.mean([sum(a["kind"] == "search" for a in t.metadata.get("actions", []))
                                         for t in trajs]))}
    else:
        raise ValueError(f"unknown row {row!r}; known: mask, monolithic")
    stats["generated_tokens"] = float(sum(t.num_policy_tokens for t in trajs))
    stats["nonzero_reward"] = float(np.mean([t.reward != 0 for t in trajs])) if trajs else 0.0
    return [t for t in trajs if t.response_ids], stats


def make_trainer(cfg: MaskConfig, model: Any, tokenizer: Any, out_dir: str | Path,
                 eval_fn: Callable | None = None) -> Any:
    """An RLTrainer that updates on external rollouts (`step_on`), sampling with an HF generator on the policy."""
    from shared.generation import HFGenerator
    from shared.rl.trainer import RLTrainer

    def no_rewards(trajs: list, records: list) -> list[float]:  # rewards are set by the rollouts
        raise RuntimeError("mask rollouts set their own rewards")

    rl = dataclasses.replace(cfg.rl, output_dir=str(out_dir), seed=cfg.seed)
    generator = HFGenerator(model, tokenizer, batch_size=cfg.eval.batch_size)
    return RLTrainer(rl, model, tokenizer, [], no_rewards, generator=generator, eval_fn=eval_fn)


def rl_train(cfg: MaskConfig, row: str, model: Any, tokenizer: Any, records: Sequence[Mapping[str, Any]],
             retriever: Any, retrieve: Callable, out_dir: str | Path, eval_fn: Callable | None = None,
             resume: bool = True, stop_after: int | None = None, progress: bool = True) -> tuple[Any, list[dict]]:
    """`rl.steps` steps of RL for `row`; checkpoints under out_dir; returns the policy and the history."""
    torch.set_num_threads(cfg.rl.threads)
    trainer = make_trainer(cfg, model, tokenizer, out_dir, eval_fn)
    if resume:
        trainer.resume()
    t = cfg.train
    bar = tqdm(total=cfg.rl.steps, initial=trainer.step, desc=f"rl {row}", disable=not progress, dynamic_ncols=True)
    done = 0
    while trainer.step < cfg.rl.steps and (stop_after is None or done < stop_after):
        step, t0 = trainer.step, time.perf_counter()
        recs = step_questions(records, step, t.questions_per_step, cfg.seed)
        gids = [f"{step}:{i}" for i in range(len(recs))]
        trainer.policy.eval()
        trajs, stats = rollout(cfg, row, trainer.generator, recs, retriever, retrieve, t.episodes_per_question,
                               gids, seed=cfg.seed * 100_003 + step * 997)
        stats["rollout_seconds"] = time.perf_counter() - t0
        out = trainer.step_on(trajs, stats)
        out["step_seconds"] = time.perf_counter() - t0
        done += 1
        bar.update(1)
        bar.set_postfix(f1=f"{stats['train_f1']:.3f}", s=f"{out['step_seconds']:.0f}")
    bar.close()
    every = cfg.rl.checkpoint_every
    if trainer.step == cfg.rl.steps and done and (not every or trainer.step % every):
        trainer.save()  # the last steps, when the cadence did not end on them
    trainer.close()
    return trainer.policy, trainer.history
