"""Documents, queries, the indexing text and the corpus-update protocol (D0 plus new batches D1..Dn).

Documents come from a bundled benchmark corpus (through `benchmarks.data`) or a user JSONL file with {"id", "text"}.
Queries are word spans of the documents, drawn by `dome.heldout` so that evaluation spans share no word n-gram
with any training input.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from dome.config import DataConfig


class DocumentError(ValueError):
    """Bad documents: empty text, duplicate ids, missing fields (the message names the file and record)."""


@dataclass(frozen=True)
class Document:
    id: str
    text: str


@dataclass(frozen=True)
class Query:
    qid: str
    text: str
    doc_id: str


def validate_documents(docs: list[Document], source: str = "documents") -> list[Document]:
    """Reject empty texts and duplicate ids with a message naming the source and record."""
    seen: dict[str, int] = {}
    for i, d in enumerate(docs):
        if not str(d.id).strip():
            raise DocumentError(f"{source}: record {i + 1}: field 'id' is empty")
        if not d.text or not d.text.strip():
            raise DocumentError(f"{source}: record {i + 1} (id {d.id!r}): field 'text' is empty")
        if d.id in seen:
            raise DocumentError(f"{source}: record {i + 1}: duplicate id {d.id!r} (first at record {seen[d.id] + 1})")
        seen[d.id] = i
    return docs


def read_jsonl(path: Path, fields: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line number, object) of every non-blank line; bad JSON, a non-object or a missing field names file and line."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DocumentError(f"{path}: line {n}: not valid JSON ({e.msg})") from e
        if not isinstance(rec, dict):
            raise DocumentError(f"{path}: line {n}: expected a JSON object")
        for key in fields:
            if key not in rec:
                raise DocumentError(f"{path}: line {n}: missing field {key!r}")
        rows.append((n, rec))
    return rows


def read_documents_jsonl(path: str | Path) -> list[Document]:
    """A user corpus: one JSON object per line with string fields "id" and "text" ("title" is prepended if present)."""
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"document file not found: {path}")
    docs: list[Document] = []
    for n, rec in read_jsonl(path, ("id", "text")):
        text = str(rec["text"])
        if rec.get("title") and text.strip():
            text = f"{rec['title']}. {text}"
        if not text.strip():
            raise DocumentError(f"{path}: line {n} (id {rec['id']!r}): field 'text' is empty")
        docs.append(Document(str(rec["id"]), text))
    return validate_documents(docs, str(path))


BUNDLED_CORPORA = {
    "hotpotqa": "hipporag_hotpotqa_corpus",
    "musique": "hipporag_musique_corpus",
    "cranfield": "cranfield",
}


def _doc_text(doc) -> str:
    title = getattr(doc, "title", "") or ""
    text = getattr(doc, "text", "") or ""
    return f"{title}. {text}" if title and text else (text or title)


def load_documents(cfg: DataConfig) -> tuple[list[Document], str]:
    """Documents named by cfg.source (first cfg.max_docs of them) and a dataset name for results.json."""
    if cfg.source.endswith(".jsonl"):
        docs = read_documents_jsonl(cfg.source)
        name = Path(cfg.source).name
    elif cfg.source in BUNDLED_CORPORA:
        from benchmarks.data.bundled import load_bundled

        loaded = load_bundled(BUNDLED_CORPORA[cfg.source])
        if cfg.source == "cranfield":
            docs = [Document(str(i), _doc_text(d)) for i, d in loaded.corpus.items()]
        else:
            docs = [Document(str(p["id"]), p["contents"]) for p in loaded]
        docs = validate_documents(docs, f"bundled {BUNDLED_CORPORA[cfg.source]}")
        name = BUNDLED_CORPORA[cfg.source]
    else:
        raise DocumentError(
            f"data.source {cfg.source!r}: use a .jsonl file of documents or one of {sorted(BUNDLED_CORPORA)}"
        )
    if cfg.max_docs and len(docs) > cfg.max_docs:
        docs = docs[: cfg.max_docs]
    return docs, name


def index_text(doc: Document, words: int) -> str:
    """The indexing example's input: the first `words` words of the document."""
    return " ".join(doc.text.split()[:words])


def split_protocol(docs: list[Document], initial_share: float, batches: int, seed: int) -> list[list[Document]]:
    """[D0, D1, ..., Dn]: a seeded shuffle, D0 = the first `initial_share`, the rest cut into `batches` parts."""
    if not 0 < initial_share < 1:
        raise ValueError(f"protocol.initial_share must be in (0, 1), got {initial_share}")
    if batches < 1:
        raise ValueError(f"protocol.batches must be >= 1, got {batches}")
    order = list(docs)
    random.Random(seed).shuffle(order)
    n0 = int(round(initial_share * len(order)))
    rest = order[n0:]
    if len(rest) < batches:
        raise ValueError(f"{len(rest)} new documents cannot form {batches} batches")
    size = len(rest) // batches
    parts = [rest[i * size : (i + 1) * size if i < batches - 1 else len(rest)] for i in range(batches)]
    return [order[:n0], *parts]
