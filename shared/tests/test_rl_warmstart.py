"""The arithmetic warm start with caller records: the stamp names the records, caches are reused or refused.

Packages that SFT the tiny policy on their own solution style (rose's verbose share) pass `records=` and get the
same recipe and cache handling as the default arithmetic warm start.
"""

import json

import pytest
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
