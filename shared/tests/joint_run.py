"""A joint two-policy RL run for the kill-and-resume test: a reasoner and a verifier (two tiny models, two RLTrainers)
play one lock-step rollout per step through `MultiRoleDriver`, each trainer updates on its own role's trajectories
with `step_on`, and `MultiPolicyCheckpoint` saves both (and the prompt stream) under one step folder every 2 steps.

Run as a script by `test_rl_multi_checkpoint.py`, which kills it with SIGKILL mid-run:
    python shared/tests/joint_run.py --model DIR --out DIR --steps 5 [--resume]
Each step appends "start <k>" to <out>/progress.txt before it begins.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

ROLES = ("reasoner", "verifier")


def _program(ep):
    from shared.rollout.driver import GenRequest

    ep.start("reasoner", ep.record["prompt"])
    first = yield GenRequest("reasoner", 4)
    ep.start("verifier", "V:", first)
    reply = yield GenRequest("verifier", 3)
    ep.observe("reasoner", "|", reply, "|")
    yield GenRequest("reasoner", 3)


def _digit_share(text: str) -> float:
    return sum(c.isdigit() for c in text) / max(1, len(text)) + 0.01 * len(text)


def run(model_dir: str | Path, out: str | Path, steps: int, resume: bool = False) -> dict[str, Any]:
    """Train to `steps` (resuming from the latest joint checkpoint when asked); return each trainer's final
    weights, optimizer state and history."""
    from shared.rl.checkpoint import MultiPolicyCheckpoint
    from shared.rl.data import PromptStream
    from shared.rl.trainer import RLConfig, RLTrainer
    from shared.rollout.driver import MultiRoleDriver
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out)
    trainers = {}
    for name in ROLES:
        cfg = RLConfig(output_dir=str(out / name), seed=3, steps=steps, lr=1e-2, max_new_tokens=4, mini_batches=2,
                       checkpoint_every=0, progress=False, tensorboard=False, threads=1)
        model = AutoModelForCausalLM.from_pretrained(model_dir)
        trainers[name] = RLTrainer(cfg, model, AutoTokenizer.from_pretrained(model_dir), [], lambda t, r: [])
    records = [{"id": f"q{i}", "prompt": f"Q: {i}+{i}=?\nA: "} for i in range(6)]
    stream = PromptStream(len(records), seed=3)
    joint = MultiPolicyCheckpoint(out, trainers, every=2)
    if resume and joint.resume():
        stream.load_state_dict(joint.extra["stream"])
    driver = MultiRoleDriver({name: tr.generator for name, tr in trainers.items()})
    progress = out / "progress.txt"
    while trainers["reasoner"].step < steps:
        step = trainers["reasoner"].step + 1
        with progress.open("a") as f:
            f.write(f"start {step}\n")
        idx = stream.take(2)
        rollout = driver.run(_program, [records[i] for i in idx], n=2, group_ids=idx)
        for t in rollout["reasoner"]:
            t.reward = _digit_share(t.text)
        for v, r in zip(rollout["verifier"], rollout["reasoner"]):
            v.reward = float(len(v.text) > 2) + _digit_share(r.text)
        for name, tr in trainers.items():
            tr.step_on(rollout[name], {"rounds": float(rollout.rounds)}, save=False)
        joint.maybe_save({"stream": stream.state_dict()})
    for tr in trainers.values():
        tr.close()
    return {name: {"weights": {k: v.clone() for k, v in tr.policy.state_dict().items()},
                   "optimizer": tr.optimizer.state_dict(), "history": list(tr.history)}
            for name, tr in trainers.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    run(args.model, args.out, args.steps, args.resume)
