"""The ARR protocol: role prompts, what each role sees, validity rules, and the episode program on the core's
lock-step multi-role driver (`shared.rollout.driver`).

One episode (up to `max_turns` reasoner turns):
1. The reasoner writes `<think>..</think><search>q</search>` (after information also `<verify>..</verify>` first)
   or `<think>..</think><answer>a</answer>`; generation stops at `</search>` / `</answer>`.
2. On a search, the evidence (top-k, de-duplicated, DropGold) goes to the verifier as one observation
   `<information>Reasoning: {think}\\nQuery: {q}\\nDoc 1(Title: ..) ..</information>` (loss mask 0 in its
   trajectory). The verifier answers `<verify>..</verify>` then `<selected_doc>Doc k</selected_doc><response>..
   </response>` (endorses a document) or `<response>..</response>` alone (rejects the query).
3. The reasoner receives the verifier's reply inside `<information>`: the selected document (when the index is
   valid) and the response; a reply without a closed `<response>` is invalid and the reasoner gets the raw documents
   instead (the release's fallback), the verifier a corrective line. Without a verifier (the `reasoner_only`
   baseline) the reasoner gets the raw documents.
4. After the reasoner's `<answer>`, the verifier sees `<answer>a</answer>` and writes `<verify>..</verify>
   <final_answer>..</final_answer>`. A `<final_answer>` before the reasoner answered is invalid (counted).
A search on the last allowed turn ends the episode without an answer (finish reason `max_turns`). An optional final
generator (the reasoner's weights, its own trajectory) answers from the assembled transcript.

Validity (per turn, `shared.rewards.format.follows` over `parse_tagged` blocks): reasoner first turn think →
search | answer; later turns verify → think → search | answer. Verifier search turn verify → (selected_doc →)
response, with k ≤ number of documents; answer turn verify → final_answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.rewards.format import follows, parse_tagged
from shared.rollout.driver import GenRequest
from shared.rollout.envs import SearchEnv

from arr.rewards import ENTROPY_HELP

REASONER, VERIFIER, FINAL = "reasoner", "verifier", "final"
REASONER_STOP = ("</search>", "</answer>")
VERIFIER_STOP = ("</response>", "</final_answer>")
ARR_TAGS = ("verify", "selected_doc", "response", "final_answer")  # beyond the core's think/search/answer/information
REJECT_TEXT = "No answer in the documents."

PROMPTS = {
    "short": {
        REASONER: "Question: {question}\n",
        VERIFIER: "Verify for: {question}\n",
        FINAL: "Question: {question}\n{transcript}Final answer: ",
    },
    "instruct": {
        REASONER: ("You answer the question with a search engine and a verifier. Reason inside <think> and </think>. "
                   "To search, write the query inside <search> and </search>; the verifier's reply comes back inside "
                   "<information> and </information>. Check each reply inside <verify> and </verify>, reason again, "
                   "and search again if needed. When you know the answer, write it concisely inside <answer> and "
                   "</answer>.\nQuestion: {question}\n"),
        VERIFIER: ("You check the evidence a reasoner retrieves. Each time you receive its reasoning, query and the "
                   "retrieved documents inside <information> and </information>, assess them inside <verify> and "
                   "</verify>. If the documents help, name the most useful one inside <selected_doc> and "
                   "</selected_doc> (e.g. Doc 1) and summarise it inside <response> and </response>; otherwise "
                   "explain inside <response> and </response> why the query fails. When the reasoner answers inside "
                   "<answer> and </answer>, check it inside <verify> and </verify> and give the final answer inside "
                   "<final_answer> and </final_answer>.\nQuestion: {question}\n"),
        FINAL: ("Answer the question from the discussion below, concisely.\nQuestion: {question}\n{transcript}"
                "Final answer: "),
    },
}

REASONER_FIRST = {"start": {"think"}, "think": {"search", "answer"}}
REASONER_LATER = {"start": {"verify"}, "verify": {"think"}, "think": {"search", "answer"}}
VERIFIER_SEARCH = {"start": {"verify"}, "verify": {"selected_doc", "response"}, "selected_doc": {"response"}}
VERIFIER_ANSWER = {"start": {"verify"}, "verify": {"final_answer"}}
_REASONER_TAGS = ("think", "search", "answer", "verify")
_VERIFIER_TAGS = ("verify", "selected_doc", "response", "final_answer")
_DOC = re.compile(r"^\s*Doc\s*(\d+)\s*$", re.IGNORECASE)


def prompt(role: str, record: Mapping[str, Any], style: str = "short", transcript: str = "") -> str:
    if style not in PROMPTS:
        raise ValueError(f"unknown protocol.prompt_style {style!r}; known: {sorted(PROMPTS)}")
    return PROMPTS[style][role].format(question=record["question"], transcript=transcript)


def format_docs(docs: Sequence[Mapping[str, Any]]) -> str:
    """Search-R1's document lines `Doc i(Title: t) text` (the core's SearchEnv format); fewer than k docs list what
    exists, none says so."""
    return SearchEnv.format_docs(docs) if docs else "No documents."


def verifier_information(think: str, query: str, docs: Sequence[Mapping[str, Any]]) -> str:
    """What the verifier sees of a reasoner's search turn."""
    return f"\n<information>Reasoning: {think}\nQuery: {query}\n{format_docs(docs)}</information>\n"


def raw_information(docs: Sequence[Mapping[str, Any]]) -> str:
    """The reasoner's observation without (or after an invalid) verifier: the documents themselves."""
    return f"\n<information>{format_docs(docs)}</information>\n"


def last_block(text: str, tag: str) -> str | None:
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return found[-1].strip() if found else None


@dataclass
class ReasonerTurn:
    kind: str | None  # "search", "answer" or None (no action)
    content: str
    think: str
    valid: bool
    reason: str


def parse_reasoner_turn(text: str, first: bool) -> ReasonerTurn:
    """The action of one reasoner turn (the first complete `<search>` or `<answer>` block, as the release reads it)
    and whether the turn follows the grammar."""
    search, answer = last_block(text, "search"), last_block(text, "answer")
    kind, content = ("search", search) if search is not None else ("answer", answer) if answer is not None else (None, "")
    ok, reason = follows(parse_tagged(text, _REASONER_TAGS), REASONER_FIRST if first else REASONER_LATER,
                         accept={"search", "answer"})
    return ReasonerTurn(kind, content or "", last_block(text, "think") or "", ok and kind is not None, reason)


@dataclass
class VerifierReply:
    accepted: bool  # a <selected_doc> block is present (the rejection probe's definition of "not a rejection")
    doc_index: int | None  # 1-based index of a valid selected document
    response: str | None
    verify: str | None
    final_answer: str | None
    valid: bool
    reason: str


def parse_verifier_reply(text: str, n_docs: int, answered: bool) -> VerifierReply:
    """One verifier turn. Search turn (`answered` False): verify → (selected_doc →) response, `Doc k` with k ≤
    n_docs; a `<final_answer>` here is invalid ("final_answer before the reasoner answered"). Answer turn: verify →
    final_answer."""
    selected = last_block(text, "selected_doc")
    response, verify, final = last_block(text, "response"), last_block(text, "verify"), last_block(text, "final_answer")
    blocks = parse_tagged(text, _VERIFIER_TAGS)
    if answered:
        ok, reason = follows(blocks, VERIFIER_ANSWER, accept={"final_answer"})
        return VerifierReply(selected is not None, None, response, verify, final, ok, reason)
    ok, reason = follows(blocks, VERIFIER_SEARCH, accept={"response"})
    index = None
    if selected is not None:
        m = _DOC.match(selected)
        if m and 1 <= int(m.group(1)) <= n_docs:
            index = int(m.group(1))
        elif ok:
            ok, reason = False, f"selected {selected!r} is not Doc 1..Doc {n_docs}"
    if final is not None and ok:
        ok, reason = False, "final_answer before the reasoner answered"
    return VerifierReply(selected is not None, index, response, verify, final, ok, reason)


def reasoner_information(reply: VerifierReply, docs: Sequence[Mapping[str, Any]]) -> str:
    """The reasoner's observation of a verifier reply: the selected document and the response (the raw documents
    when the reply has no response)."""
    if reply.response is None:
        return raw_information(docs)
    parts = []
    if reply.doc_index is not None:
        parts.append(format_docs([docs[reply.doc_index - 1]]).replace("Doc 1(", f"Doc {reply.doc_index}(", 1))
    parts.append(reply.response)
    return "\n<information>" + "\n".join(parts) + "</information>\n"


VERIFIER_CORRECTION = "\nInvalid reply: write <verify>..</verify> then <selected_doc>Doc k</selected_doc> and " \
                      "<response>..</response>, or only <response>..</response>.\n"
EARLY_FINAL_CORRECTION = "\nToo early: give <final_answer> only after the reasoner's <answer>.\n"
REASONER_CORRECTION = "\nInvalid action: write <search>..</search> or <answer>..</answer>.\n"


@dataclass
class EpisodeLog:
    """What happened in one episode, for rewards, metrics and the final generator."""

    answer: str | None = None
    verifier_answer: str | None = None
    final_answer: str | None = None
    turns: int = 0
    searches: int = 0
    finish: str = ""
    invalid_reasoner: int = 0
    invalid_verifier: int = 0
    early_final: int = 0
    verdicts: list[dict] = field(default_factory=list)  # per search: accepted, gold in docs (hop / final answer)
    transcript: list[str] = field(default_factory=list)  # "[Reasoner] ..." / "[Verifier] ..." lines


@dataclass
class ProtocolOptions:
    max_turns: int = 5
    reasoner_tokens: int = 48
    verifier_tokens: int = 48
    final_tokens: int = 24
    temperature: float = 1.0
    prompt_style: str = "short"
    verifier: bool = True
    final_generator: bool = False
    entropy: bool = True


def _check_entropy(comp: Any, want: bool, role: str) -> None:
    if want and comp.token_ids and comp.entropies is None:
        raise ValueError(f"{role}: {ENTROPY_HELP}")


def episode_program(evidence: Any, options: ProtocolOptions):
    """The episode program for `MultiRoleDriver.run`: roles "reasoner", "verifier" (with `options.verifier`) and
    "final" (with `options.final_generator`); the episode's `EpisodeLog` is its result."""
    o = options

    def program(ep):
        rec = ep.record
        golds = [str(g) for g in rec["golden_answers"]]
        log = EpisodeLog()
        ep.start(REASONER, prompt(REASONER, rec, o.prompt_style))
        if o.verifier:
            ep.start(VERIFIER, prompt(VERIFIER, rec, o.prompt_style))
        seen: set[str] = set()
        hop_answers = [str(s.get("answer", "")) for s in rec.get("sub_questions") or []]
        for turn in range(o.max_turns):
            comp = yield GenRequest(REASONER, o.reasoner_tokens, stop=REASONER_STOP, temperature=o.temperature,
                                    entropy=o.entropy)
            _check_entropy(comp, o.entropy, REASONER)
            if not comp.token_ids:
                log.finish = comp.finish_reason or "empty"
                break
            log.turns += 1
            act = parse_reasoner_turn(comp.text, first=turn == 0)
            log.invalid_reasoner += int(not act.valid)
            if act.kind == "answer":
                log.answer = act.content
                log.transcript.append(f"[Reasoner] answer: {act.content}")
                log.finish = "answer"
                break
            if act.kind != "search":
                if ep.ended_on_eos(REASONER, comp):
                    log.finish = "eos"
                    break
                if turn + 1 < o.max_turns:
                    ep.observe(REASONER, REASONER_CORRECTION)
                continue
            log.searches += 1
            if turn + 1 >= o.max_turns:
                break  # no turn left to read the evidence
            docs, dropped = evidence.search(rec, act.content, seen, ep.sample, turn)
            texts = " ".join(str(d.get("contents", "")) for d in docs)
            verdict = {"turn": turn, "dropped": dropped, "final_in_docs": _has(texts, golds),
                       "hop_in_docs": any(_has(texts, [a]) for a in hop_answers if a), "accepted": None}
            log.transcript.append(f"[Reasoner] search: {act.content}")
            if o.verifier:
                ep.observe(VERIFIER, verifier_information(act.think, act.content, docs))
                vcomp = yield GenRequest(VERIFIER, o.verifier_tokens, stop=VERIFIER_STOP, temperature=o.temperature,
                                         entropy=o.entropy)
                _check_entropy(vcomp, o.entropy, VERIFIER)
                reply = parse_verifier_reply(vcomp.text, len(docs), answered=False)
                verdict["accepted"] = reply.accepted
                log.invalid_verifier += int(not reply.valid)
                if reply.final_answer is not None:
                    log.early_final += 1
                    ep.observe(VERIFIER, EARLY_FINAL_CORRECTION)
                elif not reply.valid:
                    ep.observe(VERIFIER, VERIFIER_CORRECTION)
                obs = reasoner_information(reply, docs)
                log.transcript.append(f"[Verifier] {obs.strip()}")
            else:
                obs = raw_information(docs)
                log.transcript.append(f"[Search] {obs.strip()}")
            log.verdicts.append(verdict)
            ep.observe(REASONER, obs)
        else:
            log.finish = "max_turns"
        if not log.finish:
            log.finish = "max_turns"
        if o.verifier and log.answer is not None:
            ep.observe(VERIFIER, f"\n<answer>{log.answer}</answer>\n")
            vcomp = yield GenRequest(VERIFIER, o.verifier_tokens, stop=VERIFIER_STOP, temperature=o.temperature,
                                     entropy=o.entropy)
            _check_entropy(vcomp, o.entropy, VERIFIER)
            reply = parse_verifier_reply(vcomp.text, 0, answered=True)
            log.invalid_verifier += int(not reply.valid)
            log.verifier_answer = reply.final_answer
            log.transcript.append(f"[Verifier] final answer: {reply.final_answer}")
        if o.final_generator:
            ep.start(FINAL, prompt(FINAL, rec, o.prompt_style, "".join(line + "\n" for line in log.transcript)))
            fcomp = yield GenRequest(FINAL, o.final_tokens, stop=("\n", "</answer>"), temperature=o.temperature)
            log.final_answer = fcomp.text.replace("</answer>", "").strip()
        for role, trajs in ep.trajectories.items():
            if role != FINAL:
                trajs[-1].finish_reason = log.finish
        return log

    return program


def _has(text: str, golds: Sequence[str]) -> bool:
    from arr.rewards import gold_in

    return gold_in(text, golds)
