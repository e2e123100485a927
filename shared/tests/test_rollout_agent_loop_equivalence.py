"""AgentLoop is one program on the multi-role driver: on seeded single-role search episodes it produces exactly the
trajectories (ids, loss masks, logprobs, spans, rewards, text, finish reasons) and the generate calls of the loop it
replaced. `LegacyAgentLoop` below is that loop's code as of commit 9f825b1, kept verbatim as the reference."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from shared.generation import Completion, HFGenerator, SamplingParams
from shared.modeling import load_model
from shared.modeling.tiny import build_tokenizer
from shared.rollout.agent_loop import DEFAULT_CORRECTION, AgentLoop, encode_prompt
from shared.rollout.envs import ActionError, Env, SearchEnv, parse_action
from shared.rollout.trajectory import Trajectory


@dataclass
class _Episode:
    traj: Trajectory
    env: Env
    turns: int = 0
    done: bool = False


class LegacyAgentLoop:
    """AgentLoop as it was before the multi-role driver (commit 9f825b1), kept verbatim as the reference."""

    def __init__(
        self,
        generator: Any,
        env_factory: Callable[[Mapping[str, Any]], Env],
        stop: Sequence[str] | None = None,
        max_turns: int = 4,
        max_new_tokens_per_turn: int = 128,
        max_response_tokens: int = 512,
        temperature: float = 1.0,
        top_p: float = 1.0,
        prompt_key: str = "prompt",
        correction: str | None = None,
        parallel_tags: Sequence[str] = (),
    ) -> None:
        if max_turns < 1 or max_new_tokens_per_turn < 1 or max_response_tokens < 1:
            raise ValueError("max_turns, max_new_tokens_per_turn and max_response_tokens must be >= 1")
        self.generator = generator
        self.tokenizer = generator.tokenizer
        self.env_factory = env_factory
        self.stop = list(stop) if stop is not None else None
        self.max_turns = max_turns
        self.max_new_tokens_per_turn = max_new_tokens_per_turn
        self.max_response_tokens = max_response_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.prompt_key = prompt_key
        self.correction = correction
        self.parallel_tags = tuple(parallel_tags)
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids = set()
        if getattr(self.tokenizer, "eos_token_id", None) is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        return ids

    def _stops_for(self, env: Env) -> list[str]:
        if self.stop is not None:
            return self.stop
        return [f"</{t}>" for t in env.tags if t not in self.parallel_tags]

    def _correction_text(self, env: Env, error: str | None) -> str:
        if self.correction is not None:
            return self.correction
        tags = " or ".join(f"<{t}>...</{t}>" for t in env.tags)
        text = DEFAULT_CORRECTION.format(tags=tags)
        return text if error is None else f"\nInvalid action ({error}): write {tags}.\n"

    def run(self, records: Sequence[Mapping[str, Any]], n: int = 1, group_ids: Sequence[Any] | None = None,
            seed: int | None = None) -> list[Trajectory]:
        """Play `n` episodes per record; trajectories come back record by record, each group's n together."""
        if group_ids is not None and len(group_ids) != len(records):
            raise ValueError(f"{len(group_ids)} group_ids for {len(records)} records")
        episodes: list[_Episode] = []
        for i, record in enumerate(records):
            prompt_ids = encode_prompt(self.tokenizer, record, self.prompt_key)
            gid = group_ids[i] if group_ids is not None else record.get("id", i)
            for k in range(n):
                env = self.env_factory(record)
                env.reset(record)
                traj = Trajectory(prompt_ids=list(prompt_ids), group_id=gid, old_logprobs=[])
                traj.metadata = {"record_index": i, "sample": k, "actions": [], "invalid_actions": 0}
                episodes.append(_Episode(traj, env))
        turn = 0
        while True:
            active = [e for e in episodes if not e.done]
            if not active:
                break
            budget = [self.max_response_tokens - len(e.traj.response_ids) for e in active]
            params = SamplingParams(
                max_new_tokens=min(self.max_new_tokens_per_turn, max(budget)),
                temperature=self.temperature,
                top_p=self.top_p,
                n=1,
                stop=tuple(sorted({s for e in active for s in self._stops_for(e.env)})),
                logprobs=True,
                seed=None if seed is None else seed + turn,
            )
            outs = self.generator.generate([e.traj.prompt_ids + e.traj.response_ids for e in active], params)
            for ep, out, left in zip(active, outs, budget):
                self._advance(ep, out[0], left)
            turn += 1
        for e in episodes:
            e.traj.validate()
        return [e.traj for e in episodes]

    def _advance(self, ep: _Episode, completion: Any, left: int) -> None:
        """Append one generated turn, step the environment, append its observation."""
        traj, env = ep.traj, ep.env
        ids = list(completion.token_ids)[:left]
        logprobs = list(completion.logprobs)[: len(ids)] if completion.logprobs is not None else None
        if logprobs is not None and logprobs and not isinstance(logprobs[0], (int, float)):
            logprobs = None  # a backend returning per-token dicts: keep ids, drop sampling logprobs
        if not ids:  # nothing generated (or no budget left): the episode cannot continue
            return self._finish(ep, "length" if left <= 0 else "empty")
        text = self.tokenizer.decode(ids, skip_special_tokens=False) if len(ids) < len(completion.token_ids) \
            else completion.text
        traj.append(ids, policy=True, logprobs=logprobs if logprobs is not None else [0.0] * len(ids))
        traj.turn_rewards.append(0.0)
        traj.text += text
        ep.turns += 1
        ended_eos = bool(ids) and ids[-1] in self.eos_ids
        action = parse_action(text, env.tags)
        if action is not None:
            traj.metadata["actions"].append({"kind": action.kind, "content": action.content})
            try:
                result = env.step(action)
                obs, done = result.observation, result.done
                traj.turn_rewards[-1] = float(result.reward)
                if "answer" in result.info:
                    traj.metadata["answer"] = result.info["answer"]
                traj.metadata.setdefault("infos", []).append(result.info)
            except ActionError as err:
                traj.metadata["invalid_actions"] += 1
                obs, done = self._correction_text(env, str(err)), False
        else:
            traj.metadata["invalid_actions"] += 1
            obs, done = self._correction_text(env, None), False
        # with parallel tags the eos token is the end-of-turn marker of a call turn, not of the episode
        turn_end = ended_eos and action is not None and action.kind in self.parallel_tags
        if done or (ended_eos and not turn_end):
            return self._finish(ep, "answer" if done else "eos")
        if len(traj.response_ids) >= self.max_response_tokens:
            return self._finish(ep, "length")
        if ep.turns >= self.max_turns:
            return self._finish(ep, "max_turns")
        obs_ids = list(self.tokenizer(obs, add_special_tokens=False)["input_ids"])
        room = self.max_response_tokens - len(traj.response_ids)
        traj.append(obs_ids[:room], policy=False)
        traj.text += obs if len(obs_ids) <= room else self.tokenizer.decode(obs_ids[:room])
        if len(obs_ids) >= room:
            self._finish(ep, "length")

    @staticmethod
    def _finish(ep: _Episode, reason: str) -> None:
        ep.done = True
        ep.traj.finish_reason = reason
        ep.traj.metadata["num_turns"] = ep.turns


class Recording:
    """Wraps a generator and records every call: the contexts, max_new_tokens, stop strings and seed."""

    def __init__(self, inner):
        self.inner, self.tokenizer, self.calls = inner, inner.tokenizer, []

    def generate(self, prompts, params):
        self.calls.append(([list(p) for p in prompts], params.max_new_tokens, params.stop, params.seed))
        return self.inner.generate(prompts, params)

    def update_weights(self, model):
        pass


class SeededScript:
    """A stochastic stand-in policy over real actions: each row draws one of `turns` with a torch generator seeded
    by the call's seed (rows in order), honours max_new_tokens like a real backend and can end on eos."""

    def __init__(self, tokenizer, turns):
        self.tokenizer, self.turns = tokenizer, turns

    def generate(self, prompts, params):
        g = torch.Generator().manual_seed(params.seed)
        out = []
        for _ in prompts:
            text, eos = self.turns[int(torch.randint(len(self.turns), (1,), generator=g))]
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + ([self.tokenizer.eos_token_id]
                                                                                      if eos else [])
            reason = "eos" if eos else "stop"
            if len(ids) > params.max_new_tokens:
                ids, reason = ids[: params.max_new_tokens], "length"
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
            lps = torch.rand(len(ids), generator=g).neg().tolist()
            out.append([Completion(text=text, token_ids=ids, logprobs=lps, finish_reason=reason)])
        return out


class Docs:
    def retrieve(self, queries, topk=3):
        return [[{"id": f"d{len(q)}", "contents": f"T{len(q)}\nabout {q}"}] for q in queries]


def _reward(answer, record):
    return float(answer == record["answer"])


RECORDS = [{"id": f"q{i}", "prompt": f"Question {i}: where?\n", "answer": "Paris"} for i in range(4)]
FIELDS = ("response_ids", "loss_mask", "old_logprobs", "turn_spans", "turn_rewards", "text", "finish_reason",
          "group_id", "prompt_ids", "reward")


def _same(old, new):
    assert len(old) == len(new)
    for a, b in zip(old, new):
        for name in FIELDS:
            assert getattr(a, name) == getattr(b, name), name
        for key in ("record_index", "sample", "actions", "invalid_actions", "num_turns", "answer", "infos"):
            assert a.metadata.get(key) == b.metadata.get(key), key


@pytest.mark.parametrize("seed", [0, 7])
def test_seeded_search_episodes_identical_to_legacy_loop(seed):
    tok = build_tokenizer(kind="char")
    turns = [("<search>france</search>", False), ("<search>a much longer query about it</search>", False),
             ("hmm no action", False), ("<answer>Paris</answer>", False), ("<answer>Rome</answer>", False),
             ("done", True)]
    kw = dict(max_turns=4, max_new_tokens_per_turn=30, max_response_tokens=260)
    env = lambda rec: SearchEnv(Docs(), topk=1, answer_reward=_reward)  # noqa: E731
    old_gen, new_gen = Recording(SeededScript(tok, turns)), Recording(SeededScript(tok, turns))
    old = LegacyAgentLoop(old_gen, env, **kw).run(RECORDS, n=3, group_ids=[10, 11, 12, 13], seed=seed)
    new = AgentLoop(new_gen, env, **kw).run(RECORDS, n=3, group_ids=[10, 11, 12, 13], seed=seed)
    _same(old, new)
    assert old_gen.calls == new_gen.calls  # same batches, budgets, stops and seeds, call by call
    reasons = {t.finish_reason for t in new}
    assert "answer" in reasons and len(reasons) >= 3, reasons  # the draw exercised several endings
    assert any(t.metadata["actions"] and t.metadata["actions"][0]["kind"] == "search" for t in new)
    assert all(t.group_key is None for t in new)  # single role: grouped by record as before


def test_tiny_model_sampling_identical_to_legacy_loop(tiny_qwen2_dir):
    model, tok = load_model(tiny_qwen2_dir, device="cpu")
    # frequent stop strings end turns at different lengths, so budgets, truncation and observations vary by episode
    kw = dict(stop=["e", "a"], max_turns=5, max_new_tokens_per_turn=12, max_response_tokens=45, temperature=1.0,
              correction="\n?\n")
    env = lambda rec: SearchEnv(Docs(), topk=1)  # noqa: E731
    old_gen, new_gen = Recording(HFGenerator(model, tok)), Recording(HFGenerator(model, tok))
    old = LegacyAgentLoop(old_gen, env, **kw).run(RECORDS, n=2, seed=3)
    new = AgentLoop(new_gen, env, **kw).run(RECORDS, n=2, seed=3)
    _same(old, new)
    assert old_gen.calls == new_gen.calls
    assert len({t.finish_reason for t in new}) >= 2  # e.g. eos and length: several code paths ran
    assert len({len(t.response_ids) for t in new}) > 1
