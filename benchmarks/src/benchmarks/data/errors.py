"""`DataError`: the one exception every loader raises on bad input, naming file, record (line) and field."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Malformed or missing data. The message reads `FILE:LINE: field 'F': problem` (parts omitted when unknown)."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None, field: str | None = None) -> None:
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path + (f":{line}" if line is not None else "")
        what = f"field {field!r}: " if field else ""
        super().__init__(f"{where}: {what}{problem}")
