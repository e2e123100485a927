"""FTRL-style tool-use samples: building them from the synthetic tool suite, loading them from JSONL, prompting.

A sample is `{id, tools, messages, gold_trace, answer, tool_code?}`: `tools` are OpenAI-style JSON schemas,
`messages` the chat so far (system and user turns), `gold_trace` the ground-truth calls `[{name, parameters}]`,
`answer` the gold final answer and `tool_code` optional per-sample tool source `{name: python source}` (run only
in `shared.sandbox`). Synthetic tasks from `benchmarks.synthetic.tools` become samples with every user turn joined
into one request, so a multi-turn task is one episode whose gold trace holds all its calls.
The policy sees the tools in its system prompt, either as full JSON schemas (`prompt_style="schemas"`) or as
compact signatures `name(arg, ...)` rendered from the same schemas (`"signatures"`, for tiny models).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl, require
from benchmarks.synthetic.tools import KINDS, make_tool_tasks, tool_schemas
from shared.rollout.tool_schema import schema_name, schema_params

PROMPT_STYLES = ("schemas", "signatures")
SUITES = ("tools", "copy")
FORMAT_HINT = ('Call a tool with <tool_call>{"name": ..., "arguments": {...}}</tool_call>; '
               "give the final answer as <answer>...</answer>.")


def signature(schema: Mapping[str, Any]) -> str:
    """`name(arg1, arg2)` from a schema's parameter properties."""
    return f"{schema_name(schema)}({', '.join(schema_params(schema).get('properties', {}))})"


def system_prompt(tools: Sequence[Mapping[str, Any]], style: str = "schemas") -> str:
    """The system message declaring the tools."""
    if style == "schemas":
        return "You can call these tools:\n" + "\n".join(json.dumps(t) for t in tools) + "\n" + FORMAT_HINT
    if style == "signatures":
        return "Tools: " + "; ".join(signature(t) for t in tools) + "."
    raise ValueError(f"unknown prompt_style {style!r}; known: {PROMPT_STYLES}")


def synthetic_samples(n: int, seed: int = 0, split: str = "train", kinds: Sequence[str] = KINDS) -> list[dict]:
    """`n` samples from the synthetic tool suite; every sample declares all tools of the suite."""
    tools = tool_schemas()
    out = []
    for task in make_tool_tasks(n, seed=seed, kinds=tuple(kinds), split=split):
        out.append({
            "id": task.id,
            "kind": task.kind,
            "tools": tools,
            "messages": [{"role": "user", "content": " ".join(t.user for t in task.turns)}],
            "gold_trace": task.gold_trace(),
            "answer": task.answer,
        })
    return out


def suite_samples(data: Any, split: str) -> list[dict]:
    """The samples of a split named by a `DataSettings`: its JSONL file when given, else the synthetic suite
    (`tools`: chained calls of `benchmarks.synthetic.tools`; `copy`: `matchtir.copy_suite`). The synthetic "dev"
    split is the `dev_tasks` train-split tasks drawn after the first `train_tasks`: never trained on, and apart
    from the test tasks, so settings can be chosen without looking at the test split."""
    if split not in ("train", "dev", "test"):
        raise ValueError(f"split must be 'train', 'dev' or 'test', got {split!r}")
    if split == "dev":
        if data.train_file or data.test_file:
            raise ValueError("data.dev_tasks needs the synthetic suite (no dev split is drawn from data files)")
        if data.dev_tasks <= 0:
            raise ValueError(f"data.dev_tasks must be > 0 for a dev split, got {data.dev_tasks}")
        return _synthetic(data, data.train_tasks + data.dev_tasks, "train")[data.train_tasks:]
    path = data.train_file if split == "train" else data.test_file
    if path:
        return load_samples(path)
    return _synthetic(data, data.train_tasks if split == "train" else data.test_tasks, split)


def _synthetic(data: Any, n: int, split: str) -> list[dict]:
    if data.suite == "tools":
        return synthetic_samples(n, seed=data.seed, split=split, kinds=data.kinds)
    if data.suite == "copy":
        from matchtir.copy_suite import copy_samples

        return copy_samples(n, seed=data.seed, split=split, calls=data.calls, max_number=data.max_number)
    raise ValueError(f"unknown data.suite {data.suite!r}; known: {SUITES}")


def suite_name(data: Any) -> str:
    """A one-line description of the synthetic data of a `DataSettings` (for results.json)."""
    what = f"kinds {','.join(data.kinds)}" if data.suite == "tools" else \
        f"calls {','.join(map(str, data.calls))}, numbers 2..{data.max_number}"
    return f"synthetic {data.suite} suite ({data.train_tasks} train / {data.test_tasks} test tasks, {what})"


def check_sample(sample: Mapping[str, Any], path: str | Path = "<samples>", line: int | None = None) -> None:
    """Raise DataError naming the file, record and field of the first problem."""
    where = {"path": path, "line": line}
    for name, kind in (("id", (str, int)), ("tools", list), ("messages", list), ("gold_trace", list),
                       ("answer", str)):
        if name not in sample:
            raise DataError(problem="missing", field=name, **where)
        if not isinstance(sample[name], kind):
            raise DataError(problem=f"expected {kind}, got {type(sample[name]).__name__}", field=name, **where)
    for i, tool in enumerate(sample["tools"]):
        if not isinstance(tool, Mapping) or not schema_name(tool):
            raise DataError(problem=f"entry {i} is not a JSON schema with a function name", field="tools", **where)
    for i, msg in enumerate(sample["messages"]):
        if not isinstance(msg, Mapping) or not isinstance(msg.get("role"), str) or \
                not isinstance(msg.get("content"), str):
            raise DataError(problem=f"entry {i} needs string 'role' and 'content'", field="messages", **where)
    for i, call in enumerate(sample["gold_trace"]):
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str) or \
                not isinstance(call.get("parameters", {}), Mapping):
            raise DataError(problem=f"entry {i} needs a string 'name' and an object 'parameters'",
                            field="gold_trace", **where)
    code = sample.get("tool_code", {})
    if not isinstance(code, Mapping) or not all(isinstance(v, str) for v in code.values()):
        raise DataError(problem="expected an object {tool name: python source}", field="tool_code", **where)


def load_samples(path: str | Path) -> list[dict]:
    """Read FTRL-style samples from a JSON-lines file, validating each record."""
    out = []
    for line, obj in iter_jsonl(path):
        require(obj, "id", path, line)
        check_sample(obj, path, line)
        out.append(obj)
    if not out:
        raise DataError(path, "no samples in file")
    return out


def save_samples(samples: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(s) + "\n" for s in samples), encoding="utf-8")
    return path


def to_record(sample: Mapping[str, Any], style: str = "schemas") -> dict:
    """The rollout record: the chat prompt with the tool declaration as system message, plus the gold fields."""
    messages = [m for m in sample["messages"] if m["role"] != "system"]
    prompt = [{"role": "system", "content": system_prompt(sample["tools"], style)}, *messages]
    return {**sample, "prompt": prompt}


def call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """One tool call in the policy's format."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": dict(arguments)}) + "</tool_call>"


def answer_text(answer: str) -> str:
    return f"<answer>{answer}</answer>"
