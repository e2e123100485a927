"""BFCL AST-style scoring: the ground truth fed back scores 100% on the four bundled categories; hand cases for
optional parameters, types, string normalisation, parallel order; bad prediction files name file/line/field."""

import json

import pytest
from benchmarks.data.errors import DataError
from matchtir import bfcl

GOLD = [{"spotify.play": {"artist": ["Taylor Swift"], "duration": [20], "shuffle": ["", False]}}]
FUNCS = [{"name": "spotify.play", "parameters": {"type": "dict", "properties": {
    "artist": {"type": "string"}, "duration": {"type": "integer"}, "shuffle": {"type": "boolean"}}}}]


def call(name, **args):
    return {"name": name, "arguments": args}


def test_gold_predictions_score_100_percent_on_bundled_slice():
    cats = {c: bfcl.load_category(c) for c in bfcl.CATEGORIES}
    preds = {r.id: bfcl.gold_predictions(r.possible_answer) for rs in cats.values() for r in rs}
    scores = bfcl.evaluate_bfcl(preds, cats)
    for cat in bfcl.CATEGORIES:
        assert scores[cat]["accuracy"] == 1.0, cat
        assert scores[cat]["solve_f1"] == 1.0 and scores[cat]["n"] > 0
    assert scores["all"]["accuracy"] == 1.0
    empty = bfcl.evaluate_bfcl({}, cats)
    assert empty["all"]["accuracy"] == 0.0 and empty["all"]["solve_f1"] == 0.0


def test_single_call_rules():
    ok = bfcl.score_item([call("spotify.play", artist="taylor swift", duration=20)], GOLD, FUNCS)
    assert ok["accuracy"] == 1.0  # optional parameter omitted, string normalised
    assert bfcl.score_item([call("spotify.play", artist="Taylor Swift", duration=20.0)], GOLD, FUNCS)[
        "accuracy"] == 0.0  # float for an integer parameter
    assert bfcl.score_item([call("spotify.play", artist="Taylor Swift")], GOLD, FUNCS)["accuracy"] == 0.0
    assert bfcl.score_item([call("spotify.play", artist="Taylor Swift", duration=20, volume=3)], GOLD, FUNCS)[
        "accuracy"] == 0.0  # unknown parameter
    two = bfcl.score_item([call("spotify.play", artist="Taylor Swift", duration=20)] * 2, GOLD, FUNCS)
    assert two["accuracy"] == 0.0 and two["solve_f1"] == pytest.approx(2 / 3) and two["precision"] == 0.5
    # an int is accepted for a float parameter
    gold = [{"area": {"radius": [5.0]}}]
    funcs = [{"name": "area", "parameters": {"properties": {"radius": {"type": "float"}}}}]
    assert bfcl.score_item([call("area", radius=5)], gold, funcs)["accuracy"] == 1.0


def test_parallel_is_order_free():
    gold = [{"f": {"x": [1]}}, {"f": {"x": [2]}}]
    assert bfcl.score_item([call("f", x=2), call("f", x=1)], gold)["accuracy"] == 1.0
    half = bfcl.score_item([call("f", x=2), call("f", x=3)], gold)
    assert half["accuracy"] == 0.0 and half["solve_rate"] == 0.5


def test_prediction_file_errors(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"id": "a", "calls": [call("f", x=1)]}) + "\n")
    assert bfcl.load_predictions(good) == {"a": [call("f", x=1)]}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "calls": []}) + "\n" + json.dumps({"id": "b", "calls": [{"x": 1}]}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'calls'"):
        bfcl.load_predictions(bad)
    with pytest.raises(ValueError, match="unknown BFCL category"):
        bfcl.load_category("live_multiple")


def test_tiny_model_plumbing(tmp_path):
    import dataclasses

    from shared.modeling import load_model
    from shared.modeling.tiny import cached_tiny

    model, tok = load_model(cached_tiny("qwen2", tmp_path), kind="causal", dtype="float32", device="cpu")
    cats = {c: bfcl.load_category(c, limit=1) for c in ("simple_python", "parallel")}
    # real items with their function docs cut to name + parameter names, so the char-level prompt stays short
    cats = {c: [dataclasses.replace(r, functions=[{"name": f["name"], "parameters": {"properties": {
        k: {} for k in f["parameters"]["properties"]}}} for f in r.functions]) for r in rs] for c, rs in cats.items()}
    records = [r for rs in cats.values() for r in rs]
    preds = bfcl.predict(model, tok, records, max_new_tokens=8)
    assert set(preds) == {r.id for r in records}
    scores = bfcl.evaluate_bfcl(preds, cats)
    assert scores["all"]["n"] == 2.0 and 0.0 <= scores["all"]["accuracy"] <= 1.0
