"""Local utility: a listwise judge scores candidate passages 0-100 for one search turn.

Agentic-R asks an LLM to rate 10 passages per prompt against a rubric, using the sub-answer of that search turn as
the reference unless it is "Not Sure"; u_loc = clip(score, 0, 100) / 100, and a reply that cannot be parsed drops
the whole search turn (`JudgeParseFailure`). Two judges share that contract:
- `LLMListwiseJudge`: any text completer (an OpenAI-compatible endpoint through `shared.rewards.JudgeClient`, or a
  local `shared.generation` model) reading the rubric prompt below;
- `LexicalJudge`: a deterministic CPU stand-in (term coverage of the sub-query plus presence of the sub-answer),
  named "lexical-judge" wherever its labels are used.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.rewards import normalize_answer

NOT_SURE = "Not Sure"
PASSAGES_PER_PROMPT = 10

RUBRIC_PROMPT = (
    "You judge how useful each passage is for answering a search query issued while solving a question.\n"
    "Question: {question}\nSearch query: {query}\n{reference}"
    "Score every passage from 0 to 100:\n"
    "100 = states the answer to the search query directly; 70 = strongly related and mostly answers it;\n"
    "40 = on the topic but does not answer it; 10 = mentions an entity of the query only; 0 = irrelevant.\n"
    "Passages:\n{passages}\n"
    "Reply with exactly one line per passage in the form [i] score, for i = 1..{n}, and nothing else."
)
_SCORE_LINE = re.compile(r"\[\s*(\d+)\s*\]\s*(?:[:=]|-(?=\s))?\s*(-?\d+(?:\.\d+)?)")  # "-5" is a score, "- 5" not
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an the of in on at to for is was were be by and or with which what who whom where when how does do did "
    "that this from as its it official".split()
)


class JudgeParseFailure(ValueError):
    """A judge reply without a readable score for every passage; the search turn is dropped."""


def clip_utility(score: float) -> float:
    """u_loc = clip(score, 0, 100) / 100."""
    return min(max(float(score), 0.0), 100.0) / 100.0


def parse_listwise_scores(reply: str, n: int) -> list[float]:
    """Scores of passages 1..n from lines `[i] score` (the last line for an index wins), clipped to [0, 1].

    Raises JudgeParseFailure when any index 1..n has no score or an index outside 1..n appears.
    """
    if not isinstance(reply, str):
        raise JudgeParseFailure(f"judge reply must be text, got {type(reply).__name__}")
    found: dict[int, float] = {}
    for match in _SCORE_LINE.finditer(reply):
        index = int(match.group(1))
        if not 1 <= index <= n:
            raise JudgeParseFailure(f"judge scored passage [{index}] but only 1..{n} were shown")
        found[index] = float(match.group(2))
    missing = [i for i in range(1, n + 1) if i not in found]
    if missing:
        raise JudgeParseFailure(f"judge reply has no score for passage(s) {missing}: {reply[:120]!r}")
    return [clip_utility(found[i]) for i in range(1, n + 1)]


def build_listwise_prompt(question: str, query: str, sub_answer: str, passages: Sequence[str]) -> str:
    """The rubric prompt for one chunk of passages; the sub-answer is the reference unless it is Not Sure."""
    reference = "" if is_not_sure(sub_answer) else f"Reference answer to the search query: {sub_answer}\n"
    listing = "\n".join(f"[{i + 1}] {p}" for i, p in enumerate(passages))
    return RUBRIC_PROMPT.format(question=question, query=query, reference=reference, passages=listing, n=len(passages))


def is_not_sure(sub_answer: str | None) -> bool:
    return sub_answer is None or sub_answer.strip().lower() in ("", "not sure")


@dataclass
class JudgeStats:
    prompts: int = 0
    parse_failures: int = 0


class LLMListwiseJudge:
    """Listwise judge over a text completer `complete(prompt) -> reply` (10 passages per prompt)."""

    name = "llm-listwise-judge"

    def __init__(self, complete: Callable[[str], str], per_prompt: int = PASSAGES_PER_PROMPT) -> None:
        if per_prompt < 1:
            raise ValueError(f"per_prompt must be >= 1, got {per_prompt}")
        self.complete = complete
        self.per_prompt = per_prompt
        self.stats = JudgeStats()

    def score(self, question: str, query: str, sub_answer: str, passages: Sequence[str]) -> list[float]:
        """u_loc for every passage; JudgeParseFailure if any chunk's reply is unreadable."""
        out: list[float] = []
        for start in range(0, len(passages), self.per_prompt):
            chunk = list(passages[start : start + self.per_prompt])
            self.stats.prompts += 1
            reply = self.complete(build_listwise_prompt(question, query, sub_answer, chunk))
            try:
                out.extend(parse_listwise_scores(reply, len(chunk)))
            except JudgeParseFailure:
                self.stats.parse_failures += 1
                raise
        return out


def content_terms(text: str) -> set[str]:
    """Lower-cased word tokens of a text without stopwords."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


class LexicalJudge:
    """Deterministic CPU judge: 100 x (coverage of the sub-query's terms, averaged with the sub-answer's presence).

    With a reference: score = 50 * coverage + 50 * [normalised sub-answer occurs in the passage]; without
    ("Not Sure"): score = 100 * coverage. It reads passages the way the rubric asks (does it answer this query)
    but knows no semantics; it stands in for an LLM judge in CPU runs only.
    """

    name = "lexical-judge"

    def __init__(self) -> None:
        self.stats = JudgeStats()

    def score(self, question: str, query: str, sub_answer: str, passages: Sequence[str]) -> list[float]:
        terms = content_terms(query)
        answer = "" if is_not_sure(sub_answer) else normalize_answer(sub_answer)
        self.stats.prompts += -(-len(passages) // PASSAGES_PER_PROMPT)
        scores = []
        for passage in passages:
            words = content_terms(passage)
            coverage = len(terms & words) / len(terms) if terms else 0.0
            if answer:
                present = f" {answer} " in f" {normalize_answer(passage)} "
                scores.append(clip_utility(50.0 * coverage + 50.0 * present))
            else:
                scores.append(clip_utility(100.0 * coverage))
        return scores
