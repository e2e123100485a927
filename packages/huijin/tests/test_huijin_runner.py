"""The runner end to end on a tiny recipe: the stage x benchmark table, exact resume, prefix sharing, rebuilds of
changed suffixes only, half-written folders, missing weights, and an RL step that changes the weights."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from huijin import trainers
from huijin.recipe import BENCHMARKS, load_recipe
from huijin.replicate import row_recipe
from huijin.runner import CheckpointError, format_table, load_stage_model, recipe_status, run_recipe

TINY = Path(__file__).with_name("tiny_recipe.yaml")
ORDER = ["init", "cpt", "sft", "reasoning_rl", "agentic_rl", "general_rl"]


@pytest.fixture()
def counted(monkeypatch):
    """Count the calls of every stage trainer (and of the init builder)."""
    calls: list[str] = []
    for name, fn in list(trainers.TRAINERS.items()):
        def wrapped(recipe, stage, *args, _fn=fn, **kw):
            calls.append(stage)
            return _fn(recipe, stage, *args, **kw)
        monkeypatch.setitem(trainers.TRAINERS, name, wrapped)
    init = trainers.build_init
    monkeypatch.setattr(trainers, "build_init", lambda recipe, out: (calls.append("init"), init(recipe, out))[1])
    return calls


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A finished run of the whole tiny recipe (shared by the tests that only read it)."""
    root = tmp_path_factory.mktemp("tiny") / "stages"
    run = run_recipe(load_recipe(TINY), root, log=lambda m: None)
    return root, run


def test_end_to_end_table(tree):
    root, run = tree
    table = run.table()
    assert list(table) == ORDER and all(list(row) == list(BENCHMARKS) for row in table.values())
    for stage, row in table.items():
        assert (row["tatqa_numeric"] is None) == (stage != "general_rl")  # final_only: null, never missing
        assert all(row[b] is not None for b in BENCHMARKS if b != "tatqa_numeric")
        assert 0.0 <= row["fin_numeric"] <= 1.0 and row["filings_ppl"] > 1.0
    assert table["cpt"]["filings_ppl"] < table["init"]["filings_ppl"]  # two CPT steps already lower it
    assert "| stage | fin_numeric |" in format_table(table)
    stamp = run.stamp("sft")
    assert stamp["counts"] == {"fin_numeric": 20, "fin_choice": 4, "fin_tool": 8, "general": 8}
    assert (run.results["sft"].path / "metrics.jsonl").is_file()
    assert json.loads((run.results["general_rl"].path / "train.json").read_text())["judge"].startswith("rubric")
    assert all(s["state"] == "done" for s in recipe_status(load_recipe(TINY), root))


def test_resume_after_stop_skips_finished_stages_exactly(tmp_path, counted):
    recipe = load_recipe(TINY)
    first = run_recipe(recipe, tmp_path, until="sft", log=lambda m: None)
    assert counted == ["init", "cpt", "sft"] and first.order == ["init", "cpt", "sft"]
    states = {s["stage"]: s["state"] for s in recipe_status(recipe, tmp_path)}
    assert states["sft"] == "done" and states["reasoning_rl"] == "todo"
    counted.clear()
    second = run_recipe(recipe, tmp_path, log=lambda m: None)
    assert counted == ["reasoning_rl", "agentic_rl", "general_rl"]  # stages 1-2 built 0 times
    assert second.results["sft"].path == first.results["sft"].path
    assert second.results["reasoning_rl"].stamp["settings"]["parents"] == {"sft": first.results["sft"].key}
    counted.clear()
    third = run_recipe(recipe, tmp_path, log=lambda m: None)
    assert counted == [] and third.built == []


def test_changed_suffix_rebuilds_only_after_it(tmp_path, counted, tree):
    root, run = tree
    shutil.copytree(root, tmp_path / "stages")
    changed = load_recipe(TINY, ["stages.agentic_rl.rl.lr=1e-5"])
    again = run_recipe(changed, tmp_path / "stages", log=lambda m: None)
    assert counted == ["agentic_rl", "general_rl"]
    assert again.results["reasoning_rl"].key == run.results["reasoning_rl"].key
    assert again.results["agentic_rl"].key != run.results["agentic_rl"].key


def test_ablation_reuses_the_shared_prefix(tmp_path, counted, tree):
    root, run = tree
    shutil.copytree(root, tmp_path / "stages")
    ablation = run_recipe(row_recipe(load_recipe(TINY), "no_reasoning_rl"), tmp_path / "stages", log=lambda m: None)
    assert counted == ["agentic_rl", "general_rl"]  # cpt and sft are the full chain's folders, not retrained
    for stage in ("init", "cpt", "sft"):
        assert ablation.results[stage].path.relative_to(tmp_path) == run.results[stage].path.relative_to(root.parent)
    assert ablation.results["agentic_rl"].stamp["settings"]["parents"] == {"sft": run.results["sft"].key}


def test_half_written_stage_is_rebuilt(tmp_path, counted):
    recipe = load_recipe(TINY)
    first = run_recipe(recipe, tmp_path, until="cpt", log=lambda m: None)
    folder = first.results["cpt"].path
    (folder / "stage.json").unlink()  # a folder without its stamp: an unfinished build
    counted.clear()
    run_recipe(recipe, tmp_path, until="cpt", log=lambda m: None)
    assert counted == ["cpt"] and (folder / "stage.json").is_file()


def test_missing_weights_name_the_stage(tmp_path):
    recipe = load_recipe(TINY)
    first = run_recipe(recipe, tmp_path, until="cpt", log=lambda m: None)
    (first.results["cpt"].path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="stage 'cpt': .* has no model weights"):
        run_recipe(recipe, tmp_path, until="sft", log=lambda m: None)
    with pytest.raises(CheckpointError, match="stage 'x'"):
        load_stage_model("x", tmp_path)


def test_one_rl_step_changes_the_weights(tmp_path, tree):
    """A reward with variance inside a group (longer answers score more) must move the policy."""
    from huijin import rewards

    root, run = tree
    recipe = load_recipe(TINY, ["stages.reasoning_rl.rl.steps=1"])
    model, tok = load_stage_model("sft", run.results["sft"].path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = rewards.REWARDS["numeric"]
    lengthy = dataclasses.replace(spec, fn=lambda trajs, recs, ctx: [len(t.text) / 10 for t in trajs])
    rewards.REWARDS["numeric"] = lengthy
    try:
        stamp = trainers.train_rl(recipe, "reasoning_rl", model, tok, tmp_path / "work", tmp_path)
    finally:
        rewards.REWARDS["numeric"] = spec
    after = stamp["model"].state_dict()
    moved = sum(not torch.equal(before[k], after[k]) for k in before)
    assert len(stamp["reward_curve"]) == 1 and moved > 0
