"""BFCL evaluation with AST-style call matching (the bundled slice of `benchmarks`).

A predicted call matches a possible-answer entry `{function: {param: [allowed values]}}` when the function name is
the same, it passes no parameter the entry does not know, it gives every parameter whose allowed list lacks ""
(the optional marker), and each given value equals one allowed value after BFCL-style normalisation (strings
lower-cased without spaces and `,./-_*^`; an int is accepted for a float parameter, a float is not accepted for an
integer one; lists element-wise; dicts key by key). An item is correct when predictions and gold calls pair up
one-to-one (simple and multiple: exactly one call; parallel categories: any order). Solve F1 / rate / precision
count the largest set of matched pairs; answer F1 does not apply to BFCL (no final answers) and is reported null.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl, require

from matchtir.matching import hungarian_assignment, solve_scores

CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple")
_STRIP = re.compile(r"[ ,./\-_*^]")


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return _STRIP.sub("", value).lower().replace("'", '"')
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    return value


def _value_ok(value: Any, allowed: Sequence[Any], ptype: str = "") -> bool:
    if ptype == "integer" and isinstance(value, float):
        return False
    for option in allowed:
        if option == "":
            continue
        if isinstance(option, dict) and isinstance(value, dict):
            if _dict_ok(value, option):
                return True
        elif _norm(value) == _norm(option):
            return True
    return False


def _dict_ok(value: Mapping[str, Any], option: Mapping[str, Any]) -> bool:
    if any(k not in option for k in value):
        return False
    for k, allowed in option.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if k not in value:
            if "" not in allowed:
                return False
        elif not (_value_ok(value[k], allowed) or _norm(value[k]) == _norm(allowed)):
            return False
    return True


def _param_types(functions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    return {f["name"]: {k: str((v or {}).get("type", "")) for k, v in
                        (f.get("parameters", {}) or {}).get("properties", {}).items()} for f in functions}


def call_matches(pred: Mapping[str, Any], gold: Mapping[str, Mapping[str, list]],
                 types: Mapping[str, Mapping[str, str]] | None = None) -> bool:
    """AST match of one predicted call `{name, arguments}` against one possible-answer entry."""
    (fname, params), = gold.items()
    if pred.get("name") != fname:
        return False
    args = pred.get("arguments", {})
    if not isinstance(args, Mapping) or any(k not in params for k in args):
        return False
    ptypes = (types or {}).get(fname, {})
    for key, allowed in params.items():
        if key not in args:
            if "" not in allowed:
                return False
        elif not _value_ok(args[key], allowed, ptypes.get(key, "")):
            return False
    return True


def score_item(preds: Sequence[Mapping[str, Any]], golds: Sequence[Mapping[str, Any]],
               functions: Sequence[Mapping[str, Any]] = ()) -> dict[str, float]:
    """accuracy (1 when every gold call is matched one-to-one and nothing else was called) and solve scores."""
    types = _param_types(functions)
    ok = np.array([[1.0 if call_matches(p, g, types) else 0.0 for g in golds] for p in preds]).reshape(
        len(preds), len(golds))
    matched = sum(j is not None for j in hungarian_assignment(ok))
    scores = solve_scores(matched, len(preds), len(golds))
    scores["accuracy"] = float(matched == len(golds) == len(preds))
    return scores


def gold_predictions(golds: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Feed the ground truth back as predictions: the first allowed value of each parameter ("" = omitted)."""
    out = []
    for entry in golds:
        (fname, params), = entry.items()
        args = {}
        for key, allowed in params.items():
            first = next((a for a in allowed if a != ""), None)
            if first is not None:
                args[key] = _first_of_dict(first) if isinstance(first, dict) else first
        out.append({"name": fname, "arguments": args})
    return out


def _first_of_dict(option: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for k, allowed in option.items():
        if isinstance(allowed, list):
            first = next((a for a in allowed if a != ""), None)
            if first is not None:
                out[k] = first
        else:
            out[k] = allowed
    return out


def load_category(category: str, limit: int = 0) -> list:
    """Records of a bundled BFCL category (`benchmarks.data.load_bundled`)."""
    from benchmarks.data import load_bundled

    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}; supported: {CATEGORIES}")
    records = load_bundled(f"bfcl_{category}")
    return records[:limit] if limit else records


def load_predictions(path: str | Path) -> dict[str, list[dict[str, Any]]]:
    """`{"id": ..., "calls": [{"name", "arguments"}]}` lines -> {id: calls}; bad records name file, line, field."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line, obj in iter_jsonl(path):
        qid = str(require(obj, "id", path, line))
        calls = require(obj, "calls", path, line, list)
        for i, c in enumerate(calls):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or \
                    not isinstance(c.get("arguments", {}), dict):
                raise DataError(path, f"call {i} needs a string 'name' and an object 'arguments'", line=line,
                                field="calls")
        out[qid] = calls
    return out


def bfcl_prompt(record: Any) -> list[dict[str, str]]:
    """The chat prompt of an item: its functions as JSON schemas in the system message, then its first turn."""
    from matchtir.data import FORMAT_HINT

    tools = "\n".join(json.dumps(f) for f in record.functions)
    return [{"role": "system", "content": f"You can call these tools:\n{tools}\n{FORMAT_HINT}"},
            *[{"role": m["role"], "content": m["content"]} for m in record.turns[0]]]


def predict(model: Any, tokenizer: Any, records: Sequence[Any], max_new_tokens: int = 96,
            batch_size: int = 32) -> dict[str, list[dict[str, Any]]]:
    """Greedy single-turn generation; every well-formed `<tool_call>` block of the reply is a prediction."""
    from shared.generation import HFGenerator, SamplingParams
    from shared.rollout.agent_loop import encode_prompt
    from shared.rollout.envs import parse_tool_calls

    gen = HFGenerator(model, tokenizer, batch_size=batch_size)
    prompts = [encode_prompt(tokenizer, {"prompt": bfcl_prompt(r)}) for r in records]
    outs = gen.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0,
                                                stop=("</answer>",)))
    return {r.id: [c for c in parse_tool_calls(o[0].text) if isinstance(c, dict)] for r, o in zip(records, outs)}


def evaluate_bfcl(predictions: Mapping[str, Sequence[Mapping[str, Any]]], by_category: Mapping[str, Sequence[Any]]
                  ) -> dict[str, dict[str, float]]:
    """Per-category means of accuracy and solve scores (missing predictions count as no calls), plus "all"."""
    out: dict[str, dict[str, float]] = {}
    everything: list[dict[str, float]] = []
    for cat, records in by_category.items():
        items = [score_item(predictions.get(r.id, []), r.possible_answer, r.functions) for r in records]
        everything += items
        out[cat] = {k: float(np.mean([it[k] for it in items])) for k in items[0]} if items else {}
        out[cat]["n"] = float(len(items))
    if everything:
        out["all"] = {k: float(np.mean([it[k] for it in everything])) for k in everything[0]}
        out["all"]["n"] = float(len(everything))
    return out
