"""The arithmetic warm start: caller records are stamped, caches reused or refused, the stamp is the one earlier
caches hold, and its records come from a registered source (the core imports no benchmark).

Packages that SFT the tiny policy on their own solution style (rose's verbose share) pass `records=` and get the
same recipe and cache handling as the default arithmetic warm start.
"""

import json

import pytest
from shared.eval import sha256_of
from shared.rl.warmstart import STAMP, arithmetic_records, sft_arithmetic_policy


def _records(style: str, n: int = 64) -> list[dict]:
    out = []
    for r in arithmetic_records(n, "train", 0):
        sol = r["solution"] if style == "plain" else f"Let me compute. {r['solution']}"
        out.append({"id": r["id"], "prompt": r["prompt"], "completion": sol})
    return out


def test_custom_records_are_stamped_reused_and_refused(tmp_path):
    out = tmp_path / "ws"
    recs = _records("verbose")
    path = sft_arithmetic_policy(out, steps=2, seed=0, batch_size=8, eval_n=10, records=recs)
    stamp = json.loads((path / STAMP).read_text())
    assert stamp["settings"]["n_train"] == len(recs) == 64
    assert len(stamp["settings"]["records_sha256"]) == 64
    assert (path / "config.json").exists() and 0.0 <= stamp["test_accuracy"] <= 1.0
    built = (path / "model.safetensors").stat().st_mtime_ns
    # the same records: the cache is reused, nothing is retrained
    assert sft_arithmetic_policy(out, steps=2, seed=0, batch_size=8, eval_n=10, records=_records("verbose")) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == built
    # other records (same count, same settings otherwise) must not reuse this cache
    with pytest.raises(FileExistsError, match="other settings"):
        sft_arithmetic_policy(out, steps=2, seed=0, batch_size=8, eval_n=10, records=_records("plain"))
    # and the default arithmetic warm start does not take it either
    with pytest.raises(FileExistsError):
        sft_arithmetic_policy(out, steps=2, seed=0, batch_size=8, eval_n=10, n_train=64)


def test_bad_custom_records_name_the_record_and_field(tmp_path):
    recs = _records("plain", 4)
    recs[2] = {"id": "x7", "prompt": "Q: 1+1=?\nA: ", "completion": ""}
    with pytest.raises(ValueError, match=r"record 2 \(id 'x7'\).*'completion'"):
        sft_arithmetic_policy(tmp_path / "ws", steps=2, records=recs)
    assert not (tmp_path / "ws").exists()


def test_arithmetic_stamp_is_the_one_earlier_caches_hold(tmp_path):
    # caches built before cached_sft_policy existed hold exactly these settings; equal stamps keep them valid
    path = sft_arithmetic_policy(tmp_path / "ws", steps=2, seed=0, batch_size=8, n_train=64, eval_n=10,
                                 target_accuracy=0.9, eval_every=1)
    stamp = json.loads((path / STAMP).read_text())
    assert stamp["settings"] == {"steps": 2, "seed": 0, "lr": 0.003, "batch_size": 8, "n_train": 64,
                                 "arch": "qwen2-h128-L2-heads4-ffn512-char", "target_accuracy": 0.9, "eval_every": 1}
    assert [step for step, _ in stamp["validation_curve"]] == [1, 2] and stamp["stopped_at"] is None
    recs = _records("verbose", 8)
    custom = sft_arithmetic_policy(tmp_path / "custom", steps=1, batch_size=8, eval_n=4, records=recs)
    pairs = [{"prompt": r["prompt"], "completion": r["completion"]} for r in recs]
    assert json.loads((custom / STAMP).read_text())["settings"]["records_sha256"] == sha256_of(json.dumps(pairs).encode())


def test_record_sources_come_from_entry_points_or_the_registry(monkeypatch):
    from shared.rl import warmstart

    assert arithmetic_records(2, "train", 0)[0]["prompt"].startswith("Q: ")  # the benchmarks entry point
    monkeypatch.setitem(warmstart.RECORD_SOURCES, "toy", lambda n, split, seed: [{"prompt": split}] * n)
    assert warmstart.record_source("toy")(2, "dev", 0) == [{"prompt": "dev"}, {"prompt": "dev"}]
    with pytest.raises(warmstart.RecordSourceError, match=r"no record source 'nope' is installed \(known: .*'arithmetic'"):
        warmstart.record_source("nope")


def test_shared_rl_says_in_one_line_when_the_records_are_not_installed(monkeypatch, tmp_path, capsys):
    from shared.rl import cli, warmstart

    def missing(name):
        raise warmstart.RecordSourceError(f"no record source {name!r} is installed")

    monkeypatch.setattr(warmstart, "record_source", missing)
    assert cli.main(["warmstart", "--out", str(tmp_path / "ws"), "--steps", "1"]) == 2
    assert capsys.readouterr().err.strip() == "shared-rl warmstart: no record source 'arithmetic' is installed"
    assert not (tmp_path / "ws").exists()


def test_the_core_imports_no_benchmark():
    import re
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    pattern = re.compile(r"^\s*(from|import)\s+benchmarks\b", re.MULTILINE)
    offenders = [str(p.relative_to(src)) for p in src.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_logging_settings_do_not_enter_the_cache_key():
    # report_to (added to SFTSettings in 0.5.0) and the other logging keys leave the weights alone: caches built before
    # they existed, or with another logger, stay valid; a setting that shapes the weights changes the key
    from shared.rl.sft import SFTSettings
    from shared.rl.warmstart import sft_stamp_settings

    recs = [{"prompt": "1+1=", "completion": "2"}]
    base = sft_stamp_settings(SFTSettings(), recs, 0.5, 10)
    assert "report_to" not in base["sft"] and "output_dir" not in base["sft"]
    assert sft_stamp_settings(SFTSettings(report_to="wandb", logging_steps=7), recs, 0.5, 10) == base
    assert sft_stamp_settings(SFTSettings(lr=base["sft"]["lr"] * 2), recs, 0.5, 10) != base


def test_without_a_folder_the_warm_start_lives_in_the_shared_cache_by_settings(tmp_path, monkeypatch):
    # sage's warm start and huijin's general base ask for the same settings: one folder, built once
    monkeypatch.setenv("SHARED_CACHE", str(tmp_path / "cache"))
    path = sft_arithmetic_policy(steps=2, seed=0, batch_size=8, n_train=64, eval_n=10)
    assert path.parent == tmp_path / "cache" / "warmstarts" and path.name.startswith("arithmetic-")
    built = (path / "model.safetensors").stat().st_mtime_ns
    assert sft_arithmetic_policy(None, steps=2, seed=0, batch_size=8, n_train=64, eval_n=10) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == built
    # other settings, another folder (nothing refused, nothing overwritten)
    other = sft_arithmetic_policy(steps=2, seed=1, batch_size=8, n_train=64, eval_n=10)
    assert other != path and other.parent == path.parent
    assert json.loads((other / STAMP).read_text())["settings"]["seed"] == 1
