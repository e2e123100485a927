"""Tests for the synthetic tool suite: schemas, executable tools, gold traces, oracle, trace F1 and splits."""

import pytest
from benchmarks.synthetic.tool_library import FUNCTIONS
from benchmarks.synthetic.tools import (
    ToolCall,
    execute,
    fmt,
    make_tool_tasks,
    solve,
    tool_schemas,
    tool_source,
    trace_f1,
)


def test_schemas_cover_every_tool_with_required_params():
    schemas = tool_schemas()
    assert {s["function"]["name"] for s in schemas} == set(FUNCTIONS)
    conv = tool_schemas(["convert_units"])[0]["function"]
    assert conv["parameters"]["required"] == ["value", "from_unit", "to_unit"]
    with pytest.raises(KeyError, match="unknown tools"):
        tool_schemas(["nope"])


def test_tools_execute_with_hand_values():
    assert execute(ToolCall("convert_units", {"value": 100, "from_unit": "C", "to_unit": "F"})) == 212
    assert execute({"name": "convert_units", "arguments": {"value": 10, "from_unit": "km", "to_unit": "mi"}}) == 6.21
    assert execute(ToolCall("lookup_population", {"city": "Avalon"})) == 52000
    assert fmt(6.2100) == "6.21" and fmt(212.0) == "212" and fmt(-3.5) == "-3.5"
    with pytest.raises(ValueError, match="unknown city"):
        execute(ToolCall("lookup_population", {"city": "Atlantis"}))
    with pytest.raises(ValueError, match="bad arguments for add"):
        execute(ToolCall("add", {"x": 1}))


def test_tool_source_is_self_contained():
    namespace: dict = {}
    exec(tool_source("get_temperature"), namespace)  # our own trusted tool code
    assert namespace["get_temperature"]("Pinecrest") == 3


def test_kinds_and_traces():
    tasks = make_tool_tasks(30, seed=0)
    assert {t.kind for t in tasks} == {"single", "multi_call", "multi_turn"}
    for t in tasks:
        n_calls = len(t.gold_trace())
        if t.kind == "single":
            assert len(t.turns) == 1 and n_calls == 1
        elif t.kind == "multi_call":
            assert len(t.turns) == 1 and n_calls >= 2
        else:
            assert len(t.turns) == 2
        assert set(t.tools) == {c["name"] for c in t.gold_trace()}


def test_oracle_reproduces_every_gold_trace_and_answer():
    tasks = make_tool_tasks(150, seed=1) + make_tool_tasks(60, seed=1, split="test")
    for t in tasks:
        turns = solve(t)
        assert [tr.answer for tr in turns] == [tr.answer for tr in t.turns]
        assert trace_f1([c for tr in turns for c in tr.calls], t.gold_trace())["f1"] == 1.0


def test_deterministic_and_disjoint_splits():
    a = [t.to_dict() for t in make_tool_tasks(40, seed=2)]
    assert a == [t.to_dict() for t in make_tool_tasks(40, seed=2)]
    train = {tuple(tr.user for tr in t.turns) for t in make_tool_tasks(300, seed=2)}
    test = {tuple(tr.user for tr in t.turns) for t in make_tool_tasks(80, seed=2, split="test")}
    assert not train & test


def test_trace_f1_hand_values():
    gold = [ToolCall("add", {"a": 1, "b": 2}), ToolCall("multiply", {"a": 3, "b": 3})]
    pred = [{"name": "add", "parameters": {"b": 2, "a": 1}}, {"name": "add", "arguments": {"a": 9, "b": 9}}]
    scores = trace_f1(pred, gold)
    assert scores == {"precision": 0.5, "recall": 0.5, "f1": 2 * 1 / 4}
    assert trace_f1([], gold)["f1"] == 0.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="kinds"):
        make_tool_tasks(3, kinds=("chat",))
    with pytest.raises(ValueError, match="no task template"):
        solve(["Tell me a joke."])
