"""results.json: atomic write, schema validation with file/field-named errors, hashing, provenance."""

import dataclasses
import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from shared.eval import ResultsError, read_results, sha256_of, write_results
from shared.eval.results import git_state, package_versions

import shared


@dataclasses.dataclass
class TinyConfig:
    lr: float = 1e-3
    steps: int = 5


ROWS = [
    {"method": "ours", "metrics": {"recall@1": 0.6, "ndcg@10": 0.7}},
    {"method": "baseline", "metrics": {"recall@1": 0.4, "ndcg@10": None}},
]


def _write(tmp_path, **changes):
    kwargs = dict(
        out_dir=tmp_path / "run",
        package="shared",
        version="0.1.0",
        experiment="replicate",
        rows=ROWS,
        config=TinyConfig(),
        seed=0,
        quick=True,
        data={"name": "toy", "sha256": sha256_of(b"toy")},
        started=dt.datetime(2026, 1, 2, 3, 4, 5),
        seconds=1.5,
    )
    kwargs.update(changes)
    return write_results(**kwargs)


def test_write_then_read_round_trip(tmp_path):
    path = _write(tmp_path)
    assert path == tmp_path / "run" / "results.json"
    assert not list(path.parent.glob("*.tmp"))  # tmp file was renamed into place
    doc = read_results(path.parent)
    assert doc["config"] == {"lr": 1e-3, "steps": 5}
    assert doc["started"] == "2026-01-02T03:04:05+00:00"
    assert doc["rows"][1]["metrics"]["ndcg@10"] is None
    assert doc["versions"]["shared"] == shared.__version__ and "torch" in doc["versions"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    if head.returncode == 0:  # running from a checkout: the commit of the source tree is recorded
        assert doc["git"] == head.stdout.strip()
    else:
        assert doc["git"] == "unknown"


def test_git_unknown_outside_a_repo(tmp_path):
    assert git_state(tmp_path) == ("unknown", None)


def test_write_rejects_bad_values_naming_the_field(tmp_path):
    with pytest.raises(ResultsError, match=r"rows\[1\]\.metrics': keys"):
        _write(tmp_path, rows=[ROWS[0], {"method": "b", "metrics": {"recall@1": 0.1}}])
    with pytest.raises(ResultsError, match=r"rows\[0\]\.metrics\.recall@1': must be a finite number"):
        _write(tmp_path, rows=[{"method": "a", "metrics": {"recall@1": float("nan")}}])
    with pytest.raises(ResultsError, match=r"'data\.sha256': must be a non-empty string"):
        _write(tmp_path, data={"name": "toy"})
    with pytest.raises(ResultsError, match=r"'started': not an ISO-8601 time"):
        _write(tmp_path, started="yesterday")
    with pytest.raises(ResultsError, match=r"'rows\[2\]\.method': 'ours' repeats rows\[0\]'s method"):
        _write(tmp_path, rows=[*ROWS, {"method": "ours", "metrics": {"recall@1": 0.5, "ndcg@10": 0.1}}])
    assert not (tmp_path / "run" / "results.json").exists()


def test_read_rejects_broken_files(tmp_path):
    bad = tmp_path / "results.json"
    bad.write_text("{not json")
    with pytest.raises(ResultsError, match=rf"{bad}: invalid JSON at line 1"):
        read_results(bad)
    doc = json.loads(_write(tmp_path).read_text())
    del doc["seed"]
    bad.write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match=rf"{bad}: field 'seed': missing"):
        read_results(bad)
    doc["seed"] = True
    bad.write_text(json.dumps(doc))
    with pytest.raises(ResultsError, match="field 'seed': expected int"):
        read_results(bad)
    with pytest.raises(ResultsError, match="file not found"):
        read_results(tmp_path / "nope.json")


def test_sha256_of_bytes_files_dirs_and_lists(tmp_path):
    assert sha256_of(b"abc") == hashlib.sha256(b"abc").hexdigest()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.txt").write_bytes(b"abc")
    assert sha256_of(tmp_path / "d" / "a.txt") == hashlib.sha256(b"abc").hexdigest()
    expected_dir = hashlib.sha256(f"a.txt\0{hashlib.sha256(b'abc').hexdigest()}\n".encode()).hexdigest()
    assert sha256_of(tmp_path / "d") == expected_dir
    assert sha256_of([tmp_path / "d"]) == hashlib.sha256(f"d\0{expected_dir}\n".encode()).hexdigest()
    with pytest.raises(FileNotFoundError, match="no such file"):
        sha256_of(tmp_path / "missing")


def test_package_versions_skip_missing():
    versions = package_versions(extra=["surely-not-an-installed-dist"])
    assert "surely-not-an-installed-dist" not in versions and "numpy" in versions


def test_seed_mean_golden_values_and_not_applicable_metrics():
    from shared.eval import seed_mean

    out = seed_mean([{"acc": 0.2, "prep": None, "n": 3.0}, {"acc": 0.4, "prep": 1.0, "n": 5.0}])
    assert out["acc"] == pytest.approx(0.3) and out["acc_std"] == pytest.approx(0.1414213562)  # sample sd
    assert out["prep"] is None and out["prep_std"] is None  # n/a in one seed: n/a, with the same keys
    assert seed_mean([{"acc": 0.5, "n": 1.0}], keys=["acc"]) == {"acc": 0.5}  # one seed: no _std; keys chosen
