"""`leaderboard` console script: run every built package's quick replication with live progress, then write the
page (recorded full runs beside the quick runs) and its two pictures.

uv run leaderboard [--quick | --full] [--out DIR] [--only dome,sage] [--render DIR] [--check] [--no-cache] [--jobs N]
uv run leaderboard --record RESULTS.json --record-command "uv run dome replicate --seeds 3 --out runs/dome-full" \
    --record-reading "what the run shows about the claim"

Built on the workspace's parent CLI (`shared.cli`): bad flags, unknown packages, unreadable expected or recorded
files and an unusable output folder are one line on stderr with exit status 2, found before any package runs.
Packages run in parallel processes, `--jobs` at a time (default: the machine's cores); the per-package lines are
printed in the registry's order whatever order the packages finish in, and the results do not depend on --jobs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb, check_output_dir

from benchmarks import __version__
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.check import DEFAULT_EXPECTED, check, load_expected, update_expected
from benchmarks.leaderboard.curves import write_curves_png
from benchmarks.leaderboard.recorded import RECORDED_DIR, load_recorded, record_from_results
from benchmarks.leaderboard.render import collect, write_markdown, write_png
from benchmarks.leaderboard.runner import RunRecord, cached_record, run_package

STATUS_EVERY = 30.0  # seconds between status lines when stdout is not a terminal (logs, CI); a terminal: every 1 s


def _arguments(p: argparse.ArgumentParser) -> None:
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True, help="quick replications (default)")
    mode.add_argument("--full", dest="quick", action="store_false", help="full replications (about an hour each)")
    p.add_argument("--only", default="", help="comma-separated package names to run (others are still listed)")
    p.add_argument("--render", type=Path, metavar="DIR", help="only render existing results in DIR, run nothing")
    p.add_argument("--check", action="store_true", help="compare with expected/*.json; print OK/FAIL per row")
    p.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED, help="folder of expected/<package>.json")
    p.add_argument("--update-expected", action="store_true", help="write expected/*.json from this run's results")
    p.add_argument("--no-cache", action="store_true", help="rerun packages even when their fingerprint is unchanged")
    p.add_argument("--timeout", type=float, default=2400, help="seconds allowed per package (default 2400)")
    p.add_argument("--jobs", type=int, default=None, help="packages run at once, each in its own process "
                   f"(default: the number of cores, {default_jobs()} here)")
    p.add_argument("--recorded", type=Path, default=RECORDED_DIR, help="folder of recorded/<package>.json")
    p.add_argument("--record", type=Path, metavar="RESULTS", help="write recorded/<package>.json from a full run's "
                   "results.json (with --record-command) and exit")
    p.add_argument("--record-command", default="", help="the command that produced the --record results")
    p.add_argument("--record-source", default="", help="where readers find the --record figures (e.g. a README "
                   "section); default: the results.json of the command")
    p.add_argument("--record-reading", default="", help="one sentence: what the --record run shows about the "
                   "package's claim (shown on the page; required with --record)")


def default_jobs() -> int:
    """The number of cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _selected(args: argparse.Namespace) -> list:
    try:
        return registry.find([n.strip() for n in args.only.split(",") if n.strip()])
    except ValueError as e:
        raise CLIError(str(e)) from e


def _check(run: Run) -> None:
    """Everything a leaderboard run reads or writes, checked before any package runs."""
    args = run.args
    if args.record is not None:
        if not args.record_command:
            raise CLIError("--record needs --record-command \"the command that produced it\"")
        if not args.record_reading.strip():
            raise CLIError("--record needs --record-reading \"what the run shows about the claim\"")
        check_output_dir(args.recorded, "--recorded")
        return
    if args.timeout <= 0:
        raise CLIError(f"--timeout must be > 0, got {args.timeout}")
    if args.jobs is not None and args.jobs < 1:
        raise CLIError(f"--jobs must be >= 1, got {args.jobs}")
    if args.check and args.update_expected:
        raise CLIError("--check compares with the expected files and --update-expected rewrites them: give one")
    selected = _selected(args)
    if args.render is not None and not args.render.is_dir():
        raise CLIError(f"--render {args.render}: no such folder")
    if args.check:
        if not args.expected.is_dir():
            raise CLIError(f"--expected {args.expected}: no such folder")
        for spec in selected:
            path = args.expected / f"{spec.name}.json"
            if path.is_file():
                load_expected(path)  # a broken expected file fails now, not after an hour of runs
    if args.recorded.is_dir():
        for path in sorted(args.recorded.glob("*.json")):
            load_recorded(path)
    if args.update_expected:
        check_output_dir(args.expected, "--expected")


class _Live:
    """One status line per running package: elapsed time and the last line of its log. On a terminal the line is
    redrawn every second; elsewhere a line is printed every STATUS_EVERY seconds."""

    def __init__(self, prefix: str, enabled: bool) -> None:
        self.prefix, self.enabled = prefix, enabled
        self.tty = sys.stdout.isatty()
        self.last = 0.0

    def __call__(self, elapsed: float, tail: str) -> None:
        self.show(f"{self.prefix} running {_clock(elapsed)} | {tail}", elapsed)

    def show(self, line: str, elapsed: float) -> None:
        if not self.enabled:
            return
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            sys.stdout.write("\r" + line[:width].ljust(width))
            sys.stdout.flush()
        elif elapsed - self.last >= STATUS_EVERY:
            self.last = elapsed
            print(line[:200], flush=True)

    def clear(self) -> None:
        if self.enabled and self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            sys.stdout.write("\r" + " " * width + "\r")
            sys.stdout.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"


def _result_line(prefix: str, rec: RunRecord, out_dir: Path) -> str:
    tail = f" (log: {out_dir / rec.log})" if rec.status in ("failed", "timeout") else ""
    shown = f"from a {rec.seconds:.1f}s run" if rec.status == "cached" else f"{rec.seconds:.1f}s"
    return f"{prefix} {rec.status} ({shown}){tail}"


def _terminate(signum, frame) -> None:
    # SIGTERM becomes an exception, so the running replication's process group is killed on the way out
    raise SystemExit(128 + signum)


def cmd_leaderboard(run: Run) -> int:
    if threading.current_thread() is not threading.main_thread():
        return _leaderboard(run)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _leaderboard(run)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _leaderboard(run: Run) -> int:
    args = run.args
    if args.record is not None:
        path = record_from_results(args.record, args.record_command, args.recorded, reading=args.record_reading,
                                   source=args.record_source)
        print(f"wrote {path}")
        return 0
    packages, selected = registry.find(None), _selected(args)
    out_dir = (args.render or run.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    records = {}
    if args.render is None:
        total = time.perf_counter()
        jobs = args.jobs or default_jobs()
        records = _run_packages(selected, out_dir, args, jobs, run.progress)
        print(f"ran {len(records)} built package(s) in {time.perf_counter() - total:.1f}s", flush=True)
    entries = collect(out_dir, packages, records, args.recorded)
    command = "uv run leaderboard " + shlex.join(run.argv)
    md, png = write_markdown(entries, out_dir, command.strip()), write_png(entries, out_dir)
    curves = write_curves_png(entries, out_dir)
    print(f"wrote {md}\nwrote {png}\nwrote {curves}")
    status = 0
    if args.update_expected:
        for path in update_expected([e for e in entries if e.spec in selected], args.expected):
            print(f"wrote {path}")
    if args.check:
        lines, ok = check([e for e in entries if e.spec in selected], args.expected, quick=args.quick)
        print("\n".join(lines))
        print("check: " + ("all OK" if ok else "FAILED"))
        status = 0 if ok else 1
    if any(r.status in ("failed", "timeout") for r in records.values()):
        status = status or 1
    return status


def _prefix(i: int, n: int, name: str) -> str:
    return f"[{i}/{n}] {name:<10}"


def _run_packages(selected: list, out_dir: Path, args: argparse.Namespace, jobs: int,
                  show: bool) -> dict[str, RunRecord]:
    """Run (or reuse from the cache) every selected package; per package one result line, in the registry's
    order. One package at a time (`jobs` 1, or one package to run) shows a live status line for it; more run in
    parallel (`_run_parallel`)."""
    n = len(selected)
    lines: dict[int, str] = {}  # result line per place in the registry order, printed in that order
    records: dict[int, RunRecord] = {}
    todo = []
    for i, spec in enumerate(selected, 1):
        if not registry.is_built(spec):
            lines[i] = f"{_prefix(i, n, spec.name)} not built yet"
            continue
        rec = None if args.no_cache else cached_record(spec, out_dir, args.quick)
        if rec is None:
            todo.append((i, spec))
        else:
            records[i], lines[i] = rec, _result_line(_prefix(i, n, spec.name), rec, out_dir)
    if jobs > 1 and len(todo) > 1:
        _run_parallel(selected, todo, lines, records, out_dir, args, jobs, show)
    else:
        waiting = dict(todo)
        for i in range(1, n + 1):
            if i in waiting:
                name = selected[i - 1].name
                prefix = _prefix(i, n, name)
                print(f"{prefix} running (log: {out_dir / name / 'replicate.log'})", flush=True)
                live = _Live(prefix, show)
                try:
                    records[i] = run_package(waiting[i], out_dir, quick=args.quick, timeout_s=args.timeout,
                                             use_cache=False, fresh=args.no_cache, progress=live)
                finally:
                    live.clear()
                lines[i] = _result_line(prefix, records[i], out_dir)
            print(lines[i], flush=True)
    return {selected[k - 1].name: records[k] for k in sorted(records)}


def _run_parallel(selected: list, todo: list, lines: dict[int, str], records: dict[int, RunRecord], out_dir: Path,
                  args: argparse.Namespace, jobs: int, show: bool) -> None:
    """Run the `todo` packages (place, spec), up to `jobs` at once, each in its own process group driven from a
    worker thread (the per-package timeout applies to each); fills `records` and `lines`. A package's "running"
    line is printed when it starts, the result lines in the registry's order; one live status line lists the
    running packages. An interruption kills every running replication before it propagates."""
    n = len(selected)
    stop, lock = threading.Event(), threading.Lock()
    started: dict[int, float] = {}
    tails: dict[int, str] = {}

    def work(i: int, spec) -> RunRecord:
        with lock:
            started[i] = time.perf_counter()
        return run_package(spec, out_dir, quick=args.quick, timeout_s=args.timeout, use_cache=False,
                           fresh=args.no_cache, progress=lambda _t, tail: tails.__setitem__(i, tail), stop=stop)

    live, announced, printed = _Live("", show), set(), 0
    begin = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="leaderboard")
    try:
        futures = {pool.submit(work, i, spec): i for i, spec in todo}
        pending = set(futures)
        while True:
            with lock:
                fresh = sorted(k for k in started if k not in announced)
            for k in fresh:
                announced.add(k)
                live.clear()
                name = selected[k - 1].name
                print(f"{_prefix(k, n, name)} running (log: {out_dir / name / 'replicate.log'})", flush=True)
            while printed + 1 in lines:
                printed += 1
                live.clear()
                print(lines[printed], flush=True)
            if not pending:
                break
            done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                k = futures[future]
                records[k] = future.result()
                lines[k] = _result_line(_prefix(k, n, selected[k - 1].name), records[k], out_dir)
            with lock:
                now = time.perf_counter()
                running = [f"{selected[k - 1].name} {_clock(now - t)}" for k, t in sorted(started.items())
                           if k not in records]
                newest = max((k for k in started if k not in records), key=started.get, default=None)
            if running:
                live.show(f"running {len(running)}/{jobs}: {', '.join(running)} | {tails.get(newest, '')}",
                          now - begin)
        live.clear()
    except BaseException:
        stop.set()  # every worker kills its replication's process group within about a second
        pool.shutdown(wait=True, cancel_futures=True)
        live.clear()
        raise
    pool.shutdown(wait=True)


APP = App(
    prog="leaderboard", version=__version__,
    description="Run each method package's CPU-scale replication (quick by default) with live progress, and write "
                "leaderboard.md (recorded full run beside the quick run, per package), leaderboard.png and "
                "leaderboard_curves.png.",
    verbs=[Verb("", "", cmd_leaderboard, arguments=_arguments, seed=False, claim="none", check=_check,
                default_out="runs/leaderboard")],
)


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


def build_parser() -> argparse.ArgumentParser:
    return APP.build_parser()
