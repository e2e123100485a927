"""`leaderboard` console script: run every built package's quick replication with live progress, then write the
page (recorded full runs beside the quick runs) and its two pictures.

uv run leaderboard [--quick | --full] [--out DIR] [--only dome,sage] [--render DIR] [--check] [--no-cache]
uv run leaderboard --record RESULTS.json --record-command "uv run dome replicate --seeds 3 --out runs/dome-full"

Built on the workspace's parent CLI (`shared.cli`): bad flags, unknown packages, unreadable expected or recorded
files and an unusable output folder are one line on stderr with exit status 2, found before any package runs.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb, check_output_dir

from benchmarks import __version__
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.check import DEFAULT_EXPECTED, check, load_expected, update_expected
from benchmarks.leaderboard.curves import write_curves_png
from benchmarks.leaderboard.recorded import RECORDED_DIR, load_recorded, record_from_results
from benchmarks.leaderboard.render import collect, write_markdown, write_png
from benchmarks.leaderboard.runner import cached_record, run_package

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
    p.add_argument("--recorded", type=Path, default=RECORDED_DIR, help="folder of recorded/<package>.json")
    p.add_argument("--record", type=Path, metavar="RESULTS", help="write recorded/<package>.json from a full run's "
                   "results.json (with --record-command) and exit")
    p.add_argument("--record-command", default="", help="the command that produced the --record results")


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
        check_output_dir(args.recorded, "--recorded")
        return
    if args.timeout <= 0:
        raise CLIError(f"--timeout must be > 0, got {args.timeout}")
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
        if not self.enabled:
            return
        minutes, seconds = divmod(int(elapsed), 60)
        line = f"{self.prefix} running {minutes}m{seconds:02d}s | {tail}"
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
        path = record_from_results(args.record, args.record_command, args.recorded)
        print(f"wrote {path}")
        return 0
    packages, selected = registry.find(None), _selected(args)
    out_dir = (args.render or run.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    records = {}
    if args.render is None:
        total = time.perf_counter()
        for i, spec in enumerate(selected, 1):
            prefix = f"[{i}/{len(selected)}] {spec.name:<10}"
            if not registry.is_built(spec):
                print(f"{prefix} not built yet", flush=True)
                continue
            rec = None if args.no_cache else cached_record(spec, out_dir, args.quick)
            if rec is None:
                print(f"{prefix} running (log: {out_dir / spec.name / 'replicate.log'})", flush=True)
                live = _Live(prefix, run.progress)
                try:
                    rec = run_package(spec, out_dir, quick=args.quick, timeout_s=args.timeout, use_cache=False,
                                      fresh=args.no_cache, progress=live)
                finally:
                    live.clear()
            records[spec.name] = rec
            tail = f" (log: {out_dir / rec.log})" if rec.status in ("failed", "timeout") else ""
            shown = f"from a {rec.seconds:.1f}s run" if rec.status == "cached" else f"{rec.seconds:.1f}s"
            print(f"{prefix} {rec.status} ({shown}){tail}", flush=True)
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
