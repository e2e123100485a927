"""The per-question loop of M-ASK, written once and driven either by the policy (lock-step) or by a script.

`mask_loop(record, retrieve, settings)` is a generator: it yields a `Call` (role, iteration, prompt text, and the
state the prompt was built from) and receives the reply text. Plan first; the memory then starts as
{t1: (question, plan's final answer)}; then at most `max_iterations` rounds of search -> retrieval (top-k) -> summary
-> update -> answer, a search that says `<end>` stopping the loop. Every call is parsed (`roles.py`), logged as a
`CallRecord` and its action applied; the loop returns the `EpisodeLog`.

`program(settings, tokenizer, retrieve)` wraps the loop as an episode program of `shared.rollout.driver`: each call
opens its own trajectory (one single-turn sample per call, group key (question group, role, iteration) for the GRPO
option), the prompt ids come from the text under the `prompt.overflow` policy, and at the end every call's reward
(`rewards.call_rewards`) is put on its trajectory. `run_episodes` plays records with one shared generator for the
five roles; the driver batches each role's pending calls per round, so one round is one iteration of every episode.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from shared.rollout.driver import Episode, GenRequest, MultiRoleDriver

from mask.config import ROLES, MaskConfig
from mask.memory import Memory
from mask.prompts import messages, render
from mask.rewards import call_rewards, final_answer
from mask.roles import parse_answer, parse_plan, parse_search, parse_summary, parse_update, slot_pairs

OVERFLOW = ("error", "finish", "left", "release_right")


@dataclass
class Call:
    """One agent call the loop asks for: the prompt and the inputs it was built from (for scripted replies)."""

    role: str
    iteration: int
    prompt: str
    memory: dict = field(default_factory=dict)
    query: str = ""
    evidence: str = ""
    docs: list[dict] = field(default_factory=list)


@dataclass
class CallRecord:
    role: str
    iteration: int
    text: str
    legal: bool
    reasons: list[str]
    fallback: bool
    action: str = ""
    query: str = ""
    evidence: str = ""
    target: str = ""
    answer: str = ""
    prompt_tokens: int = 0
    overflow: bool = False


@dataclass
class EpisodeLog:
    question: str
    calls: list[CallRecord] = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    iterations: int = 0

    @property
    def answer(self) -> str:
        return final_answer(self.calls)

    def to_dict(self) -> dict:
        return {"question": self.question, "answer": self.answer, "iterations": self.iterations,
                "memory": self.memory, "calls": [asdict(c) for c in self.calls]}


def _record(call: Call, text: str, parsed: Any) -> CallRecord:
    return CallRecord(call.role, call.iteration, text, parsed.legal, list(parsed.reasons), parsed.fallback,
                      parsed.action, parsed.query, parsed.evidence, parsed.target, parsed.answer)


def mask_loop(record: Mapping[str, Any], retrieve: Callable[[str], list[dict]], cfg: MaskConfig,
              tokenizer: Any = None) -> Generator[Call, str, EpisodeLog]:
    """The loop of one question (see the module docstring). `retrieve(query)` returns the top-k documents."""
    p, mode, unk = cfg.prompt, cfg.parse.mode, cfg.prompt.unknown_token
    memory = Memory(str(record["question"]))
    log = EpisodeLog(memory.question)

    def ask(role: str, iteration: int, **inputs: Any) -> Call:
        docs = inputs.pop("docs", [])
        msgs = messages(role, memory, p.style, unk, docs=[d["contents"] for d in docs],
                        search_history=cfg.memory.search_history, max_words=cfg.loop.max_summary_words, **inputs)
        return Call(role, iteration, render(msgs, tokenizer, p.chat), memory.snapshot(), docs=docs, **inputs)

    call = ask("plan", 0)
    text = yield call
    plan = parse_plan(text, memory.question, mode, unk)
    log.calls.append(_record(call, text, plan))
    memory.after_plan(plan.answer, plan.slots, cfg.memory.after_plan)
    for it in range(1, cfg.loop.max_iterations + 1):
        call = ask("search", it)
        text = yield call
        search = parse_search(text, mode)
        log.calls.append(_record(call, text, search))
        if search.action == "end":
            break
        log.iterations = it
        docs = [dict(d) for d in retrieve(search.query)]
        call = ask("summary", it, query=search.query, docs=docs)
        text = yield call
        summary = parse_summary(text, search.query, [d["contents"] for d in docs], mode, cfg.loop.max_summary_words)
        log.calls.append(_record(call, text, summary))
        memory.history.append((search.query, summary.evidence))
        call = ask("update", it, query=search.query, evidence=summary.evidence)
        text = yield call
        update = parse_update(text, memory.keys())
        update.query, update.evidence = search.query, summary.evidence
        log.calls.append(_record(call, text, update))
        memory.apply(update.action, update.target, search.query, summary.evidence)
        call = ask("answer", it)
        text = yield call
        answer = parse_answer(text, slot_pairs(memory.slots), mode)
        log.calls.append(_record(call, text, answer))
    log.memory = memory.snapshot()
    return log


def prompt_ids(tokenizer: Any, text: str, limit: int, overflow: str, where: str) -> tuple[list[int], bool]:
    """Token ids of a prompt under the overflow policy; the flag says the prompt was over `limit`. `error` raises a
    ValueError naming `where`; `finish` returns the ids untouched (the caller skips the call); `left` keeps the last
    `limit` ids, `release_right` the first `limit` (the release's silent cut of the prompt's end)."""
    if overflow not in OVERFLOW:
        raise ValueError(f"prompt.overflow must be one of {OVERFLOW}, got {overflow!r}")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if len(ids) <= limit:
        return ids, False
    if overflow == "error":
        raise ValueError(f"{where}: prompt of {len(ids)} tokens exceeds prompt.max_tokens={limit} (prompt.overflow="
                         f"error; 'left' or 'release_right' truncate, 'finish' skips the call)")
    if overflow == "left":
        return ids[-limit:], True
    if overflow == "release_right":
        return ids[:limit], True
    return ids, True


def program(cfg: MaskConfig, retrieve: Callable[[str], list[dict]], temperature: float) -> Callable:
    """The episode program for `MultiRoleDriver`: one trajectory per call, rewards set at the end; returns the
    EpisodeLog (as the episode's result)."""

    def run(ep: Episode) -> Generator[GenRequest, Any, EpisodeLog]:
        tok = ep.tokenizer("plan")
        loop = mask_loop(ep.record, retrieve, cfg, tok)
        trajs: list[Any] = []  # the trajectory of each logged call, None for a skipped (overflowing) call
        call = next(loop)
        while True:
            where = f"episode {ep.index} (record {ep.record.get('id', ep.record_index)!r}) role {call.role}"
            ids, over = prompt_ids(tok, call.prompt, cfg.prompt.max_tokens, cfg.prompt.overflow, where)
            if over and cfg.prompt.overflow == "finish":
                text, traj = "", None
            else:
                traj = ep.start(call.role, ids, group_key=(ep.group_id, call.role, call.iteration))
                traj.metadata["iteration"] = call.iteration
                completion = yield GenRequest(call.role, cfg.loop.tokens(call.role), temperature=temperature)
                text = completion.text
            trajs.append((traj, len(ids), over))
            try:
                call = loop.send(text)
            except StopIteration as stop:
                log: EpisodeLog = stop.value
                break
        for c, (_, n, over) in zip(log.calls, trajs):
            c.prompt_tokens, c.overflow = n, over
        rewards = call_rewards(log.calls, list(ep.record["golden_answers"]), cfg.reward.turn_penalty,
                               cfg.reward.format_penalty)
        for c, (traj, _, _), r in zip(log.calls, trajs, rewards):
            if traj is not None:
                traj.reward = float(r)
                traj.metadata.update(legal=c.legal, call_reward=float(r))
        return log

    return run


def make_driver(generator: Any, max_context_tokens: int | None = None) -> MultiRoleDriver:
    """One shared policy for the five roles (each role's calls batched per round, in the loop's order)."""
    return MultiRoleDriver({role: generator for role in ROLES}, max_context_tokens=max_context_tokens)


def run_episodes(generator: Any, records: Sequence[Mapping[str, Any]], cfg: MaskConfig,
                 retrieve: Callable[[str], list[dict]], n: int = 1, temperature: float = 1.0,
                 group_ids: Sequence[Any] | None = None, seed: int | None = None) -> tuple[list[Any], list[EpisodeLog]]:
    """Play n episodes per record; returns every call's trajectory (rewards set) and the episode logs in order."""
    rollout = make_driver(generator).run(program(cfg, retrieve, temperature), records, n=n, group_ids=group_ids,
                                         seed=seed)
    trajs = [t for ep in rollout.episodes for role in ROLES for t in ep.trajectories.get(role, [])]
    return trajs, [ep.result for ep in rollout.episodes]
