"""Loaders for question-answering formats: FlashRAG jsonl (TriviaQA, PopQA, Bamboogle, NQ), NQ-open, PopQA tsv,
and the multi-hop sets with context (HotpotQA distractor, 2WikiMultihopQA, MuSiQue) or question/answer only.
"""

from __future__ import annotations

import ast
import csv
import json
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_json_array, iter_jsonl, load_json, require, str_list
from benchmarks.data.records import MultiHopRecord, Paragraph, QARecord


def load_flashrag(path: str | Path) -> list[QARecord]:
    """FlashRAG jsonl `{id, question, golden_answers, metadata?}` (TriviaQA, PopQA, Bamboogle, NQ ...)."""
    out = []
    for line, obj in iter_jsonl(path):
        out.append(
            QARecord(
                id=str(require(obj, "id", path, line)),
                question=require(obj, "question", path, line, str),
                golden_answers=str_list(obj, "golden_answers", path, line),
                metadata=obj.get("metadata") or {},
            )
        )
    return out


def load_nq_open(path: str | Path) -> list[QARecord]:
    """NQ-open jsonl `{question, answer: [..]}` (google-research-datasets/natural-questions/nq_open)."""
    return [
        QARecord(id=f"nq-{line}", question=require(obj, "question", path, line, str),
                 golden_answers=str_list(obj, "answer", path, line))
        for line, obj in iter_jsonl(path)
    ]  # fmt: skip


def load_popqa(path: str | Path) -> list[QARecord]:
    """PopQA official tsv (columns include id, question, possible_answers as a JSON list) or FlashRAG jsonl."""
    path = Path(path)
    if path.suffix == ".jsonl":
        return load_flashrag(path)
    if not path.is_file():
        raise DataError(path, "file not found")
    out = []
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        for field in ("question", "possible_answers"):
            if field not in (reader.fieldnames or []):
                raise DataError(path, "missing column in header", line=1, field=field)
        for line, row in enumerate(reader, start=2):
            try:
                answers = json.loads(row["possible_answers"])
            except (json.JSONDecodeError, TypeError) as e:
                raise DataError(path, "not a JSON list", line=line, field="possible_answers") from e
            if not isinstance(answers, list) or not answers:
                raise DataError(path, "expected a non-empty JSON list", line=line, field="possible_answers")
            meta = {k: row[k] for k in ("subj", "prop", "obj", "s_pop") if k in row}
            out.append(
                QARecord(str(row.get("id") or f"popqa-{line}"), row["question"], [str(a) for a in answers], meta)
            )
    return out


def load_qa_pairs(path: str | Path, name: str = "qa") -> list[QARecord]:
    """A JSON array of `{question, answer}` (the question/answer-only 2Wiki and MuSiQue dev files)."""
    return [
        QARecord(id=str(obj.get("id", obj.get("_id", f"{name}-{i}"))), question=require(obj, "question", path, i, str),
                 golden_answers=str_list(obj, "answer", path, i))
        for i, obj in iter_json_array(path)
    ]  # fmt: skip


def _maybe_literal(value, path, line, field):
    """Some vendored files store nested fields as Python-literal strings; parse them back."""
    if isinstance(value, str):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError) as e:
            raise DataError(path, "unparseable nested value", line=line, field=field) from e
    return value


def _hotpot_record(obj: dict, path: Path, line: int) -> MultiHopRecord:
    ctx = _maybe_literal(require(obj, "context", path, line), path, line, "context")
    sf = _maybe_literal(require(obj, "supporting_facts", path, line), path, line, "supporting_facts")
    if isinstance(ctx, dict):  # HF schema: {"title": [...], "sentences": [[...]]}
        pairs = list(zip(ctx.get("title", []), ctx.get("sentences", [])))
    elif isinstance(ctx, list):  # original schema: [[title, [sentences]], ...]
        pairs = [tuple(p) for p in ctx]
    else:
        raise DataError(path, "expected a list or a {title, sentences} object", line=line, field="context")
    if isinstance(sf, dict):
        facts = list(zip(sf.get("title", []), sf.get("sent_id", [])))
    elif isinstance(sf, list):
        facts = [tuple(f) for f in sf]
    else:
        raise DataError(path, "expected a list or a {title, sent_id} object", line=line, field="supporting_facts")
    if not pairs or any(len(p) != 2 or not isinstance(p[1], list) for p in pairs):
        raise DataError(path, "paragraphs must be (title, [sentences]) pairs", line=line, field="context")
    support_titles = {t for t, _ in facts}
    paragraphs = [Paragraph(str(t), [str(s) for s in sents], t in support_titles) for t, sents in pairs]
    qid = obj.get("id", obj.get("_id"))
    if qid is None:
        raise DataError(path, "missing", line=line, field="id")
    meta = {k: obj[k] for k in ("type", "level") if k in obj}
    return MultiHopRecord(
        id=str(qid), question=require(obj, "question", path, line, str),
        golden_answers=str_list(obj, "answer", path, line), paragraphs=paragraphs,
        supporting_facts=[(str(t), int(i)) for t, i in facts], metadata=meta,
    )  # fmt: skip


def load_hotpotqa(path: str | Path) -> list[MultiHopRecord]:
    """HotpotQA distractor (also 2WikiMultihopQA, same layout): jsonl in the HF schema or the original JSON array."""
    path = Path(path)
    rows = iter_jsonl(path) if path.suffix == ".jsonl" else iter_json_array(path)
    return [_hotpot_record(obj, path, line) for line, obj in rows]


load_2wiki = load_hotpotqa  # 2WikiMultihopQA keeps HotpotQA's context/supporting_facts layout (plus evidences)


def load_musique(path: str | Path) -> list[MultiHopRecord]:
    """MuSiQue with paragraphs (`{id, paragraphs[{idx,title,paragraph_text,is_supporting}], question,
    question_decomposition, answer, answer_aliases}`), jsonl or JSON array."""
    path = Path(path)
    rows = iter_jsonl(path) if path.suffix == ".jsonl" else iter_json_array(path)
    out = []
    for line, obj in rows:
        paras = require(obj, "paragraphs", path, line, list)
        paragraphs = []
        for p in paras:
            if not isinstance(p, dict) or "paragraph_text" not in p:
                raise DataError(path, "each paragraph needs paragraph_text", line=line, field="paragraphs")
            paragraphs.append(Paragraph(str(p.get("title", "")), [p["paragraph_text"]], bool(p.get("is_supporting"))))
        aliases = _maybe_literal(obj.get("answer_aliases", []), path, line, "answer_aliases") or []
        steps = _maybe_literal(obj.get("question_decomposition", []), path, line, "question_decomposition")
        answer = require(obj, "answer", path, line, str)
        out.append(
            MultiHopRecord(
                id=str(require(obj, "id", path, line)), question=require(obj, "question", path, line, str),
                golden_answers=[answer] + [a for a in aliases if a != answer], paragraphs=paragraphs,
                decomposition=list(steps or []), metadata={"answerable": obj.get("answerable")},
            )
        )  # fmt: skip
    return out


def load_passage_corpus(path: str | Path) -> list[dict]:
    """HippoRAG passage corpora as `[{id, contents}]`: a {title: [sentences]} object or a [{title, text}] list."""
    path = Path(path)
    data = load_json(path)
    out = []
    if isinstance(data, dict):
        for i, (title, sents) in enumerate(data.items()):
            if not isinstance(sents, list):
                raise DataError(path, "expected a list of sentences", line=i, field=title)
            out.append({"id": str(i), "contents": f'"{title}"\n' + "".join(sents).strip()})
    elif isinstance(data, list):
        for i, obj in enumerate(data):
            text = require(obj, "text", path, i, str) if isinstance(obj, dict) else None
            if text is None:
                raise DataError(path, "expected an object", line=i)
            title = obj.get("title", "")
            out.append({"id": str(obj.get("idx", i)), "contents": f'"{title}"\n{text}' if title else text})
    else:
        raise DataError(path, "expected an object or an array at top level")
    return out
