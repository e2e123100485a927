"""`leaderboard --check`: claims as holds/fails apart from value drift (a doctored results file flips one), the
package/version/mode header, results without an expected file, the refused --check + --update-expected, the cache
fingerprint over shared/, benchmarks/ and uv.lock, and the claims recorded for the built packages."""

import json

import pytest
from benchmarks.leaderboard import registry
from benchmarks.leaderboard.check import DEFAULT_EXPECTED, claim_statuses, is_timing, load_expected
from benchmarks.leaderboard.cli import main
from benchmarks.leaderboard.registry import Claim, PackageSpec
from benchmarks.leaderboard.results import Results, Row
from shared.eval import write_results

CLAIMS = (
    Claim("beats_baseline", "method", "baseline", "accuracy"),  # 0.52 - 0.50 > 0: holds
    Claim("shorter", "method", "baseline", "length", lower_is_better=True),  # 12 < 10? fails
    Claim("faster", "method", "baseline", "train_seconds", lower_is_better=True),  # timing: reported only
)


@pytest.fixture
def board(tmp_path, monkeypatch):
    """A leaderboard folder holding one package's results (no package to run: checked with --render)."""
    spec = PackageSpec("toy", "toy_pkg_not_installed", "Toy suite", "method beats baseline", CLAIMS)
    monkeypatch.setattr(registry, "PACKAGES", [spec])

    def write(accuracy=0.52, version="0.2.0", quick=True, package="toy"):
        rows = [{"method": "method", "metrics": {"accuracy": accuracy, "length": 12.0, "train_seconds": 3.0}},
                {"method": "baseline", "metrics": {"accuracy": 0.50, "length": 10.0, "train_seconds": 9.0}}]
        write_results(tmp_path / "lb" / "toy", package, version, "replicate", rows, {"steps": 1}, 0, quick,
                      {"name": "toy", "sha256": "x"}, "2026-01-01T00:00:00", 0.1)

    return tmp_path / "lb", tmp_path / "expected", write


def _check(lb, expected, *extra):
    return main(["--render", str(lb), "--check", "--expected", str(expected), *extra])


def test_claims_are_recorded_and_a_doctored_results_file_flips_one(board, capsys):
    lb, expected, write = board
    write()
    assert main(["--render", str(lb), "--update-expected", "--expected", str(expected)]) == 0
    saved = json.loads((expected / "toy.json").read_text())
    assert saved["claims"] == {"beats_baseline": "holds", "shorter": "fails", "faster": "holds"}
    assert (saved["package"], saved["version"], saved["quick"]) == ("toy", "0.2.0", True)
    capsys.readouterr()
    assert _check(lb, expected) == 0
    out = capsys.readouterr().out
    assert "OK    toy method accuracy: 0.52 (expected 0.52 ± 0.052)" in out
    assert ("CLAIM OK    toy beats_baseline holds (method accuracy - baseline accuracy > 0: difference +0.02; "
            "recorded holds)") in out
    assert "CLAIM OK    toy shorter fails (baseline length - method length > 0: difference -2; recorded fails)" in out
    assert "CLAIM TIMED toy faster holds" in out
    assert "claims: 2 hold, 1 fail, 0 flipped or unchecked" in out
    # doctored: method's accuracy 0.49 is within the value tolerance (0.52 ± 0.052) but below the baseline
    write(accuracy=0.49)
    assert _check(lb, expected) == 1
    out = capsys.readouterr().out
    assert "OK    toy method accuracy: 0.49 (expected 0.52 ± 0.052)" in out  # no value drift reported
    assert "CLAIM FLIP  toy beats_baseline fails (method accuracy - baseline accuracy > 0: difference -0.01" in out
    assert "1 flipped or unchecked" in out and "check: FAILED" in out


def test_a_claim_without_recorded_status_or_rows_fails(board, capsys):
    lb, expected, write = board
    write()
    main(["--render", str(lb), "--update-expected", "--expected", str(expected)])
    saved = json.loads((expected / "toy.json").read_text())
    del saved["claims"]["beats_baseline"]
    (expected / "toy.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert _check(lb, expected) == 1
    assert "(no recorded status: --update-expected records it)" in capsys.readouterr().out


def test_package_version_and_mode_must_match(board, capsys):
    lb, expected, write = board
    write()
    main(["--render", str(lb), "--update-expected", "--expected", str(expected)])
    capsys.readouterr()
    write(version="0.3.0")
    assert _check(lb, expected) == 1
    assert "FAIL  toy version: expected file 0.2.0, results 0.3.0" in capsys.readouterr().out
    write(quick=False)
    assert _check(lb, expected) == 1
    assert "FAIL  toy mode: expected file quick, results full" in capsys.readouterr().out
    write()
    assert _check(lb, expected, "--full") == 1  # quick results checked as a full run
    assert "FAIL  toy mode: results and expected file are quick, checked as full" in capsys.readouterr().out
    write(package="other")
    assert _check(lb, expected) == 1
    assert "FAIL  toy package: expected file 'toy', results 'other', checked as 'toy'" in capsys.readouterr().out


def test_results_without_an_expected_file_fail(board, capsys):
    lb, expected, write = board
    expected.mkdir()
    lb.mkdir()  # an empty leaderboard folder: --render refuses a folder that does not exist
    assert _check(lb, expected) == 0  # nothing measured, nothing expected
    assert "SKIP  toy: no results and no expected file" in capsys.readouterr().out
    write()
    assert _check(lb, expected) == 1
    assert "FAIL  toy: results but no expected file" in capsys.readouterr().out


def test_check_with_update_expected_is_refused(board, capsys):
    lb, expected, write = board
    write()
    assert main(["--render", str(lb), "--check", "--update-expected", "--expected", str(expected)]) == 2
    assert "--update-expected rewrites them: give one" in capsys.readouterr().err
    assert not expected.exists()


def test_claim_differences_by_hand():
    c = Claim("x", "a", "b", "loss", margin=-0.05, inclusive=True, lower_is_better=True)
    assert c.describe() == "b loss - a loss >= -0.05"
    assert c.difference({"a": {"loss": 1.2}, "b": {"loss": 1.0}}) == pytest.approx(-0.2)
    assert not c.holds(-0.2) and c.holds(-0.05) and c.holds(0.1)
    assert c.difference({"a": {"loss": 1.2}}) is None and c.difference({"a": {}, "b": {"loss": 1}}) is None
    strict = Claim("y", "a", "b", "acc")
    assert not strict.holds(0.0) and strict.holds(1e-9)


def test_fingerprint_covers_shared_benchmarks_and_the_lock(tmp_path, monkeypatch):
    ws = tmp_path / "ws"
    folders = {"shared": ws / "shared/src/shared", "benchmarks": ws / "benchmarks/src/benchmarks",
               "toy_pkg": ws / "packages/toy/src/toy_pkg"}
    for folder in folders.values():
        folder.mkdir(parents=True)
        (folder / "__init__.py").write_text("x = 1\n")
    (ws / "uv.lock").write_text("lock 1\n")
    monkeypatch.setattr(registry, "_package_dir", lambda name: folders.get(name))
    spec = PackageSpec("toy", "toy_pkg", "Toy suite", "claim")
    seen = {registry.source_fingerprint(spec)}
    for path, text in ((folders["shared"] / "rl.py", "y = 2\n"), (folders["benchmarks"] / "data.jsonl", "{}\n"),
                       (ws / "uv.lock", "lock 2\n"), (folders["toy_pkg"] / "__init__.py", "x = 2\n")):
        path.write_text(text)
        seen.add(registry.source_fingerprint(spec))
    assert len(seen) == 5  # each change (core source, bundled data, lock, package) gives a new fingerprint


def _results_from_expected(path) -> Results:
    raw = load_expected(path)
    rows: dict[str, dict[str, float]] = {}
    for r in raw["rows"]:
        rows.setdefault(r["method"], {})[r["metric"]] = r["value"]
    return Results(path, raw["package"], raw["version"], raw["quick"], None, "", [Row(m, v) for m, v in rows.items()])


@pytest.mark.parametrize("spec", [s for s in registry.PACKAGES if (DEFAULT_EXPECTED / f"{s.name}.json").is_file()],
                         ids=lambda s: s.name)
def test_built_packages_state_claims_recorded_in_their_expected_files(spec):
    """Every built package has claims; each non-timing claim is computable from its expected rows and its recorded
    status is what those rows give (so the quick check would report it as OK)."""
    path = DEFAULT_EXPECTED / f"{spec.name}.json"
    assert spec.claims, f"{spec.name}: no claims in the registry"
    recorded = load_expected(path).get("claims", {})
    for cid, (status, _) in claim_statuses(spec, _results_from_expected(path)).items():
        claim = next(c for c in spec.claims if c.id == cid)
        if is_timing(claim.metric):
            continue
        assert status is not None, f"{spec.name} {cid}: a row or metric of the claim is not in {path.name}"
        assert recorded.get(cid) == status, f"{spec.name} {cid}: recorded {recorded.get(cid)}, rows give {status}"
