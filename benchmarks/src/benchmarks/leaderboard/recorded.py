"""Recorded full runs: the figures each package's claim rests on, shown beside the leaderboard's quick run.

A quick run (`leaderboard --quick`) checks the plumbing in minutes; the claim of a package rests on its full run
(more seeds, more steps, more test items), which takes far longer than a leaderboard run. Each built package keeps
that run's results in `recorded/<package>.json` (shipped inside this package):

    {"package": "dome", "version": "0.3.0", "command": "uv run dome replicate ...", "commit": "9f825b1",
     "date": "2026-05-20", "seeds": [0, 1, 2], "data": "...", "headline": "recall@10_new", "main_method": "dome",
     "rows": [{"method": "dome", "metrics": {"recall@10_new": 0.106, "recall@10_new_std": 0.111, ...}}, ...],
     "reading": "one sentence: does the claim hold at this scale", "source": "where the figures were copied from"}

`rows` follow results.json (`<metric>_std` = sd over the seeds). To update a package after a full rerun, point
`leaderboard --record RESULTS.json --record-command "the command that produced it"` at the run's results.json: the
file is rebuilt from it (commit, date, seeds, rows, headline) so no figure is typed by hand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.data.errors import DataError

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"
REQUIRED = ("package", "version", "command", "commit", "date", "seeds", "rows")


@dataclass
class Recorded:
    path: Path
    package: str
    version: str
    command: str
    commit: str
    date: str
    seeds: list[int]
    rows: list[dict[str, Any]]
    headline: str = ""
    main_method: str = ""
    data: str = ""
    reading: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def method_names(self) -> list[str]:
        return [r["method"] for r in self.rows]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(path, "file not found") from e
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e


def load_recorded(path: str | Path) -> Recorded:
    """Read and check one recorded file; DataError names the file and the field."""
    path = Path(path)
    raw = _read_json(path)
    if not isinstance(raw, dict):
        raise DataError(path, "must hold a JSON object")
    for key in REQUIRED:
        if key not in raw:
            raise DataError(path, "missing", field=key)
    if not isinstance(raw["seeds"], list) or not all(isinstance(s, int) for s in raw["seeds"]):
        raise DataError(path, "must be a list of integers", field="seeds")
    rows = raw["rows"]
    if not isinstance(rows, list) or not rows:
        raise DataError(path, "must be a non-empty list", field="rows")
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or not isinstance(row.get("method"), str) or not isinstance(
                row.get("metrics"), dict):
            raise DataError(path, "needs a string 'method' and an object 'metrics'", field=f"rows[{i}]")
        for name, value in row["metrics"].items():
            if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)
                                      or not math.isfinite(value)):
                raise DataError(path, "must be a finite number or null", field=f"rows[{i}].metrics.{name}")
    known = {f for f in Recorded.__dataclass_fields__ if f not in ("path", "extra")}
    return Recorded(path=path, **{k: raw[k] for k in known if k in raw},
                    extra={k: v for k, v in raw.items() if k not in known})


def find_recorded(package: str, folder: Path = RECORDED_DIR) -> Recorded | None:
    path = folder / f"{package}.json"
    return load_recorded(path) if path.is_file() else None


def seeds_of(doc: dict) -> list[int]:
    """The seeds a results.json covers: a list where one is stored, else a count of seeds from `seed` up (some
    packages store `"seeds": 3` beside `"seed": 0`), else the one `seed`."""
    first = int(doc.get("seed", 0))
    for value in (doc.get("seeds"), (doc.get("data") or {}).get("seeds"), (doc.get("config") or {}).get("seeds")):
        if isinstance(value, list) and value and all(isinstance(s, int) for s in value):
            return list(value)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return list(range(first, first + value))
    return [first]


def record_from_results(results_path: str | Path, command: str, folder: Path = RECORDED_DIR,
                        reading: str = "", source: str = "") -> Path:
    """Write `folder/<package>.json` from a full run's results.json (validated first). `source` says where a reader
    finds the figures (a README section); the results path itself is a path of the recording machine, not kept."""
    from shared.atomic import write_json
    from shared.eval import validate_results

    results_path = Path(results_path)
    doc = _read_json(results_path)
    validate_results(doc, source=str(results_path))
    if doc.get("quick"):
        raise DataError(results_path, "is a quick run; record the full run's results.json", field="quick")
    record = {
        "package": doc["package"], "version": str(doc.get("version")), "command": command,
        "commit": str(doc.get("git", ""))[:12], "date": str(doc.get("started", ""))[:10],
        "seeds": seeds_of(doc), "data": str((doc.get("data") or {}).get("name", "")),
        "headline": doc.get("headline", ""), "main_method": doc.get("main_method", ""),
        "rows": doc["rows"], "reading": reading,
        "source": source or "results.json written by the command above",
    }
    return write_json(folder / f"{doc['package']}.json", record)
