"""How long a console script takes to refuse a bad input, as a user runs it: a fresh Python process per case.

    uv run python tools/bench/cli_bad_inputs.py                       # every script, cases bad_enum + unknown_model
    uv run python tools/bench/cli_bad_inputs.py --cases all --scripts rose,dome

Uses the bad-input table of tests/test_cli_bad_inputs.py (same inputs), runs each case as
`python -c "from <module> import main; ..."` in a new process (imports included, as on a command line), and prints
the seconds per case, the exit status and the one stderr line, then the median and maximum, with the load average
at start and end (figures taken while the machine is busy are labelled so).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import test_cli_bad_inputs as table  # noqa: E402  (the table lives with its test)


def run_case(script: str, case: str) -> tuple[float, int, str] | None:
    how = table.TABLE[script][case]
    if isinstance(how, str) or script in table.PENDING:
        return None
    module, _, attr = table.console_scripts()[script].partition(":")
    with tempfile.TemporaryDirectory() as folder:
        argv = how(table.Inputs(Path(folder)))
        code = f"import sys; from {module} import {attr} as m; sys.exit(m({argv!r}))"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return seconds, proc.returncode, lines[-1] if lines else ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", default="bad_enum,unknown_model", help="comma-separated cases, or 'all'")
    p.add_argument("--scripts", default="", help="comma-separated scripts (default: all)")
    args = p.parse_args()
    cases = table.CASES if args.cases == "all" else tuple(args.cases.split(","))
    scripts = args.scripts.split(",") if args.scripts else sorted(table.TABLE)
    load0 = os.getloadavg()[0]
    times = []
    print(f"{'script':<17} {'case':<15} {'seconds':>8} exit  stderr")
    for script in scripts:
        for case in cases:
            result = run_case(script, case)
            if result is None:
                continue
            seconds, code, line = result
            times.append(seconds)
            print(f"{script:<17} {case:<15} {seconds:8.2f} {code:>4}  {line[:90]}", flush=True)
    load1 = os.getloadavg()[0]
    busy = " (under load)" if max(load0, load1) > (os.cpu_count() or 1) else ""
    print(f"{len(times)} cases: median {statistics.median(times):.2f} s, max {max(times):.2f} s per case; "
          f"load average {load0:.1f} at start, {load1:.1f} at end on {os.cpu_count()} cores{busy}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
