"""Tool-argument schema checks: each failure named, bools are not numbers, checked tools turn errors into ActionError."""

import pytest
from shared.rollout.envs import Action, ActionError, ToolEnv
from shared.rollout.tool_schema import arguments_valid, check_arguments, checked_tool, schema_name, schema_params

SCHEMA = {"type": "function", "function": {"name": "subtract", "parameters": {
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"},
                                     "unit": {"type": "string", "enum": ["k", "m"]}},
    "required": ["a", "b"]}}}


def test_names_and_params_of_both_schema_styles():
    assert schema_name(SCHEMA) == "subtract" and schema_name({"name": "x"}) == "x"
    assert schema_params({"name": "x"}) == {} and "properties" in schema_params(SCHEMA)


@pytest.mark.parametrize("args, message", [
    ({"a": 1, "b": 2, "c": 3}, "unknown argument"),
    ({"a": 1}, "missing required argument"),
    ({"a": "1", "b": 2}, "'a' must be of type number, got str"),
    ({"a": True, "b": 2}, "'a' must be of type number, got bool"),
    ({"a": 1, "b": 2, "unit": "g"}, "must be one of"),
])
def test_check_arguments_names_the_problem(args, message):
    with pytest.raises(ActionError, match=message):
        check_arguments(SCHEMA, args)
    assert not arguments_valid(SCHEMA, args)


def test_valid_arguments_pass():
    check_arguments(SCHEMA, {"a": 1.5, "b": 2, "unit": "k"})
    assert arguments_valid(SCHEMA, {"a": 1, "b": 2}) and not arguments_valid(SCHEMA, [1, 2])


def test_checked_tool_in_a_tool_env():
    def run(args):
        if args["b"] == 0:
            raise ZeroDivisionError("b is zero")
        return args["a"] - args["b"]

    env = ToolEnv({"subtract": checked_tool(SCHEMA, run)})
    env.reset({})
    calls = ('<tool_call>{"name": "subtract", "arguments": {"a": 5, "b": 2}}</tool_call>'
             '<tool_call>{"name": "subtract", "arguments": {"a": "5", "b": 2}}</tool_call>'
             '<tool_call>{"name": "subtract", "arguments": {"a": 5, "b": 0}}</tool_call>')
    out = env.step(Action("tool_call", "", calls))
    statuses = [c["status"] for c in out.info["calls"]]
    assert statuses == ["ok", "error", "error"]
    assert "\n3\n" in out.observation and "must be of type number" in out.observation
    assert "failed: ZeroDivisionError: b is zero" in out.observation
