"""Atomic JSONL writing and reading for synthetic records (dataclasses or dicts).

Written through `shared.atomic` (temporary file, then rename), so an interrupted dump never leaves half a file
behind; read through the loaders' `iter_jsonl`, so a bad line is reported with its file and number.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shared.atomic import write_jsonl as atomic_write_jsonl

from benchmarks.data.io import iter_jsonl


def _as_dict(record: Any) -> dict:
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    if isinstance(record, dict):
        return record
    raise TypeError(f"cannot serialise {type(record).__name__} to JSONL: expected a dataclass or dict")


def write_jsonl(records: Iterable[Any], path: str | Path) -> Path:
    """Write records one JSON object per line; returns the path."""
    return atomic_write_jsonl(path, (_as_dict(r) for r in records))


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file written by `write_jsonl` (blank lines ignored); a bad line raises DataError naming it."""
    return [record for _, record in iter_jsonl(path)]
