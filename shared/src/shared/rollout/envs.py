"""Environments for multi-turn rollouts and the parsing of the policy's actions.

An environment has `reset(record)` and `step(action) -> StepResult(observation, done, reward, info)`. The agent
loop cuts each generated turn at a stop tag, `parse_action` turns the turn's text into an `Action` (the last
complete `<tag>...</tag>` among the environment's tags), and the environment answers with observation text that the
loop appends with loss mask 0.

- `SearchEnv`: `<search>query</search>` -> top-k passages from any object with `retrieve(queries, topk)` (a
  `shared.retrieval.Retriever` or `SearchClient`), formatted as Search-R1's `<information>Doc 1(Title: ...) ...`
  (`observation_template` changes the wrapper); `<answer>...</answer>` ends the episode. `query_fn(record, query)`
  rewrites the query per episode before retrieval (e.g. prepends the question); `info["docs"]` holds the retrieved
  documents ({id, contents, ...}) for rewards and other roles.
- `ToolEnv`: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (Hermes/Qwen format, several per turn
  allowed) -> `<tool_response>` per call. Tools are trusted Python callables, or code strings that run only in
  `shared.sandbox`; `<python>code</python>` runs model-written code in the sandbox. `<answer>` ends the episode.
Malformed actions never raise: they produce an observation that says what was wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class ActionError(ValueError):
    """An action the environment cannot execute; the message goes back to the policy as an observation."""


@dataclass
class Action:
    kind: str  # the tag name: "search", "answer", "tool_call", "python", ...
    content: str  # text between the tags, stripped
    raw: str  # the whole turn text, for environments that read several tags of one turn


@dataclass
class StepResult:
    observation: str
    done: bool
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Env(Protocol):
    """What the agent loop needs from an environment."""

    tags: Sequence[str]

    def reset(self, record: Mapping[str, Any]) -> None: ...

    def step(self, action: Action) -> StepResult: ...


def _tag_regex(tag: str) -> re.Pattern:
    return re.compile(rf"<{re.escape(tag)}>(.*?)</{re.escape(tag)}>", re.DOTALL)


def parse_action(text: str, tags: Sequence[str]) -> Action | None:
    """The complete `<tag>...</tag>` among `tags` that ends last in `text`, or None when there is none."""
    best: tuple[int, str, str] | None = None
    for tag in tags:
        for m in _tag_regex(tag).finditer(text):
            if best is None or m.end() > best[0]:
                best = (m.end(), tag, m.group(1))
    if best is None:
        return None
    return Action(kind=best[1], content=best[2].strip(), raw=text)


def parse_tool_call(content: str) -> dict[str, Any]:
    """Parse one tool call body `{"name": str, "arguments": {...}}`; raise ActionError saying what is wrong."""
    try:
        call = json.loads(content)
    except json.JSONDecodeError as err:
        raise ActionError(f"tool call is not valid JSON ({err.msg} at char {err.pos})") from None
    if not isinstance(call, dict):
        raise ActionError("tool call must be a JSON object with 'name' and 'arguments'")
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ActionError("tool call needs a non-empty string field 'name'")
    args = call.get("arguments", {})
    if isinstance(args, str):  # some models write the arguments as a JSON string
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            raise ActionError(f"tool call '{name}': field 'arguments' is a string that is not JSON") from None
    if not isinstance(args, dict):
        raise ActionError(f"tool call '{name}': field 'arguments' must be a JSON object")
    return {"name": name, "arguments": args}


def parse_tool_calls(text: str) -> list[dict[str, Any] | ActionError]:
    """All `<tool_call>` bodies of a turn in order; a malformed one is returned as its ActionError."""
    out: list[dict[str, Any] | ActionError] = []
    for m in _tag_regex("tool_call").finditer(text):
        try:
            out.append(parse_tool_call(m.group(1).strip()))
        except ActionError as err:
            out.append(err)
    return out


SEARCH_R1_TEMPLATE = "\n\n<information>{docs}</information>\n\n"


class SearchEnv:
    """Search-R1 style environment over a retriever; reward comes from `answer_reward(answer, record)` if given.

    `observation_template` wraps the formatted documents (`{docs}`; `{query}` is the query as written); `query_fn`
    maps (record, query) to the query sent to the retriever."""

    tags = ("search", "answer")

    def __init__(
        self,
        retriever: Any,
        topk: int = 3,
        answer_reward: Callable[[str, Mapping[str, Any]], float] | None = None,
        max_query_chars: int = 512,
        observation_template: str = SEARCH_R1_TEMPLATE,
        query_fn: Callable[[Mapping[str, Any], str], str] | None = None,
    ) -> None:
        if not hasattr(retriever, "retrieve"):
            raise TypeError(f"SearchEnv needs an object with retrieve(queries, topk); got {type(retriever).__name__}")
        if "{docs}" not in observation_template:
            raise ValueError(f"SearchEnv observation_template must contain {{docs}}, got {observation_template!r}")
        self.retriever = retriever
        self.topk = topk
        self.answer_reward = answer_reward
        self.max_query_chars = max_query_chars
        self.observation_template = observation_template
        self.query_fn = query_fn
        self.record: Mapping[str, Any] = {}
        self.queries: list[str] = []

    def reset(self, record: Mapping[str, Any]) -> None:
        self.record = record
        self.queries = []

    @staticmethod
    def unwrap(hit: Mapping[str, Any]) -> Mapping[str, Any]:
        """A hit as a document: `Retriever` gives {id, contents, score}; the Search-R1 service (and so
        `SearchClient`) wraps it as {"document": {id, contents}, "score": s}."""
        doc = hit.get("document")
        return doc if isinstance(doc, Mapping) else hit

    @staticmethod
    def format_docs(docs: Sequence[Mapping[str, Any]]) -> str:
        lines = []
        for i, doc in enumerate(docs):
            contents = str(doc.get("contents", ""))
            title, _, body = contents.partition("\n")
            lines.append(f"Doc {i + 1}(Title: {title}) {body}".rstrip())
        return "\n".join(lines)

    def step(self, action: Action) -> StepResult:
        if action.kind == "answer":
            reward = self.answer_reward(action.content, self.record) if self.answer_reward else 0.0
            return StepResult("", True, float(reward), {"answer": action.content})
        if action.kind != "search":
            raise ActionError(f"unknown action <{action.kind}>; use <search>query</search> or <answer>...</answer>")
        query = action.content[: self.max_query_chars]
        if not query:
            obs = self.observation_template.format(docs="Empty search query.", query="")
            return StepResult(obs, False, 0.0, {"query": "", "docs": [], "doc_ids": []})
        self.queries.append(query)
        sent = self.query_fn(self.record, query) if self.query_fn is not None else query
        if not isinstance(sent, str):
            raise TypeError(f"SearchEnv query_fn must return a string, got {type(sent).__name__}")
        docs = [dict(self.unwrap(hit)) for hit in self.retriever.retrieve([sent], topk=self.topk)[0]]
        obs = self.observation_template.format(docs=self.format_docs(docs), query=query)
        info = {"query": query, "doc_ids": [d.get("id") for d in docs], "docs": docs}
        if sent != query:
            info["retrieval_query"] = sent
        return StepResult(obs, False, 0.0, info)


class ToolEnv:
    """Tool-calling environment. `tools` maps names to Python callables (trusted code written by us) or to source
    strings defining a function of that name (untrusted: executed only through shared.sandbox.call_function)."""

    tags = ("tool_call", "python", "answer")

    def __init__(
        self,
        tools: Mapping[str, Callable[..., Any] | str],
        timeout_s: float = 5.0,
        memory_mb: int = 512,
        answer_reward: Callable[[str, Mapping[str, Any]], float] | None = None,
        max_response_chars: int = 2000,
    ) -> None:
        self.tools = dict(tools)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.answer_reward = answer_reward
        self.max_response_chars = max_response_chars
        self.record: Mapping[str, Any] = {}
        self.calls: list[dict[str, Any]] = []

    def reset(self, record: Mapping[str, Any]) -> None:
        self.record = record
        self.calls = []

    def _run_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        if name not in self.tools:
            raise ActionError(f"unknown tool '{name}'; available: {sorted(self.tools)}")
        tool = self.tools[name]
        if callable(tool):
            try:
                return tool(**arguments)
            except Exception as err:  # wrong arguments or a value the tool rejects: the policy sees the error
                raise ActionError(f"tool '{name}' failed: {type(err).__name__}: {err}") from None
        from shared.sandbox import SandboxError, call_function

        try:
            return call_function(tool, name, arguments, timeout_s=self.timeout_s, memory_mb=self.memory_mb)
        except SandboxError as err:
            res = getattr(err, "result", None)
            detail = f"{res.status}: {res.stderr.strip()[-300:]}" if res is not None else str(err)
            raise ActionError(f"tool '{name}' failed ({detail})") from None
        except ValueError as err:  # arguments that JSON cannot carry
            raise ActionError(f"tool '{name}': {err}") from None

    def _response(self, body: str) -> str:
        return f"\n<tool_response>\n{body[: self.max_response_chars]}\n</tool_response>\n"

    def step(self, action: Action) -> StepResult:
        if action.kind == "answer":
            reward = self.answer_reward(action.content, self.record) if self.answer_reward else 0.0
            return StepResult("", True, float(reward), {"answer": action.content, "calls": list(self.calls)})
        if action.kind == "python":
            from shared.sandbox import run_python

            res = run_python(action.content, timeout_s=self.timeout_s, memory_mb=self.memory_mb)
            body = res.stdout if res.status == "ok" else f"error ({res.status}): {res.stderr.strip()[-300:]}"
            self.calls.append({"name": "python", "arguments": {"code": action.content}, "status": res.status})
            return StepResult(self._response(body), False, 0.0, {"status": res.status})
        if action.kind != "tool_call":
            raise ActionError(f"unknown action <{action.kind}>")
        parts = []
        turn_calls = []
        for call in parse_tool_calls(action.raw):
            if isinstance(call, ActionError):
                parts.append(self._response(f"error: {call}"))
                turn_calls.append({"error": str(call)})
                continue
            try:
                value = self._run_tool(call["name"], call["arguments"])
                body = value if isinstance(value, str) else json.dumps(value, default=str)
                turn_calls.append({**call, "status": "ok"})
            except ActionError as err:
                body = f"error: {err}"
                turn_calls.append({**call, "status": "error", "error": str(err)})
            parts.append(self._response(body))
        self.calls.extend(turn_calls)
        return StepResult("".join(parts), False, 0.0, {"calls": turn_calls})
