"""RL resume across real process deaths: a trainer process is SIGKILLed and a fresh process resumes it.

The child script (below) trains the tiny Qwen2 for 4 steps with a checkpoint every 2; with a pause point it
stops inside the reward function of a given step, says so through a file, and waits to be killed. Killed after
its step-2 checkpoint (default suite), or before its first checkpoint (slow: two more processes), the resumed
run must end with exactly the parameters of an uninterrupted run and a metrics file of steps 1-4 with no
duplicate. The metrics file's own kill cases (no checkpoint yet, half-written last line, bad middle line) are
tested on MetricsLogger directly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from shared.rl.data import MetricsLogger

# Trainer set-up shared by the child processes and the in-process uninterrupted run.
SETUP = r"""
import os, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer
from shared.rl.trainer import RLConfig, RLTrainer


def make_trainer(model_dir, out, pause_at):
    records = [{"id": f"r{i}", "prompt": f"Q: {i}+1=?\nA: ", "answer": str(i + 1)} for i in range(10)]
    calls = {"n": 0}

    def reward(trajs, recs):
        calls["n"] += 1
        if calls["n"] == pause_at:  # inside step `pause_at`: announce, then wait for the SIGKILL
            (Path(out) / "paused").write_text(str(calls["n"]))
            time.sleep(600)
        return [sum(c.isdigit() for c in t.text) / max(1, len(t.text)) for t in trajs]

    cfg = RLConfig(output_dir=str(out), steps=4, prompts_per_step=2, generations=3, max_new_tokens=6, lr=1e-2,
                   checkpoint_every=2, progress=False, threads=1, tensorboard=False)
    return RLTrainer(cfg, AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir),
                     records, reward)
"""
CHILD = SETUP + r"""
model_dir, out, pause_at, resume = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
trainer = make_trainer(model_dir, out, pause_at)
trainer.train(resume=resume)
torch.save({k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}, out / "final.pt")
"""


def _start(model_dir: Path, out: Path, pause_at: int = 0, resume: bool = False) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(model_dir), str(out), str(pause_at), str(int(resume))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen) -> None:
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]


def _kill_when_paused(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.monotonic() + 600
    while not (out / "paused").exists():
        if proc.poll() is not None:
            raise AssertionError(f"the trainer ended before its pause point: {proc.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "the trainer never reached its pause point"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    (out / "paused").unlink()


def _steps(out: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def uninterrupted(tiny_qwen2_dir, tmp_path_factory) -> dict[str, torch.Tensor]:
    """Final parameters of the same 4 steps run without a kill (in this process: same code, one thread)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    namespace: dict = {}
    exec(SETUP, namespace)
    trainer = namespace["make_trainer"](str(tiny_qwen2_dir), out, 0)
    trainer.train()
    assert _steps(out) == [1, 2, 3, 4]
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def _kill_resume_and_compare(model_dir: Path, out: Path, pause_at: int, checkpoints_at_kill: list[str],
                             metric_steps_at_kill: list[int], uninterrupted: dict[str, torch.Tensor]) -> None:
    _kill_when_paused(_start(model_dir, out, pause_at=pause_at), out)
    found = sorted(p.name for p in (out / "checkpoints").glob("step_*")) if (out / "checkpoints").exists() else []
    assert found == checkpoints_at_kill and _steps(out) == metric_steps_at_kill
    _finish(_start(model_dir, out, resume=True))
    assert _steps(out) == [1, 2, 3, 4]  # no line of the killed run is left twice
    final = torch.load(out / "final.pt")
    for name, value in uninterrupted.items():
        assert torch.equal(value, final[name]), name


def test_sigkilled_after_a_checkpoint_resumes_in_a_fresh_process(tiny_qwen2_dir, tmp_path, uninterrupted):
    # killed inside step 4: the step-2 checkpoint and metrics of steps 1-3 exist; step 3 is redone
    _kill_resume_and_compare(tiny_qwen2_dir, tmp_path / "run", 4, ["step_000002"], [1, 2, 3], uninterrupted)


@pytest.mark.slow
def test_sigkilled_before_the_first_checkpoint_restarts_without_duplicates(tiny_qwen2_dir, tmp_path, uninterrupted):
    # killed inside step 2: no checkpoint, one metrics line; the fresh process starts over at step 1
    _kill_resume_and_compare(tiny_qwen2_dir, tmp_path / "run", 2, [], [1], uninterrupted)


# ---------------------------------------------------------------------------------------------------------
# The metrics file on its own
# ---------------------------------------------------------------------------------------------------------


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_first_log_of_a_process_drops_lines_of_a_run_killed_before_its_checkpoint(tmp_path):
    first = MetricsLogger(tmp_path, tensorboard=False)
    first.log(1, {"reward": 0.5})
    first.log(2, {"reward": 0.6})  # killed here, no checkpoint: a fresh process starts at step 1 again
    second = MetricsLogger(tmp_path, tensorboard=False)
    second.log(1, {"reward": 0.5})
    second.log(2, {"reward": 0.7})
    assert [(r["step"], r["reward"]) for r in _lines(tmp_path / "metrics.jsonl")] == [(1, 0.5), (2, 0.7)]


def test_half_written_last_line_is_dropped(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "reward": 0.5}\n{"step": 2, "reward": 0.6}\n{"step": 3, "rew')
    logger = MetricsLogger(tmp_path, tensorboard=False)
    with pytest.warns(UserWarning, match=r"metrics.jsonl:3: dropping a half-written last line"):
        logger.truncate_after(2)  # resume from the step-2 checkpoint
    logger.log(3, {"reward": 0.9})
    assert [(r["step"], r["reward"]) for r in _lines(path)] == [(1, 0.5), (2, 0.6), (3, 0.9)]


def test_half_written_last_line_without_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "reward": 0.5}\n{"ste')
    logger = MetricsLogger(tmp_path, tensorboard=False)
    with pytest.warns(UserWarning, match="half-written"):
        logger.log(2, {"reward": 0.7})
    assert [r["step"] for r in _lines(path)] == [1, 2]


def test_bad_middle_line_is_named(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n{oops\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: bad metrics line"):
        MetricsLogger(tmp_path, tensorboard=False).truncate_after(3)
    path.write_text('{"step": 1}\n{"reward": 2}\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"metrics\.jsonl:2: bad metrics line \(expected an object with an integer"):
        MetricsLogger(tmp_path, tensorboard=False).read()
