"""Multi-turn rollouts that keep the generated token ids exactly as sampled.

`AgentLoop.run` plays many episodes in lock-step: each turn it asks the generator to continue every active
episode from its token ids (prompt + everything so far), stopping at the environment's closing tags. The sampled
ids are appended with loss mask 1 (and their logprobs); the turn's text is parsed into an action, the environment
answers, and the observation's ids are appended with mask 0. The conversation is never re-tokenised, so the ids
the trainer scores are the ids the policy produced. An episode ends on an answer (the environment says done), an
end-of-sequence token, the turn budget or the token budget. A turn without a parseable action gets a corrective
observation instead of a crash.

Parallel actions: by default a turn stops at the first closing tag, so it holds one action. Tags named in
`parallel_tags` (e.g. `("tool_call",)`) do not stop the turn: it runs on until another stop string or the end-of-turn
token (eos), so it can hold several such blocks (ToolEnv answers every `<tool_call>` of a turn); an eos that closes
a turn whose action is a parallel tag ends that turn only, not the episode.

`generate_trajectories` is the single-turn case used by the trainer for plain prompt -> completion tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.generation import SamplingParams
from shared.rollout.envs import ActionError, Env, parse_action
from shared.rollout.trajectory import Trajectory

DEFAULT_CORRECTION = "\nInvalid action: write {tags}.\n"


def encode_prompt(tokenizer: Any, record: Mapping[str, Any], prompt_key: str = "prompt") -> list[int]:
    """Token ids of a record's prompt: `prompt_ids` if present, a chat (list of messages) through the chat template
    with the generation prompt, or plain text without added special tokens (as TRL's GRPOTrainer does)."""
    if "prompt_ids" in record:
        return [int(i) for i in record["prompt_ids"]]
    if prompt_key not in record:
        raise KeyError(f"record {record.get('id', '?')!r} has no field {prompt_key!r}")
    prompt = record[prompt_key]
    if isinstance(prompt, list):
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)
    if not isinstance(prompt, str):
        raise TypeError(f"record {record.get('id', '?')!r}: field {prompt_key!r} must be a string or a message list")
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


@dataclass
class _Episode:
    traj: Trajectory
    env: Env
    turns: int = 0
    done: bool = False


class AgentLoop:
    """Multi-turn rollout driver over a `shared.generation.Generator` and an environment factory."""

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


def generate_trajectories(
    generator: Any,
    records: Sequence[Mapping[str, Any]],
    n: int,
    params: Any,
    group_ids: Sequence[Any] | None = None,
    prompt_key: str = "prompt",
) -> list[Trajectory]:
    """Single-turn rollouts: n completions per record, each a one-turn trajectory with its sampling logprobs."""
    tok = generator.tokenizer
    prompts = [encode_prompt(tok, r, prompt_key) for r in records]
    outs = generator.generate(prompts, params)
    trajs = []
    for i, (prompt, comps) in enumerate(zip(prompts, outs)):
        gid = group_ids[i] if group_ids is not None else records[i].get("id", i)
        for k, c in enumerate(comps):
            t = Trajectory(prompt_ids=list(prompt), group_id=gid, text=c.text, finish_reason=c.finish_reason or "")
            lp = c.logprobs if c.logprobs is not None and len(c.logprobs) == len(c.token_ids) else None
            t.append(c.token_ids, policy=True, logprobs=lp)
            t.metadata = {"record_index": i, "sample": k}
            trajs.append(t)
    return trajs
