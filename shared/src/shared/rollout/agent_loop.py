"""Multi-turn rollouts that keep the generated token ids exactly as sampled.

`AgentLoop.run` plays many episodes in lock-step: each turn it asks the generator to continue every active
episode from its token ids (prompt + everything so far), stopping at the environment's closing tags. The sampled
ids are appended with loss mask 1 (and their logprobs); the turn's text is parsed into an action, the environment
answers, and the observation's ids are appended with mask 0. The conversation is never re-tokenised, so the ids
the trainer scores are the ids the policy produced. An episode ends on an answer (the environment says done), an
end-of-sequence token (any id the generator stops on: the tokenizer's eos and every id of the model's generation
config, e.g. `<|im_end|>` and `<|endoftext|>`), the turn budget, the token budget or the model's context limit
(finish reason "context", or a ValueError with `on_context_overflow="error"`). A turn without a parseable action
gets a corrective observation instead of a crash.

The loop is one episode program (`AgentLoop.program`) on `shared.rollout.driver.MultiRoleDriver` with a single role,
"policy"; the driver batches the episodes' turns exactly as the loop always did (one generate call per turn, seed
`seed + turn`).

Parallel actions: by default a turn stops at the first closing tag, so it holds one action. Tags named in
`parallel_tags` (e.g. `("tool_call",)`) do not stop the turn: it runs on until another stop string or the end-of-turn
token (eos), so it can hold several such blocks (ToolEnv answers every `<tool_call>` of a turn); an eos that closes
a turn whose action is a parallel tag ends that turn only, not the episode.

`generate_trajectories` is the single-turn case used by the trainer for plain prompt -> completion tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

from shared.generation.base import context_limit, end_token_ids
from shared.rollout.driver import OVERFLOW_POLICIES, Episode, GenRequest, MultiRoleDriver, encode_prompt
from shared.rollout.envs import ActionError, Env, parse_action
from shared.rollout.trajectory import Trajectory

DEFAULT_CORRECTION = "\nInvalid action: write {tags}.\n"


POLICY = "policy"  # the role name of the single-role program


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
        max_context_tokens: int | None = None,
        on_context_overflow: str = "finish",
        entropy: bool = False,
    ) -> None:
        if max_turns < 1 or max_new_tokens_per_turn < 1 or max_response_tokens < 1:
            raise ValueError("max_turns, max_new_tokens_per_turn and max_response_tokens must be >= 1")
        if on_context_overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"on_context_overflow must be one of {OVERFLOW_POLICIES}, got {on_context_overflow!r}")
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
        self.max_context_tokens = max_context_tokens  # None: the model's max_position_embeddings when known
        self.on_context_overflow = on_context_overflow
        self.entropy = entropy
        self.eos_ids = end_token_ids(generator)

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

    def driver(self) -> MultiRoleDriver:
        """The single-role driver the loop runs on (trajectories keep `group_key` unset: grouped by record)."""
        return MultiRoleDriver({POLICY: self.generator}, max_context_tokens=self.max_context_tokens,
                               on_context_overflow=self.on_context_overflow, group_by_role=False)

    def run(self, records: Sequence[Mapping[str, Any]], n: int = 1, group_ids: Sequence[Any] | None = None,
            seed: int | None = None) -> list[Trajectory]:
        """Play `n` episodes per record; trajectories come back record by record, each group's n together."""
        if group_ids is not None and len(group_ids) != len(records):
            raise ValueError(f"{len(group_ids)} group_ids for {len(records)} records")
        return self.driver().run(self.program, records, n=n, group_ids=group_ids, seed=seed)[POLICY]

    def program(self, ep: Episode) -> Generator[GenRequest, Any, None]:
        """One episode: turn after turn until an answer, an end token, or a budget runs out."""
        record = ep.record
        env = self.env_factory(record)
        env.reset(record)
        traj = ep.start(POLICY, encode_prompt(self.tokenizer, record, self.prompt_key))
        traj.metadata.update({"actions": [], "invalid_actions": 0})
        stop = tuple(sorted(set(self._stops_for(env))))
        turns = 0
        while True:
            left = self.max_response_tokens - len(traj.response_ids)
            completion = yield GenRequest(POLICY, max(1, min(self.max_new_tokens_per_turn, left)), stop=stop,
                                          temperature=self.temperature, top_p=self.top_p, entropy=self.entropy)
            if not completion.token_ids:  # nothing generated (or no room left): the episode cannot continue
                reason = "context" if completion.finish_reason == "context" else "length" if left <= 0 else "empty"
                return self._finish(traj, turns, reason)
            turns += 1
            text = completion.text
            ended_eos = ep.ended_on_eos(POLICY, completion)
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
                return self._finish(traj, turns, "answer" if done else "eos")
            if completion.finish_reason == "context":  # the turn was cut at the model's context limit
                return self._finish(traj, turns, "context")
            if len(traj.response_ids) >= self.max_response_tokens:
                return self._finish(traj, turns, "length")
            if turns >= self.max_turns:
                return self._finish(traj, turns, "max_turns")
            obs_ids = list(self.tokenizer(obs, add_special_tokens=False)["input_ids"])
            room = self.max_response_tokens - len(traj.response_ids)
            ep.observe(POLICY, obs_ids[:room], text=obs if len(obs_ids) <= room else None)
            if len(obs_ids) >= room:
                return self._finish(traj, turns, "length")

    @staticmethod
    def _finish(traj: Trajectory, turns: int, reason: str) -> None:
        traj.finish_reason = reason
        traj.metadata["num_turns"] = turns


def generate_trajectories(
    generator: Any,
    records: Sequence[Mapping[str, Any]],
    n: int,
    params: Any,
    group_ids: Sequence[Any] | None = None,
    prompt_key: str = "prompt",
    max_context_tokens: int | None = None,
    on_context_overflow: str = "finish",
) -> list[Trajectory]:
    """Single-turn rollouts: n completions per record, each a one-turn trajectory with its sampling logprobs (and
    entropies when `params.entropy`).

    Context guard (`max_context_tokens`, default the model's when the generator knows it): a prompt that leaves no
    room gives n empty trajectories with finish reason "context" (or a ValueError naming the record with
    `on_context_overflow="error"`); a completion cut at the limit has finish reason "context"."""
    if on_context_overflow not in OVERFLOW_POLICIES:
        raise ValueError(f"on_context_overflow must be one of {OVERFLOW_POLICIES}, got {on_context_overflow!r}")
    tok = generator.tokenizer
    prompts = [encode_prompt(tok, r, prompt_key) for r in records]
    limit = max_context_tokens or context_limit(generator)
    rooms = [None if limit is None else limit - len(p) for p in prompts]
    if on_context_overflow == "error":
        for i, room in enumerate(rooms):
            if room is not None and room < 1:
                raise ValueError(f"record {records[i].get('id', i)!r}: prompt of {len(prompts[i])} tokens leaves no "
                                 f"room under max_context_tokens={limit}")
    live = [i for i, room in enumerate(rooms) if room is None or room >= 1]
    run_params = params
    if limit is not None and live and any(rooms[i] < params.max_new_tokens for i in live):
        run_params = dataclasses.replace(params, max_new_tokens=min(params.max_new_tokens, max(rooms[i] for i in live)))
    outs = dict(zip(live, generator.generate([prompts[i] for i in live], run_params))) if live else {}
    trajs = []
    for i, prompt in enumerate(prompts):
        gid = group_ids[i] if group_ids is not None else records[i].get("id", i)
        if i not in outs:  # no room for a single token: n empty trajectories that say why
            for k in range(n):
                trajs.append(Trajectory(prompt_ids=list(prompt), group_id=gid, finish_reason="context",
                                        metadata={"record_index": i, "sample": k}))
            continue
        for k, c in enumerate(outs[i]):
            ids, lp, ent, text, reason = list(c.token_ids), c.logprobs, c.entropies, c.text, c.finish_reason or ""
            if rooms[i] is not None and len(ids) >= rooms[i] and rooms[i] < params.max_new_tokens:
                ids, reason = ids[: rooms[i]], "context"
                lp, ent = (x[: rooms[i]] if x is not None else None for x in (lp, ent))
                text = text if len(ids) == len(c.token_ids) else tok.decode(ids, skip_special_tokens=True)
            t = Trajectory(prompt_ids=list(prompt), group_id=gid, text=text, finish_reason=reason)
            lp = lp if lp is not None and len(lp) == len(ids) else None
            ent = ent if ent is not None and len(ent) == len(ids) else None
            t.append(ids, policy=True, logprobs=lp, entropies=ent)
            t.metadata = {"record_index": i, "sample": k}
            trajs.append(t)
    return trajs
