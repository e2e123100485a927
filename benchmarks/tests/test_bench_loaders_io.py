"""The low-level readers behind every loader: gzip read (whatever the name) or refused by name, an empty JSONL an
error, a UTF-8 byte-order mark accepted, non-UTF-8 text named by file and line; checked through a real loader."""

from __future__ import annotations

import bz2
import gzip
import json

import pytest
from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_json_array, iter_jsonl, load_json
from benchmarks.data.qa import load_flashrag

ROWS = [{"id": "q1", "question": "Capital of France?", "golden_answers": ["Paris"]},
        {"id": "q2", "question": "Capital of Peru?", "golden_answers": ["Lima"]}]
TEXT = "".join(json.dumps(row) + "\n" for row in ROWS)


@pytest.mark.parametrize("name", ["rows.jsonl.gz", "rows.jsonl"])  # gzip is found by its bytes, not its name
def test_gzip_jsonl_is_read(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(gzip.compress(TEXT.encode()))
    assert [obj for _, obj in iter_jsonl(path)] == ROWS
    assert [r.golden_answers for r in load_flashrag(path)] == [["Paris"], ["Lima"]]


def test_gzip_json_array_is_read(tmp_path):
    path = tmp_path / "rows.json.gz"
    path.write_bytes(gzip.compress(json.dumps(ROWS).encode()))
    assert [obj for _, obj in iter_json_array(path)] == ROWS


def test_broken_gzip_and_other_compressions_are_refused_by_name(tmp_path):
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(TEXT.encode())[:30])
    with pytest.raises(DataError, match=r"broken\.jsonl\.gz:1: not a readable gzip file"):
        list(iter_jsonl(broken))
    with pytest.raises(DataError, match=r"broken\.jsonl\.gz: not a readable gzip file"):
        load_json(broken)
    packed = tmp_path / "rows.jsonl.bz2"
    packed.write_bytes(bz2.compress(TEXT.encode()))
    with pytest.raises(DataError, match=r"rows\.jsonl\.bz2: bzip2-compressed input is not supported"):
        list(iter_jsonl(packed))


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"], ids=["empty", "blank", "bom-only"])
def test_empty_jsonl_is_an_error(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"empty\.jsonl: holds no records"):
        list(iter_jsonl(path))
    with pytest.raises(DataError, match=r"empty\.jsonl: holds no records"):
        load_flashrag(path)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + TEXT.encode())
    assert [obj["id"] for _, obj in iter_jsonl(path)] == ["q1", "q2"]  # not "\ufeffid"
    array = tmp_path / "bom.json"
    array.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS).encode())
    assert load_json(array) == ROWS


def test_non_utf8_text_is_named_with_its_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(TEXT.encode() + '{"id": "q3", "question": "Café?"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.jsonl:3: not UTF-8 text"):
        list(iter_jsonl(path))


def test_huge_integer_and_deep_nesting_are_named(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(TEXT + '{"id": ' + "9" * 5000 + "}\n")
    with pytest.raises(DataError, match=r"odd\.jsonl:3: invalid JSON"):
        list(iter_jsonl(path))
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"odd\.jsonl:1: invalid JSON"):
        list(iter_jsonl(path))
