"""`rose train`: the shared on-policy trainer with ROSE's tree rollouts and segment advantages plugged in.

The shared `RLTrainer` runs the loop (dynamic sampling of zero-variance groups, clipped policy loss, optional KL,
atomic checkpoints and exact resume); rose supplies three hooks: `rollout_fn` (TreeSampler: tree or independent
rollouts), `advantage_fn` (segment advantages + length penalty, or any shared estimator by name) and the reward
(last \\boxed{} vs the gold answer). `RoseTrainer` adds the sampler's per-step counts (generated tokens, response
tokens, distinct answers per group) to each step's logged stats, so they are checkpointed with the history.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from shared.rl.trainer import RLTrainer

from rose.advantages import rose_advantage_fn
from rose.config import RoseConfig
from rose.rollout import RolloutStats, SamplerSettings, TreeSampler


class RoseTrainer(RLTrainer):
    """RLTrainer whose step stats also carry the rollout sampler's counts for that step."""

    sampler: TreeSampler

    def train_step(self) -> dict[str, float]:
        self.sampler.stats = RolloutStats()
        stats = super().train_step()
        stats.update(self.sampler.stats.as_dict())
        return stats


def build_trainer(cfg: RoseConfig, model: torch.nn.Module, tokenizer: Any,
                  records: Sequence[Mapping[str, Any]], out_dir: str | Path,
                  reward: Callable[..., Sequence[float]] | None = None, generator: Any = None) -> RoseTrainer:
    """Wire config, policy and prompts into a RoseTrainer writing under out_dir.

    reward defaults to rose.data.reward_fn; generator to an HFGenerator over `model` (pass a vLLM one on GPUs)."""
    from shared.generation import HFGenerator

    from rose.data import reward_fn

    cfg.validate()
    rl = cfg.rl
    rl.output_dir = str(out_dir)
    rl.seed = cfg.seed
    if cfg.rose.advantage != "segment":
        rl.advantage = cfg.rose.advantage
    if generator is None:
        generator = HFGenerator(model, tokenizer, batch_size=rl.gen_batch_size)
    settings = SamplerSettings(mode=cfg.rose.mode, epsilon=cfg.rose.epsilon, top_k=cfg.rose.top_k,
                               score=cfg.rose.score, max_new_tokens=rl.max_new_tokens, temperature=rl.temperature,
                               top_p=rl.top_p, stop=tuple(rl.stop))
    holder: dict[str, RoseTrainer] = {}

    def embeddings() -> torch.Tensor:
        return holder["trainer"].policy.get_input_embeddings().weight

    sampler = TreeSampler(generator, settings, embeddings=embeddings)
    adv_fn = None
    if cfg.rose.advantage == "segment":
        adv_fn = rose_advantage_fn(cfg.rose.length_penalty, cfg.rose.correct_reward)
    trainer = RoseTrainer(rl, model, tokenizer, records, reward or reward_fn, generator=generator,
                          rollout_fn=sampler.rollout_fn, advantage_fn=adv_fn)
    trainer.sampler = sampler
    holder["trainer"] = trainer
    return trainer


def rollout_summary(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Totals over a run's steps: generated vs response tokens, distinct answers per group, branched share."""
    tot = {k: sum(float(h.get(k, 0.0)) for h in history) for k in
           ("rose/groups", "rose/generated_tokens", "rose/response_tokens", "rose/distinct_answers", "rose/branched",
            "rose/rollouts")}
    groups = max(tot["rose/groups"], 1.0)
    return {
        "generated_tokens": tot["rose/generated_tokens"],
        "response_tokens": tot["rose/response_tokens"],
        "tokens_saved_frac": 1 - tot["rose/generated_tokens"] / max(tot["rose/response_tokens"], 1.0),
        "distinct_answers_per_group": tot["rose/distinct_answers"] / groups,
        "branched_share": tot["rose/branched"] / max(tot["rose/rollouts"], 1.0),
        "train_reward_last": float(history[-1]["reward"]) if history else 0.0,
    }


def run_train(cfg: RoseConfig, resume: bool = False) -> dict[str, Any]:
    """Train, save the final policy to out_dir/final, evaluate it, write config.yaml and results.json."""
    import json

    from shared.config import save_config
    from shared.eval import sha256_of, write_results

    from rose import __version__
    from rose.data import load_records
    from rose.evaluate import evaluate
    from rose.policy import load_policy

    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    torch.set_num_threads(cfg.rl.threads)
    out = Path(cfg.out_dir)
    model, tokenizer, policy_dir = load_policy(cfg)
    train = load_records(cfg.data.train, cfg.data.n_train, "train", cfg.data.seed)
    test = load_records(cfg.data.eval, cfg.data.n_eval, "test", 1000 + cfg.data.seed)
    generator = None
    if cfg.rose.backend == "vllm":
        from shared.generation import make_generator

        generator = make_generator("vllm", policy_dir, seed=cfg.seed)
    trainer = build_trainer(cfg, model, tokenizer, train, out, generator=generator)
    save_config(cfg, out)
    history = trainer.train(resume=resume)
    trainer.policy.save_pretrained(out / "final")
    tokenizer.save_pretrained(out / "final")
    metrics = evaluate(trainer.policy, tokenizer, test, cfg.eval.samples, cfg.eval.temperature,
                       cfg.eval.max_new_tokens, cfg.eval.batch_size, seed=cfg.seed, progress=cfg.rl.progress)
    metrics.update(rollout_summary(history))
    row = {"method": "rose" if cfg.rose.mode == "tree" else cfg.rose.advantage, "metrics": metrics}
    write_results(out, "rose", __version__, "train", [row], cfg, cfg.seed, False,
                  {"name": f"{cfg.data.train}->{cfg.data.eval}", "policy": str(policy_dir),
                   "sha256": sha256_of(json.dumps([train, test], sort_keys=True).encode())}, started,
                  time.perf_counter() - t0)
    return {"metrics": metrics, "history": history, "out_dir": str(out)}
