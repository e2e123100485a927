"""Two trainers of one joint rollout, killed by SIGKILL mid-run and resumed from their common checkpoint, end with
exactly the weights, optimizer states and histories of an uninterrupted run; bad joint checkpoints are named."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from shared.rl.checkpoint import CheckpointError, MultiPolicyCheckpoint

SCRIPT = Path(__file__).with_name("joint_run.py")


def _joint_run():
    spec = importlib.util.spec_from_file_location("joint_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _equal_optimizer(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for k in a["state"]:
        for name, value in a["state"][k].items():
            other = b["state"][k][name]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other, (k, name)


def test_two_trainers_killed_and_resumed_bit_identical(tiny_qwen2_dir, tmp_path):
    joint_run = _joint_run()
    full = joint_run.run(tiny_qwen2_dir, tmp_path / "full", steps=5)

    out = tmp_path / "killed"
    out.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--model", str(tiny_qwen2_dir), "--out", str(out),
                             "--steps", "5"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = out / "progress.txt"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if progress.exists() and "start 3" in progress.read_text():
            break  # step 2's joint checkpoint is written; step 3 is under way
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]  # a real kill, not a finished run
    latest = (out / "checkpoints" / "latest").read_text().strip()
    assert latest in ("step_000002", "step_000004")
    step_dir = out / "checkpoints" / latest
    assert sorted(p.name for p in step_dir.iterdir()) == ["joint.pt", "reasoner", "verifier"]

    resumed = joint_run.run(tiny_qwen2_dir, out, steps=5, resume=True)
    for name in joint_run.ROLES:
        a, b = full[name], resumed[name]
        assert a["weights"].keys() == b["weights"].keys()
        for k in a["weights"]:
            assert torch.equal(a["weights"][k], b["weights"][k]), (name, k)
        _equal_optimizer(a["optimizer"], b["optimizer"])
        assert [h["reward"] for h in a["history"]] == [h["reward"] for h in b["history"]]
        assert [h["step"] for h in b["history"]] == [1, 2, 3, 4, 5]
        metrics = (out / name / "metrics.jsonl").read_text().splitlines()
        assert len(metrics) == 5  # the killed run's lines after the checkpoint were dropped on resume
    from transformers import AutoModelForCausalLM

    init = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir).state_dict()  # the RL steps did move the weights
    for name in joint_run.ROLES:
        assert any(not torch.equal(init[k], v) for k, v in full[name]["weights"].items()), name


class _Stub:
    def __init__(self, step):
        self.step, self.accelerator = step, None

    def write_to(self, folder):
        Path(folder).mkdir(parents=True)
        (Path(folder) / "trainer_state.pt").write_text(str(self.step))

    def load_from(self, folder):
        self.step = int((Path(folder) / "trainer_state.pt").read_text())


def test_joint_checkpoint_errors_are_named(tmp_path):
    ckpt = MultiPolicyCheckpoint(tmp_path, {"a": _Stub(1), "b": _Stub(2)})
    with pytest.raises(ValueError, match="trainers are at different steps"):
        ckpt.save()
    ok = MultiPolicyCheckpoint(tmp_path, {"a": _Stub(2), "b": _Stub(2)}, every=2, keep=1)
    assert not ok.resume()  # nothing saved yet
    assert ok.maybe_save({"pos": 7}).name == "step_000002"
    other = MultiPolicyCheckpoint(tmp_path, {"a": _Stub(0), "c": _Stub(0)})
    with pytest.raises(CheckpointError, match=r"holds trainers \['a', 'b'\], this run has \['a', 'c'\]"):
        other.resume()
    back = MultiPolicyCheckpoint(tmp_path, {"a": _Stub(0), "b": _Stub(0)})
    assert back.resume() and back.extra == {"pos": 7} and back.trainers["b"].step == 2
    with pytest.raises(ValueError, match="not a plain folder name"):
        MultiPolicyCheckpoint(tmp_path, {"../x": _Stub(0)})
