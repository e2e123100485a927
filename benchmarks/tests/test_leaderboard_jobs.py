"""`leaderboard --jobs N` with fake packages (tiny modules on PYTHONPATH, no real replication): packages run at
the same time, the per-package timeout still kills a hanging one, and the printed lines, the page, the run
records and the results are those of `--jobs 1`. Each fake logs when it starts and ends (wall clock), so overlap
is read from the packages' own records, not from a timed assertion."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys

import pytest
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.cli import main

FAKE_CLI = '''"""Fake method package CLI for the leaderboard --jobs tests."""
import argparse, os, pathlib, time
p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd")
r = sub.add_parser("replicate")
r.add_argument("--quick", action="store_true")
r.add_argument("--out", required=True)
a = p.parse_args()
out = pathlib.Path(a.out)
spans = pathlib.Path(os.environ["FAKE_SPANS"])
with spans.open("a") as f:
    f.write(f"{{NAME}} start {{time.time()}} {{os.getpid()}} {{os.environ.get('OMP_NUM_THREADS')}}\\n")
time.sleep({sleep})
from shared.eval import write_results
rows = [{{"method": "{name}", "metrics": {{"accuracy": {acc}, "accuracy_std": None}}}},
        {{"method": "baseline", "metrics": {{"accuracy": 0.5, "accuracy_std": None}}}}]
write_results(out, "{name}", "0.1.0", "replicate", rows, {{"steps": 1}}, 0, a.quick,
              {{"name": "toy", "sha256": "x"}}, "2026-01-01T00:00:00", 0.1)
with spans.open("a") as f:
    f.write(f"{{NAME}} end {{time.time()}}\\n")
'''.replace("{{NAME}}", "{name}")

NAMES = {"fakea": 0.71, "fakeb": 0.62, "fakec": 0.93, "faked": 0.55}


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """Four fake packages that each take 1.5 s, plus one that is not built."""
    src = tmp_path / "src"

    def make(name: str, sleep: float) -> None:
        pkg = src / name
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").write_text('"""Fake package."""\n__version__ = "0.1.0"\n')
        (pkg / "replicate.py").write_text('"""Fake replicate module."""\n')
        (pkg / "cli.py").write_text(FAKE_CLI.format(name=name, sleep=sleep, acc=NAMES[name]))
        sys.modules.pop(name, None)

    for name in NAMES:
        make(name, 1.5)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("PYTHONPATH", str(src))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("FAKE_SPANS", str(tmp_path / "spans.txt"))
    importlib.invalidate_caches()
    specs = [registry.PackageSpec(name, name, "Toy suite", f"{name} beats baseline") for name in NAMES]
    specs.insert(2, registry.PackageSpec("ghost", "ghost_not_installed_pkg", "Toy suite", "never built"))
    monkeypatch.setattr(registry, "PACKAGES", specs)
    yield tmp_path, make
    for name in NAMES:
        sys.modules.pop(name, None)


def _spans(path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        name, what, when, *rest = line.split()
        out.setdefault(name, {})[what] = float(when)
        if what == "start":
            out[name]["pid"], out[name]["threads"] = int(rest[0]), rest[1]
    path.unlink()
    return out


def _lines(printed: str, out_dir) -> list[str]:
    """The per-package and summary lines, with seconds and the output folder masked."""
    keep = [ln for ln in printed.replace(str(out_dir), "OUT").splitlines() if ln.startswith(("[", "ran ", "wrote"))]
    return [re.sub(r"\d+\.\d+s", "Xs", ln) for ln in keep]


def _page(out_dir) -> str:
    """leaderboard.md with the folder, the command's --jobs, the date and the seconds masked."""
    page = (out_dir / "leaderboard.md").read_text().replace(str(out_dir), "OUT")
    page = re.sub(r"--jobs \d+", "--jobs N", page)
    page = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "DATE", page)
    return re.sub(r"\d+(\.\d+)? ?(s|min)\b", "X", page)


def test_jobs_run_packages_at_once_with_the_output_of_jobs_1(fakes, capsys):
    tmp, _ = fakes
    runs = {}
    for jobs in (1, 4):
        out = tmp / f"lb{jobs}"
        assert main(["--out", str(out), "--jobs", str(jobs), "--check", "--expected", str(tmp / "none")]) == 2
        assert main(["--out", str(out), "--jobs", str(jobs)]) == 0
        runs[jobs] = (out, _lines(capsys.readouterr().out, out), _spans(tmp / "spans.txt"))
    (out1, lines1, spans1), (out4, lines4, spans4) = runs[1], runs[4]
    # one at a time with --jobs 1: each starts after the previous ended; all four at once with --jobs 4
    order = sorted(spans1.values(), key=lambda s: s["start"])
    assert all(b["start"] >= a["end"] for a, b in zip(order, order[1:]))
    assert max(s["start"] for s in spans4.values()) < min(s["end"] for s in spans4.values())
    assert {s["threads"] for s in [*spans1.values(), *spans4.values()]} == {"1"}  # one thread per process
    # same result lines in the registry's order (the --jobs 4 run also prints "running" lines as packages start)
    results4 = [ln for ln in lines4 if " running (log:" not in ln]
    assert results4 == [ln for ln in lines1 if " running (log:" not in ln]
    assert [ln.split()[1] for ln in results4 if ln.startswith("[")] == ["fakea", "fakeb", "ghost", "fakec", "faked"]
    assert "[3/5] ghost      not built yet" in results4
    assert _page(out4) == _page(out1)
    for name in NAMES:
        a, b = (json.loads((o / name / "results.json").read_text()) for o in (out1, out4))
        assert a == b and a["rows"][0]["metrics"]["accuracy"] == NAMES[name]
        r1, r4 = (json.loads((o / name / "run.json").read_text()) for o in (out1, out4))
        assert r1["status"] == r4["status"] == "ok" and r1["fingerprint"] == r4["fingerprint"]
    # a rerun is served from the cache, whatever --jobs
    assert main(["--out", str(out4), "--jobs", "4"]) == 0
    assert not (tmp / "spans.txt").exists() and "cached (from a" in capsys.readouterr().out


def test_jobs_keep_the_per_package_timeout(fakes, capsys):
    tmp, make = fakes
    make("fakeb", 120)  # hangs
    out = tmp / "lb"
    assert main(["--out", str(out), "--jobs", "4", "--timeout", "10"]) == 1  # a package timed out
    printed = capsys.readouterr().out
    assert re.search(r"\[2/5\] fakeb +timeout \(\d+\.\ds\) \(log: ", printed)
    for name in ("fakea", "fakec", "faked"):
        assert re.search(rf"{name} +ok \(", printed)
    spans = _spans(tmp / "spans.txt")
    assert "end" not in spans["fakeb"]
    with pytest.raises(ProcessLookupError):  # its process group was killed, not left running
        os.kill(spans["fakeb"]["pid"], 0)
    assert "| fakeb | Toy suite | – | – | timeout |" in (out / "leaderboard.md").read_text()


def test_jobs_must_be_positive(fakes, capsys):
    tmp, _ = fakes
    assert main(["--out", str(tmp / "lb"), "--jobs", "0"]) == 2
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err


STOPPABLE = """
import sys
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.cli import main
registry.PACKAGES = [registry.PackageSpec(n, n, "Toy suite", "x") for n in ("fakea", "fakeb", "fakec")]
sys.exit(main(["--out", sys.argv[1], "--jobs", "2"]))
"""


def test_sigterm_kills_every_running_package(fakes):
    """SIGTERM to a `--jobs 2` leaderboard kills both running replications (run from worker threads) and the
    queued third never starts."""
    import signal
    import subprocess
    import time

    tmp, make = fakes
    for name in ("fakea", "fakeb", "fakec"):
        make(name, 120)
    proc = subprocess.Popen([sys.executable, "-c", STOPPABLE, str(tmp / "lb")], env=os.environ.copy())
    spans_path, deadline = tmp / "spans.txt", time.monotonic() + 60
    while not (spans_path.is_file() and spans_path.read_text().count(" start ") == 2):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    spans = _spans(spans_path)
    assert sorted(spans) == ["fakea", "fakeb"]
    for span in spans.values():
        with pytest.raises(ProcessLookupError):
            os.kill(span["pid"], 0)
