"""Low-level readers shared by the loaders: JSONL and JSON arrays with errors that name file, line and field.

Every reader opens files through `open_data`: gzip input is read whatever its name (detected by its magic
bytes), other compressed formats are refused with the file named, a UTF-8 byte-order mark is accepted, and
text that is not UTF-8 is an error naming the file (and line). An empty JSONL file is an error, not an empty
dataset.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from benchmarks.data.errors import DataError

# magic bytes of compressed formats we do not read: named in the error instead of a UnicodeDecodeError
_REFUSED_MAGIC = {b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd", b"PK\x03\x04": "zip"}


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(path, "file not found")


def open_data(path: str | Path) -> IO[bytes]:
    """Open a data file for reading bytes, decompressing gzip (found by its magic bytes, whatever the name);
    other compressed formats are refused with the file named."""
    path = Path(path)
    _check_file(path)
    with path.open("rb") as f:
        head = f.read(6)
    if head.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    for magic, name in _REFUSED_MAGIC.items():
        if head.startswith(magic):
            raise DataError(path, f"{name}-compressed input is not supported; decompress it or use gzip")
    return path.open("rb")


def _decode(raw: bytes, path: Path, line: int | None, first: bool) -> str:
    """UTF-8 text of `raw` (a leading byte-order mark dropped when `first`); DataError names file and line."""
    if first and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(path, f"not UTF-8 text ({e.reason} at byte {e.start})", line=line) from None


_GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line raises DataError with its number, and a
    file without any record is an error."""
    path = Path(path)
    lineno, records = 0, 0
    with open_data(path) as f:
        try:
            for lineno, raw in enumerate(f, start=1):
                line = _decode(raw, path, lineno, first=lineno == 1)
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=lineno) from e
                except (ValueError, RecursionError) as e:  # huge integers, absurd nesting
                    raise DataError(path, f"invalid JSON ({e})", line=lineno) from None
                if not isinstance(obj, dict):
                    raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", line=lineno)
                records += 1
                yield lineno, obj
        except _GZIP_ERRORS as e:
            raise DataError(path, f"not a readable gzip file ({e})", line=lineno + 1) from None
    if records == 0:
        raise DataError(path, "holds no records (the file is empty or blank)")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        with open_data(path) as f:
            raw = f.read()
    except _GZIP_ERRORS as e:
        raise DataError(path, f"not a readable gzip file ({e})") from None
    text = _decode(raw, path, None, first=True)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg} at column {e.colno})", line=e.lineno) from e
    except (ValueError, RecursionError) as e:
        raise DataError(path, f"invalid JSON ({e})") from None


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
