"""The synthesis stages end to end on a small KB: per-level counts, the (entity, chain) split with no test hop in
training, provenance back to the seeds, finished stages reused (no build), a changed filter setting rebuilding
from `filter` on only, calibration's hard rule, and a teacher endpoint that is down leaving no stamped output."""

import json
import socket

import pytest
from benchmarks.synthetic.kb import shared_hops
from dr9k.config import Dr9kConfig
from dr9k.synth import Pipeline, is_hard, read_jsonl
from shared.config import load_config
from shared.serving import ChatError

SMALL = ["seeds.kb.n_people=60", "seeds.kb.n_companies=10", "seeds.kb.n_cities=8", "seeds.kb.n_countries=4",
         "seeds.kb.dev_per_level=3"]


def _pipe(tmp_path, *extra):
    return Pipeline(load_config(Dr9kConfig, None, [*SMALL, *extra]), tmp_path / "synth", log=None)


def test_pipeline_end_to_end_and_resume(tmp_path):
    pipe = _pipe(tmp_path)
    results = pipe.run("calibrate")
    assert pipe.runner.built == ["seed", "levels", "filter", "trajectories", "verdicts", "calibrate"]
    data = results["calibrate"].path
    rows = read_jsonl(data / "dataset.jsonl")
    assert {r["level"] for r in rows} == {"L1", "L2", "L3"} and {r["split"] for r in rows} == {"train", "dev", "test"}
    train, test = read_jsonl(data / "train.jsonl"), read_jsonl(data / "test.jsonl")
    assert shared_hops(train, test) == 0 and not {r["question"] for r in train} & {r["question"] for r in test}
    assert all(r["depth"] == {"L1": 2, "L2": 3, "L3": 4}[r["level"]] for r in rows)
    assert sum(r["teacher_correct"] for r in rows) >= 0.9 * len(rows)  # the scripted teacher fails on retrieval only
    assert read_jsonl(data / "hard.jsonl") == [r for r in rows if r["hard"]]
    seeds = {r["id"] for r in read_jsonl(results["seed"].output("seeds.jsonl"))}
    made = {r["id"]: r for r in read_jsonl(results["levels"].output("levels.jsonl"))}
    for r in rows:  # provenance: calibrate <- filter (same question id) <- levels <- seed question
        assert r["stage"] == "calibrate" and r["parent_ids"] == [r["id"]] and r["params"] == {"attempts": 1}
        assert made[r["id"]]["parent_ids"][0] in seeds and made[r["id"]]["op"] == f"make_{r['level']}"
    levels = results["levels"].stamp["stats"]
    assert levels["built_L1"] == sum(r["level"] == "L1" for r in read_jsonl(results["levels"].output("levels.jsonl")))
    assert "dropped" in results["filter"].stamp["stats"]
    # a rerun builds nothing; another filter setting rebuilds filter and what follows it, not seed or levels
    again = _pipe(tmp_path)
    again.run("calibrate")
    assert again.runner.built == []
    changed = _pipe(tmp_path, "filters.max_answer_words=1")
    changed.run("calibrate")
    assert changed.runner.built == ["filter", "trajectories", "verdicts", "calibrate"]


def test_hard_rule():
    assert is_hard([False, False, False, False]) and not is_hard([False, True, False, False])
    assert is_hard([False]) and not is_hard([True])  # k = 1: the release's "the teacher got it wrong"
    with pytest.raises(ValueError):
        is_hard([])


def test_teacher_down_leaves_nothing_half_written(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pipe = _pipe(tmp_path, "teacher.kind=endpoint", f"teacher.base_url=http://127.0.0.1:{port}",
                 "teacher.max_retries=0")
    with pytest.raises(ChatError, match=f"127.0.0.1:{port}"):
        pipe.run("calibrate")
    states = {row["stage"]: row["state"] for row in pipe.status()}
    assert states == {"seed": "done", "levels": "done", "filter": "done", "trajectories": "todo",
                      "verdicts": "todo", "calibrate": "todo"}
    assert not list((tmp_path / "synth").glob("trajectories/*/trajectories.jsonl"))
    stamp = json.loads(next((tmp_path / "synth").glob("filter/*/stage.json")).read_text())
    assert stamp["stats"]["kept"] > 0
