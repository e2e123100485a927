"""Atomic JSONL writing and reading for synthetic records (dataclasses or dicts).

Written through a temporary file and `os.replace`, so an interrupted dump never leaves half a file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _as_dict(record: Any) -> dict:
    if dataclasses.is_dataclass(record) and not isinstance(record, type):
        return dataclasses.asdict(record)
    if isinstance(record, dict):
        return record
    raise TypeError(f"cannot serialise {type(record).__name__} to JSONL: expected a dataclass or dict")


def write_jsonl(records: Iterable[Any], path: str | Path) -> Path:
    """Write records one JSON object per line; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(_as_dict(record), ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSONL file written by `write_jsonl` (blank lines ignored)."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                out.append(json.loads(line))
    return out
