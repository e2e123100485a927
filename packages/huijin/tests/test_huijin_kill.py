"""A real SIGKILL in the middle of an RL stage: the rerun reuses every finished stage untouched, resumes the killed
stage from its last checkpoint and finishes the chain."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from shared.rl.checkpoint import latest_checkpoint

TINY = Path(__file__).with_name("tiny_recipe.yaml")
STEPS = 40


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "huijin.cli", "run", "--config", str(TINY), "--out", str(out),
            f"stages.reasoning_rl.rl.steps={STEPS}", "stages.reasoning_rl.rl.checkpoint_every=2"]


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TQDM_DISABLE": "1"}


def test_sigkill_mid_stage_resumes_and_skips_finished_stages(tmp_path):
    out = tmp_path / "run"
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen(_command(out), stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    try:
        deadline = time.time() + 900
        checkpoint = None
        while time.time() < deadline and proc.poll() is None:
            work = list((out / "stages" / ".work").glob("reasoning_rl-*/rl"))
            checkpoint = latest_checkpoint(work[0]) if work else None
            if checkpoint is not None:
                break
            time.sleep(0.2)
        assert checkpoint is not None, (tmp_path / "first.log").read_text()[-2000:]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    killed_at = int(checkpoint.name.split("_")[1])
    assert 0 < killed_at < STEPS
    stamps = {n: next((out / "stages" / n).glob("*/stage.json")) for n in ("init", "cpt", "sft", "sft.eval")}
    before = {n: (p.read_bytes(), p.stat().st_mtime_ns) for n, p in stamps.items()}
    assert not list((out / "stages").glob("reasoning_rl/*/stage.json"))  # the killed stage left no folder

    done = subprocess.run(_command(out), capture_output=True, text=True, env=_env(), timeout=1800)
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("init", "init.eval", "cpt", "cpt.eval", "sft", "sft.eval"):
        assert f"stage {name}: reused" in done.stderr and f"stage {name}: building" not in done.stderr
    for name in ("reasoning_rl", "agentic_rl", "general_rl"):
        assert f"stage {name}: building" in done.stderr
    assert {n: (p.read_bytes(), p.stat().st_mtime_ns) for n, p in stamps.items()} == before
    train = json.loads(next((out / "stages" / "reasoning_rl").glob("*/train.json")).read_text())
    assert train["resumed_from_step"] >= killed_at and len(train["reward_curve"]) == STEPS
    assert not list((out / "stages" / ".work").glob("reasoning_rl-*"))  # scratch removed after success
