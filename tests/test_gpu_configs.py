"""Every paper-scale GPU config (`packages/*/configs/gpu_*.yaml`) passes its package CLI's `--dry-run` on a CPU.

The command a config opens with names the package's console script (`uv run <script> <verb> ...` or
`... -m <module>.cli <verb> ...`) and the verb; the test runs that script's `main` in-process with
`<verb> --config FILE --dry-run`: the config is loaded and validated, every model it trains or serves is built on the
meta device (no weights, no download) and sized, and each must fit an 80 GiB card by the estimate. New packages'
GPU configs are picked up by the glob.
"""

from __future__ import annotations

import shlex
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from shared.dryrun import header_command

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted(ROOT.glob("packages/*/configs/gpu_*.yaml"))
BUILT = ("dome", "cocoa", "sage", "agentic-r", "matchtir", "rose", "arr")


def _script_and_verb(config: Path) -> tuple[str, str]:
    words = shlex.split(header_command(config))
    scripts = {ep.name: ep.value.split(":")[0] for ep in entry_points(group="console_scripts")}
    if "-m" in words:
        module = words[words.index("-m") + 1]
        script = next((name for name, mod in scripts.items() if mod == module), None)
        verb = words[words.index("-m") + 2]
    else:
        i = words.index("run") + 1 if "run" in words else 0
        script, verb = words[i], words[i + 1]
    assert script in scripts, f"{config}: its command names no console script ({words[:6]})"
    return script, verb


def test_every_built_package_has_a_gpu_config():
    have = {p.parts[-3] for p in CONFIGS}
    assert set(BUILT) <= have, f"missing: {sorted(set(BUILT) - have)}"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parts[-3]}/{p.name}")
def test_gpu_config_passes_its_dry_run(config, capsys):
    script, verb = _script_and_verb(config)
    command = header_command(config)
    assert str(config.relative_to(ROOT)) in command, f"{config}: its first line runs another file: {command}"
    main = next(ep for ep in entry_points(group="console_scripts") if ep.name == script).load()
    code = main([verb, "--config", str(config), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "the config is valid" in out and " total, " in out
    assert "does NOT fit" not in out, out


def _run(package: str, config: str, *extra: str) -> tuple[int, str]:
    import contextlib
    import io

    path = ROOT / "packages" / package / "configs" / config
    script, verb = _script_and_verb(path)
    main = next(ep for ep in entry_points(group="console_scripts") if ep.name == script).load()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([verb, "--config", str(path), "--dry-run", *extra])
    return code, err.getvalue()


@pytest.mark.parametrize(("package", "config", "override", "message"), [
    ("rose", "gpu_qwen25_math_7b.yaml", "rl.max_new_tokens=4096", "attends to 4096 tokens, but the config asks for 4608"),
    ("rose", "gpu_qwen25_math_7b.yaml", "rl.mini_batches=64", "micro-batches per step"),
    ("rose", "gpu_qwen25_math_7b.yaml", "rl.temperature=0", "identical"),
    ("matchtir", "gpu_qwen25_7b.yaml", "rl.generator_backend=vllm", "vLLM is not wired into matchtir"),
    ("sage", "gpu_qwen25_math_1_5b.yaml", "model.path=", "model.path is empty"),
    ("dome", "gpu_t5_base.yaml", "train.no_such_key=1", "no_such_key"),
])
def test_dry_run_refuses_what_cannot_run(package, config, override, message):
    code, err = _run(package, config, override)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
