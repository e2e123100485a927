"""Lock-step multi-role rollouts: episodes written as programs, generation batched per role.

An episode program is a Python generator function `program(ep)`. It opens a trajectory for a role with
`ep.start(role, prompt)`, appends text or token ids that the role did not generate with `ep.observe(role, ...)`
(loss mask 0: another role's reply, a tool's output, a retrieved document), and asks the role to continue with
`completion = yield GenRequest(role, max_new_tokens, stop=...)`. The driver appends the generated ids to that role's
trajectory (loss mask 1, with their sampling logprobs and, when asked, entropies) before sending the `Completion`
back, so the ids the trainer scores are exactly the ids the model sampled; nothing is re-tokenised. What the program
returns is kept as the episode's `result`.

`MultiRoleDriver(generators).run(program, records, n)` plays n episodes per record together. A round serves the
roles in the order of `generators`: every request pending for a role is batched into one `generate` call of that
role's generator per sampling setting (one generator may serve several roles), the completions go back to their
episodes, and requests the episodes make next for later roles are served in the same round. Requests that differ
only in `max_new_tokens` share a call: it runs to the largest budget and each completion is cut to its own.

The result holds one trajectory per (episode, role) (several when a program starts a role again, e.g. one
trajectory per call), in episode order. Each trajectory's `group_id` is its record's group id (the record link);
its `group_key` is (group_id, role) unless the program passes one, so group estimators never normalise two roles
together.

Context guard: before each generation the role's context (prompt + response so far) is compared with
`max_context_tokens` (by default the model's `max_position_embeddings`, when the generator knows it). A request
whose context leaves no room gets an empty completion with finish reason "context" (the trajectory's finish reason
becomes "context") or, with `on_context_overflow="error"`, a ValueError naming the episode and role; a request with
some room is generated up to the limit and a completion cut there has finish reason "context". Nothing is
truncated silently.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.generation import Completion, SamplingParams
from shared.generation.base import context_limit, end_token_ids
from shared.rollout.trajectory import Trajectory

OVERFLOW_POLICIES = ("finish", "error")


def encode_prompt(tokenizer: Any, record: Mapping[str, Any], prompt_key: str = "prompt") -> list[int]:
    """Token ids of a record's prompt: `prompt_ids` if present, a chat (list of messages) through the chat template
    with the generation prompt, or plain text without added special tokens (as TRL's GRPOTrainer does)."""
    if "prompt_ids" in record:
        return [int(i) for i in record["prompt_ids"]]
    if prompt_key not in record:
        raise KeyError(f"record {record.get('id', '?')!r} has no field {prompt_key!r}")
    prompt = record[prompt_key]
    if isinstance(prompt, list) and all(isinstance(m, Mapping) for m in prompt):
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, Mapping) else ids)
    if isinstance(prompt, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in prompt):
        return list(prompt)
    if not isinstance(prompt, str):
        raise TypeError(f"record {record.get('id', '?')!r}: field {prompt_key!r} must be a string, a message list "
                        f"or token ids")
    return list(tokenizer(prompt, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class GenRequest:
    """Ask `role` to continue its trajectory by at most `max_new_tokens`, stopping after any string of `stop`."""

    role: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    entropy: bool = False  # also record per-token entropies of softmax(logits / T)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop", (self.stop,) if isinstance(self.stop, str) else tuple(self.stop))
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"GenRequest({self.role!r}).max_new_tokens must be an int >= 1, got "
                             f"{self.max_new_tokens!r}")

    def sampling_key(self) -> tuple:
        return (self.stop, self.temperature, self.top_p, self.top_k, self.entropy)


Observation = str | Sequence[int] | Completion


@dataclass
class Episode:
    """One episode's handle, passed to its program: the record, the role trajectories, and what the program returns."""

    driver: MultiRoleDriver
    index: int
    record: Mapping[str, Any]
    record_index: int
    sample: int
    group_id: Any
    trajectories: dict[str, list[Trajectory]] = field(default_factory=dict)
    result: Any = None
    done: bool = False

    def tokenizer(self, role: str) -> Any:
        return self.driver.generator(role).tokenizer

    def start(self, role: str, *prompt: Observation | Sequence[Mapping[str, Any]], group_key: Any = None) -> Trajectory:
        """Open a new trajectory of `role` and make it current. The prompt is chat messages (one list of dicts,
        through the chat template) or pieces of text, token ids and Completions (another role's reply, kept as its
        ids) joined in order."""
        rec_id = self.record.get("id", self.record_index)
        tok = self.tokenizer(role)
        if len(prompt) == 1 and isinstance(prompt[0], list) and prompt[0] and isinstance(prompt[0][0], Mapping):
            ids = encode_prompt(tok, {"id": rec_id, "prompt": prompt[0]})
        else:
            ids, _ = _encode_pieces(tok, prompt)
        if not ids:
            raise ValueError(f"episode {self.index} (record {rec_id!r}): empty prompt for role {role!r}")
        calls = self.trajectories.setdefault(role, [])
        if group_key is None and self.driver.group_by_role:
            group_key = (self.group_id, role)
        traj = Trajectory(prompt_ids=list(ids), group_id=self.group_id, old_logprobs=[], group_key=group_key)
        traj.metadata = {"record_index": self.record_index, "sample": self.sample, "role": role,
                         "episode": self.index, "call": len(calls)}
        calls.append(traj)
        return traj

    def traj(self, role: str) -> Trajectory:
        """The role's current (last started) trajectory."""
        if not self.trajectories.get(role):
            raise KeyError(f"episode {self.index}: role {role!r} has no trajectory; call ep.start({role!r}, prompt)")
        return self.trajectories[role][-1]

    def observe(self, role: str, *pieces: Observation, text: str | None = None) -> tuple[int, int]:
        """Append pieces to the role's current trajectory with loss mask 0; returns their span. Text is tokenised
        with the role's tokenizer; token ids and Completions (another role's reply) are appended as they are, so
        generated ids are never re-tokenised (roles that share them must share a tokenizer). `text` overrides the
        text recorded in `traj.text` (default: the pieces' text; bare ids are decoded)."""
        traj = self.traj(role)
        ids, piece_text = _encode_pieces(self.tokenizer(role), pieces)
        span = traj.append(ids, policy=False)
        traj.text += piece_text if text is None else text
        return span

    def ended_on_eos(self, role: str, completion: Completion) -> bool:
        """True when the completion stopped on an end-of-sequence id of the role's generator (any of them)."""
        ids = completion.token_ids
        return bool(ids) and (completion.finish_reason == "eos" or ids[-1] in self.driver.end_ids(role))

    def finish(self, reason: str, role: str | None = None) -> None:
        """Set the finish reason of the current trajectory of `role` (of every role when None)."""
        roles = [role] if role is not None else list(self.trajectories)
        for r in roles:
            self.traj(r).finish_reason = reason


@dataclass
class Rollout:
    """What a run returns: trajectories per role (episode order) and the episodes (records, results)."""

    trajectories: dict[str, list[Trajectory]]
    episodes: list[Episode]
    rounds: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)  # one entry per generate call: round, role, rows

    def __getitem__(self, role: str) -> list[Trajectory]:
        return self.trajectories[role]

    def all(self) -> list[Trajectory]:
        return [t for trajs in self.trajectories.values() for t in trajs]


def _encode_pieces(tok: Any, pieces: Sequence[Any]) -> tuple[list[int], str]:
    """Token ids and text of pieces: strings are tokenised (no special tokens added), Completions and id lists
    are kept as ids (their text: the completion's, or the ids decoded)."""
    ids: list[int] = []
    parts: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            ids += tok(piece, add_special_tokens=False)["input_ids"]
            parts.append(piece)
        elif isinstance(piece, Completion):
            ids += [int(i) for i in piece.token_ids]
            parts.append(piece.text)
        elif isinstance(piece, Sequence) and all(isinstance(i, int) and not isinstance(i, bool) for i in piece):
            piece = [int(i) for i in piece]
            ids += piece
            parts.append(tok.decode(piece))
        else:
            raise TypeError(f"a prompt or observation piece must be text, token ids or a Completion, got "
                            f"{type(piece).__name__}")
    return ids, "".join(parts)


Program = Callable[[Episode], Generator[GenRequest, Completion, Any]]


class MultiRoleDriver:
    """Lock-step driver of episode programs over one generator per role (see the module docstring)."""

    def __init__(
        self,
        generators: Mapping[str, Any],
        max_context_tokens: int | Mapping[str, int] | None = None,
        on_context_overflow: str = "finish",
        group_by_role: bool = True,
    ) -> None:
        if not generators:
            raise ValueError("MultiRoleDriver needs at least one role -> generator")
        if on_context_overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"on_context_overflow must be one of {OVERFLOW_POLICIES}, got {on_context_overflow!r}")
        self.generators = dict(generators)
        self.on_context_overflow = on_context_overflow
        self.group_by_role = group_by_role
        self._limits: dict[str, int | None] = {}
        self._end_ids: dict[str, set[int]] = {}
        for role, gen in self.generators.items():
            if isinstance(max_context_tokens, Mapping):
                limit = max_context_tokens.get(role)
            else:
                limit = max_context_tokens
            self._limits[role] = int(limit) if limit else context_limit(gen)
            self._end_ids[role] = end_token_ids(gen)

    def generator(self, role: str) -> Any:
        if role not in self.generators:
            raise KeyError(f"unknown role {role!r}; the driver has generators for {sorted(self.generators)}")
        return self.generators[role]

    def end_ids(self, role: str) -> set[int]:
        self.generator(role)
        return self._end_ids[role]

    def context_limit(self, role: str) -> int | None:
        self.generator(role)
        return self._limits[role]

    # ---- the loop ------------------------------------------------------------------------------------------
    def run(self, program: Program, records: Sequence[Mapping[str, Any]], n: int = 1,
            group_ids: Sequence[Any] | None = None, seed: int | None = None) -> Rollout:
        """Play `n` episodes of `program` per record. With `seed`, call k of round r samples with seed
        `seed + r + 1_000_003 * k` (one role, one setting: `seed + r`), so a rerun draws the same tokens."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if group_ids is not None and len(group_ids) != len(records):
            raise ValueError(f"{len(group_ids)} group_ids for {len(records)} records")
        episodes = []
        for i, record in enumerate(records):
            gid = group_ids[i] if group_ids is not None else record.get("id", i)
            for k in range(n):
                episodes.append(Episode(self, len(episodes), record, i, k, gid))
        pending: dict[int, GenRequest] = {}
        runners: dict[int, Generator] = {}
        for ep in episodes:
            runners[ep.index] = program(ep)
            self._advance(ep, runners[ep.index], None, pending)
        rollout = Rollout({role: [] for role in self.generators}, episodes)
        rnd = 0
        while pending:
            calls = 0
            for role in self.generators:
                batch = [(episodes[i], req) for i, req in sorted(pending.items()) if req.role == role]
                if not batch:
                    continue
                for ep, _ in batch:
                    del pending[ep.index]
                served = self._serve(role, batch, rnd, calls, seed, rollout)
                calls += len({req.sampling_key() for _, req in batch})
                for ep, comp in served:
                    self._advance(ep, runners[ep.index], comp, pending)
            rnd += 1
        rollout.rounds = rnd
        for ep in episodes:
            for role, trajs in ep.trajectories.items():
                for t in trajs:
                    t.validate()
                rollout.trajectories.setdefault(role, []).extend(trajs)
        return rollout

    def _advance(self, ep: Episode, runner: Generator, completion: Completion | None,
                 pending: dict[int, GenRequest]) -> None:
        """Run the episode's program to its next request (or its end)."""
        try:
            req = runner.send(completion) if completion is not None else next(runner)
        except StopIteration as stop:
            ep.result, ep.done = stop.value, True
            return
        if not isinstance(req, GenRequest):
            raise TypeError(f"episode {ep.index}: a program must yield GenRequest objects, got {type(req).__name__}")
        self.generator(req.role)
        ep.traj(req.role)  # the role must have a trajectory to continue
        pending[ep.index] = req

    def _serve(self, role: str, batch: list[tuple[Episode, GenRequest]], rnd: int, call_base: int,
               seed: int | None, rollout: Rollout) -> list[tuple[Episode, Completion]]:
        """Generate for every request of one role (one call per sampling setting) and append to the trajectories."""
        gen = self.generator(role)
        limit = self._limits[role]
        out: dict[int, Completion] = {}
        groups: dict[tuple, list[tuple[Episode, GenRequest, int, bool]]] = {}
        for ep, req in batch:
            traj = ep.traj(role)
            budget, clamped = req.max_new_tokens, False
            if limit is not None:
                room = limit - len(traj.prompt_ids) - len(traj.response_ids)
                if room < 1:
                    if self.on_context_overflow == "error":
                        raise ValueError(
                            f"episode {ep.index} (record {ep.record.get('id', ep.record_index)!r}), role {role!r}: "
                            f"context of {limit - room} tokens leaves no room under max_context_tokens={limit}")
                    traj.finish_reason = "context"
                    out[ep.index] = Completion(text="", token_ids=[], logprobs=[], finish_reason="context")
                    continue
                budget, clamped = min(budget, room), room < budget
            groups.setdefault(req.sampling_key(), []).append((ep, req, budget, clamped))
        for k, rows in enumerate(groups.values()):
            req = rows[0][1]
            call_seed = None if seed is None else seed + rnd + 1_000_003 * (call_base + k)
            params = SamplingParams(max_new_tokens=max(b for _, _, b, _ in rows), temperature=req.temperature,
                                    top_p=req.top_p, top_k=req.top_k, n=1, stop=req.stop, logprobs=True,
                                    seed=call_seed, entropy=req.entropy)
            contexts = [ep.traj(role).prompt_ids + ep.traj(role).response_ids for ep, _, _, _ in rows]
            comps = gen.generate(contexts, params)
            rollout.calls.append({"round": rnd, "role": role, "rows": len(rows)})
            for (ep, req, budget, clamped), comp in zip(rows, comps):
                comp = _fit(_only(comp), budget, clamped, gen.tokenizer)
                self._append(ep.traj(role), comp, req.entropy)
                out[ep.index] = comp
        return [(ep, out[ep.index]) for ep, _ in batch]

    @staticmethod
    def _append(traj: Trajectory, comp: Completion, want_entropy: bool) -> None:
        ids = list(comp.token_ids)
        traj.finish_reason = comp.finish_reason  # the last generation's; programs may set their own afterwards
        if not ids:
            return
        logprobs = list(comp.logprobs) if comp.logprobs is not None else None
        if logprobs and not isinstance(logprobs[0], (int, float)):
            logprobs = None  # a backend returning per-token dicts: keep ids, drop sampling logprobs
        entropies = comp.entropies if want_entropy and comp.entropies is not None else None
        if want_entropy and entropies is None:
            entropies = [0.0] * len(ids)  # a backend without entropies: keep the column aligned
        traj.append(ids, policy=True, logprobs=logprobs if logprobs is not None else [0.0] * len(ids),
                    entropies=entropies)
        traj.turn_rewards.append(0.0)
        traj.text += comp.text


def _only(completions: Sequence[Completion]) -> Completion:
    """The single completion of a prompt generated with n = 1."""
    if len(completions) != 1:
        raise ValueError(f"expected one completion per prompt (n=1), got {len(completions)}")
    return completions[0]


def _fit(comp: Completion, budget: int, clamped: bool, tokenizer: Any) -> Completion:
    """Cut a completion generated under a shared (larger) budget to its own budget; mark context cuts."""
    ids = list(comp.token_ids)
    if len(ids) > budget:
        ids = ids[:budget]
        cut = lambda xs: list(xs)[:budget] if xs is not None else None  # noqa: E731
        return Completion(text=tokenizer.decode(ids, skip_special_tokens=False), token_ids=ids,
                          logprobs=cut(comp.logprobs), top_logprobs=cut(comp.top_logprobs),
                          finish_reason="context" if clamped else "length",
                          prompt_token_ids=comp.prompt_token_ids, entropies=cut(comp.entropies))
    if clamped and len(ids) == budget and comp.finish_reason == "length":
        comp.finish_reason = "context"
    return comp
