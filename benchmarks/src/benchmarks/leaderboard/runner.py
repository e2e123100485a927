"""Running one package's quick replication as a subprocess, with a cache keyed by version and source hash.

Each package runs as `python -m <import_name>.cli replicate [--quick] --out DIR/<name>` with its output logged to
DIR/<name>/replicate.log; a `progress(elapsed, last log line)` callback is called every second while it runs.
Several packages may run at once (`leaderboard --jobs`), each from its own thread. DIR/<name>/run.json records the
fingerprint (package version, sha256 of its sources and configs, quick flag), the command and the seconds; when
the fingerprint matches and results.json is there, the run is skipped, so a second leaderboard run is instant.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from shared.atomic import write_json

from benchmarks.leaderboard.registry import PackageSpec, is_built, package_version, source_fingerprint
from benchmarks.leaderboard.results import find_results


@dataclass
class RunRecord:
    package: str
    status: str  # ok | cached | failed | timeout | not built yet | not run
    seconds: float = 0.0
    command: str = ""
    version: str = ""
    fingerprint: str = ""
    results: str = ""  # path of results.json, relative to the leaderboard folder
    log: str = ""


STARTED = "started.json"  # which package source and mode started the folder


def user_command(spec: PackageSpec, out: Path, quick: bool) -> str:
    """The command a person types to reproduce a row."""
    return f"uv run {spec.name} replicate{' --quick' if quick else ''} --out {shlex.quote(str(out))}"


Progress = Callable[[float, str], None]  # (seconds elapsed, last line of the log) while a package runs

# Thread counts of the libraries a replication may use, unless the user set them: one per process, whatever
# `leaderboard --jobs` is, so the number of packages run at once never changes a package's numerics (the packages
# set their torch threads themselves: 1 in every quick config).
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class Stopped(Exception):
    """The leaderboard is stopping (interrupt or signal in the main thread): the replication was killed."""


def log_tail(path: Path, limit: int = 4096) -> str:
    """The last non-empty line of a log (progress bars rewrite their line with \r: the newest state is kept)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - limit))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in re.split(r"[\r\n]", text) if ln.strip()]
    return lines[-1] if lines else ""


def _run_group(argv: list[str], log, env: dict, timeout_s: float, progress: Progress | None = None,
               log_path: Path | None = None, every: float = 1.0, stop: threading.Event | None = None) -> str:
    """Run argv in its own process group, calling `progress(elapsed, tail)` about every `every` seconds; on
    timeout, any interruption or `stop` being set (by the main thread, when packages run in worker threads) the
    whole group is killed, so no replication keeps running after the leaderboard stops."""
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    started = time.perf_counter()
    try:
        while True:
            elapsed = time.perf_counter() - started
            if stop is not None and stop.is_set():
                raise Stopped(shlex.join(argv))
            if elapsed >= timeout_s:
                raise subprocess.TimeoutExpired(argv, timeout_s)
            try:
                rc = proc.wait(timeout=min(every, timeout_s - elapsed))
                return "ok" if rc == 0 else "failed"
            except subprocess.TimeoutExpired:
                if progress is not None:
                    progress(time.perf_counter() - started, log_tail(log_path) if log_path else "")
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return "timeout"
    except BaseException:
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def load_record(out_dir: Path, spec: PackageSpec) -> RunRecord | None:
    path = out_dir / spec.name / "run.json"
    if not path.is_file():
        return None
    try:
        return RunRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError):
        return None


def _fingerprint(spec: PackageSpec, quick: bool) -> str:
    return f"{package_version(spec)}|{source_fingerprint(spec)}|quick={quick}"


def cached_record(spec: PackageSpec, out_dir: Path, quick: bool) -> RunRecord | None:
    """The previous run's record when its fingerprint still matches and its results.json is there."""
    previous = load_record(out_dir, spec)
    if previous is None or previous.status not in ("ok", "cached") or find_results(out_dir / spec.name) is None:
        return None
    if previous.fingerprint != _fingerprint(spec, quick):
        return None
    return RunRecord(**{**asdict(previous), "status": "cached"})


def run_package(
    spec: PackageSpec, out_dir: Path, quick: bool = True, timeout_s: float = 1800, use_cache: bool = True,
    fresh: bool = False, progress: Progress | None = None, stop: threading.Event | None = None,
) -> RunRecord:
    """Run (or reuse) one package's replication; never raises for a failing package, it reports it.

    Replications resume from the finished parts they find in their folder. Those parts are kept only when the
    folder was started by the same package source and mode (`started.json`), i.e. to resume a killed run;
    otherwise (or with `fresh`) the folder is emptied first, so no row computed by older code is reused."""
    if not is_built(spec):
        return RunRecord(spec.name, "not built yet")
    pkg_out = out_dir / spec.name
    version = package_version(spec)
    fingerprint = _fingerprint(spec, quick)
    hit = cached_record(spec, out_dir, quick) if use_cache else None
    if hit is not None:
        return hit
    marker, started_by = pkg_out / STARTED, {"fingerprint": fingerprint, "quick": quick}
    previous = json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None
    if pkg_out.exists() and (fresh or previous != started_by):
        shutil.rmtree(pkg_out)
    pkg_out.mkdir(parents=True, exist_ok=True)
    write_json(marker, started_by)
    results = find_results(pkg_out)
    if results:  # a stale results.json must not be mistaken for this run's output
        results.unlink()
    argv = [sys.executable, "-m", f"{spec.import_name}.cli", "replicate", "--out", str(pkg_out)]
    if quick:
        argv.insert(4, "--quick")
    log_path = pkg_out / "replicate.log"
    env = {**THREAD_ENV, **os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + shlex.join(argv) + "\n")
        log.flush()
        status = _run_group(argv, log, env, timeout_s, progress, log_path, stop=stop)
    seconds = time.perf_counter() - started
    results = find_results(pkg_out)
    if status == "ok" and results is None:
        status = "failed"
        with log_path.open("a", encoding="utf-8") as log:
            log.write(f"\nleaderboard: exit code 0 but no results.json under {pkg_out}\n")
    record = RunRecord(
        package=spec.name,
        status=status,
        seconds=round(seconds, 1),
        command=user_command(spec, pkg_out, quick),
        version=version,
        fingerprint=fingerprint,
        results=str(results.relative_to(out_dir)) if results else "",
        log=str(log_path.relative_to(out_dir)),
    )
    write_json(pkg_out / "run.json", asdict(record))
    return record
