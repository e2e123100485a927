"""On-disk JSON cache for replies of slow or paid services (judge and teacher endpoints, web search).

One file per entry, `folder/<2 hex>/<sha256>.json`, named by the SHA-256 of the canonical JSON of the key and
holding `{"key": key, "value": value}`. Each file is written under a unique temporary name and renamed into place,
so a killed process, several threads or several processes writing the same entry never leave half a file, and a
finished entry survives any later kill (a resumed run pays only for what it had not asked yet). The stored key is
compared on read, so a hash collision can never return another request's reply.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

MISSING = object()


def canonical_json(obj: Any) -> str:
    """The key's text: sorted keys, no spaces, tuples as lists (so equal requests hash equally)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class JsonCache:
    """Key (any JSON value) -> JSON value, persisted under `folder`; `hits`/`misses` count lookups."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def _count(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1

    def path(self, key: Any) -> Path:
        digest = hashlib.sha256(canonical_json(key).encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, key: Any, default: Any = MISSING) -> Any:
        """The stored value, or `default` (the module's MISSING sentinel unless given) when there is none."""
        path = self.path(key)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._count(False)
            return default
        try:
            entry = json.loads(text)
            stored_key, value = entry["key"], entry["value"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"cache entry {path} is unreadable ({err}); delete it to re-ask") from err
        if canonical_json(stored_key) != canonical_json(key):  # a SHA-256 collision: treat as absent
            self._count(False)
            return default
        self._count(True)
        return value

    def put(self, key: Any, value: Any) -> Path:
        """Store `value` for `key` atomically (a value JSON cannot hold raises TypeError before anything is written)."""
        text = json.dumps({"key": key, "value": value}, ensure_ascii=False)
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json"))
