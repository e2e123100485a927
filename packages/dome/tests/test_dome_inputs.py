"""Bad input gets clear errors: empty texts, duplicate ids, re-indexed ids, unusable vocabulary, bad configs."""

import json

import numpy as np
import pytest
from dome.config import DataConfig
from dome.data import (
    Document,
    DocumentError,
    pseudo_queries,
    read_documents_jsonl,
    split_protocol,
    validate_documents,
)
from dome.docids import naive_ids, semantic_ids


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


def test_pseudo_queries_held_out_and_deterministic():
    docs = [Document(f"d{i}", " ".join(f"w{i}_{j}" for j in range(40))) for i in range(3)]
    cfg = DataConfig(train_queries=4, test_queries=2, query_words_min=4, query_words_max=6)
    tr, te = pseudo_queries(docs, cfg, seed=0)
    assert len(tr) == 12 and len(te) == 6
    assert {q.text for q in tr}.isdisjoint({q.text for q in te})
    assert all(q.text in next(d.text for d in docs if d.id == q.doc_id) for q in tr + te)
    assert pseudo_queries(docs, cfg, seed=0) == (tr, te)


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
