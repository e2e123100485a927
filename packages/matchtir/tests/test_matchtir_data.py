"""FTRL-style samples: synthetic construction, JSONL loading with errors naming file/line/field, prompts, and masked
SFT examples that train assistant turns only (tool responses get mask 0)."""

import json

import pytest
from benchmarks.data.errors import DataError
from matchtir.data import load_samples, save_samples, synthetic_samples, system_prompt, to_record
from matchtir.env import make_env_factory
from matchtir.train import sft_examples
from shared.modeling.tiny import build_tokenizer


def test_synthetic_samples_and_roundtrip(tmp_path):
    samples = synthetic_samples(6, seed=0, split="train")
    assert {s["kind"] for s in samples} == {"single", "multi_call", "multi_turn"}
    s = samples[1]
    assert set(s) >= {"id", "tools", "messages", "gold_trace", "answer"}
    assert all(set(c) == {"name", "parameters"} for c in s["gold_trace"])
    path = save_samples(samples, tmp_path / "train.jsonl")
    assert load_samples(path) == json.loads(json.dumps(samples))


@pytest.mark.parametrize("mutate,field", [
    (lambda s: s.pop("answer"), "answer"),
    (lambda s: s.update(gold_trace=[{"parameters": {}}]), "gold_trace"),
    (lambda s: s.update(messages=[{"role": "user"}]), "messages"),
    (lambda s: s.update(tools=[{"description": "no name"}]), "tools"),
    (lambda s: s.update(tool_code={"add": 3}), "tool_code"),
    (lambda s: s.update(answer=5), "answer"),
])
def test_bad_samples_name_file_line_and_field(tmp_path, mutate, field):
    samples = synthetic_samples(2, seed=0)
    mutate(samples[1])
    path = save_samples(samples, tmp_path / "bad.jsonl")
    with pytest.raises(DataError, match=rf"bad.jsonl:2: field '{field}'"):
        load_samples(path)


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match="holds no records"):
        load_samples(tmp_path / "empty.jsonl")


def test_prompts_and_sft_records():
    s = synthetic_samples(3, seed=0)[1]
    assert system_prompt(s["tools"], "signatures").startswith("Tools: add(a, b); subtract(a, b)")
    assert '"name": "lookup_population"' in system_prompt(s["tools"], "schemas")
    with pytest.raises(ValueError, match="unknown prompt_style"):
        system_prompt(s["tools"], "yaml")
    rec = to_record(s, "signatures")
    assert [m["role"] for m in rec["prompt"]] == ["system", "user"]
    tok = build_tokenizer(kind="char")
    [ex] = sft_examples([s], tok, "signatures", make_env_factory())
    ids, mask = ex["input_ids"], ex["completion_mask"]
    assert len(ids) == len(mask) and ex["id"] == s["id"]
    trained = [i for i, m in zip(ids, mask) if m]
    eos = tok.eos_token_id
    assert trained.count(eos) == len(s["gold_trace"]) + 1  # one eos-ended turn per call, then the answer
    turns = tok.decode(trained).split(tok.eos_token)
    assert turns[-2] == f"<answer>{s['answer']}</answer>" and all(t.startswith("<tool_call>") for t in turns[:-2])
    untrained = tok.decode([i for i, m in zip(ids, mask) if not m])
    assert untrained.startswith("<|im_start|>system") and untrained.count("<tool_response>") == len(s["gold_trace"])
    assert "<tool_response>" not in tok.decode(trained)
