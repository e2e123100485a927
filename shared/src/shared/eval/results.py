"""results.json writer and reader (the package contract's schema, read by the benchmarks leaderboard).

Schema (see the package contract): package, version, experiment, quick, git, seed, started, seconds, config,
data {name, sha256}, rows [{method, metrics{name: number|null}}] with the same metric keys in every row and no
method named twice.
We add ``git_dirty`` (uncommitted changes in the source tree), ``versions`` (installed versions of the
workspace packages and key libraries) and ``python``. Files are written atomically (tmp file, then
os.replace) so a reader never sees half a file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.config import config_to_dict

RESULTS_FILE = "results.json"
_KEY_DISTRIBUTIONS = (
    "shared", "benchmarks", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers",
    "numpy", "scipy", "faiss-cpu", "faiss-gpu-cu12", "vllm", "bm25s", "pytrec-eval-terrier", "math-verify",
)  # fmt: skip
_REQUIRED = {
    "package": str, "version": str, "experiment": str, "quick": bool, "git": str, "seed": int, "started": str,
    "seconds": (int, float), "config": dict, "data": dict, "rows": list,
}  # fmt: skip


class ResultsError(ValueError):
    """A results.json (or the values meant for one) breaks the schema; the message names file and field."""


def _sha_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_of(paths_or_bytes: bytes | str | os.PathLike | Iterable[str | os.PathLike]) -> str:
    """Hex SHA-256 of bytes, of a file, of a directory tree, or of several paths.

    A directory hashes its files' relative paths and contents in sorted order; a list hashes each item's base
    name and hash in the given order — so moving the data elsewhere keeps the hash.
    """
    if isinstance(paths_or_bytes, bytes | bytearray | memoryview):
        return hashlib.sha256(bytes(paths_or_bytes)).hexdigest()
    if isinstance(paths_or_bytes, str | os.PathLike):
        path = Path(paths_or_bytes)
        if path.is_file():
            return _sha_file(path)
        if path.is_dir():
            digest = hashlib.sha256()
            for file in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(f"{file.relative_to(path).as_posix()}\0{_sha_file(file)}\n".encode())
            return digest.hexdigest()
        raise FileNotFoundError(f"sha256_of: no such file or directory: {path}")
    items = list(paths_or_bytes)
    if not items:
        raise ValueError("sha256_of: empty list of paths")
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{Path(item).name}\0{sha256_of(item)}\n".encode())
    return digest.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(path: str | Path | None = None) -> tuple[str, bool | None]:
    """(commit, dirty) of the repository holding path (default: this source file), or ("unknown", None)."""
    where = Path(path) if path is not None else Path(__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], where)
    if not commit:
        return "unknown", None
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return commit, (bool(status) if status is not None else None)


def package_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Installed versions of the workspace packages and key libraries (those not installed are left out)."""
    versions: dict[str, str] = {}
    for name in (*_KEY_DISTRIBUTIONS, *extra):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def seed_mean(runs: Sequence[Mapping[str, float | None]], keys: Sequence[str] | None = None) -> dict[str, Any]:
    """One results row's metrics from the same metrics of several seeds: the mean of each key (default: the first
    run's keys) and, with several seeds, `<key>_std` (sample sd). A key that is None (not applicable) in any run
    stays None, its `_std` too, so rows of one results.json keep equal keys."""
    out: dict[str, Any] = {}
    for key in keys if keys is not None else list(runs[0]):
        values = [run[key] for run in runs]
        several = len(values) > 1
        if any(v is None for v in values):
            out[key] = None
            if several:
                out[f"{key}_std"] = None
            continue
        out[key] = statistics.fmean(values)
        if several:
            out[f"{key}_std"] = statistics.stdev(values)
    return out


def _fail(source: str, field: str, problem: str) -> ResultsError:
    return ResultsError(f"{source}: field '{field}': {problem}")


def validate_results(doc: Mapping[str, Any], source: str = "results") -> None:
    """Raise ResultsError naming source and field when doc breaks the results.json schema."""
    if not isinstance(doc, Mapping):
        raise ResultsError(f"{source}: top level must be a JSON object")
    for key, kind in _REQUIRED.items():
        if key not in doc:
            raise _fail(source, key, "missing")
        value = doc[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _fail(source, key, f"expected {getattr(kind, '__name__', 'number')}, got {value!r:.80}")
    try:
        dt.datetime.fromisoformat(doc["started"])
    except ValueError:
        raise _fail(source, "started", f"not an ISO-8601 time: {doc['started']!r}") from None
    if doc["seconds"] < 0 or not math.isfinite(doc["seconds"]):
        raise _fail(source, "seconds", f"must be a finite number >= 0, got {doc['seconds']!r}")
    for key in ("name", "sha256"):
        if not isinstance(doc["data"].get(key), str) or not doc["data"][key]:
            raise _fail(source, f"data.{key}", "must be a non-empty string")
    if not doc["rows"]:
        raise _fail(source, "rows", "must hold at least one row")
    first_keys: list[str] | None = None
    seen: dict[str, int] = {}
    for i, row in enumerate(doc["rows"]):
        if not isinstance(row, Mapping):
            raise _fail(source, f"rows[{i}]", "must be an object {method, metrics}")
        if not isinstance(row.get("method"), str) or not row["method"]:
            raise _fail(source, f"rows[{i}].method", "must be a non-empty string")
        if row["method"] in seen:  # a reader keyed by method would keep one of the two rows silently
            raise _fail(source, f"rows[{i}].method", f"{row['method']!r} repeats rows[{seen[row['method']]}]'s method")
        seen[row["method"]] = i
        metrics = row.get("metrics")
        if not isinstance(metrics, Mapping) or not metrics:
            raise _fail(source, f"rows[{i}].metrics", "must be a non-empty object {name: number}")
        for name, value in metrics.items():
            ok_number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            if value is not None and not ok_number:
                raise _fail(source, f"rows[{i}].metrics.{name}", f"must be a finite number or null, got {value!r}")
        keys = sorted(metrics)
        if first_keys is None:
            first_keys = keys
        elif keys != first_keys:
            raise _fail(
                source, f"rows[{i}].metrics", f"keys {keys} differ from rows[0]'s {first_keys} (use null for n/a)"
            )


def write_results(
    out_dir: str | Path,
    package: str,
    version: str | None,
    experiment: str,
    rows: Sequence[Mapping[str, Any]],
    config: Any,
    seed: int,
    quick: bool,
    data: Mapping[str, Any],
    started: dt.datetime | str,
    seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Validate and atomically write ``out_dir/results.json``; returns its path.

    version None looks the package's installed version up. config may be a (nested) dataclass or a dict.
    started is a datetime (naive times are taken as UTC) or an ISO string. extra adds top-level fields.
    """
    if version is None:
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            raise ResultsError(f"write_results: version not given and package {package!r} is not installed") from None
    if isinstance(started, dt.datetime):
        started = (started if started.tzinfo else started.replace(tzinfo=dt.UTC)).isoformat(timespec="seconds")
    commit, dirty = git_state()
    doc: dict[str, Any] = {
        "package": package,
        "version": version,
        "experiment": experiment,
        "quick": quick,
        "git": commit,
        "git_dirty": dirty,
        "seed": seed,
        "started": started,
        "seconds": seconds,
        "config": config_to_dict(config),
        "data": dict(data),
        "rows": [
            {**row, "metrics": dict(row["metrics"])} if isinstance(row, Mapping) and "metrics" in row else row
            for row in rows
        ],
        "versions": package_versions(extra=[package.replace("_", "-")]),
        "python": platform.python_version(),
        **dict(extra or {}),
    }
    out_dir = Path(out_dir)
    target = out_dir / RESULTS_FILE
    validate_results(doc, source=str(target))
    try:
        text = json.dumps(doc, indent=2, allow_nan=False, sort_keys=False)
    except (TypeError, ValueError) as err:
        raise ResultsError(f"{target}: not JSON-serialisable ({err}); check config and extra fields") from err
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{RESULTS_FILE}.{os.getpid()}.tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def read_results(path: str | Path) -> dict[str, Any]:
    """Load a results.json (or the results.json inside a directory) and validate it."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise ResultsError(f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}") from None
    validate_results(doc, source=str(path))
    return doc
