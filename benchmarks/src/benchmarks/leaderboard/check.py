"""Regression check against reference results (the pyserini way): expected/<package>.json, OK/FAIL per row.

Each expected file lists rows `{method, metric, value, tol}`; a measured value passes when |measured - value| <=
tol. `update_expected` writes these files from a run, with a tolerance that scales with the value, so that the
reference numbers are always ones the code really produced. Wall-clock metrics (names ending in `seconds`) are
not regressed on: they measure the machine and its load, not the code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.leaderboard.render import Entry

DEFAULT_EXPECTED = Path(__file__).resolve().parents[3] / "expected"


def is_timing(metric: str) -> bool:
    """Wall-clock metrics (`update_seconds`, `prep_seconds`, ...): reported, never checked."""
    return metric.removesuffix("_std").endswith("seconds")


def load_expected(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e
    rows = raw.get("rows") if isinstance(raw, dict) else None
    if not isinstance(rows, list):
        raise DataError(path, "missing or not a list", field="rows")
    for i, r in enumerate(rows):
        for key in ("method", "metric", "value", "tol"):
            if key not in r:
                raise DataError(path, "missing", field=f"rows[{i}].{key}")
        if not isinstance(r["value"], (int, float)) or not isinstance(r["tol"], (int, float)) or r["tol"] < 0:
            raise DataError(path, "value and tol must be numbers, tol >= 0", field=f"rows[{i}]")
    return raw


def check(entries: list[Entry], expected_dir: Path) -> tuple[list[str], bool]:
    """Lines `OK|FAIL|SKIP package method metric measured (expected v ± tol)` and whether everything passed."""
    lines, ok = [], True
    for e in entries:
        path = expected_dir / f"{e.spec.name}.json"
        if not path.is_file():
            lines.append(f"SKIP  {e.spec.name}: no expected file ({e.status})")
            continue
        expected = load_expected(path)
        if e.results is None:
            lines.append(f"FAIL  {e.spec.name}: no results ({e.status})")
            ok = False
            continue
        measured = {r.method: r.metrics for r in e.results.rows}
        for r in expected["rows"]:
            if is_timing(r["metric"]):
                continue
            value = measured.get(r["method"], {}).get(r["metric"])
            target = f"(expected {r['value']:.4g} ± {r['tol']:.2g})"
            if value is None:
                lines.append(f"FAIL  {e.spec.name} {r['method']} {r['metric']}: not reported {target}")
                ok = False
            elif abs(value - r["value"]) <= r["tol"]:
                lines.append(f"OK    {e.spec.name} {r['method']} {r['metric']}: {value:.4g} {target}")
            else:
                lines.append(f"FAIL  {e.spec.name} {r['method']} {r['metric']}: {value:.4g} {target}")
                ok = False
    return lines, ok


def update_expected(
    entries: list[Entry], expected_dir: Path, rel_tol: float = 0.1, abs_tol: float = 0.02
) -> list[Path]:
    """Write expected/<package>.json from the current results (every row, every metric)."""
    expected_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for e in entries:
        if e.results is None:
            continue
        rows = [
            {"method": r.method, "metric": m, "value": v, "tol": round(max(abs_tol, rel_tol * abs(v)), 6)}
            for r in e.results.rows
            for m, v in r.metrics.items()
            if v is not None and not is_timing(m)  # null: not applicable; timings measure the machine
        ]
        obj = {"package": e.spec.name, "version": e.results.version, "quick": e.results.quick, "rows": rows}
        path = expected_dir / f"{e.spec.name}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
