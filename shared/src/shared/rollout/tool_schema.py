"""JSON-schema checks of tool-call arguments, so a malformed call becomes an observation, not a tool's traceback.

`ToolEnv` runs a callable as `tool(**arguments)`; a wrong type or an unknown argument would otherwise surface as the
tool's own exception (or worse, run with a silently coerced value). `check_arguments(schema, arguments)` checks the
arguments against an OpenAI-style (`{"type": "function", "function": {...}}`) or bare (`{name, parameters}`) schema:
unknown and missing keys, JSON types (a bool is not a number) and enums; it raises `ActionError`, which `ToolEnv`
answers with an `error: ...` tool response. `checked_tool(schema, fn)` wraps a callable with the check and turns the
tool's own exceptions into `ActionError` too. `arguments_valid` is the same check as a boolean (for rewards that pay
for a valid call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.rollout.envs import ActionError

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float), "float": (int, float), "integer": (int,), "string": (str,), "boolean": (bool,),
    "array": (list,), "tuple": (list,), "object": (dict,), "dict": (dict,),
}  # fmt: skip


def schema_name(schema: Mapping[str, Any]) -> str:
    """Name of an OpenAI-style (`{"type": "function", "function": {...}}`) or bare (`{name, ...}`) schema."""
    fn = schema.get("function", schema)
    return str(fn.get("name", ""))


def schema_params(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """The `parameters` object of a schema (empty when it declares none)."""
    fn = schema.get("function", schema)
    return fn.get("parameters", {}) or {}


def check_arguments(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> None:
    """Raise ActionError when the arguments do not fit the schema's properties, required list, types or enums."""
    name = schema_name(schema)
    params = schema_params(schema)
    props = params.get("properties", {}) or {}
    unknown = [k for k in arguments if k not in props]
    if unknown:
        raise ActionError(f"tool '{name}': unknown argument(s) {unknown}; expected {sorted(props)}")
    missing = [k for k in params.get("required", []) if k not in arguments]
    if missing:
        raise ActionError(f"tool '{name}': missing required argument(s) {missing}")
    for key, value in arguments.items():
        spec = props[key] or {}
        kinds = JSON_TYPES.get(str(spec.get("type", "")))
        # bool is an int subclass in Python but not a JSON number
        if kinds is not None and (not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)):
            raise ActionError(f"tool '{name}': argument '{key}' must be of type {spec['type']}, "
                              f"got {type(value).__name__}")
        if "enum" in spec and value not in spec["enum"]:
            raise ActionError(f"tool '{name}': argument '{key}' must be one of {spec['enum']}, got {value!r}")


def arguments_valid(schema: Mapping[str, Any], arguments: Any) -> bool:
    """True when `arguments` is a mapping that passes `check_arguments`."""
    if not isinstance(arguments, Mapping):
        return False
    try:
        check_arguments(schema, arguments)
    except ActionError:
        return False
    return True


def checked_tool(schema: Mapping[str, Any], run: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """A callable for ToolEnv: checks the arguments against `schema`, then calls `run(arguments)`; the tool's own
    exception (a bad value, a failed sandbox run) comes back as an ActionError naming the tool."""
    name = schema_name(schema)

    def tool(**arguments: Any) -> Any:
        check_arguments(schema, arguments)
        try:
            return run(arguments)
        except ActionError:
            raise
        except Exception as err:  # noqa: BLE001 - any tool failure goes back to the policy as an observation
            raise ActionError(f"tool '{name}' failed: {type(err).__name__}: {err}") from None

    return tool
