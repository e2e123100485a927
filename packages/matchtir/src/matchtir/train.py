"""Training a MatchTIR policy: the tiny policy, its SFT warm start on gold traces, then GRPO on tool rollouts.

- `build_policy`: a byte-level BPE tokenizer trained on the task texts (with the tool tags as single tokens) and a
  tiny random Qwen2 from `shared.modeling.tiny`, or a saved checkpoint loaded by `shared.modeling.load_model`.
- `sft_examples`: each gold trace becomes one token-id example (`shared.rl.sft`'s masked form, built through a
  `shared.rollout.Trajectory` and `trajectory_to_example`): the chat prompt, then every assistant turn followed by
  an eos (loss mask 1) and its tool responses written by the very environment used in RL (mask 0), tokenised piece
  by piece as `AgentLoop` does, so the policy's turns are trained and the tool responses never are; `warm_start`
  runs `shared.rl.sft.run_sft` on them. (Before 0.4.0 every turn was its own prompt -> completion record holding
  the whole conversation so far: quadratic in the number of turns.)
- `rl_train`: `shared.rl.trainer.RLTrainer` with `shared.rollout.AgentLoop` rollouts over the tool environment,
  the matching or outcome reward (`rewards.make_reward_fn`) and the dual-level advantage
  (`advantage.dual_advantage_fn`; the trajectory-only row uses the shared GRPO estimator). Each step appends
  `group_stats` (share of groups whose rewards differ, i.e. that carry a trajectory-level signal; train-rollout
  solve F1) to `groups.jsonl` beside the trainer's metrics.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from shared.rl.sft import run_sft, trajectory_to_example
from shared.rl.trainer import RLTrainer
from shared.rollout.agent_loop import AgentLoop, encode_prompt
from shared.rollout.trajectory import Trajectory

from matchtir.advantage import dual_advantage_fn
from matchtir.config import MatchTIRConfig
from matchtir.data import answer_text, call_text, to_record
from matchtir.env import make_env_factory, observation
from matchtir.rewards import make_reward_fn

EXTRA_TOKENS = ["<tool_response>", "</tool_response>"]


def build_policy(cfg: MatchTIRConfig, texts: Sequence[str], out_dir: str | Path) -> tuple[torch.nn.Module, Any]:
    """Load `cfg.model.path`, or build the tiny policy and its BPE tokenizer trained on `texts`."""
    from shared.modeling import load_model

    if cfg.model.path:
        return load_model(cfg.model.path, kind="causal", dtype="float32", device="auto")
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm

    m = cfg.model
    tok = build_tokenizer(list(texts), kind="bpe", vocab_size=m.vocab_size, extra_tags=EXTRA_TOKENS)
    path = tiny_causal_lm(Path(out_dir), tokenizer=tok, hidden=m.hidden, layers=m.layers, heads=m.heads, ffn=m.ffn,
                          seed=m.seed, max_positions=m.max_positions)
    return load_model(str(path), kind="causal", dtype="float32", device="auto")


def prompt_text(tokenizer: Any, record: Mapping[str, Any]) -> str:
    """The rendered chat prompt (system + user turns + assistant header)."""
    return tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True, tokenize=False)


def gold_steps(trace: Sequence[Mapping[str, Any]], parallel: bool) -> list[list[dict[str, Any]]]:
    """The gold calls grouped into assistant turns: one call per turn, or (parallel) consecutive calls that share
    a `step` value in one turn (a call without `step` is a turn of its own)."""
    turns: list[list[dict[str, Any]]] = []
    last = object()
    for call in trace:
        args = call.get("parameters", call.get("arguments", {}))
        step = call.get("step", object())
        if parallel and turns and step == last:
            turns[-1].append({"name": call["name"], "arguments": args})
        else:
            turns.append([{"name": call["name"], "arguments": args}])
        last = step
    return turns


def gold_turns(record: Mapping[str, Any], env_factory: Callable, parallel: bool = False) -> list[tuple[str, str]]:
    """(assistant turn, tool response) pairs replaying the gold trace (one call per turn, or the parallel groups
    of `gold_steps`), then the answer turn."""
    env = env_factory(record)
    env.reset(record)
    out = []
    for calls in gold_steps(record["gold_trace"], parallel):
        out.append(("".join(call_text(c["name"], c["arguments"]) for c in calls), observation(env, calls)))
    out.append((answer_text(record["answer"]), ""))
    return out


def sft_examples(samples: Sequence[Mapping[str, Any]], tokenizer: Any, style: str,
                 env_factory: Callable, parallel: bool = False) -> list[dict[str, Any]]:
    """One masked token-id example per gold trace (see the module docstring). Every assistant turn ends with eos,
    as TRL appended it to each per-turn completion before: in a parallel rollout that eos ends a call turn."""
    eos = tokenizer.eos_token_id
    out = []
    for sample in samples:
        rec = to_record(sample, style)
        traj = Trajectory(prompt_ids=encode_prompt(tokenizer, rec))
        for turn, obs in gold_turns(rec, env_factory, parallel):
            traj.append(list(tokenizer(turn, add_special_tokens=False)["input_ids"]) + [eos], policy=True)
            if obs:
                traj.append(list(tokenizer(obs, add_special_tokens=False)["input_ids"]), policy=False)
        out.append({"id": sample["id"], **trajectory_to_example(traj)})
    return out


def conversation_texts(samples: Sequence[Mapping[str, Any]], style: str, env_factory: Callable,
                       parallel: bool = False) -> list[str]:
    """Plain texts of the prompts and gold conversations, for training the tokenizer."""
    texts = []
    for sample in samples:
        rec = to_record(sample, style)
        texts += [m["content"] for m in rec["prompt"]]
        texts.append("".join(t + o for t, o in gold_turns(rec, env_factory, parallel)))
    return texts


def env_factory_for(cfg: MatchTIRConfig) -> Callable:
    return make_env_factory(cfg.rollout.tool_timeout_s, cfg.rollout.tool_memory_mb)


def warm_start(cfg: MatchTIRConfig, model: torch.nn.Module, tokenizer: Any, samples: Sequence[Mapping[str, Any]],
               out_dir: str | Path) -> tuple[torch.nn.Module, list[dict]]:
    """SFT on the gold traces of `samples`; returns the trained model and TRL's log history."""
    examples = sft_examples(samples, tokenizer, cfg.data.prompt_style, env_factory_for(cfg), cfg.rollout.parallel_calls)
    settings = dataclasses.replace(cfg.sft, output_dir=str(Path(out_dir)), seed=cfg.seed)
    model, logs = run_sft(model, tokenizer, examples, settings, source="gold traces")
    return model, logs


def agent_loop(cfg: MatchTIRConfig, generator: Any, temperature: float) -> AgentLoop:
    r = cfg.rollout
    return AgentLoop(generator, env_factory_for(cfg), max_turns=r.max_turns,
                     max_new_tokens_per_turn=r.max_new_tokens_per_turn, max_response_tokens=r.max_response_tokens,
                     temperature=temperature, parallel_tags=("tool_call",) if r.parallel_calls else ())


def group_stats(trajs: Sequence[Any], finals: Sequence[float]) -> dict[str, float]:
    """How much learning signal a step's rollouts carry: the number of groups, the share of groups whose total
    rewards (final + turn rewards) are not all equal (a group of equal rewards gets zero trajectory-level
    advantage), and the mean train-rollout solve F1."""
    totals: dict[Any, list[float]] = {}
    for t, f in zip(trajs, finals):
        totals.setdefault(t.group_id, []).append(float(f) + float(sum(t.turn_rewards or [])))
    informative = sum(1 for v in totals.values() if max(v) - min(v) > 1e-9)
    solve = [t.metadata["scores"]["solve_f1"] for t in trajs if "scores" in t.metadata]
    return {"groups": len(totals), "informative_share": informative / max(1, len(totals)),
            "train_solve_f1": sum(solve) / max(1, len(solve))}


def group_stats_logger(reward_fn: Callable, path: Path, step: Callable[[], int]) -> Callable:
    """Wrap a reward_fn so that each call appends `group_stats` with the trainer step to a JSON-lines file."""

    def fn(trajs: list, records: list) -> list[float]:
        finals = list(reward_fn(trajs, records))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps({"step": step(), **group_stats(trajs, finals)}) + "\n")
        return finals

    return fn


def rl_train(cfg: MatchTIRConfig, model: torch.nn.Module, tokenizer: Any, samples: Sequence[Mapping[str, Any]],
             out_dir: str | Path, eval_fn: Callable | None = None, resume: bool = True) -> tuple[torch.nn.Module,
                                                                                                list[dict]]:
    """GRPO on tool rollouts with the configured reward scheme and advantage; checkpoints under out_dir."""
    from shared.generation import HFGenerator

    records = [to_record(s, cfg.data.prompt_style) for s in samples]
    rl_cfg = dataclasses.replace(cfg.rl, output_dir=str(Path(out_dir)), seed=cfg.seed)
    generator = HFGenerator(model, tokenizer, batch_size=cfg.rollout.gen_batch_size)
    loop = agent_loop(cfg, generator, rl_cfg.temperature)
    holder: dict[str, Any] = {}

    def rollout_fn(recs: list, n: int, group_ids: list) -> list:
        # sampling seeds follow the trainer's step (restored on resume) and the first group id of the call
        # (dynamic-sampling refills draw new groups), so a resumed run samples what the uninterrupted one would
        step = holder["trainer"].step if "trainer" in holder else 0
        seed = cfg.seed * 100_003 + step * 997 + (int(group_ids[0]) if group_ids else 0)
        return loop.run(recs, n=n, group_ids=group_ids, seed=seed)

    advantage_fn = None
    if cfg.reward.scheme == "matching" or cfg.advantage.mode != "trajectory":
        a = cfg.advantage
        advantage_fn = dual_advantage_fn(a.mode, a.weight, a.gamma)
    trainer = RLTrainer(rl_cfg, model, tokenizer, records,
                        group_stats_logger(make_reward_fn(cfg.reward, tokenizer), Path(out_dir) / "groups.jsonl",
                                           lambda: holder["trainer"].step + 1),
                        generator=generator, rollout_fn=rollout_fn, advantage_fn=advantage_fn, eval_fn=eval_fn)
    holder["trainer"] = trainer
    history = trainer.train(resume=resume)
    return trainer.policy, history


