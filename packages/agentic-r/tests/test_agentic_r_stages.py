"""The pipeline on shared.stages: every step stamped, a lost or half-written output rebuilds that stage alone, and a
later round's retriever is never trained implicitly."""

import json

import pytest
from agentic_r.config import AgenticRConfig
from agentic_r.pipeline import Pipeline
from shared.config import load_config


def _cfg(tiny_bert):
    return load_config(AgenticRConfig, None, [
        f"retriever.base_model={tiny_bert}", "retriever.train_layers=1", "data.n_train=6", "data.n_test=3",
        "data.hops=[1,2]", "train.epochs=2", "train.batch_groups=4", "label.max_searches=3", "rounds=1",
    ])  # fmt: skip


STAGES = ["round0.rollouts", "round0.candidates", "round0.local", "round0.labelled", "round0.groups",
          "round0.retriever"]


def test_stages_are_stamped_and_rebuilt_one_by_one(tiny_bert, tmp_path):
    pipe = Pipeline(_cfg(tiny_bert), tmp_path, progress=False)
    pipe.iterate()
    assert pipe.runner.built == ["data", "base.index", *STAGES]
    stamps = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "round0/.stages").glob("*.json")}
    assert sorted(stamps) == sorted(STAGES)
    assert stamps["round0.groups"]["settings"]["parents"] == {"round0.labelled": stamps["round0.labelled"]["settings"]["key"]}
    stats = json.loads((tmp_path / "round0/stats.json").read_text())
    assert set(stats) == {"rollouts", "mine", "label", "train"}  # the per-part label sections are merged away
    groups_mtime = (tmp_path / "round0/groups.jsonl").stat().st_mtime_ns
    labelled = (tmp_path / "round0/labelled.jsonl").read_text()

    (tmp_path / "round0/labelled.jsonl").unlink()  # a lost output: only its stage is rebuilt, identically
    again = Pipeline(_cfg(tiny_bert), tmp_path, progress=False)
    again.iterate()
    assert again.runner.built == ["round0.labelled"]
    assert (tmp_path / "round0/labelled.jsonl").read_text() == labelled
    assert (tmp_path / "round0/groups.jsonl").stat().st_mtime_ns == groups_mtime

    (tmp_path / "round0/.stages/round0.candidates.json").unlink()  # written, never stamped: an unfinished build
    third = Pipeline(_cfg(tiny_bert), tmp_path, progress=False)
    third.iterate()
    assert third.runner.built == ["round0.candidates"]

    fresh = Pipeline(_cfg(tiny_bert), tmp_path / "fresh", progress=False)
    with pytest.raises(FileNotFoundError, match=r"round0/retriever/encoder missing: run `agentic-r train-retriever"):
        fresh.mine(1)
    assert fresh.runner.built == ["data"]  # nothing of round 0 was built on the way
