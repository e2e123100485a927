"""Loaders for math benchmarks: GSM8K (`#### n` answers), MATH-500 and AIME (jsonl with a final answer)."""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl, require
from benchmarks.data.records import MathRecord


def gsm8k_final(solution: str) -> str | None:
    """The number after GSM8K's `####` marker, commas removed."""
    m = re.search(r"####\s*(.+?)\s*$", solution.strip())
    return m.group(1).replace(",", "") if m else None


def load_gsm8k(path: str | Path) -> list[MathRecord]:
    """GSM8K jsonl `{question, answer}` where the answer ends with `#### <number>`."""
    out = []
    for line, obj in iter_jsonl(path):
        solution = require(obj, "answer", path, line, str)
        final = gsm8k_final(solution)
        if final is None:
            raise DataError(path, "no '#### <answer>' line", line=line, field="answer")
        out.append(MathRecord(f"gsm8k-{line}", require(obj, "question", path, line, str), final, solution))
    return out


def load_math500(path: str | Path) -> list[MathRecord]:
    """MATH / MATH-500 jsonl `{problem, solution, answer, subject, level, unique_id}`."""
    out = []
    for line, obj in iter_jsonl(path):
        meta = {k: obj[k] for k in ("subject", "level") if k in obj}
        out.append(
            MathRecord(
                id=str(obj.get("unique_id", f"math-{line}")),
                problem=require(obj, "problem", path, line, str),
                answer=str(require(obj, "answer", path, line, (str, int, float))),
                solution=str(obj.get("solution", "")),
                metadata=meta,
            )
        )
    return out


def load_aime(path: str | Path) -> list[MathRecord]:
    """AIME jsonl `{id, problem (or question), answer, solution?, url?}` (Qwen2.5-Math evaluation layout)."""
    out = []
    for line, obj in iter_jsonl(path):
        problem = obj.get("problem", obj.get("question"))
        if not isinstance(problem, str):
            raise DataError(path, "missing or not a string", line=line, field="problem")
        answer = str(require(obj, "answer", path, line, (str, int, float)))
        out.append(MathRecord(str(obj.get("id", f"aime-{line}")), problem, answer, str(obj.get("solution", ""))))
    return out
