"""`leaderboard` console script: run every built package's quick replication, then write the table and plot.

uv run leaderboard [--quick | --full] [--out DIR] [--only dome,sage] [--render DIR] [--check] [--no-cache]
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

from benchmarks.leaderboard import registry
from benchmarks.leaderboard.check import DEFAULT_EXPECTED, check, update_expected
from benchmarks.leaderboard.render import collect, write_markdown, write_png
from benchmarks.leaderboard.runner import cached_record, run_package


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="leaderboard",
        description="Run each method package's CPU-scale replication and write leaderboard.md and leaderboard.png.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", dest="quick", action="store_true", default=True, help="quick replications (default)")
    mode.add_argument("--full", dest="quick", action="store_false", help="full replications (about an hour each)")
    p.add_argument(
        "--out", type=Path, default=Path("runs/leaderboard"), help="results folder (default runs/leaderboard)"
    )
    p.add_argument("--only", default="", help="comma-separated package names to run (others are still listed)")
    p.add_argument("--render", type=Path, metavar="DIR", help="only render existing results in DIR, run nothing")
    p.add_argument("--check", action="store_true", help="compare with expected/*.json; print OK/FAIL per row")
    p.add_argument("--expected", type=Path, default=DEFAULT_EXPECTED, help="folder of expected/<package>.json")
    p.add_argument("--update-expected", action="store_true", help="write expected/*.json from this run's results")
    p.add_argument("--no-cache", action="store_true", help="rerun packages even when their fingerprint is unchanged")
    p.add_argument("--timeout", type=float, default=900, help="seconds allowed per package (default 900)")
    return p


def _terminate(signum, frame) -> None:
    # SIGTERM becomes an exception, so the running replication's process group is killed on the way out
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if threading.current_thread() is not threading.main_thread():
        return _main(args, argv)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return _main(args, argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace, argv: list[str] | None) -> int:
    if args.check and args.update_expected:  # a check against files this very run rewrites always passes
        print("leaderboard: --check and --update-expected cannot be combined; update, review the diff, then check",
              file=sys.stderr)
        return 2
    packages = registry.find(None)
    try:
        selected = registry.find([n.strip() for n in args.only.split(",") if n.strip()])
    except ValueError as e:
        print(f"leaderboard: {e}", file=sys.stderr)
        return 2
    out_dir = (args.render or args.out).resolve()
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
                print(f"{prefix} running ...", flush=True)
                rec = run_package(spec, out_dir, quick=args.quick, timeout_s=args.timeout, use_cache=False,
                                  fresh=args.no_cache)
            records[spec.name] = rec
            tail = f" (log: {out_dir / rec.log})" if rec.status in ("failed", "timeout") else ""
            shown = f"from a {rec.seconds:.1f}s run" if rec.status == "cached" else f"{rec.seconds:.1f}s"
            print(f"{prefix} {rec.status} ({shown}){tail}", flush=True)
        print(f"ran {len(records)} built package(s) in {time.perf_counter() - total:.1f}s", flush=True)
    entries = collect(out_dir, packages, records)
    command = "uv run leaderboard " + shlex.join(argv if argv is not None else sys.argv[1:])
    md, png = write_markdown(entries, out_dir, command.strip()), write_png(entries, out_dir)
    print(f"wrote {md}\nwrote {png}")
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
