"""Loaders for table+text numeric QA: TAT-QA (contexts with several questions) and FinQA (one question each)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_json_array, require
from benchmarks.data.records import TableQARecord


def load_tatqa(path: str | Path) -> list[TableQARecord]:
    """TAT-QA json: `[{table: {uid, table}, paragraphs: [{uid, order, text}], questions: [...]}]`, one record per
    question with its table and the context's paragraphs in order."""
    out = []
    for i, ctx in iter_json_array(path):
        table = require(ctx, "table", path, i, dict)
        grid = require(table, "table", path, i, list)
        paras = sorted(require(ctx, "paragraphs", path, i, list), key=lambda p: p.get("order", 0))
        texts = [str(p.get("text", "")) for p in paras]
        for q in require(ctx, "questions", path, i, list):
            if "question" not in q or "answer" not in q:
                raise DataError(path, "each question needs 'question' and 'answer'", line=i, field="questions")
            out.append(
                TableQARecord(
                    id=str(q.get("uid", f"tatqa-{i}-{len(out)}")), question=q["question"], answer=q["answer"],
                    table=grid, paragraphs=texts, answer_type=str(q.get("answer_type", "")),
                    scale=str(q.get("scale", "")), metadata={"derivation": q.get("derivation", "")},
                )
            )  # fmt: skip
    return out


def load_finqa(path: str | Path) -> list[TableQARecord]:
    """FinQA json: `[{id, pre_text, post_text, table, qa: {question, program, exe_ans, answer}}]`; the gold
    answer is the executed value `exe_ans`."""
    out = []
    for i, obj in iter_json_array(path):
        qa = require(obj, "qa", path, i, dict)
        for field in ("question", "exe_ans"):
            if field not in qa:
                raise DataError(path, "missing", line=i, field=f"qa.{field}")
        out.append(
            TableQARecord(
                id=str(require(obj, "id", path, i)), question=qa["question"], answer=qa["exe_ans"],
                table=require(obj, "table", path, i, list),
                paragraphs=list(obj.get("pre_text", [])) + list(obj.get("post_text", [])),
                answer_type="number", program=str(qa.get("program", "")),
                metadata={"answer_text": qa.get("answer", "")},
            )
        )  # fmt: skip
    return out
