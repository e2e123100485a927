"""The tool environment of MatchTIR rollouts: schema-checked tools on `shared.rollout.ToolEnv`.

Each sample's tools become callables that first check the arguments against the tool's JSON schema (unknown or
missing arguments, wrong JSON types, values outside an enum) and then run the tool: our own synthetic tools
(`benchmarks.synthetic.tool_library`, trusted) in-process, per-sample `tool_code` only through
`shared.sandbox.call_function`. Any failure becomes an `ActionError`, which `ToolEnv` turns into an
`error: ...` tool response, so a malformed call never ends the rollout; it simply finds no gold call to match.
Tool responses come back as `<tool_response>` text that the agent loop appends with loss mask 0. The argument
checks live in the core (`shared.rollout.tool_schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from benchmarks.synthetic.tool_library import FUNCTIONS
from shared.rollout.envs import Action, ToolEnv
from shared.rollout.tool_schema import check_arguments, checked_tool  # noqa: F401 (check_arguments re-exported)

from matchtir.data import call_text, schema_name


def make_tools(sample: Mapping[str, Any], timeout_s: float = 10.0, memory_mb: int = 512) -> dict[str, Callable]:
    """Callables for every declared tool of a sample; a tool with neither code nor a built-in is an error."""
    code = sample.get("tool_code", {}) or {}
    tools: dict[str, Callable] = {}
    for schema in sample["tools"]:
        name = schema_name(schema)
        if name in code:
            from shared.sandbox import call_function

            source = code[name]

            def run(args: dict, source: str = source, name: str = name) -> Any:
                return call_function(source, name, args, timeout_s=timeout_s, memory_mb=memory_mb)
        elif name in FUNCTIONS:
            fn = FUNCTIONS[name]

            def run(args: dict, fn: Callable = fn) -> Any:
                return fn(**args)
        else:
            raise ValueError(f"sample {sample.get('id', '?')!r}: tool {name!r} has no 'tool_code' and is not a "
                             f"built-in tool ({sorted(FUNCTIONS)})")
        tools[name] = checked_tool(schema, run)
    return tools


def make_env_factory(timeout_s: float = 10.0, memory_mb: int = 512,
                     max_response_chars: int = 500) -> Callable[[Mapping[str, Any]], ToolEnv]:
    """env_factory for `shared.rollout.AgentLoop`: a fresh ToolEnv over the record's tools."""

    def factory(record: Mapping[str, Any]) -> ToolEnv:
        return ToolEnv(make_tools(record, timeout_s, memory_mb), timeout_s=timeout_s, memory_mb=memory_mb,
                       max_response_chars=max_response_chars)

    return factory


def observation(env: ToolEnv, call: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """The tool response text the environment returns for one well-formed call, or for the calls of one parallel
    turn (used to write SFT traces)."""
    calls = [call] if isinstance(call, Mapping) else list(call)
    text = "".join(call_text(c["name"], c.get("arguments", c.get("parameters", {}))) for c in calls)
    return env.step(Action(kind="tool_call", content="", raw=text)).observation
