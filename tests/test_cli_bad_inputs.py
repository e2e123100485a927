"""Every console script of the workspace against a table of bad inputs (issue 23's "done when").

For each script (the `[project.scripts]` of every member, collected from the pyproject files so a new script cannot
be forgotten) and each bad input — missing file, malformed YAML, unknown key, wrong type, bad enum, unknown model
path, a hub id that is not available offline, unwritable output folder, broken JSON line — the command run in-process
must exit with status 2, print exactly ONE line on stderr (`prog verb: message`), print no traceback, and leave the
temporary folder exactly as it was (no output folder claimed, no config.yaml written). A case that does not apply to
a script (e.g. a YAML config for `leaderboard`, which has none) is listed with the reason. "Unwritable" is an output
path below a regular file: the tests run as root here, and permission bits do not stop root. Each verb's work
function is replaced by one that fails the test, so a case passes only if the checks that run BEFORE any work
refuse it (how long those checks take is measured by `tools/bench/cli_bad_inputs.py`, not asserted here).
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CASES = ("missing_file", "malformed_yaml", "unknown_key", "wrong_type", "bad_enum", "unknown_model",
         "unknown_hub_id", "unwritable_out", "broken_jsonl")
UNBUILT = ()
HUIJIN_TINY = ROOT / "packages" / "huijin" / "tests" / "tiny_recipe.yaml"


def console_scripts() -> dict[str, str]:
    scripts = {}
    for path in [ROOT / "shared", ROOT / "benchmarks", *sorted((ROOT / "packages").iterdir())]:
        project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
        scripts.update(project.get("scripts", {}))
    return scripts


def _entry(script: str):
    module, _, attr = console_scripts()[script].partition(":")
    return getattr(importlib.import_module(module), attr)


def _no_work(run):
    raise AssertionError(f"{run.name}: the command's work started although its input is bad")


def _forbid_work(script: str, monkeypatch) -> None:
    """Make every verb of the script fail loudly if it starts: a bad input must be refused by the checks that run
    before it (config, files, models, output folder), not halfway through a warm start."""
    module = importlib.import_module(console_scripts()[script].partition(":")[0])
    for verb in getattr(getattr(module, "APP", None), "verbs", []):
        monkeypatch.setattr(verb, "run", _no_work)


class Inputs:
    """Bad input files under the test's folder; `out` is where a run would put its output."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.missing = root / "missing.yaml"
        self.yaml = root / "bad.yaml"
        self.yaml.write_text("train:\n  steps: [1, 2\n  lr: 3\n", encoding="utf-8")
        self.file = root / "a_file"
        self.file.write_text("not a folder\n", encoding="utf-8")
        self.unwritable = self.file / "out"
        self.out = root / "out"
        self.jsonl = root / "broken.jsonl"
        self.jsonl.write_text('{"id": "b", "text": "cut off\n'
                              '{"id": "a", "text": "fine", "question": "1+1?", "answer": "2", "prompt": "Q"}\n',
                              encoding="utf-8")
        self.model = str(root / "no_such_model")
        self.hub_id = "no-such-org/no-such-model-xyz"


def _mmeb(inp: Inputs) -> Path:
    folder = inp.root / "mmeb_data"
    (folder / "mmeb").mkdir(parents=True)
    (folder / "mmeb" / "toy.jsonl").write_text('{"meta_task": "vqa", "qry_text": "q"\n', encoding="utf-8")
    return folder


def _agentic_run(inp: Inputs) -> Path:
    """An earlier run's folder whose corpus file was cut mid-line."""
    run = inp.root / "agentic_run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "corpus.jsonl").write_text('{"id": "p1", "contents": "x"}\n{"id": "p2", "cont\n')
    return run


def _expected(inp: Inputs) -> Path:
    folder = inp.root / "expected"
    folder.mkdir()
    (folder / "dome.json").write_text('{"rows": [\n', encoding="utf-8")
    return folder


# script -> case -> argv (a function of the Inputs) or a string giving why the case does not apply
def _config_script(verb: list[str], wrong_type: str, bad_enum: str, model: str | None, jsonl, out: str = "--out"):
    return {
        "missing_file": lambda i: [*verb, "--config", str(i.missing), out, str(i.out)],
        "malformed_yaml": lambda i: [*verb, "--config", str(i.yaml), out, str(i.out)],
        "unknown_key": lambda i: [*verb, out, str(i.out), "bogus_key=1"],
        "wrong_type": lambda i: [*verb, out, str(i.out), wrong_type],
        "bad_enum": lambda i: [*verb, out, str(i.out), bad_enum],
        "unknown_model": (lambda i: [*verb, out, str(i.out), model.format(i.model)]) if model else "no model path",
        "unknown_hub_id": (lambda i: [*verb, out, str(i.out), model.format(i.hub_id)]) if model else "no model path",
        "unwritable_out": lambda i: [*verb, out, str(i.unwritable)],
        "broken_jsonl": jsonl,
    }


TABLE: dict[str, dict] = {
    "dome": _config_script(["train"], "train.steps=abc", "docids.scheme=bogus", "model.path={}",
                           lambda i: ["train", "--out", str(i.out), f"data.source={i.jsonl}"]),
    "cocoa": _config_script(["train"], "contrastive.steps=abc", "data.suite=bogus", "model.path={}",
                            lambda i: ["train", "--out", str(i.out), "data.suite=mmeb", f"data.path={_mmeb(i)}"]),
    "sage": _config_script(["train"], "train.steps=abc", "train.method=bogus", "model.path={}",
                           lambda i: ["train", "--out", str(i.out), "data.source=jsonl", f"data.path={i.jsonl}"]),
    "agentic-r": _config_script(["mine"], "rounds=abc", "agent.kind=bogus", "retriever.base_model={}",
                                lambda i: ["mine", "--out", str(_agentic_run(i))]),
    "matchtir": _config_script(["train"], "rl.steps=abc", "advantage.mode=bogus", "model.path={}",
                               lambda i: ["train", "--out", str(i.out), f"data.train_file={i.jsonl}"]),
    "rose": _config_script(["train"], "rl.steps=abc", "rose.score=bogus", "model.path={}",
                           lambda i: ["train", "--out", str(i.out), f"data.train={i.jsonl}"]),
    "dr9k": _config_script(["train"], "rl.steps=abc", "reward.scope=bogus", "model.path={}",
                           lambda i: ["train", "--out", str(i.out), "seeds.source=jsonl", f"seeds.path={i.jsonl}"]),
    "arr": _config_script(["train"], "rl.steps=abc", "train.schedule=bogus", "model.path={}",
                          lambda i: ["train", "--out", str(i.out), f"data.train_file={i.jsonl}"]),
    "mask": _config_script(["train"], "rl.steps=abc", "parse.mode=bogus", "model.path={}",
                           lambda i: ["train", "--out", str(i.out), f"data.train_file={i.jsonl}",
                                      f"data.dev_file={i.jsonl}", f"data.test_file={i.jsonl}",
                                      f"data.corpus_file={i.jsonl}"]),
    "huijin": _config_script(["run", "--config", str(HUIJIN_TINY)], "threads=abc", "model.base=bogus",
                             "model.path={}", lambda i: ["run", "--config", str(HUIJIN_TINY), "--out", str(i.out),
                                                         f"sources.news.path={i.jsonl}", "sources.news.kind=text",
                                                         "stages.cpt.mixture.news=1"]),
    "shared-rl": _config_script(["grpo"], "rl.steps=abc", "rl.lr_schedule=bogus", "policy.path={}",
                                "the grpo job's data is the synthetic arithmetic suite (no user file)"),
    "benchmarks": {
        **_config_script(["eval", "--tasks", "cranfield", "--model_args", "pretrained=bm25"], "limit=abc", "model=bogus",
                         "--model_args=pretrained={}", "tasks are bundled or synthetic: no user data file",
                         out="--output_path"),
    },
    "leaderboard": {
        "missing_file": lambda i: ["--render", str(i.root / "no_such_results"), "--out", str(i.out)],
        "malformed_yaml": "the leaderboard has no YAML config",
        "unknown_key": "the leaderboard has no config keys (flags only)",
        "wrong_type": lambda i: ["--timeout", "abc", "--out", str(i.out)],
        "bad_enum": lambda i: ["--only", "nope", "--out", str(i.out)],
        "unknown_model": "runs the packages' own replications (no model argument)",
        "unknown_hub_id": "runs the packages' own replications (no model argument)",
        "unwritable_out": lambda i: ["--out", str(i.unwritable)],
        "broken_jsonl": lambda i: ["--check", "--expected", str(_expected(i)), "--only", "dome", "--out", str(i.out)],
    },
    "shared-selfcheck": {
        **{c: "takes no config, model or data (only --out)" for c in CASES},
        "unwritable_out": lambda i: ["--out", str(i.unwritable)],
    },
    # unbuilt packages: every command is answered "not built yet" (one line, exit 2) whatever its flags
    **{name: {c: (lambda i: ["train", "--config", str(i.yaml), "--out", str(i.out), "bogus=1"]) for c in CASES}
       for name in UNBUILT},
}
PENDING: dict[str, str] = {}  # script -> why its cases are expected to fail for now


def test_the_table_covers_every_console_script():
    assert set(console_scripts()) == set(TABLE), "a console script without bad-input cases (or a stale entry)"


def _snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("script", sorted(TABLE))
def test_bad_input_is_one_line_exit_2_and_claims_nothing(script, case, tmp_path, capsys, monkeypatch):
    how = TABLE[script][case]
    if isinstance(how, str):
        pytest.skip(f"not applicable to {script}: {how}")
    if script in PENDING:
        pytest.xfail(PENDING[script])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id must then be in the local cache
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    argv = how(Inputs(tmp_path))
    before = _snapshot(tmp_path)
    _forbid_work(script, monkeypatch)
    code = _entry(script)(argv)
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, f"{script} {argv}: exit {code}; stderr: {err}"
    assert len(lines) == 1, f"{script} {argv}: expected one line on stderr, got {lines}"
    assert lines[0].startswith(script), lines[0]
    assert "Traceback" not in err + out
    assert _snapshot(tmp_path) == before, f"{script} {argv} left files behind"


REPLICATE = {  # the verb the leaderboard runs: the same checks before any warm start or base training
    "dome": "docids.scheme=bogus", "cocoa": "data.suite=bogus", "sage": "train.method=bogus",
    "agentic-r": "agent.kind=bogus", "matchtir": "advantage.mode=bogus", "rose": "rose.score=bogus",
    "dr9k": "reward.scope=bogus",
    "arr": "train.schedule=bogus",
    "mask": "parse.mode=bogus",
    "huijin": "model.base=bogus",
}


@pytest.mark.parametrize("case", ["unknown_key", "bad_enum", "unwritable_out", "missing_file"])
@pytest.mark.parametrize("script", sorted(REPLICATE))
def test_replicate_refuses_bad_input_before_any_work(script, case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    inp = Inputs(tmp_path)
    argv = {"unknown_key": ["--out", str(inp.out), "bogus_key=1"],
            "bad_enum": ["--out", str(inp.out), REPLICATE[script]],
            "unwritable_out": ["--out", str(inp.unwritable)],
            "missing_file": ["--out", str(inp.out), "--config", str(inp.missing)]}[case]
    before = _snapshot(tmp_path)
    _forbid_work(script, monkeypatch)
    assert _entry(script)(["replicate", "--quick", *argv]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{script} replicate: "), lines
    assert _snapshot(tmp_path) == before


def test_messages_name_what_is_wrong(tmp_path, capsys, monkeypatch):
    """A few messages read in full: the key, the file, the allowed values, the extra to install."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    inp = Inputs(tmp_path)
    cases = [
        ("rose", ["train", "rose.score=bogus"], r"^rose train: key 'rose.score'.*'bogus' is not one of \['semantic', "),
        ("dome", ["train", "--out", str(inp.out), f"data.source={inp.jsonl}"],
         rf"^dome train: {re.escape(str(inp.jsonl))}: line 1: not valid JSON"),
        ("sage", ["train", "--config", str(inp.yaml)], rf"^sage train: malformed YAML in {re.escape(str(inp.yaml))}"
                                                       r" line 3, column 5: while parsing a flow sequence: expected"),
        ("matchtir", ["train", f"model.path={inp.hub_id}"],
         r"^matchtir train: model.path: 'no-such-org/no-such-model-xyz' is not a local folder, and the hub is off"),
        ("cocoa", ["train", "--out", str(inp.unwritable)], rf"^cocoa train: --out {re.escape(str(inp.unwritable))}: "
                                                           r"cannot create it, .* is a file"),
        ("arr", ["train", "train.schedule=sometimes"],
         r"^arr train: key 'train.schedule'.*'sometimes' is not one of \['simultaneous', 'alternate'\]"),
    ]
    for script, argv, pattern in cases:
        assert _entry(script)(argv) == 2
        err = capsys.readouterr().err.strip()
        assert re.search(pattern, err), (script, err)


def test_packaged_configs_resolve(capsys):
    """Every YAML config shipped with a package loads under the command its first line names (--print-config:
    config only, no checks, no work): the Literal-typed keys accept every packaged value."""
    configs = sorted(ROOT.glob("packages/*/configs/*.yaml")) + sorted(ROOT.glob("shared/configs/*.yaml"))
    configs += sorted(ROOT.glob("packages/*/src/*/presets/*.yaml")) + sorted(ROOT.glob("packages/*/src/*/configs/*.yaml"))
    assert len(configs) >= 20
    for path in configs:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        words = re.sub(r"\[.*?\]|\(.*?\)", "", first.lstrip("# ")).split()
        words = words[2:] if words[:2] == ["uv", "run"] else words
        if words[:2] == ["accelerate", "launch"]:  # accelerate launch [its flags] -m <package>.cli <verb> ...
            module = words[words.index("-m") + 1]
            script = next(name for name, target in console_scripts().items() if target.startswith(module + ":"))
            argv = words[words.index("-m") + 2:]
        else:
            script, argv = words[0], words[1:]
        if script in PENDING:
            continue
        if "--config" not in argv:
            argv += ["--config", str(path)]
        argv = [str(ROOT / a) if a.endswith(".yaml") else a for a in argv]
        code = _entry(script)([*argv, "--print-config"])
        out, err = capsys.readouterr()
        assert code == 0, f"{path}: {err}"
        assert out.strip(), path
