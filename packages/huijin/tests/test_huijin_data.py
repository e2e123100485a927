"""Mixtures hit their ratios; SFT examples mask exactly the prompt and the tool responses; the tool environment
answers well-formed calls and turns bad ones into observations; file sources fail by file, line and field."""

import dataclasses
import json
from pathlib import Path

import pytest
from benchmarks.data.errors import DataError
from huijin.data import draw, finance_suite, read_source_file, sft_examples
from huijin.env import make_env_factory, observe_call
from huijin.recipe import AgentSettings, SourceFile, StageSpec, load_recipe
from shared.modeling.tiny import build_tokenizer
from shared.rollout.envs import Action

TINY = Path(__file__).with_name("tiny_recipe.yaml")


@pytest.fixture(scope="module")
def recipe():
    return load_recipe(TINY)


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(kind="char", extra_tags=["tool_call", "tool_response"])


@pytest.fixture(scope="module")
def env_factory():
    return make_env_factory(AgentSettings(), 0, 600, "train")


def test_mixture_hits_its_ratios_exactly(recipe):
    r = dataclasses.replace(recipe, stages={"cpt": dataclasses.replace(recipe.stages["cpt"], records=1000,
                                                                       mixture={"filings": 7, "general_text": 3})})
    items, counts = draw(r, "cpt")
    assert counts == {"filings": 700, "general_text": 300} and len(items) == 1000
    first, _ = draw(dataclasses.replace(r, stages={"cpt": dataclasses.replace(r.stages["cpt"], records=10)}), "cpt")
    filings = {d["contents"] for d in finance_suite(0, 600).filings("train")}
    assert ["A" if t in filings else "B" for t in first] == list("ABAAABAABA")  # smooth weighted round robin 7:3
    again, _ = draw(r, "cpt")
    assert again == items  # seeded by the recipe seed and the stage name
    other, _ = draw(dataclasses.replace(r, seed=1), "cpt")
    assert other != items


def test_sft_mixture_counts(recipe):
    records, counts = draw(recipe, "sft")  # 5:1:2:2 over 40 records
    assert counts == {"fin_numeric": 20, "fin_choice": 4, "fin_tool": 8, "general": 8}
    assert {r["kind"] for r in records} == {"numeric", "choice", "tool", "general"}


def test_single_turn_example_masks_the_prompt(tok):
    rec = {"id": "x", "kind": "numeric", "prompt": "Q: 4+5=?\nA: ", "completion": "4+5=9. \\boxed{9}"}
    (ex,) = sft_examples([rec], tok)
    n_prompt, n_completion = len("Q: 4+5=?\nA: "), len("4+5=9. \\boxed{9}")  # one token per character
    assert len(ex["input_ids"]) == n_prompt + n_completion + 1
    assert ex["completion_mask"] == [0] * n_prompt + [1] * (n_completion + 1)
    assert ex["input_ids"][-1] == tok.eos_token_id
    assert tok.decode(ex["input_ids"][n_prompt:-1]) == rec["completion"]


def test_tool_trace_example_masks_the_tool_responses(tok, env_factory):
    rec = {"id": "t", "kind": "tool", "prompt": "Q: x\nA: ", "answer": "148",
           "trace": [{"name": "subtract", "arguments": {"a": 437, "b": 289}, "result": 148}]}
    (ex,) = sft_examples([rec], tok, observe_call(env_factory))
    text = tok.decode(ex["input_ids"])
    call = '<tool_call>{"name":"subtract","arguments":{"a":437,"b":289}}</tool_call>'
    obs = "\n<tool_response>\n148\n</tool_response>\n"
    assert text == "Q: x\nA: " + call + obs + "\\boxed{148}" + tok.eos_token
    n_call = len(tok(call, add_special_tokens=False)["input_ids"])  # the tags are single tokens
    n_obs = len(tok(obs, add_special_tokens=False)["input_ids"])
    assert n_call == len(call) - len("<tool_call></tool_call>") + 2
    expected = [0] * 8 + [1] * n_call + [0] * n_obs + [1] * (len("\\boxed{148}") + 1)
    assert ex["completion_mask"] == expected
    with pytest.raises(ValueError, match="observe"):
        sft_examples([rec], tok)


def _step(env_factory, text):
    env = env_factory({})
    env.reset({})
    return env.step(Action("tool_call", "", text))


def test_env_tools_answer_and_check(env_factory):
    company = finance_suite(0, 600).companies[0]
    value = company.table["revenue"][2019]
    calls = ('<tool_call>{"name":"calculate","arguments":{"expression":"(437-289)/2"}}</tool_call>'
             f'<tool_call>{{"name":"table_lookup","arguments":{{"company":"{company.name}","metric":"revenue",'
             f'"year":2019}}}}</tool_call>'
             '<tool_call>{"name":"subtract","arguments":{"a":"437","b":289}}</tool_call>'
             '<tool_call>{"name":"divide","arguments":{"a":1,"b":2}}</tool_call>'
             '<tool_call>{"name":"calculate","arguments":{"expression":"__import__(\'os\')"}}</tool_call>'
             '<tool_call>not json</tool_call>')
    out = _step(env_factory, calls)
    parts = out.observation.split("</tool_response>")
    assert "\n74\n" in parts[0] and f"\n{value}\n" in parts[1]
    assert "must be of type number" in parts[2] and "unknown tool 'divide'" in parts[3]
    assert "unsupported element Call" in parts[4] and "not valid JSON" in parts[5]
    assert [c.get("status") for c in out.info["calls"]] == ["ok", "ok", "error", "error", "error", None]


def test_search_filings_finds_the_company(env_factory):
    company = next(c for c in finance_suite(0, 600).companies if c.split == "train")
    out = _step(env_factory, f'<tool_call>{{"name":"search_filings","arguments":{{"query":"{company.name} annual '
                             f'report 2019"}}}}</tool_call>')
    assert f"{company.name} annual report" in out.observation


def test_python_runs_in_the_sandbox(env_factory):
    env = env_factory({})
    env.reset({})
    out = env.step(Action("python", "print(437 - 289)", "<python>print(437 - 289)</python>"))
    assert "148" in out.observation and out.info["status"] == "ok"


def test_source_files(tmp_path, recipe):
    good = tmp_path / "corpus.jsonl"
    good.write_text(json.dumps({"text": "Kalo Corp reported revenue of 43."}) + "\n\n")
    assert read_source_file("c", good, "text") == ["Kalo Corp reported revenue of 43."]
    recs = tmp_path / "recs.jsonl"
    recs.write_text(json.dumps({"prompt": "Q: 1+1=?\nA: ", "answer": "2"}) + "\n")
    assert read_source_file("r", recs, "records")[0] == {"id": "r-1", "kind": "file", "prompt": "Q: 1+1=?\nA: ",
                                                        "answer": "2"}
    bad = tmp_path / "bad.jsonl"
    for content, message in [("{not json}\n", "bad.jsonl:1: invalid JSON"), ('{"text": 3}\n', "bad.jsonl:1: field "
                             "'text': must be a non-empty string"), ("[1]\n", "expected a JSON object")]:
        bad.write_text(content)
        with pytest.raises(DataError, match=message):
            read_source_file("b", bad, "text")
    bad.write_text(json.dumps({"prompt": "Q"}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1: a record needs 'completion'"):
        read_source_file("b", bad, "records")
    with pytest.raises(DataError, match="file not found"):
        read_source_file("b", tmp_path / "absent.jsonl", "text")
    r = dataclasses.replace(recipe, sources={"mine": SourceFile(str(good), "text")},
                            stages={"cpt": StageSpec("cpt", {"mine": 1}, records=3)})
    assert draw(r, "cpt") == (["Kalo Corp reported revenue of 43."] * 3, {"mine": 3})
