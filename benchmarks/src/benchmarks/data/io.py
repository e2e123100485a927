"""Low-level readers shared by the loaders: JSONL and JSON arrays with errors that name file, line and field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.data.errors import DataError


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "file not found")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises DataError with its number."""
    path = Path(path)
    _check_file(path)
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=lineno) from e
            if not isinstance(obj, dict):
                raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
            yield lineno, obj


def load_json(path: str | Path) -> Any:
    path = Path(path)
    _check_file(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=e.lineno) from e


def iter_json_array(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (record index, object) of a JSON array file; errors name the record index as the `line`."""
    path = Path(path)
    data = load_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON array at top level, got {type(data).__name__}")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise DataError(path, f"record {i}: expected an object, got {type(obj).__name__}", line=i)
        yield i, obj


def require(obj: dict, field: str, path: Path | str, line: int, kind: type | tuple[type, ...] | None = None) -> Any:
    """`obj[field]`, checked for presence and type; DataError names file, line/record and field."""
    if field not in obj:
        raise DataError(path, "missing", line=line, field=field)
    value = obj[field]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise DataError(path, f"expected {names}, got {type(value).__name__}", line=line, field=field)
    return value


def str_list(obj: dict, field: str, path: Path | str, line: int) -> list[str]:
    """A field holding a list of answers (a bare string is accepted as a one-element list)."""
    value = require(obj, field, path, line, (list, str))
    values = [value] if isinstance(value, str) else value
    if not values or not all(isinstance(v, (str, int, float)) for v in values):
        raise DataError(path, "expected a non-empty list of strings", line=line, field=field)
    return [str(v) for v in values]
