"""Regression check against reference results (the pyserini way): expected/<package>.json, OK/FAIL per row, and
the package's claims (ordering assertions between rows, `registry.Claim`) as holds/fails, apart from value drift.

Each expected file names the package, its version and the mode (quick or full) it was measured in, lists rows
`{method, metric, value, tol}` and records `claims: {claim id: "holds" | "fails"}`. The check fails when:
- the expected file's package, version or mode differs from the results' (or the mode from the one checked);
- a package has results but no expected file (only a package without results is skipped);
- a measured value lies outside value ± tol, or a recorded metric is not reported;
- a claim's status differs from the recorded one (a flipped claim: the README's reading no longer holds), has no
  recorded status, or cannot be computed because a row or metric is missing.
`update_expected` writes these files from a run, with a tolerance that scales with the value, so that the reference
numbers are always ones the code really produced. Wall-clock metrics (names ending in `seconds`) are not regressed
on and claims on them are reported, not enforced: they measure the machine and its load, not the code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.leaderboard.registry import PackageSpec
from benchmarks.leaderboard.render import Entry
from benchmarks.leaderboard.results import Results

DEFAULT_EXPECTED = Path(__file__).resolve().parents[3] / "expected"
CLAIM_STATUSES = ("holds", "fails")


def is_timing(metric: str) -> bool:
    """Wall-clock metrics (`update_seconds`, `prep_seconds`, ...): reported, never checked."""
    return metric.removesuffix("_std").endswith("seconds")


def load_expected(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e
    if not isinstance(raw, dict):
        raise DataError(path, "expected a JSON object")
    for key, kind in (("package", str), ("version", str), ("quick", bool)):
        if not isinstance(raw.get(key), kind):
            raise DataError(path, f"missing or not a {kind.__name__}", field=key)
    rows = raw.get("rows")
    if not isinstance(rows, list):
        raise DataError(path, "missing or not a list", field="rows")
    for i, r in enumerate(rows):
        for key in ("method", "metric", "value", "tol"):
            if key not in r:
                raise DataError(path, "missing", field=f"rows[{i}].{key}")
        if not isinstance(r["value"], (int, float)) or not isinstance(r["tol"], (int, float)) or r["tol"] < 0:
            raise DataError(path, "value and tol must be numbers, tol >= 0", field=f"rows[{i}]")
    claims = raw.get("claims", {})
    if not isinstance(claims, dict) or any(v not in CLAIM_STATUSES for v in claims.values()):
        raise DataError(path, f"must map claim ids to one of {CLAIM_STATUSES}", field="claims")
    return raw


def claim_statuses(spec: PackageSpec, results: Results) -> dict[str, tuple[str | None, float | None]]:
    """{claim id: (status "holds"/"fails" or None when not computable, the asserted difference)}."""
    measured = {r.method: r.metrics for r in results.rows}
    out: dict[str, tuple[str | None, float | None]] = {}
    for c in spec.claims:
        diff = c.difference(measured)
        out[c.id] = (None if diff is None else ("holds" if c.holds(diff) else "fails"), diff)
    return out


def _header_problems(name: str, expected: dict, results: Results, quick: bool | None) -> list[str]:
    problems = []
    if expected["package"] != name or results.package != name:
        problems.append(f"package: expected file {expected['package']!r}, results {results.package!r}, "
                        f"checked as {name!r}")
    if expected["version"] != results.version:
        problems.append(f"version: expected file {expected['version']}, results {results.version} "
                        "(rerun and --update-expected after a version bump)")
    mode = {True: "quick", False: "full"}
    if expected["quick"] != results.quick:
        problems.append(f"mode: expected file {mode[expected['quick']]}, results {mode[results.quick]}")
    elif quick is not None and results.quick != quick:
        problems.append(f"mode: results and expected file are {mode[results.quick]}, checked as {mode[quick]}")
    return problems


def _check_values(name: str, expected: dict, results: Results) -> tuple[list[str], int]:
    lines, failed = [], 0
    measured = {r.method: r.metrics for r in results.rows}
    for r in expected["rows"]:
        if is_timing(r["metric"]):
            continue
        value = measured.get(r["method"], {}).get(r["metric"])
        target = f"(expected {r['value']:.4g} ± {r['tol']:.2g})"
        if value is None:
            lines.append(f"FAIL  {name} {r['method']} {r['metric']}: not reported {target}")
            failed += 1
        elif abs(value - r["value"]) <= r["tol"]:
            lines.append(f"OK    {name} {r['method']} {r['metric']}: {value:.4g} {target}")
        else:
            lines.append(f"FAIL  {name} {r['method']} {r['metric']}: {value:.4g} {target}")
            failed += 1
    return lines, failed


def _check_claims(spec: PackageSpec, expected: dict, results: Results) -> tuple[list[str], int]:
    """One line per claim: its status now, the recorded one, and whether that is a failure of the check."""
    lines, failed = [], 0
    recorded = expected.get("claims", {})
    for c in spec.claims:
        status, diff = claim_statuses(spec, results)[c.id]
        was = recorded.get(c.id)
        shown = f"{c.describe()}: difference {'n/a' if diff is None else format(diff, '+.4g')}; recorded {was or '-'}"
        if is_timing(c.metric):
            verdict = "TIMED"  # reported, not enforced
        elif status is None:
            verdict, shown = "FAIL ", shown + " (a row or the metric is missing)"
        elif was is None:
            verdict, shown = "FAIL ", shown + " (no recorded status: --update-expected records it)"
        elif status != was:
            verdict = "FLIP "
        else:
            verdict = "OK   "
        failed += verdict in ("FAIL ", "FLIP ")
        lines.append(f"CLAIM {verdict} {spec.name} {c.id} {status or 'n/a'} ({shown})")
    return lines, failed


def check(entries: list[Entry], expected_dir: Path, quick: bool | None = None) -> tuple[list[str], bool]:
    """Lines `OK|FAIL|SKIP package method metric measured (expected v ± tol)` for values, `CLAIM OK|FLIP|FAIL|
    TIMED package claim holds|fails (...)` for claims, a summary line, and whether everything passed. `quick` is
    the mode being checked (None: whatever mode the expected file records)."""
    lines, value_fails, claim_fails, header_fails, claims = [], 0, 0, 0, {"holds": 0, "fails": 0}
    for e in entries:
        name = e.spec.name
        path = expected_dir / f"{name}.json"
        if e.results is None:
            if path.is_file():
                lines.append(f"FAIL  {name}: no results ({e.status})")
                header_fails += 1
            else:
                lines.append(f"SKIP  {name}: no results and no expected file ({e.status})")
            continue
        if not path.is_file():
            lines.append(f"FAIL  {name}: results but no expected file {path} (write it with --update-expected)")
            header_fails += 1
            continue
        expected = load_expected(path)
        for problem in _header_problems(name, expected, e.results, quick):
            lines.append(f"FAIL  {name} {problem}")
            header_fails += 1
        value_lines, failed = _check_values(name, expected, e.results)
        lines += value_lines
        value_fails += failed
        claim_lines, failed = _check_claims(e.spec, expected, e.results)
        lines += claim_lines
        claim_fails += failed
        for status, _ in claim_statuses(e.spec, e.results).values():
            if status is not None:
                claims[status] += 1
    lines.append(f"values: {value_fails} failed; claims: {claims['holds']} hold, {claims['fails']} fail, "
                 f"{claim_fails} flipped or unchecked; package/version/mode: {header_fails} failed")
    return lines, value_fails + claim_fails + header_fails == 0


def update_expected(
    entries: list[Entry], expected_dir: Path, rel_tol: float = 0.1, abs_tol: float = 0.02
) -> list[Path]:
    """Write expected/<package>.json from the current results (every row, every metric, every claim's status)."""
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
        claims = {cid: status for cid, (status, _) in claim_statuses(e.spec, e.results).items() if status}
        obj = {"package": e.spec.name, "version": e.results.version, "quick": e.results.quick, "claims": claims,
               "rows": rows}
        path = expected_dir / f"{e.spec.name}.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(path)
    return written
