"""Loaders for retrieval collections: BEIR (corpus/queries jsonl + qrels tsv), MS MARCO passage (collection.tsv,
queries.tsv, TREC qrels), Cranfield (.I/.T/.W blocks + cranqrel), and NQ320k-style generative-retrieval splits.

Every loader keeps the judged queries only and raises a DataError when a judged query id has no query text,
instead of scoring a silently smaller set.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_jsonl, require
from benchmarks.data.records import Document, GenRetrievalSplit, RetrievalSet


def _read_tsv(path: Path, ncols: tuple[int, ...], skip_header: str | None = None):
    if not path.is_file():
        raise DataError(path, "file not found")
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t") if "\t" in line else line.split()
            if lineno == 1 and skip_header and parts[0] == skip_header:
                continue
            if len(parts) not in ncols:
                raise DataError(path, f"expected {' or '.join(map(str, ncols))} columns, got {len(parts)}", line=lineno)
            yield lineno, parts


def _int(value: str, path: Path, line: int, field: str) -> int:
    try:
        return int(value)
    except ValueError as e:
        raise DataError(path, f"expected an integer, got {value!r}", line=line, field=field) from e


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels `qid 0 docid grade` or BEIR tsv `query-id corpus-id score` (with header)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    for line, parts in _read_tsv(path, (3, 4), skip_header="query-id"):
        qid, did, grade = (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], parts[2], parts[3])
        qrels.setdefault(qid, {})[did] = _int(grade, path, line, "relevance")
    return qrels


def judged_queries(
    queries: dict[str, str], qrels: dict[str, dict[str, int]], qrels_path: Path, hint: str = ""
) -> dict[str, str]:
    """The queries that have judgements; a judged query id with no query text is a DataError naming the qrels
    file, how many judged ids matched nothing and the first of them (a silent drop would score a different set)."""
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise DataError(
            qrels_path,
            f"{len(missing)} of {len(qrels)} judged query ids match no query (first: {missing[:5]}){hint}",
            field="query-id",
        )
    return {q: t for q, t in queries.items() if q in qrels}


def load_beir(folder: str | Path, split: str = "test") -> RetrievalSet:
    """BEIR layout: corpus.jsonl `{_id, title, text}`, queries.jsonl `{_id, text}`, qrels/<split>.tsv."""
    folder = Path(folder)
    corpus = {}
    for line, obj in iter_jsonl(folder / "corpus.jsonl"):
        did = str(require(obj, "_id", folder / "corpus.jsonl", line))
        corpus[did] = Document(did, require(obj, "text", folder / "corpus.jsonl", line, str), str(obj.get("title", "")))
    queries = {
        str(require(obj, "_id", folder / "queries.jsonl", line)): require(
            obj, "text", folder / "queries.jsonl", line, str
        )
        for line, obj in iter_jsonl(folder / "queries.jsonl")
    }
    qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
    return RetrievalSet(corpus, judged_queries(queries, qrels, folder / "qrels" / f"{split}.tsv"), qrels)


def load_msmarco(collection: str | Path, queries: str | Path, qrels: str | Path) -> RetrievalSet:
    """MS MARCO passage: collection.tsv `pid\\tpassage`, queries.tsv `qid\\tquery`, qrels `qid 0 pid 1`.

    MS MARCO is not bundled (its terms do not allow redistribution): download it from microsoft/msmarco.
    """
    collection, queries = Path(collection), Path(queries)
    corpus = {}
    for _, parts in _read_tsv(collection, (2,)):
        corpus[parts[0]] = Document(parts[0], parts[1])
    qs = {parts[0]: parts[1] for _, parts in _read_tsv(queries, (2,))}
    judged = load_qrels(qrels)
    return RetrievalSet(corpus, judged_queries(qs, judged, Path(qrels)), judged)


def _cran_blocks(path: Path) -> list[tuple[int, str, dict[str, str]]]:
    """Split a Cranfield file into (line of .I, id, {field letter: text}) blocks."""
    if not path.is_file():
        raise DataError(path, "file not found")
    blocks, current, field = [], None, None
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        m = re.match(r"^\.([ITABW])\b\s*(.*)$", line)
        if m and m.group(1) == "I":
            current = (lineno, m.group(2).strip(), {})
            blocks.append(current)
            field = None
        elif m:
            if current is None:
                raise DataError(path, f"field .{m.group(1)} before any .I line", line=lineno)
            field = m.group(1)
            current[2][field] = ""
        elif current is not None and field is not None:
            current[2][field] += line.strip() + " "
    return blocks


def load_cranfield(folder: str | Path, first_query: int = 1) -> RetrievalSet:
    """Cranfield-1400: cran.all.1400, cran.qry, cranqrel. Query ids are ordinals (as the qrels use them, since the
    .I numbers of cran.qry are not sequential): the first block is `first_query` (1 for the whole file; a slice that
    starts at the 113th query block passes 113). Judged queries that match no block are a DataError.

    cranqrel codes, as its readme (Cleverdon) defines them: 1 = complete answer, 2 = high degree of relevance,
    3 = useful, 4 = minimum interest; they are mapped to graded relevance 4..1 (higher is better, as trec_eval
    expects). The readme does not define -1. In the file every query has exactly one -1 document, close to the
    query in wording (BM25 median rank 2 on the bundled queries; checked by a test): it is mapped to 0, judged not
    relevant, as ir_datasets and trec_eval's relevance > 0 rule treat it. The same BM25 check confirms the
    direction of 1..4 that the readme gives: code-1 documents rank highest, code-4 lowest (some redistributions
    label 4 as the complete answer; the ranks contradict that).
    """
    folder = Path(folder)
    corpus = {}
    for line, did, fields in _cran_blocks(folder / "cran.all.1400"):
        if "W" not in fields:
            raise DataError(folder / "cran.all.1400", "document without a .W text field", line=line, field="W")
        corpus[did] = Document(did, fields["W"].strip(), fields.get("T", "").strip())
    queries = {}
    for i, (line, _, fields) in enumerate(_cran_blocks(folder / "cran.qry"), start=first_query):
        if "W" not in fields:
            raise DataError(folder / "cran.qry", "query without a .W text field", line=line, field="W")
        queries[str(i)] = fields["W"].strip()
    qrels: dict[str, dict[str, int]] = {}
    path = folder / "cranqrel"
    for line, parts in _read_tsv(path, (3,)):
        code = _int(parts[2], path, line, "relevance")
        if code not in (-1, 1, 2, 3, 4):
            raise DataError(path, f"relevance code must be -1 or 1..4, got {code}", line=line, field="relevance")
        qrels.setdefault(parts[0], {})[parts[1]] = 0 if code == -1 else 5 - code
    hint = (
        f"; cran.qry's {len(queries)} blocks were numbered {first_query}..{first_query + len(queries) - 1}: "
        "pass first_query= the ordinal of its first block in the full 225-query file"
    )
    return RetrievalSet(corpus, judged_queries(queries, qrels, path, hint), qrels)


def load_nq320k(docs: str | Path, train: str | Path, test: str | Path) -> GenRetrievalSplit:
    """NQ320k-style generative retrieval: docs jsonl `{docid, text, title?}` and train/test tsv `query\\tdocid`.

    Query files name documents that must exist in the docs file; an unknown docid is an error, not a skip.
    """
    docs_path = Path(docs)
    documents = {}
    for line, obj in iter_jsonl(docs_path):
        did = str(require(obj, "docid", docs_path, line))
        documents[did] = Document(did, require(obj, "text", docs_path, line, str), str(obj.get("title", "")))
    splits = []
    for path in (Path(train), Path(test)):
        pairs = []
        for line, (query, did) in _read_tsv(path, (2,)):
            if did not in documents:
                raise DataError(path, f"docid {did!r} is not in {docs_path.name}", line=line, field="docid")
            pairs.append((query, did))
        splits.append(pairs)
    return GenRetrievalSplit(documents, splits[0], splits[1])
