"""Recipe validation: every error names the stage and the key (or the file); overrides address stages by name."""

from pathlib import Path

import pytest
import yaml
from huijin.recipe import load_recipe
from huijin.replicate import default_config
from shared.config import ConfigError

TINY = Path(__file__).with_name("tiny_recipe.yaml")
GPU = Path(__file__).resolve().parents[1] / "configs" / "gpu_qwen7b.yaml"
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "recipe.yaml"


def _with(tmp_path, edit) -> Path:
    data = yaml.safe_load(TINY.read_text())
    edit(data)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _error(tmp_path, edit, overrides=()) -> str:
    with pytest.raises(ConfigError) as err:
        load_recipe(_with(tmp_path, edit), list(overrides))
    return str(err.value)


def test_packaged_recipes_load():
    for path in (default_config(True), default_config(False), TINY, GPU, RECIPE):
        recipe = load_recipe(path)
        assert list(recipe.stages) == ["cpt", "sft", "reasoning_rl", "agentic_rl", "general_rl"]


def test_override_addresses_a_stage_by_name():
    recipe = load_recipe(TINY, ["stages.reasoning_rl.rl.lr=1e-5", "stages.cpt.mixture.filings=9"])
    assert recipe.stages["reasoning_rl"].rl.lr == 1e-5 and recipe.stages["cpt"].mixture["filings"] == 9
    assert list(recipe.stages) == ["cpt", "sft", "reasoning_rl", "agentic_rl", "general_rl"]  # order kept


def test_unknown_trainer_names_stage_and_key(tmp_path):
    msg = _error(tmp_path, lambda d: d["stages"]["reasoning_rl"].update(trainer="grpoo"))
    assert msg == "stages.reasoning_rl.trainer: 'grpoo' is not one of [cpt, sft, grpo, agentic_grpo, general_rl]"


def test_zero_ratio_names_the_source(tmp_path):
    msg = _error(tmp_path, lambda d: d["stages"]["cpt"].update(mixture={"filings": 7, "general_text": 0}))
    assert msg == "stages.cpt.mixture.general_text: must be > 0, got 0.0"


def test_unknown_reward_lists_the_known_ones(tmp_path):
    msg = _error(tmp_path, lambda d: d["stages"]["reasoning_rl"].update(reward=["numerc"]))
    assert msg.startswith("stages.reasoning_rl.reward: unknown reward 'numerc'; known rewards: ['choice', 'numeric',")


def test_rl_stage_without_rl_section(tmp_path):
    msg = _error(tmp_path, lambda d: d["stages"]["reasoning_rl"].pop("rl"))
    assert msg == "stages.reasoning_rl: trainer 'grpo' needs a 'rl' section"


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d.update(epochs=3), "unknown config key 'epochs'"),
    (lambda d: d["stages"]["sft"].update(lr=1), "unknown config key 'stages.sft.lr'"),
    (lambda d: d["stages"]["sft"]["sft"].update(stpes=3), "unknown config key 'stages.sft.sft.stpes'"),
    (lambda d: d["stages"]["cpt"].update(mixture={"fin_numeric": 1}), "stages.cpt.mixture.fin_numeric: a cpt stage "
                                                                       "needs text sources"),
    (lambda d: d["stages"]["cpt"].update(mixture={"filngs": 1}), "stages.cpt.mixture.filngs: unknown source"),
    (lambda d: d["stages"]["sft"].update(mixture={}), "stages.sft.mixture: empty"),
    (lambda d: d["stages"]["sft"].update(reward=["numeric"]), "stages.sft.reward: a sft stage has no rewards"),
    (lambda d: d["stages"]["reasoning_rl"].update(reward=["tool_use"]), "stages.reasoning_rl.reward: reward "
                                                                         "'tool_use' is for ['agentic_grpo']"),
    (lambda d: d["stages"]["reasoning_rl"].update(mixture={"fin_numeric": 1, "fin_choice": 1}),
     "stages.reasoning_rl.reward: no reward in ['numeric'] scores source 'fin_choice'"),
    (lambda d: d["stages"]["cpt"].update(sft={"steps": 1}), "stages.cpt.sft: a 'cpt' stage takes no 'sft' section"),
    (lambda d: d["stages"]["cpt"].update(stop={"target": 0.3}), "stages.cpt.stop: only sft stages"),
    (lambda d: d["stages"]["agentic_rl"].update(mixture={"fin_numeric": 1}), "stages.agentic_rl.mixture.fin_numeric: "
                                                                              "agentic RL runs on tool questions"),
    (lambda d: d["stages"]["sft"]["sft"].update(steps="many"), "stages.sft.sft.steps"),
    (lambda d: d.update(stages={}), "the recipe has no stages"),
    (lambda d: d["stages"].update({"init": d["stages"]["cpt"]}), "stages.init: a stage name"),
])
def test_each_error_names_stage_and_key(tmp_path, edit, expected):
    assert expected in _error(tmp_path, edit)


def test_missing_source_file_names_stage_and_path(tmp_path):
    def edit(d):
        d["sources"] = {"my_corpus": {"path": str(tmp_path / "nope.jsonl"), "kind": "text"}}
        d["stages"]["cpt"]["mixture"] = {"my_corpus": 1, "filings": 1}

    msg = _error(tmp_path, edit)
    assert msg == f"stages.cpt.mixture.my_corpus: source file not found: {tmp_path / 'nope.jsonl'}"


def test_recipe_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- cpt\n- sft\n")
    with pytest.raises(ConfigError, match=f"config file {path} must hold a mapping"):
        load_recipe(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_recipe(tmp_path / "absent.yaml")
