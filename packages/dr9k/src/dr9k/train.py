"""Training a DeepResearch-R1 agent: the policy, masked multi-turn SFT on teacher trajectories, then RL.

- `build_policy`: a saved causal LM (`model.path`), or the tiny CPU policy: a byte-level BPE tokenizer trained on the
  corpus, the questions and the teacher's turns (the tags `<think>`, `<search>`, `<information>`, `<answer>` are
  single tokens) and a tiny random Qwen2 (`shared.modeling.tiny`).
- `sft_examples`: each judged-correct teacher trajectory of the training split becomes one token-id example
  (`dr9k.teacher.transcript_example`): loss on the teacher's turns, never on the prompt or the observations.
- `warm_start`: `shared.rl.warmstart.cached_sft_policy` on those examples, cached per (settings, data) hash.
- `continue_sft`: the equal-budget SFT baseline (`sft` row): more SFT from the warm start on the teacher
  trajectories of the RL rows' prompts (same prompts, same number of steps).
- `rl_train`: `shared.rl.trainer.RLTrainer` with `shared.rollout.AgentLoop` rollouts in `SearchEnv` over the search
  backend (observations appended with loss mask 0, a fixed corrective message on an invalid action), the outcome
  reward of `dr9k.rewards` and the algorithm's settings (`algorithm_config`): GRPO (group-normalised, KL loss k3 =
  verl's low_var_kl), PPO (GAE with gamma = lam = 1 as in verl, a value critic, KL in the reward) or REINFORCE++
  (batch-whitened returns, KL in the reward).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dr9k.teacher import CORRECTION, PROMPTS, prompt_text, transcript_example


def tokenizer_texts(corpus: Sequence[Mapping[str, Any]], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Texts the tiny BPE tokenizer is trained on: documents, questions, teacher turns, prompts, correction."""
    texts = [d["contents"] for d in corpus] + [r["question"] for r in rows] + [CORRECTION, *PROMPTS.values()]
    texts += [t["text"] for r in rows for t in r.get("trajectory") or []]
    return texts


def build_policy(cfg: Any, texts: Sequence[str], out_dir: str | Path) -> tuple[torch.nn.Module, Any]:
    """Load `cfg.model.path`, or build the tiny policy with a BPE tokenizer trained on `texts`."""
    from shared.modeling import load_model

    if cfg.model.path:
        return load_model(cfg.model.path, kind="causal", dtype="float32", device="auto")
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm

    m = cfg.model
    tok = build_tokenizer(list(texts), kind="bpe", vocab_size=m.vocab_size)
    path = tiny_causal_lm(Path(out_dir), tokenizer=tok, hidden=m.hidden, layers=m.layers, heads=m.heads, ffn=m.ffn,
                          seed=m.seed, max_positions=m.max_positions)
    return load_model(str(path), kind="causal", dtype="float32", device="auto")


def sft_examples(tokenizer: Any, rows: Sequence[Mapping[str, Any]], prompt_style: str) -> list[dict[str, Any]]:
    """Token-id SFT examples of the rows whose teacher trajectory was judged correct."""
    out = []
    for r in rows:
        if r.get("teacher_correct") and r.get("trajectory"):
            ex = transcript_example(tokenizer, prompt_text(prompt_style, r["question"]), r["trajectory"])
            out.append({"id": r["id"], **ex})
    if not out:
        raise ValueError("no judged-correct teacher trajectory to train on (check the synthesis verdicts)")
    return out


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def warm_start(cfg: Any, train_rows: Sequence[Mapping[str, Any]], corpus: Sequence[Mapping[str, Any]],
               cache_root: str | Path, log: Callable[[str], None] = print) -> Path:
    """The SFT'd policy on the training split's teacher trajectories, built once per (settings, data) and cached."""
    from shared.rl.warmstart import cached_sft_policy, sft_stamp_settings

    texts = tokenizer_texts(corpus, train_rows)
    scratch = Path(cache_root) / ".tokenizer"
    model, tok = build_policy(cfg, texts, scratch)  # the tokenizer is deterministic: the records' ids are too
    records = sft_examples(tok, train_rows, cfg.rollout.prompt)
    key = {"model": dataclasses.asdict(cfg.model), "prompt": cfg.rollout.prompt, "texts": _digest(texts)}
    settings = dataclasses.replace(cfg.warm_start.sft, seed=cfg.model.seed)
    target = Path(cache_root) / _digest(sft_stamp_settings(settings, records, None, 10, key))

    def build_model(scratch_dir: Path) -> tuple[torch.nn.Module, Any]:
        return model, tok

    log(f"warm start: {len(records)} teacher trajectories, {settings.steps} SFT steps -> {target}")
    return cached_sft_policy(target, build_model, records, settings=settings, key=key)


def continue_sft(cfg: Any, model: torch.nn.Module, tokenizer: Any, rows: Sequence[Mapping[str, Any]], out_dir: Path,
                 seed: int) -> tuple[torch.nn.Module, list[dict]]:
    """The `sft` baseline: `cfg.sft.steps` more SFT steps from the warm start on the rows' teacher trajectories."""
    from shared.rl.sft import run_sft

    records = sft_examples(tokenizer, rows, cfg.rollout.prompt)
    settings = dataclasses.replace(cfg.sft, output_dir=str(out_dir), seed=seed)
    return run_sft(model, tokenizer, records, settings, source="teacher trajectories (sft baseline)")


def rl_records(rows: Sequence[Mapping[str, Any]], prompt_style: str) -> list[dict[str, Any]]:
    """RL prompt records: the prompt text and what the reward needs."""
    return [{"id": r["id"], "prompt": prompt_text(prompt_style, r["question"]), "question": r["question"],
             "golden_answers": list(r["golden_answers"]), "level": r.get("level", "")} for r in rows]


def agent_loop(cfg: Any, generator: Any, env_factory: Callable, temperature: float) -> Any:
    from shared.rollout.agent_loop import AgentLoop

    r = cfg.rollout
    return AgentLoop(generator, env_factory, max_turns=r.max_turns, max_new_tokens_per_turn=r.max_new_tokens_per_turn,
                     max_response_tokens=r.max_response_tokens, temperature=temperature, correction=CORRECTION)


def make_reward_fn(cfg: Any, tokenizer: Any, judge: Any = None) -> Callable[[list, list], list[float]]:
    """RLTrainer reward_fn: the configured outcome reward of each trajectory's response (`rewards.Response` from
    its policy and observation runs); with `reward.kind=judge` correctness comes from the judge (exact match
    first)."""
    from dr9k.rewards import Response, last_answer, reward

    s = cfg.reward
    if s.kind == "judge" and judge is None:
        raise ValueError("reward.kind=judge needs the judge endpoint")

    def reward_fn(trajs: list, records: list) -> list[float]:
        responses = [Response.of_trajectory(t, tokenizer) for t in trajs]
        correct: list[bool | None] = [None] * len(trajs)
        if s.kind == "judge":
            from dr9k.judge import grade

            items = [{"id": f"{r['id']}#{i}", "question": r["question"], "golds": r["golden_answers"],
                      "prediction": last_answer(x.generated) or ""} for i, (x, r) in enumerate(zip(responses, records))]
            correct = [v.correct for v in grade(judge, items, cfg.judge.workers)]
        return [reward(x, r["golden_answers"], r["prompt"], s, c) for x, r, c in zip(responses, records, correct)]

    return reward_fn


def algorithm_config(cfg: Any, algorithm: str, out_dir: str | Path, seed: int) -> Any:
    """The RLConfig of one algorithm from the shared `rl` section (module docstring)."""
    rl = dataclasses.replace(cfg.rl, output_dir=str(out_dir), seed=seed, temperature=cfg.rollout.temperature,
                             gen_batch_size=cfg.rollout.gen_batch_size)
    if algorithm == "grpo":
        return dataclasses.replace(rl, advantage="grpo", kl_in_reward=False)
    if algorithm == "ppo":
        return dataclasses.replace(rl, advantage="gae", adv_options={"gamma": 1.0, "lam": 1.0}, kl_in_reward=True)
    if algorithm == "reinforce_pp":
        return dataclasses.replace(rl, advantage="reinforce_pp", adv_options={"gamma": 1.0}, kl_in_reward=True)
    raise ValueError(f"unknown algorithm {algorithm!r}; known: grpo, ppo, reinforce_pp")


def rl_train(cfg: Any, model: torch.nn.Module, tokenizer: Any, rows: Sequence[Mapping[str, Any]], env_factory: Callable,
             out_dir: str | Path, algorithm: str, seed: int, judge: Any = None, eval_fn: Callable | None = None
             ) -> tuple[torch.nn.Module, list[dict]]:
    """RL from `model` on the rows' prompts; checkpoints under out_dir and resumes after a kill."""
    from shared.generation import HFGenerator
    from shared.rl.trainer import RLTrainer

    rl_cfg = algorithm_config(cfg, algorithm, out_dir, seed)
    generator = HFGenerator(model, tokenizer, batch_size=cfg.rollout.gen_batch_size)
    loop = agent_loop(cfg, generator, env_factory, rl_cfg.temperature)
    holder: dict[str, Any] = {}

    def rollout_fn(recs: list, n: int, group_ids: list) -> list:
        # sampling seeds follow the trainer's step (restored on resume), so a resumed run samples what the
        # uninterrupted one would
        step = holder["trainer"].step if "trainer" in holder else 0
        return loop.run(recs, n=n, group_ids=group_ids, seed=seed * 100_003 + step * 997 + int(group_ids[0]))

    trainer = RLTrainer(rl_cfg, model, tokenizer, rl_records(rows, cfg.rollout.prompt), make_reward_fn(cfg, tokenizer, judge),
                        generator=generator, rollout_fn=rollout_fn, eval_fn=eval_fn)
    holder["trainer"] = trainer
    history = trainer.train(resume=True)
    trainer.policy.eval()
    return trainer.policy, history
