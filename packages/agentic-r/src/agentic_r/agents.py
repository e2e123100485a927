"""Search agents in the Search-R1 format, played in lock-step against the shared search service.

A turn is text ending in `<search>q</search>` or `<answer>a</answer>`; `shared.rollout.SearchEnv` turns each search
into `<information>Doc i(Title: t) text</information>`. Agents only map (question, transcript so far) to the next
turn, so a rollout can be resumed from any prefix, which is what global utility needs (the observation of one
search turn replaced by a single candidate passage, then the agent continues).

- `KBReaderAgent`: a deterministic reader for the synthetic knowledge base (CPU runs). It reads the relation chain
  off the question's wording, searches one sub-question per hop, and extracts the hop's answer span from the
  observation: the object of a sentence stating that relation about the current entity, else (answer-span
  heuristic) the object of the first sentence stating that relation about anyone. It re-searches a hop once when
  nothing matches. It has no weights: "agent training" does not apply to it.
- `GeneratorAgent`: any `shared.generation` model (HF or vLLM) prompted with the Search-R1 instruction.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.synthetic.kb import RELATIONS, TEMPLATES
from shared.generation import SamplingParams
from shared.retrieval import SearchServiceError
from shared.rewards import exact_match, f1_score
from shared.rollout.envs import ActionError, SearchEnv, parse_action

from agentic_r.data import retriever_query

SEARCH_R1_PROMPT = (
    "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get "
    "new information. After reasoning, if you find you lack some knowledge, you can call a search engine by "
    "<search> query </search> and it will return the top searched results between <information> and "
    "</information>. You can search as many times as you want. If you find no further external knowledge needed, "
    "you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For "
    "example, <answer> Beijing </answer>. Question: {question}\n"
)
_INFO = re.compile(r"<information>(.*?)</information>", re.DOTALL)
_DOC_LINE = re.compile(r"^Doc \d+\(Title: (.*?)\) ?(.*)$")
UNKNOWN = "unknown"


class Agent(Protocol):
    name: str

    def next_turns(self, items: Sequence[tuple[str, str]]) -> list[str]:
        """The next turn's text for each (question, transcript) pair."""
        ...


class ServiceSearch:
    """The search tool of the agents: a `SearchClient` (or any retriever) with Agentic-R's query input.

    It flattens the service's `{"document": {...}, "score"}` entries into `{"id", "contents", "score"}` (the shape
    `SearchEnv` reads), prepends `question [SEP]` to the agent's query when `with_question` is set, and memoises
    answers so a lock-step batch can be fetched with one request (`prefetch`).
    """

    def __init__(self, client: Any, with_question: bool = True) -> None:
        self.client = client
        self.with_question = with_question
        self.memo: dict[tuple[str, int], list[dict]] = {}
        self.requests = 0

    def _flatten(self, hits: list) -> list[dict]:
        out = []
        for hit in hits:
            if not isinstance(hit, Mapping):
                raise SearchServiceError(f"search service returned a non-object hit: {str(hit)[:100]}")
            doc = hit.get("document", hit)
            out.append({"id": doc.get("id"), "contents": doc.get("contents", ""), "score": hit.get("score")})
        return out

    def prefetch(self, queries: Sequence[str], topk: int) -> None:
        todo = list(dict.fromkeys(q for q in queries if (q, topk) not in self.memo))
        if todo:
            self.requests += 1
            for query, hits in zip(todo, self.client.retrieve(todo, topk=topk)):
                self.memo[(query, topk)] = self._flatten(hits)

    def for_question(self, question: str) -> _QuestionSearch:
        return _QuestionSearch(self, question)


class _QuestionSearch:
    """The retriever one episode's SearchEnv sees: it knows the episode's question."""

    def __init__(self, search: ServiceSearch, question: str) -> None:
        self.search, self.question = search, question

    def full_query(self, query: str) -> str:
        return retriever_query(self.question, query, self.search.with_question)

    def retrieve(self, queries: Sequence[str], topk: int = 3) -> list[list[dict]]:
        full = [self.full_query(q) for q in queries]
        self.search.prefetch(full, topk)
        return [self.search.memo[(q, topk)] for q in full]


def parse_observation(text: str) -> list[tuple[str, str]]:
    """(title, text) per `Doc i(Title: t) text` line of one information block."""
    docs = []
    for line in text.strip().splitlines():
        m = _DOC_LINE.match(line.strip())
        if m:
            docs.append((m.group(1).strip().strip('"'), m.group(2)))
    return docs


def _relation_regex(rel: str, subject: str | None) -> re.Pattern:
    """Regex for the relation's sentence; the subject is fixed (strict) or free (any subject)."""
    subject_pattern = re.escape(subject) if subject is not None else r"[^.]+?"
    pattern = re.escape(RELATIONS[rel][2]).replace(r"\{s\}", subject_pattern).replace(r"\{o_of\}", subject_pattern)
    return re.compile(pattern.replace(r"\{o\}", r"(?P<o>[^.]+?)") + r"(?: |$)")


def read_answer(observation: str, relation: str, subject: str) -> str | None:
    """The hop's answer span in an observation: strict (about `subject`) first, then any sentence of the relation."""
    docs = parse_observation(observation)
    for strict in (True, False):
        regex = _relation_regex(relation, subject if strict else None)
        for _, text in docs:
            m = regex.search(text)
            if m:
                return m.group("o").strip()
    return None


def parse_kb_question(question: str) -> tuple[tuple[str, ...], str] | None:
    """(relation chain, start entity) from the question's wording; the most specific template wins."""
    best = None
    for chain, template in TEMPLATES.items():
        m = re.fullmatch(re.escape(template).replace(r"\{s\}", "(.+)"), question.strip())
        if m and (best is None or len(m.group(1)) < len(best[1])):
            best = (chain, m.group(1))
    return best


@dataclass
class ReaderState:
    """What the reader learnt from a transcript: entity reached, hops done, finding per search, retries."""

    node: str
    hop: int
    findings: list[str | None] = field(default_factory=list)
    failed_tries: int = 0


def reader_state(chain: Sequence[str], start: str, transcript: str) -> ReaderState:
    """Replay the reader over a transcript's observations."""
    state = ReaderState(start, 0)
    for block in _INFO.findall(transcript):
        if state.hop >= len(chain):
            state.findings.append(None)
            continue
        found = read_answer(block, chain[state.hop], state.node)
        state.findings.append(found)
        if found:
            state.node, state.hop, state.failed_tries = found, state.hop + 1, 0
        else:
            state.failed_tries += 1
    return state


class KBReaderAgent:
    """Deterministic answer-span reader for the synthetic knowledge base (see module docstring)."""

    name = "kb-reader-agent (deterministic)"

    def __init__(self, max_retries: int = 1) -> None:
        self.max_retries = max_retries

    def next_turn(self, question: str, transcript: str) -> str:
        parsed = parse_kb_question(question)
        if parsed is None:
            return f"<think>I cannot break this question down.</think>\n<answer>{UNKNOWN}</answer>"
        chain, start = parsed
        state = reader_state(chain, start, transcript)
        note = ""
        if state.findings:
            last = state.findings[-1]
            note = f"<think>The documents say: {last}.</think>\n" if last else "<think>No answer in them.</think>\n"
        if state.hop >= len(chain):
            return f"{note}<answer>{state.node}</answer>"
        if state.failed_tries > self.max_retries:
            return f"{note}<answer>{UNKNOWN}</answer>"
        sub_question = RELATIONS[chain[state.hop]][3].format(s=state.node)
        return f"{note}<think>I need to find out: {sub_question}</think>\n<search>{sub_question}</search>"

    def next_turns(self, items: Sequence[tuple[str, str]]) -> list[str]:
        return [self.next_turn(q, t) for q, t in items]


class GeneratorAgent:
    """A `shared.generation.Generator` prompted in the Search-R1 format (greedy unless temperature > 0)."""

    def __init__(
        self,
        generator: Any,
        name: str = "llm-agent",
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        prompt: str = SEARCH_R1_PROMPT,
    ) -> None:
        self.generator, self.name, self.prompt = generator, name, prompt
        self.params = SamplingParams(
            max_new_tokens=max_new_tokens, temperature=temperature, stop=("</search>", "</answer>")
        )

    def next_turns(self, items: Sequence[tuple[str, str]]) -> list[str]:
        prompts = [self.prompt.format(question=q) + t for q, t in items]
        return [outs[0].text for outs in self.generator.generate(prompts, self.params)]


@dataclass
class _Episode:
    record: Mapping[str, Any]
    env: SearchEnv
    transcript: str
    searches: int
    turns: list[dict] = field(default_factory=list)
    answer: str | None = None
    finish: str = ""
    steps: int = 0


def play(
    agent: Agent,
    records: Sequence[Mapping[str, Any]],
    search: ServiceSearch,
    topk: int = 3,
    max_searches: int = 5,
    max_turns: int = 8,
    starts: Sequence[tuple[str, int]] | None = None,
    on_turn: Callable[[int], None] | None = None,
) -> list[dict]:
    """Play one episode per record in lock-step; every search turn is recorded with its prefix and doc ids.

    `starts` gives, per record, a transcript to resume from and the searches it already used (global utility).
    Returns rollout dicts: id, question, golden_answers, turns [{query, retriever_query, doc_ids, prefix}],
    answer, text, em, f1, num_searches, finish.
    """
    episodes = []
    for i, record in enumerate(records):
        transcript, used = starts[i] if starts is not None else ("", 0)
        env = SearchEnv(search.for_question(record["question"]), topk=topk)
        env.reset(record)
        episodes.append(_Episode(record, env, transcript, used))
    while True:
        active = [e for e in episodes if not e.finish]
        if not active:
            break
        texts = agent.next_turns([(e.record["question"], e.transcript) for e in active])
        actions = [parse_action(t, SearchEnv.tags) for t in texts]
        queries = [
            e.env.retriever.full_query(a.content)
            for e, a in zip(active, actions)
            if a is not None and a.kind == "search" and a.content and e.searches < max_searches
        ]
        search.prefetch(queries, topk)
        for ep, text, action in zip(active, texts, actions):
            _advance(ep, text, action, max_searches, max_turns)
        if on_turn is not None:
            on_turn(len(active))
    return [_rollout(e) for e in episodes]


def _advance(ep: _Episode, text: str, action, max_searches: int, max_turns: int) -> None:
    ep.steps += 1
    if action is not None:
        end_tag = f"</{action.kind}>"  # drop anything written after the action's closing tag
        text = text[: text.rfind(end_tag) + len(end_tag)]
    prefix = ep.transcript + text
    ep.transcript = prefix
    if action is None:
        ep.finish = "no_action"
        return
    if action.kind == "search" and ep.searches >= max_searches:
        ep.finish = "search_budget"
        return
    try:
        result = ep.env.step(action)
    except ActionError:
        ep.finish = "invalid_action"
        return
    if result.done:
        ep.answer, ep.finish = result.info.get("answer", ""), "answer"
        return
    if action.kind == "search" and result.info.get("query"):
        ep.searches += 1
        ep.turns.append({
            "query": result.info["query"],
            "retriever_query": ep.env.retriever.full_query(result.info["query"]),
            "doc_ids": [str(d) for d in result.info.get("doc_ids", [])],
            "prefix": prefix,
        })  # fmt: skip
    ep.transcript += result.observation
    if ep.steps >= max_turns:
        ep.finish = "max_turns"


def _rollout(ep: _Episode) -> dict:
    golds = list(ep.record["golden_answers"])
    answer = ep.answer if ep.answer is not None else ""
    return {
        "id": ep.record["id"],
        "question": ep.record["question"],
        "golden_answers": golds,
        "turns": ep.turns,
        "answer": answer,
        "text": ep.transcript,
        "em": exact_match(answer, golds),
        "f1": f1_score(answer, golds),
        "num_searches": ep.searches,
        "finish": ep.finish,
    }
