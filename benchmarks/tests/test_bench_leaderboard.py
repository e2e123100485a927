"""Leaderboard tests with a fake built package (a tiny module on PYTHONPATH) instead of the real method packages.

Covers: running and collecting results.json, the not-built listing, the markdown and PNG, the cache (second run
instant, source change reruns), --render without running, --check OK/FAIL, failures and malformed results.
"""

import importlib
import json
import sys

import pytest
from benchmarks.data.errors import DataError
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.cli import main
from benchmarks.leaderboard.results import load_results
from PIL import Image

FAKE_CLI = '''"""Fake method package CLI for the leaderboard tests."""
import argparse, json, pathlib, sys
p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd")
r = sub.add_parser("replicate")
r.add_argument("--quick", action="store_true")
r.add_argument("--out", required=True)
a = p.parse_args()
out = pathlib.Path(a.out)
counter = out.parent / "fakepkg_calls.txt"
counter.write_text(str(int(counter.read_text()) + 1 if counter.exists() else 1))
if {fail}:
    print("boom", file=sys.stderr)
    sys.exit(3)
if {hang}:
    import time
    time.sleep(60)
from shared.eval import write_results
rows = [{{"method": "fakepkg", "metrics": {{"accuracy": 0.75, "accuracy_std": 0.01, "length": 12.0}}}},
        {{"method": "baseline", "metrics": {{"accuracy": 0.5, "accuracy_std": None, "length": None}}}}]
write_results(out / "nested", "fakepkg", "0.3.0", "replicate", rows, {{"steps": 1}}, 0, a.quick,
              {{"name": "toy", "sha256": "x"}}, "2026-01-01T00:00:00", 0.1)
print("accuracy 0.75")
'''


def _make_fake(root, fail=False, hang=False):
    pkg = root / "fakepkg"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('"""Fake package."""\n__version__ = "0.3.0"\n')
    (pkg / "replicate.py").write_text('"""Fake replicate module."""\n')
    (pkg / "cli.py").write_text(FAKE_CLI.format(fail=fail, hang=hang))


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _make_fake(src)
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setenv("PYTHONPATH", str(src))
    importlib.invalidate_caches()
    specs = [
        registry.PackageSpec("fakepkg", "fakepkg", "Toy suite", "fake method beats its baseline"),
        registry.PackageSpec("ghost", "ghost_not_installed_pkg", "Toy suite", "never built"),
    ]
    monkeypatch.setattr(registry, "PACKAGES", specs)
    yield tmp_path, src
    sys.modules.pop("fakepkg", None)


def test_run_collects_results_and_lists_unbuilt(fake_env, capsys):
    tmp, _ = fake_env
    out = tmp / "lb"
    assert main(["--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[1/2] fakepkg    running" in printed and "ok (" in printed
    assert "[2/2] ghost      not built yet" in printed
    md = (out / "leaderboard.md").read_text()
    # one seed: no "± sd" (the fake's accuracy_std is not a spread over seeds)
    assert "| fakepkg | Toy suite | – | accuracy: fakepkg **0.75** vs baseline 0.5 | ok |" in md
    assert "| ghost | Toy suite | – | – | not built yet |" in md
    assert "### quick run (plumbing check)\n\n`uv run fakepkg replicate --quick --out" in md
    assert "| method | accuracy | length |" in md  # the package's own metrics; accuracy_std folded into accuracy
    assert "| **fakepkg** | 0.75 | 12 |" in md and "| baseline | 0.5 | – |" in md  # a null metric renders as n/a
    for name in ("leaderboard.png", "leaderboard_curves.png"):
        img = Image.open(out / name)
        assert img.size[0] > 300 and img.size[1] > 200
    run = json.loads((out / "fakepkg" / "run.json").read_text())
    assert run["status"] == "ok" and run["results"] == "fakepkg/nested/results.json"


def test_second_run_is_cached_until_sources_change(fake_env, capsys):
    tmp, src = fake_env
    out = tmp / "lb"
    main(["--out", str(out)])
    main(["--out", str(out)])
    assert (out / "fakepkg_calls.txt").read_text() == "1"
    assert "cached" in capsys.readouterr().out
    (src / "fakepkg" / "cli.py").write_text((src / "fakepkg" / "cli.py").read_text() + "# changed\n")
    main(["--out", str(out)])
    assert (out / "fakepkg_calls.txt").read_text() == "2"
    main(["--out", str(out), "--no-cache"])
    assert (out / "fakepkg_calls.txt").read_text() == "3"


def test_render_only_redraws_without_running(fake_env):
    tmp, _ = fake_env
    out = tmp / "lb"
    main(["--out", str(out)])
    (out / "leaderboard.png").unlink()
    (out / "leaderboard.md").unlink()
    assert main(["--render", str(out)]) == 0
    assert (out / "leaderboard.png").is_file() and "fakepkg **0.75**" in (out / "leaderboard.md").read_text()
    assert (out / "fakepkg_calls.txt").read_text() == "1"


def test_check_ok_and_fail(fake_env, capsys):
    tmp, _ = fake_env
    out, expected = tmp / "lb", tmp / "expected"
    main(["--out", str(out), "--update-expected", "--expected", str(expected)])
    saved = json.loads((expected / "fakepkg.json").read_text())
    assert {"method": "fakepkg", "metric": "accuracy", "value": 0.75, "tol": 0.075} in saved["rows"]
    capsys.readouterr()
    assert main(["--out", str(out), "--check", "--expected", str(expected)]) == 0
    printed = capsys.readouterr().out
    assert "OK    fakepkg fakepkg accuracy: 0.75 (expected 0.75 ± 0.075)" in printed
    assert "SKIP  ghost: no results and no expected file" in printed
    saved["rows"][0]["value"] = 0.9
    (expected / "fakepkg.json").write_text(json.dumps(saved))
    assert main(["--out", str(out), "--check", "--expected", str(expected)]) == 1
    assert "FAIL  fakepkg fakepkg accuracy: 0.75 (expected 0.9" in capsys.readouterr().out


def test_failing_package_is_reported_not_hidden(fake_env, capsys):
    tmp, src = fake_env
    _make_fake(src, fail=True)
    out = tmp / "lb"
    assert main(["--out", str(out)]) == 1
    assert "failed" in capsys.readouterr().out
    assert "| fakepkg | Toy suite | – | – | failed |" in (out / "leaderboard.md").read_text()
    assert "boom" in (out / "fakepkg" / "replicate.log").read_text()


def test_hanging_package_is_killed_at_the_timeout(fake_env, capsys):
    import time

    tmp, src = fake_env
    _make_fake(src, hang=True)
    out = tmp / "lb"
    t0 = time.perf_counter()
    assert main(["--out", str(out), "--timeout", "3"]) == 1
    assert time.perf_counter() - t0 < 30
    assert "timeout" in capsys.readouterr().out
    assert "| fakepkg | Toy suite | – | – | timeout |" in (out / "leaderboard.md").read_text()


def test_unknown_package_name(fake_env, capsys):
    assert main(["--only", "nope", "--out", str(fake_env[0] / "lb")]) == 2
    assert "unknown package(s) ['nope']" in capsys.readouterr().err


def test_malformed_results_name_file_and_field(tmp_path):
    good = {
        "package": "x", "version": "0.1.0", "experiment": "replicate", "quick": True, "git": "abc", "seed": 0,
        "started": "2026-01-01T00:00:00", "seconds": 1.0, "config": {}, "data": {"name": "toy", "sha256": "s"},
        "rows": [{"method": "m", "metrics": {"acc": 0.5}}],
    }  # fmt: skip
    bad = tmp_path / "results.json"
    bad.write_text(json.dumps(good))
    assert load_results(bad).rows[0].metrics == {"acc": 0.5}
    bad.write_text(json.dumps({**good, "rows": [{"method": "m", "metrics": {"acc": "high"}}]}))
    with pytest.raises(DataError, match=r"results.json: field 'rows\[0\].metrics.acc': must be a finite number"):
        load_results(bad)
    bad.write_text(json.dumps({k: v for k, v in good.items() if k != "rows"}))
    with pytest.raises(DataError, match="field 'rows': missing"):
        load_results(bad)
    bad.write_text('{"package": ')
    with pytest.raises(DataError, match="results.json:1: invalid JSON"):
        load_results(bad)


def test_main_method_and_headline_keys_pick_the_row_and_metric(tmp_path):
    doc = {
        "package": "x", "version": "0.1.0", "experiment": "replicate", "quick": True, "git": "abc", "seed": 0,
        "started": "2026-01-01T00:00:00", "seconds": 1.0, "config": {}, "data": {"name": "toy", "sha256": "s"},
        "rows": [{"method": "sft", "metrics": {"loss": 1.0, "f1": 0.2}},
                 {"method": "dual", "metrics": {"loss": 0.5, "f1": 0.4}}],
    }  # fmt: skip
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc))
    plain = load_results(path)
    assert plain.method_row().method == "sft" and plain.headline() == "loss"
    path.write_text(json.dumps({**doc, "main_method": "dual", "headline": "f1"}))
    picked = load_results(path)
    assert picked.method_row().method == "dual" and [r.method for r in picked.baselines()] == ["sft"]
    assert picked.headline() == "f1"


def test_registry_lists_the_ten_packages():
    names = [p.name for p in registry.PACKAGES]
    assert names == ["dome", "cocoa", "dr9k", "sage", "agentic-r", "matchtir", "arr", "rose", "mask", "huijin"]
    assert registry.find(["agentic_r"])[0].name == "agentic-r"


@pytest.mark.slow
def test_real_leaderboard_check(tmp_path):
    """The CI regression run: every built package's quick replication against expected/*.json."""
    assert main(["--quick", "--out", str(tmp_path / "lb"), "--check"]) == 0


def test_wall_clock_metrics_are_not_regressed_on():
    from benchmarks.leaderboard.check import is_timing

    assert is_timing("update_seconds") and is_timing("prep_seconds_std")
    assert not is_timing("recall@10_new") and not is_timing("seconds_per_doc_ratio")


def test_rerun_resumes_only_parts_started_by_the_same_source(fake_env):
    tmp, src = fake_env
    out = tmp / "lb"
    pkg_out = out / "fakepkg"
    main(["--quick", "--out", str(out)])
    (pkg_out / "run.json").unlink()  # as if the run had been killed before finishing
    (pkg_out / "row_done.json").write_text("{}")  # a finished part the replication would resume from
    main(["--quick", "--out", str(out)])
    assert (pkg_out / "row_done.json").exists()  # same source and mode: kept for the resume
    (src / "fakepkg" / "cli.py").write_text((src / "fakepkg" / "cli.py").read_text() + "# changed\n")
    main(["--quick", "--out", str(out)])
    assert not (pkg_out / "row_done.json").exists()  # computed by older code: removed before the rerun
    (pkg_out / "row_done.json").write_text("{}")
    main(["--quick", "--out", str(out), "--no-cache"])
    assert not (pkg_out / "row_done.json").exists()
    assert json.loads((pkg_out / "run.json").read_text())["status"] == "ok"
