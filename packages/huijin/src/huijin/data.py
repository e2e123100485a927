"""Data sources of the recipe and the mixtures a stage draws from them.

Built-in sources (train split of `benchmarks.synthetic.finance`, plus general data):
- text (CPT): `filings` (annual reports of the train companies), `glossary` (definitions, three phrasings),
  `general_text` (general replay: calibration arithmetic worked solutions and synthetic-KB passages);
- records (SFT and RL): `fin_numeric`, `fin_choice`, `fin_tool` (gold call traces), `general` (the calibration
  arithmetic). A record is `{id, kind, prompt, answer, ...}`: `completion` for single-turn kinds, `trace` for tool.
File sources (`sources:` in the recipe) are JSONL (read by `benchmarks.data.io.iter_jsonl`): `{"text"}` per line
(text) or `{"prompt", "completion"?, "answer"?, "kind"?}` (records); a bad line is a `DataError` naming file, line
and field.

`draw(recipe, stage)` returns the stage's examples in exact mixture ratios (`shared.rl.mixture.MixtureStream`,
seeded by the recipe seed and the stage name) with the count per source. `sft_examples` turns records into
token-id examples (`{input_ids, completion_mask}`): the prompt is masked out, the completion (and eos) trained;
a tool trace is replayed through the very tool environment of the agentic stage, so its tool responses are the
environment's own text, masked out, exactly as the agent loop appends them.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

GENERAL_RECORDS = 10_000  # calibration arithmetic train problems in the `general` source
GENERAL_TEXTS = 5_000  # of which worked solutions also go into `general_text`


@dataclass(frozen=True)
class Source:
    kind: str  # "text" (CPT) | "records" (SFT, RL)
    record_kind: str  # numeric | choice | tool | general | text
    description: str


BUILTIN_SOURCES: dict[str, Source] = {
    "filings": Source("text", "text", "annual-report documents of the train companies"),
    "glossary": Source("text", "text", "glossary definitions in three phrasings"),
    "general_text": Source("text", "text", "general replay: arithmetic worked solutions and synthetic-KB passages"),
    "fin_numeric": Source("records", "numeric", "finance arithmetic questions with worked solutions"),
    "fin_choice": Source("records", "choice", "glossary multiple choice (train terms)"),
    "fin_tool": Source("records", "tool", "finance questions with 3-digit operands and gold call traces"),
    "general": Source("records", "general", "calibration arithmetic (general ability)"),
}


@lru_cache(maxsize=8)
def finance_suite(seed: int, n_companies: int) -> Any:
    from benchmarks.synthetic.finance import make_finance_suite

    return make_finance_suite(seed=seed, n_companies=n_companies)


def _single(kind: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"id": r["id"], "kind": kind, "prompt": r["prompt"], "completion": r["solution"],
             "answer": str(r["answer"])} for r in items]


@lru_cache(maxsize=32)
def builtin_items(name: str, suite_seed: int, n_companies: int, split: str = "train") -> list[Any]:
    """All items of a built-in source (texts or records) of one split (cached: callers must not change them)."""
    fin = finance_suite(suite_seed, n_companies)
    if name == "filings":
        return [d["contents"] for d in fin.filings(split)]
    if name == "glossary":
        return fin.glossary_texts()
    if name in ("general_text", "general"):
        from benchmarks.synthetic.arithmetic import make_arithmetic

        arith = make_arithmetic(GENERAL_RECORDS, seed=0, split="train" if split != "test" else "test")
        if name == "general":
            return _single("general", [r.to_dict() for r in arith])
        from benchmarks.synthetic.kb import make_kb

        return [r.prompt + r.solution for r in arith[:GENERAL_TEXTS]] + [d["contents"] for d in make_kb(seed=0).corpus()]
    if name == "fin_numeric":
        return _single("numeric", fin.numeric(split))
    if name == "fin_choice":
        return _single("choice", fin.choice(split, 2000 if split == "train" else 500))
    if name == "fin_tool":
        return [{"id": r["id"], "kind": "tool", "prompt": r["prompt"], "trace": r["trace"], "answer": r["answer"],
                 "company": r["company"]} for r in fin.tool(split)]
    raise KeyError(f"no built-in source {name!r}; known: {sorted(BUILTIN_SOURCES)}")


def read_source_file(name: str, path: str | Path, kind: str) -> list[Any]:
    """Texts or records of a JSONL source file; DataError names the file, line and field."""
    from benchmarks.data.errors import DataError
    from benchmarks.data.io import iter_jsonl

    out: list[Any] = []
    for line_no, row in iter_jsonl(path):
        for key in ("text",) if kind == "text" else ("prompt",):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(path, "must be a non-empty string", line=line_no, field=key)
        if kind == "text":
            out.append(row["text"])
            continue
        if "completion" not in row and "answer" not in row:
            raise DataError(path, "a record needs 'completion' (SFT) or 'answer' (RL)", line=line_no)
        out.append({"id": str(row.get("id", f"{name}-{line_no}")), "kind": str(row.get("kind", "file")),
                    "prompt": row["prompt"], **({"completion": str(row["completion"])} if "completion" in row
                                                else {}), **({"answer": str(row["answer"])} if "answer" in row
                                                             else {})})
    return out


def source_items(recipe: Any, name: str) -> list[Any]:
    """The items of a recipe source (built-in, train split; or a declared file)."""
    if name in recipe.sources:
        spec = recipe.sources[name]
        return read_source_file(name, spec.path, spec.kind)
    return builtin_items(name, recipe.suite.seed, recipe.suite.n_companies)


def draw(recipe: Any, stage: str) -> tuple[list[Any], dict[str, int]]:
    """`records` examples of the stage in its mixture's exact ratios, and how many came from each source."""
    from shared.rl.mixture import MixtureStream

    spec = recipe.stages[stage]
    sources = {name: source_items(recipe, name) for name in spec.mixture}
    # small seeds: MixtureStream and PromptStream multiply them again into a 64-bit torch seed
    stream = MixtureStream(sources, dict(spec.mixture), seed=recipe.seed * 1009 + zlib.crc32(stage.encode()) % 1009)
    drawn = stream.take_items(spec.records)
    counts = Counter(name for name, _ in drawn)
    return [item for _, item in drawn], {name: counts.get(name, 0) for name in spec.mixture}


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def sft_examples(records: Sequence[Mapping[str, Any]], tokenizer: Any,
                 observe: Callable[[Mapping[str, Any], Mapping[str, Any]], str] | None = None) -> list[dict]:
    """Token-id SFT examples: prompt (mask 0) + completion + eos (mask 1); for a tool trace, each call (mask 1),
    its tool response `observe(record, call)` (mask 0), then the answer `\\boxed{...}` + eos (mask 1)."""
    from benchmarks.synthetic.finance import call_text

    eos = tokenizer.eos_token_id
    out = []
    for rec in records:
        ids = _ids(tokenizer, rec["prompt"])
        mask = [0] * len(ids)
        if rec.get("kind") == "tool":
            if observe is None:
                raise ValueError("sft_examples: tool records need the environment's observe function")
            for call in rec["trace"]:
                turn = _ids(tokenizer, call_text(call["name"], call["arguments"]))
                obs = _ids(tokenizer, observe(rec, call))
                ids, mask = ids + turn + obs, mask + [1] * len(turn) + [0] * len(obs)
            completion = f"\\boxed{{{rec['answer']}}}"
        else:
            if "completion" not in rec:
                raise ValueError(f"record {rec.get('id', '?')!r}: an SFT record needs a 'completion'")
            completion = rec["completion"]
        tail = _ids(tokenizer, completion) + [eos]
        out.append({"id": rec.get("id"), "input_ids": ids + tail, "completion_mask": mask + [1] * len(tail)})
    return out
