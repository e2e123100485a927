"""The five roles' parsers with the release's legality rules, and the fallback each illegal output takes.

Every parser returns a `Parsed` (legal or not, the reasons, whether a fallback acted, and what the output does).
Tags are matched case-insensitively and the FIRST block of a tag is used (the release's `re.search`); a second block
only makes the output illegal. An illegal output costs its caller the format penalty (`rewards.py`); what it does:

| role | illegal when | acts as |
|---|---|---|
| plan | text outside `<qN>`/`<aN>`/`<final_answer>`, q/a not in order q1 a1 q2 a2 ..., no q/a tags, > 5 sub-questions, duplicate sub-questions | its tags as parsed; no `<final_answer>` -> the unknown marker |
| search | not exactly one `<search>` or `<end>`, text outside, an empty query | the first query; without one: `<end>` |
| summary | not exactly one `<evidence>`, text outside, over 75 words | the first evidence, kept even when too long; without one: "No useful information" |
| update | not exactly one `<Update>ti</Update>` (ti an existing slot) or `<Add>t(n+1)</Add>` (no leading zero), text outside | a legal action; anything illegal: `<Add>t(n+1)</Add>` |
| answer | not exactly one `<final_answer>`, text outside | the first answer; without one: "" (F1 0) |

`mode="release"` adds the release's lenient text fallbacks for outputs without a usable tag (defect 1 in the design
note): a plan from `a: b` lines and its last line as final answer; the first line (letters and digits, 200 chars) as
search query; the first line, or the document sentence sharing most words with the query, as evidence; the first
line as answer, else the "population" heuristic left over from an example (the slot whose answer holds the largest
number, its question stripped of "What is the population of"), else the first slot's answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PARSE_MODES = ("strict", "release")
NO_INFO = "No useful information"
_FLAGS = re.DOTALL | re.IGNORECASE
_Q = re.compile(r"<q(\d+)>(.*?)</q\1>", _FLAGS)
_A = re.compile(r"<a(\d+)>(.*?)</a\1>", _FLAGS)
_FINAL = re.compile(r"<final_answer>(.*?)</final_answer>", _FLAGS)
_PLAN_ALLOWED = re.compile(r"<q\d+>.*?</q\d+>|<a\d+>.*?</a\d+>|<final_answer>.*?</final_answer>", _FLAGS)
_QA_OPEN = re.compile(r"<\s*(q|a)(\d+)\s*>", re.IGNORECASE)
_SEARCH = re.compile(r"<search>(.*?)</search>", _FLAGS)
_END = re.compile(r"<end>", re.IGNORECASE)
_EVIDENCE = re.compile(r"<evidence>(.*?)</evidence>", _FLAGS)
_UPDATE = re.compile(r"<Update>(.*?)</Update>", _FLAGS)
_ADD = re.compile(r"<Add>(.*?)</Add>", _FLAGS)
_SLOT = re.compile(r"t([1-9]\d*)")
_POPULATION = re.compile(r"^What is the population of\s+", re.IGNORECASE)


@dataclass
class Parsed:
    """What one role's output does. `fallback` is True when no usable tag was found and the fallback acted."""

    role: str
    legal: bool = True
    reasons: list[str] = field(default_factory=list)
    fallback: bool = False
    action: str = ""  # search: search | end; update: update | add
    query: str = ""
    evidence: str = ""
    target: str = ""
    answer: str = ""  # plan: final answer; answer: the answer
    slots: list[tuple[str, str]] = field(default_factory=list)  # plan: (sub-question, sub-answer)

    def illegal(self, reason: str) -> None:
        self.legal = False
        if reason not in self.reasons:
            self.reasons.append(reason)


def check_mode(mode: str) -> None:
    if mode not in PARSE_MODES:
        raise ValueError(f"parse.mode must be one of {PARSE_MODES}, got {mode!r}")


def _outside(text: str, *patterns: re.Pattern) -> bool:
    """True when something other than whitespace remains after removing every block of the patterns."""
    for pattern in patterns:
        text = pattern.sub("", text)
    return bool(text.strip())


def _snippet(text: str) -> str:
    """The release's fallback snippet: the first line, 200 characters, letters and digits only."""
    first = text.strip().split("\n")[0][:200]
    return re.sub(r"\s+", " ", re.sub(r"[^a-zA-Z0-9\u4e00-\u9fa5\s]", " ", first)).strip()


def parse_plan(text: str, question: str, mode: str = "strict", unknown: str = "unkown") -> Parsed:
    """Sub-questions, sub-answers and the final answer of a planning output, with the release's four rules."""
    check_mode(mode)
    out = Parsed("plan")
    if not text.strip():
        out.illegal("empty output")
        out.fallback = True
        out.slots, out.answer = [(question, unknown)], unknown
        return out
    qs = {int(n): body.strip() for n, body in _Q.findall(text)}
    ans = {int(n): body.strip() for n, body in _A.findall(text)}
    if not qs and not ans:
        out.illegal("no <qN>/<aN> tags")
        out.fallback = True
        if mode == "release":  # lines "sub-question: answer"
            lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
            out.slots = [(q, a or unknown) for q, _, a in (line.partition(":") for line in lines) if _]
    else:
        out.slots = [(qs.get(i, ""), ans.get(i, unknown)) for i in sorted(set(qs) | set(ans))]
    final = _FINAL.search(text)
    if final:
        out.answer = final.group(1).strip() or unknown
    elif mode == "release":  # the last line stands for the final answer
        lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
        out.answer = lines[-1] if lines and len(lines[-1]) <= 500 else unknown
    else:
        out.answer = unknown
    if re.sub(r"\s+", "", text) != re.sub(r"\s+", "", "".join(_PLAN_ALLOWED.findall(text))):
        out.illegal("text outside the plan's tags")
    order = [(kind.lower(), int(n)) for kind, n in _QA_OPEN.findall(text)]
    if order:
        expected = [(kind, i) for i in range(1, max(n for _, n in order) + 1) for kind in ("q", "a")]
        if order != expected[: len(order)]:
            out.illegal("sub-questions out of order (q1 a1 q2 a2 ...)")
    questions = [q for q, _ in out.slots]
    if len(questions) > 5:
        out.illegal("more than 5 sub-questions")
    elif len(set(questions)) < len(questions):
        out.illegal("duplicate sub-questions")
    return out


def parse_search(text: str, mode: str = "strict") -> Parsed:
    """`<search>query</search>` -> search, `<end>` -> end; the first `<search>` wins over a later one."""
    check_mode(mode)
    out = Parsed("search")
    if not text.strip():
        out.illegal("empty output")
        out.fallback, out.action = True, "end"
        return out
    blocks = _SEARCH.findall(text)
    if len(blocks) > 1:
        out.illegal("more than one <search>")
    if _outside(text, _SEARCH, _END):
        out.illegal("text outside <search>/<end>")
    if blocks:
        out.action, out.query = "search", blocks[0].strip()
        if not out.query:
            out.illegal("empty query")
            if mode == "strict":
                out.fallback, out.action = True, "end"
        return out
    if _END.search(text):
        out.action = "end"
        return out
    out.illegal("no <search> or <end>")
    out.fallback = True
    snippet = _snippet(text) if mode == "release" else ""
    out.action, out.query = ("search", snippet) if snippet else ("end", "")
    return out


def parse_summary(text: str, query: str = "", docs: Sequence[str] = (), mode: str = "strict",
                  max_words: int = 75) -> Parsed:
    """The evidence of a summary output; over `max_words` words it is illegal but kept."""
    check_mode(mode)
    out = Parsed("summary")
    if not text.strip():
        out.illegal("empty output")
        out.fallback, out.evidence = True, NO_INFO
        return out
    blocks = _EVIDENCE.findall(text)
    if len(blocks) > 1:
        out.illegal("more than one <evidence>")
    if _outside(text, _EVIDENCE):
        out.illegal("text outside <evidence>")
    if blocks:
        out.evidence = blocks[0].strip()
        if len(out.evidence.split()) > max_words:
            out.illegal(f"evidence over {max_words} words")
        return out
    out.illegal("no <evidence>")
    out.fallback, out.evidence = True, NO_INFO
    if mode == "release":
        out.evidence = _release_evidence(text, query, docs)
    return out


def _release_evidence(text: str, query: str, docs: Sequence[str]) -> str:
    snippet = _snippet(text)
    if snippet:
        if any(k in snippet.lower() for k in ("no useful", "unknown", "none", "unavailable")):
            return NO_INFO
        return snippet
    terms = [t for t in query.split() if t]
    best, best_score = "", 0
    for doc in docs:
        for sentence in re.split(r"[。.!?]", doc):
            score = sum(1 for t in terms if t.lower() in sentence.lower())
            if score > best_score:
                best, best_score = sentence.strip(), score
    return best if best and best_score > 0 else NO_INFO


def parse_update(text: str, keys: Sequence[str]) -> Parsed:
    """`<Update>ti</Update>` (ti a slot) or `<Add>t(n+1)</Add>`; every illegal output becomes Add t(n+1)."""
    out = Parsed("update")
    n = len(keys)
    updates, adds = _UPDATE.findall(text), _ADD.findall(text)
    if not text.strip():
        out.illegal("empty output")
    if len(updates) > 1 or len(adds) > 1:
        out.illegal("more than one <Update> or <Add>")
    if updates and adds:
        out.illegal("both <Update> and <Add>")
    if _outside(text, _UPDATE, _ADD):
        out.illegal("text outside <Update>/<Add>")
    if updates:
        out.action, out.target = "update", updates[0].strip()
        if out.target not in keys:
            out.illegal(f"<Update> of a slot that does not exist ({out.target!r})")
    elif adds:
        out.action, out.target = "add", adds[0].strip()
        slot = _SLOT.fullmatch(out.target)
        if slot is None:
            out.illegal(f"<Add> target {out.target!r} is not t<number> without leading zeros")
        elif int(slot.group(1)) != n + 1:
            out.illegal(f"<Add> target {out.target!r} is not t{n + 1}")
    elif text.strip():
        out.illegal("no <Update> or <Add>")
    if not out.legal:
        out.fallback = not updates and not adds
        out.action, out.target = "add", f"t{n + 1}"
    return out


def parse_answer(text: str, slots: Sequence[tuple[str, str]] = (), mode: str = "strict") -> Parsed:
    """The answer of an answer output (first `<final_answer>`); without one: "" (strict) or the release fallbacks."""
    check_mode(mode)
    out = Parsed("answer")
    if not text.strip():
        out.illegal("empty output")
    else:
        blocks = _FINAL.findall(text)
        if len(blocks) > 1:
            out.illegal("more than one <final_answer>")
        if _outside(text, _FINAL):
            out.illegal("text outside <final_answer>")
        if blocks:
            out.answer = blocks[0].strip()
            return out
        out.illegal("no <final_answer>")
        if mode == "release":
            out.answer = text.split("\n")[0].strip()
    out.fallback = True
    if mode == "release" and not out.answer:
        out.answer = population_heuristic(slots)
    return out


def population_heuristic(slots: Sequence[tuple[str, str]]) -> str:
    """The release's last resort: the question (minus "What is the population of") of the slot whose answer starts
    with the largest number; without numbers, the first slot's answer."""
    best, best_value = "", float("-inf")
    for question, answer in slots:
        numbers = re.findall(r"[\d\.]+", answer.replace(",", ""))
        if not numbers:
            continue
        try:
            value = float(numbers[0])
        except ValueError:  # "1.2.3" and the like
            continue
        if value > best_value:
            best_value, best = value, _POPULATION.sub("", question)
    if best:
        return best
    return slots[0][1] if slots else ""


def slot_pairs(slots: Mapping[str, object]) -> list[tuple[str, str]]:
    """(question, answer) pairs of memory slots given as `Slot`s or [question, answer] lists."""
    pairs = []
    for value in slots.values():
        if isinstance(value, Sequence) and not isinstance(value, str):
            pairs.append((str(value[0]), str(value[1])))
        else:
            pairs.append((str(value.question), str(value.answer)))  # type: ignore[attr-defined]
    return pairs
