"""The leaderboard page a researcher reads: recorded full runs beside the quick run, per-package tables, no '± sd'
for one seed, the curves picture from metrics.jsonl, recorded files rebuilt from a full run's results.json, and the
live status line (elapsed time and the log's last line) while a package runs."""

from __future__ import annotations

import json
import sys

import pytest
from benchmarks.data.errors import DataError
from benchmarks.leaderboard import cli as lb_cli
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.curves import package_curves, write_curves_png
from benchmarks.leaderboard.recorded import RECORDED_DIR, load_recorded, record_from_results, seeds_of
from benchmarks.leaderboard.render import _cell, collect, write_markdown, write_png
from benchmarks.leaderboard.runner import log_tail, run_package
from PIL import Image
from shared.eval import write_results

ROWS = [{"method": "fake", "metrics": {"acc": 0.7, "acc_std": 0.05}},
        {"method": "base", "metrics": {"acc": 0.5, "acc_std": 0.02}}]


# built packages whose full run has not been done yet (the page says "No recorded full run"); an entry goes when its
# recorded file comes, and none may have one meanwhile
FULL_RUN_PENDING = {"dr9k": "the 3-seed full run is not done yet: packages/dr9k/README.md, Status"}


def test_every_built_package_has_a_recorded_full_run():
    built = [p.name for p in registry.PACKAGES if registry.is_built(p) and p.name not in FULL_RUN_PENDING]
    assert built and sorted(p.stem for p in RECORDED_DIR.glob("*.json")) == sorted(built)
    assert all(registry.is_built(p) for p in registry.PACKAGES if p.name in FULL_RUN_PENDING)
    for name in built:
        rec = load_recorded(RECORDED_DIR / f"{name}.json")
        assert rec.package == name and rec.command and rec.commit and rec.date and rec.seeds and rec.reading
        metrics = {m for r in rec.rows for m in r["metrics"]}
        assert rec.headline in metrics and rec.main_method in rec.method_names()


def test_cell_hides_the_spread_of_a_single_seed():
    m = {"acc": 0.5, "acc_std": 0.0, "f1": 0.25, "f1_std": 0.1}
    assert _cell(m, "acc", 1) == "0.5" and _cell(m, "f1", 1) == "0.25"
    assert _cell(m, "acc", 3) == "0.5 ± 0" and _cell(m, "f1", 3) == "0.25 ± 0.1"
    assert _cell(m, "acc", None) == "0.5" and _cell(m, "f1", None) == "0.25 ± 0.1"  # unknown count: no '± 0'


def _results(folder, quick, seeds):
    return write_results(folder, "fakepkg", "0.3.0", "replicate", ROWS, {"steps": 1}, seeds[0], quick,
                         {"name": "toy", "sha256": "x"}, "2026-02-03T04:05:06", 1.0, extra={"seeds": seeds})


def test_record_from_results_and_the_page(tmp_path, monkeypatch):
    spec = registry.PackageSpec("fakepkg", "fakepkg_not_importable", "Toy suite", "fake beats base")
    monkeypatch.setattr(registry, "PACKAGES", [spec])
    recorded = tmp_path / "recorded"
    full = _results(tmp_path / "full", False, [0, 1, 2])
    path = record_from_results(full, "uv run fakepkg replicate --out runs/full", recorded, reading="holds")
    rec = load_recorded(path)
    assert (rec.seeds, rec.date, rec.rows, rec.command) == ([0, 1, 2], "2026-02-03", ROWS,
                                                            "uv run fakepkg replicate --out runs/full")
    assert str(tmp_path) not in path.read_text()  # no path of the recording machine in a tracked file
    with pytest.raises(DataError, match="quick run"):
        record_from_results(_results(tmp_path / "q", True, [0]), "x", recorded)
    out = tmp_path / "lb"
    _results(out / "fakepkg", True, [0])  # this leaderboard's quick run
    (out / "fakepkg" / "rl").mkdir()
    (out / "fakepkg" / "rl" / "metrics.jsonl").write_text("".join(
        json.dumps({"step": s, "reward": 0.1 * s, "loss": 1.0 / s}) + "\n" for s in range(1, 6)) + '{"step": 6, "rew')
    entries = collect(out, [spec], recorded_dir=recorded)
    md = write_markdown(entries, out, "uv run leaderboard").read_text()
    assert "| fakepkg | Toy suite | acc: fake **0.7 ± 0.05** vs base 0.5 ± 0.02 (3 seeds (0, 1, 2)) | acc: fake " \
           "**0.7** vs base 0.5 | ok |" in md
    full_part, quick_part = md.split("### recorded full run")[1].split("### quick run (plumbing check)")
    assert "`uv run fakepkg replicate --out runs/full` — commit" in full_part and "| **fake** | 0.7 ± 0.05 |" in full_part
    assert "Reading: holds" in full_part
    assert "| **fake** | 0.7 |" in quick_part and "±" not in quick_part  # one seed: no spread
    curves = package_curves(out / "fakepkg")
    assert [(c.label, c.metric, c.steps) for c in curves] == [("rl", "reward", [1, 2, 3, 4, 5])]  # torn line skipped
    for png in (write_png(entries, out), write_curves_png(entries, out)):
        assert Image.open(png).size[0] > 300


def test_seeds_of_reads_a_list_a_count_or_the_one_seed():
    # matchtir's results.json stores the number of seeds ("seeds": 3) beside the first seed
    assert seeds_of({"seed": 0, "seeds": 3}) == [0, 1, 2]
    assert seeds_of({"seed": 4, "seeds": 2}) == [4, 5]
    assert seeds_of({"seed": 0, "seeds": [1, 3]}) == [1, 3]
    assert seeds_of({"seed": 7, "config": {"seeds": 1}}) == [7]
    assert seeds_of({"seed": 2}) == [2]
    assert seeds_of({"seed": 0, "seeds": True}) == [0]


def test_record_flag_needs_a_reading(tmp_path, capsys):
    full = _results(tmp_path / "full", False, [0, 1, 2])
    rc = lb_cli.main(["--record", str(full), "--record-command", "uv run x", "--recorded", str(tmp_path / "rec")])
    assert rc == 2 and "--record-reading" in capsys.readouterr().err
    assert not (tmp_path / "rec").exists() or not any((tmp_path / "rec").iterdir())


def test_broken_recorded_file_is_named(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"package": "x", "version": "1", "command": "c", "commit": "c", "date": "d",
                               "seeds": [0], "rows": [{"method": "m", "metrics": {"acc": "high"}}]}))
    with pytest.raises(DataError, match=r"x.json: field 'rows\[0\].metrics.acc': must be a finite number"):
        load_recorded(bad)


SLOW_CLI = '''import sys, time, pathlib
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
for i in range(4):
    print(f"step {i} of 4", flush=True)
    time.sleep(0.6)
from shared.eval import write_results
write_results(out, "slowpkg", "0.1.0", "replicate", [{"method": "slowpkg", "metrics": {"acc": 1.0}}], {}, 0,
              True, {"name": "toy", "sha256": "x"}, "2026-01-01T00:00:00", 0.1)
'''


def test_live_status_shows_elapsed_time_and_the_log_tail(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src" / "slowpkg"
    src.mkdir(parents=True)
    (src / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (src / "replicate.py").write_text("")
    (src / "cli.py").write_text(SLOW_CLI)
    monkeypatch.syspath_prepend(str(src.parent))
    monkeypatch.setenv("PYTHONPATH", str(src.parent))
    spec = registry.PackageSpec("slowpkg", "slowpkg", "Toy suite", "slow but fine")
    monkeypatch.setattr(registry, "PACKAGES", [spec])
    seen = []
    record = run_package(spec, tmp_path / "lb", progress=lambda t, tail: seen.append((t, tail)))
    assert record.status == "ok" and len(seen) >= 2
    assert all(b[0] > a[0] for a, b in zip(seen, seen[1:]))
    assert any(tail.startswith("step ") for _, tail in seen)
    monkeypatch.setattr(lb_cli, "STATUS_EVERY", 0.5)
    assert lb_cli.main(["--out", str(tmp_path / "lb2"), "--only", "slowpkg"]) == 0
    printed = capsys.readouterr().out
    assert "[1/1] slowpkg    running 0m0" in printed and "| step " in printed
    sys.modules.pop("slowpkg", None)


def test_log_tail_keeps_the_newest_progress_bar_state(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("start\nbar 1/3\rbar 2/3\rbar 3/3\n\n")
    assert log_tail(log) == "bar 3/3" and log_tail(tmp_path / "none.log") == ""


def test_curves_read_older_per_step_logs(tmp_path):
    """A `logs.json` of {stage: [records]} (cocoa's rows) draws its last stage's own loss when no preferred
    metric is there; metrics.jsonl wins in a folder that has both."""
    row = tmp_path / "pkg" / "seed0" / "cocoa"
    row.mkdir(parents=True)
    (row / "logs.json").write_text(json.dumps({"first_last": {}, "logs": {
        "stage2": [{"recon": 9.0}, {"recon": 8.0}], "contrastive": [{"nce": 3.0}, {"nce": 2.5}, {"nce": 2.0}]}}))
    curves = package_curves(tmp_path / "pkg")
    assert [(c.label, c.metric, c.steps, c.values) for c in curves] == [("seed0/cocoa", "nce", [1, 2, 3],
                                                                         [3.0, 2.5, 2.0])]
    (row / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/loss": 0.5}\n')
    assert [(c.metric, c.values) for c in package_curves(tmp_path / "pkg")] == [("train/loss", [1.0, 0.5])]


def test_curves_read_one_log_per_row_in_one_folder(tmp_path):
    seed = tmp_path / "pkg" / "seed0"
    seed.mkdir(parents=True)
    for row, losses in (("uniform", [0.9, 0.8]), ("sage", [0.9, 0.7])):
        (seed / f"{row}.log.jsonl").write_text("".join(json.dumps({"step": i + 1, "loss": v}) + "\n"
                                                       for i, v in enumerate(losses)))
    curves = package_curves(tmp_path / "pkg")
    assert sorted((c.label, c.metric, c.values) for c in curves) == [("seed0/sage", "loss", [0.9, 0.7]),
                                                                    ("seed0/uniform", "loss", [0.9, 0.8])]
