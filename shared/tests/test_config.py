"""Tests for shared.config: YAML + dotted overrides into nested dataclasses, and the errors for bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest
import yaml
from shared.config import (
    ConfigError,
    claim_run_dir,
    config_differences,
    config_to_dict,
    load_config,
    parse_override,
    save_config,
)


@dataclass
class TrainCfg:
    lr: float = 1e-3
    steps: int = 100
    bf16: bool = False
    schedule: Literal["cosine", "linear"] = "cosine"


@dataclass
class ExpCfg:
    name: str = "demo"
    seed: int = 0
    model: str | None = None
    stop: list[str] = field(default_factory=list)
    train: TrainCfg = field(default_factory=TrainCfg)


def test_defaults_without_file():
    cfg = load_config(ExpCfg, None)
    assert cfg == ExpCfg()


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# uv run x --config c.yaml\nname: run1\ntrain:\n  lr: 3e-4\n  steps: 7\n")
    cfg = load_config(ExpCfg, path, ["train.lr=3e-5", "stop=[a,b]", "train.bf16=true", "model=tiny", "seed=4"])
    assert cfg.name == "run1"
    assert cfg.train.lr == pytest.approx(3e-5) and isinstance(cfg.train.lr, float)
    assert cfg.train.steps == 7
    assert cfg.train.bf16 is True
    assert cfg.stop == ["a", "b"]
    assert cfg.model == "tiny"
    assert cfg.seed == 4


def test_yaml_exponent_without_dot_is_float(tmp_path):
    # YAML 1.1 reads "3e-4" as a string; the annotated float type must win.
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 3e-4\n")
    assert load_config(ExpCfg, path).train.lr == pytest.approx(3e-4)


def test_optional_none_and_scalar_to_list():
    cfg = load_config(ExpCfg, None, ["model=null", "stop=</answer>"])
    assert cfg.model is None
    assert cfg.stop == ["</answer>"]


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config(ExpCfg, path)
    assert "train.lrr" in str(err.value) and "bad.yaml" in str(err.value)


def test_unknown_override_key():
    with pytest.raises(ConfigError, match="train.nope"):
        load_config(ExpCfg, None, ["train.nope=1"])


def test_malformed_yaml_names_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("train: [1, 2\nname: x\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        load_config(ExpCfg, path)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(ExpCfg, tmp_path / "absent.yaml")
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(ExpCfg, path)


@pytest.mark.parametrize(
    "override, key",
    [("train.steps=abc", "train.steps"), ("train.lr=fast", "train.lr"), ("train.bf16=maybe", "train.bf16"),
     ("train.schedule=step", "train.schedule"), ("train.steps=1.5", "train.steps")],
)
def test_bad_types_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(ExpCfg, None, [override])


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match="empty key"):
        parse_override("train..lr=1")
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])


def test_save_config_roundtrip(tmp_path):
    cfg = load_config(ExpCfg, None, ["train.lr=0.5", "stop=[x]"])
    path = save_config(cfg, tmp_path / "out")
    assert path.name == "config.yaml"
    assert yaml.safe_load(path.read_text()) == config_to_dict(cfg)
    assert load_config(ExpCfg, path) == cfg
    assert config_to_dict(cfg)["train"] == {"lr": 0.5, "steps": 100, "bf16": False, "schedule": "cosine"}


def test_config_differences_names_dotted_keys_and_skips_ignored_ones() -> None:
    old, new = ExpCfg(), ExpCfg()
    new.train.lr = old.train.lr * 2
    new.name = "other"
    assert config_differences(old, new) == [f"name: {old.name!r} -> 'other'",
                                            f"train.lr: {old.train.lr!r} -> {new.train.lr!r}"]
    assert config_differences(old, new, ignore=("name", "lr")) == []
    assert config_differences(old, new, ignore=("train.lr",)) == [f"name: {old.name!r} -> 'other'"]


def test_claim_run_dir_refuses_a_folder_of_a_run_with_another_config(tmp_path) -> None:
    cfg = ExpCfg()
    claim_run_dir(cfg, tmp_path / "run")
    claim_run_dir(cfg, tmp_path / "run")  # the same run resumes
    other = ExpCfg()
    other.train.lr = cfg.train.lr * 2
    with pytest.raises(ConfigError, match=r"run holds a run with another config \(train\.lr: "):
        claim_run_dir(other, tmp_path / "run")
    claim_run_dir(other, tmp_path / "run", ignore=("lr",))  # declared as not changing the results
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["lr"] == other.train.lr



@dataclass
class _Inner:
    steps: int = 1


@dataclass
class _Outer:
    inner: _Inner | None = None


def test_optional_section_error_names_the_inner_key():
    from shared.config import ConfigError, load_config

    assert load_config(_Outer, None, ["inner.steps=3"]).inner.steps == 3
    with pytest.raises(ConfigError, match="unknown config key 'inner.stpes'"):
        load_config(_Outer, None, ["inner.stpes=3"])
    with pytest.raises(ConfigError, match="key 'inner.steps'.*expected an int"):
        load_config(_Outer, None, ["inner.steps=many"])
