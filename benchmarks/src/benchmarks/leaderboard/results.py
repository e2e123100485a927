"""Reading and validating the packages' results.json (the package contract), and picking the headline metric.

Validation is `shared.eval.validate_results` (the contract's schema); a malformed file gives a `DataError` naming
the file and the field, which the leaderboard reports as the package's status instead of crashing the table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from shared.eval import ResultsError, validate_results

from benchmarks.data.errors import DataError


@dataclass
class Row:
    method: str
    metrics: dict[str, float | None]  # None: not applicable to this row (contract allows null)


@dataclass
class Results:
    path: Path
    package: str
    version: str
    quick: bool
    seconds: float | None
    data_name: str
    rows: list[Row]
    raw: dict = field(default_factory=dict)

    def method_row(self) -> Row:
        """The package's own method: the row named by results.json `main_method` (an extra key), else the row
        named like the package, else the first row (contract order)."""
        names = {self.package, self.package.replace("-", "_")}
        main = self.raw.get("main_method")
        if isinstance(main, str) and any(r.method == main for r in self.rows):
            names = {main}
        return next((r for r in self.rows if r.method in names), self.rows[0])

    def baselines(self) -> list[Row]:
        own = self.method_row()
        return [r for r in self.rows if r is not own]

    def metric_names(self) -> list[str]:
        names: list[str] = []
        for r in self.rows:
            names += [k for k in r.metrics if k not in names]
        return names

    def headline(self) -> str:
        """Headline metric: `headline` in results.json when given, else the method row's first metric."""
        wanted = self.raw.get("headline")
        if isinstance(wanted, str) and wanted in self.metric_names():
            return wanted
        return next(iter(self.method_row().metrics))


def load_results(path: str | Path) -> Results:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise DataError(path, "file not found") from e
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e
    try:
        validate_results(raw, source=str(path))  # the package contract's schema, shared with the writers
    except ResultsError as e:
        problem = str(e).removeprefix(f"{path}: ")
        field = None
        if problem.startswith("field '"):
            field, _, problem = problem[len("field '") :].partition("': ")
        raise DataError(path, problem, field=field) from e
    rows = [
        Row(str(r["method"]), {k: None if v is None else float(v) for k, v in r["metrics"].items()})
        for r in raw["rows"]
    ]
    data = raw.get("data") if isinstance(raw.get("data"), dict) else {}
    return Results(
        path=path,
        package=str(raw["package"]),
        version=str(raw.get("version", "?")),
        quick=bool(raw.get("quick", False)),
        seconds=float(raw["seconds"]) if isinstance(raw.get("seconds"), (int, float)) else None,
        data_name=str(data.get("name", "")),
        rows=rows,
        raw=raw,
    )


def find_results(pkg_dir: Path) -> Path | None:
    """DIR/<name>/results.json (the contract's place), else the newest one nested below it (some packages write
    it beside a nested resolved config)."""
    if not pkg_dir.is_dir():
        return None
    if (pkg_dir / "results.json").is_file():
        return pkg_dir / "results.json"
    found = sorted(pkg_dir.rglob("results.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None
