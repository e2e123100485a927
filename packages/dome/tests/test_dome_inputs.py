"""Inputs: held-out spans n-gram disjoint from training inputs (counted), stored queries; bad input gets clear errors
(empty texts, duplicate ids, re-indexed ids, unusable vocabulary, bad configs)."""

import dataclasses
import json
import random
import string

import numpy as np
import pytest
from dome.config import DataConfig
from dome.data import (
    Document,
    DocumentError,
    index_text,
    load_documents,
    read_documents_jsonl,
    split_protocol,
    validate_documents,
)
from dome.docids import naive_ids, semantic_ids
from dome.heldout import make_queries, ngram_overlap, read_queries, write_queries


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_empty_text_names_file_and_line(tmp_path):
    p = _write(tmp_path / "docs.jsonl", [{"id": "a", "text": "fine"}, {"id": "b", "text": "  "}])
    with pytest.raises(DocumentError, match=r"docs.jsonl: line 2 \(id 'b'\): field 'text' is empty"):
        read_documents_jsonl(p)


def test_duplicate_ids_name_both_records(tmp_path):
    p = _write(tmp_path / "docs.jsonl", [{"id": "a", "text": "x y"}, {"id": "a", "text": "z"}])
    with pytest.raises(DocumentError, match=r"record 2: duplicate id 'a' \(first at record 1\)"):
        read_documents_jsonl(p)


def test_missing_field_and_bad_json(tmp_path):
    p = _write(tmp_path / "docs.jsonl", [{"id": "a"}])
    with pytest.raises(DocumentError, match="line 1: missing field 'text'"):
        read_documents_jsonl(p)
    p = _write(tmp_path / "bad.jsonl", ['{"id": "a", "text": "ok"}', "{not json"])
    with pytest.raises(DocumentError, match="bad.jsonl: line 2: not valid JSON"):
        read_documents_jsonl(p)
    with pytest.raises(DocumentError, match="not found"):
        read_documents_jsonl(tmp_path / "missing.jsonl")


def test_validate_documents_empty_id():
    with pytest.raises(DocumentError, match="record 1: field 'id' is empty"):
        validate_documents([Document(" ", "text")], "mem")


def test_edit_batch_with_indexed_ids_is_rejected():
    scheme = naive_ids(["a", "b"])
    with pytest.raises(ValueError, match=r"already have docIDs: \['b'\]"):
        scheme.add(["c", "b"])
    emb = np.eye(4)
    sem = semantic_ids(["a", "b", "c", "d"], emb, k=2, c=1)
    with pytest.raises(ValueError, match="already have docIDs"):
        sem.add(["a"], emb[:1])


def _grams(text, n):
    # independent of dome.heldout: lower-case, strip edge punctuation, all word n-grams
    w = [t.strip(string.punctuation).lower() for t in text.split()]
    w = [x for x in w if x]
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def _overlapping(queries, training, n=3):
    banned = set().union(*(_grams(t, n) for t in training))
    return [q for q in queries if _grams(q, n) & banned]


def test_heldout_spans_share_no_trigram_with_any_training_input():
    """The quick replication's data (150 HotpotQA passages, 6 training spans per D0 passage, 20 per new one, the
    indexing prefix): no test or dev span shares a word trigram with any training input (counted: 0). Spans drawn
    freely from the same documents, as before, do (the count can fail)."""
    docs, _ = load_documents(DataConfig(max_docs=150))
    new = {d.id for d in split_protocol(docs, 0.8, 1, seed=0)[1]}
    cfg = DataConfig(max_docs=150, train_queries=6)
    qs = make_queries(docs, cfg, seed=0, train_counts={i: 20 for i in new}, dev_per_doc=2)
    training = [q.text for q in qs.train] + [index_text(d, cfg.index_words) for d in docs]
    assert len(qs.test) > 200 and len(qs.dev) > 180 and {q.doc_id for q in qs.test} & new
    assert _overlapping([q.text for q in qs.test + qs.dev], training) == []
    c = qs.counts
    assert c["test_kept"] == len(qs.test) == c["test_wanted"] - c["test_no_room"] - c["test_overlap"] and c["test_overlap"]
    # the previous way: a span anywhere in the document, only required to differ from the training spans
    rng = random.Random(0)
    free = []
    for d in docs:
        words = d.text.split()
        for _ in range(2):
            n = rng.randint(5, 10)
            start = rng.randrange(max(1, len(words) - n + 1))
            free.append(" ".join(words[start : start + n]))
    assert len(_overlapping(free, training)) > 0.5 * len(free)


def test_heldout_windows_same_for_any_number_of_training_spans():
    """Old (6 spans) and new (20 spans) documents get the same windows: the ban covers the text training spans may
    come from, not the spans drawn. Training spans never contain a held-out word; the first 6 of 20 spans are the 6."""
    docs = [Document(f"d{i}", " ".join(f"w{i}_{j}" for j in range(60))) for i in range(4)]
    cfg = DataConfig(train_queries=6, test_queries=2, query_words_min=4, query_words_max=6, index_words=8)
    few = make_queries(docs, cfg, seed=3, dev_per_doc=1)
    many = make_queries(docs, cfg, seed=3, train_counts={d.id: 20 for d in docs}, dev_per_doc=1)
    assert few.test == many.test and few.dev == many.dev and len(few.test) == 8 and len(few.dev) == 4
    for d in docs:
        six = [q.text for q in few.train if q.doc_id == d.id]
        assert six == [q.text for q in many.train if q.doc_id == d.id][:6]
    held = {w for q in many.test + many.dev for w in q.text.split()}
    assert not held & {w for q in many.train for w in q.text.split()}
    assert not held & {w for d in docs for w in index_text(d, 8).split()}
    assert make_queries(docs, cfg, seed=3, dev_per_doc=1) == few and make_queries(docs, cfg, seed=4).test != few.test


def test_short_documents_get_fewer_windows_and_overlap_is_dropped():
    # 12 words, prefix 8: room for one 4-word window only (the test one); a window repeating a trained phrase
    # ("alpha beta gamma" is in the prefix) is dropped
    cfg = DataConfig(train_queries=2, test_queries=2, query_words_min=4, query_words_max=4, index_words=8)
    short = make_queries([Document("s", " ".join(f"s{j}" for j in range(12)))], cfg, seed=0, dev_per_doc=1)
    assert len(short.test) == 1 and short.counts["test_no_room"] == 1 and short.counts["dev_no_room"] == 1
    rep = Document("r", "alpha beta gamma delta p4 p5 p6 p7 alpha beta gamma delta")
    out = make_queries([rep], dataclasses.replace(cfg, test_queries=1), seed=0)
    assert out.test == [] and out.counts["test_overlap"] == 1
    assert ngram_overlap(["x alpha beta gamma"], ["alpha beta gamma delta"], 3) == 1
    assert ngram_overlap(["x alpha beta"], ["alpha beta gamma delta"], 3) == 0


def test_stored_queries_round_trip_and_bad_records(tmp_path):
    docs = [Document(f"d{i}", " ".join(f"w{i}_{j}" for j in range(40))) for i in range(3)]
    qs = make_queries(docs, DataConfig(train_queries=2, index_words=8), seed=0, dev_per_doc=1)
    path = write_queries(tmp_path / "queries.jsonl", qs)
    back = read_queries(path)
    assert (back.train, back.test, back.dev) == (qs.train, qs.test, qs.dev)
    path.write_text('{"qid": "a", "doc_id": "d0", "text": "x", "split": "holdout"}\n')
    with pytest.raises(DocumentError, match=r"queries.jsonl: line 1: field 'split' must be train, test or dev"):
        read_queries(path)
    with pytest.raises(DocumentError, match="no stored queries"):
        read_queries(tmp_path / "missing.jsonl")


def test_split_protocol_partitions_and_rejects_bad_shares():
    docs = [Document(str(i), f"text {i}") for i in range(10)]
    parts = split_protocol(docs, 0.6, 2, seed=0)
    assert [len(p) for p in parts] == [6, 2, 2]
    assert sorted(d.id for p in parts for d in p) == sorted(d.id for d in docs)
    with pytest.raises(ValueError, match="initial_share"):
        split_protocol(docs, 1.0, 2, seed=0)
    with pytest.raises(ValueError, match="cannot form 5 batches"):
        split_protocol(docs, 0.8, 5, seed=0)


def test_cli_help_lists_subcommands(capsys):
    from dome.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for sub in ("train", "eval", "edit", "replicate"):
        assert sub in out


def test_unknown_config_key_is_named(tmp_path):
    from dome.config import DomeConfig
    from shared.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="edit.stepz"):
        load_config(DomeConfig, None, ["edit.stepz=3"])


def test_unknown_data_source_is_rejected():
    from dome.data import load_documents

    with pytest.raises(DocumentError, match="data.source 'nope'"):
        load_documents(DataConfig(source="nope"))
