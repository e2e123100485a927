"""The rollout-vs-trainer log-prob gap: every RL step logs mean and max |log p_rollout - log p_trainer| over policy
tokens to metrics.jsonl and TensorBoard, and warns above `rl.logprob_gap_warn`.

On CPU with the generator sampling from the trained module itself the gap is ~0 (KV-cached decoding vs one full
forward: float rounding only). A generator over a perturbed copy of the weights (what a broken weight sync, a dtype
mismatch or a stale engine looks like) shows a large gap and a warning; after the step the trainer pushes its
weights into that generator and the next step's gap is ~0 again.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from shared.generation import HFGenerator
from shared.modeling import clone_model
from shared.rl.health import logprob_gap
from shared.rl.trainer import RLConfig, RLTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer


def _records():
    return [{"id": f"r{i}", "prompt": f"Q: {i}+2=?\nA: "} for i in range(8)]


def _reward(trajs, recs):
    return [sum(c.isdigit() for c in t.text) / max(1, len(t.text)) for t in trajs]


def _trainer(model_dir, out, generator=None, **kw):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    cfg = RLConfig(output_dir=str(out), steps=2, prompts_per_step=2, generations=3, max_new_tokens=8, lr=1e-2,
                   checkpoint_every=0, progress=False, threads=1, **kw)
    gen = generator(model, tok) if generator is not None else None
    return RLTrainer(cfg, model, tok, _records(), _reward, generator=gen)


def _perturbed(model, tok):
    """A generator over a copy of the policy whose weights are off by noise (a missed or broken weight sync)."""
    copy = clone_model(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in copy.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return HFGenerator(copy, tok)


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_gap_is_zero_when_rollouts_come_from_the_trained_weights(tiny_qwen2_dir, tmp_path):
    out = tmp_path / "same"
    trainer = _trainer(tiny_qwen2_dir, out)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no gap warning may fire
        trainer.train()
    rows = _metrics(out)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= r["logprob_gap_mean"] < 1e-5 and 0 <= r["logprob_gap_max"] < 1e-4


def test_gap_from_rescored_old_logprobs_with_several_mini_batches(tiny_qwen2_dir, tmp_path):
    out = tmp_path / "mb"
    trainer = _trainer(tiny_qwen2_dir, out, mini_batches=2, ppo_epochs=2)  # the gap is read off the rescoring pass
    trainer.train()
    for r in _metrics(out):
        assert r["logprob_gap_mean"] < 1e-5 and r["logprob_gap_max"] < 1e-4


def test_perturbed_generator_shows_a_gap_and_a_warning_until_the_weights_are_synced(tiny_qwen2_dir, tmp_path):
    out = tmp_path / "perturbed"
    trainer = _trainer(tiny_qwen2_dir, out, generator=_perturbed, logprob_gap_warn=0.05)
    assert trainer.generator.model is not trainer.policy
    with pytest.warns(RuntimeWarning, match=r"step 1: rollout-vs-trainer log-prob gap mean .* exceeds "
                                            r"rl.logprob_gap_warn=0.05"):
        first = trainer._end_step(trainer.train_step())
    assert first["logprob_gap_mean"] > 0.05 and first["logprob_gap_max"] >= first["logprob_gap_mean"]
    assert trainer.generator.model is trainer.policy  # update() pushed the trained weights into the generator
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        second = trainer._end_step(trainer.train_step())
    assert second["logprob_gap_mean"] < 1e-5
    trainer.close()
    rows = _metrics(out)
    assert rows[0]["logprob_gap_mean"] == pytest.approx(first["logprob_gap_mean"])
    assert rows[1]["logprob_gap_mean"] == pytest.approx(second["logprob_gap_mean"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"logprob_gap_mean", "logprob_gap_max"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("logprob_gap_mean")] == [1, 2]
    assert events.Scalars("logprob_gap_mean")[0].value == pytest.approx(first["logprob_gap_mean"], rel=1e-5)


def test_threshold_zero_turns_the_warning_off_but_keeps_the_metric(tiny_qwen2_dir, tmp_path):
    trainer = _trainer(tiny_qwen2_dir, tmp_path / "off", generator=_perturbed, logprob_gap_warn=0.0,
                       tensorboard=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        stats = trainer.train_step()
    assert stats["logprob_gap_mean"] > 0.05


def test_trajectories_without_sampling_logprobs_are_left_out():
    from shared.rollout.trajectory import Trajectory

    with_lp = Trajectory(prompt_ids=[1])
    with_lp.append([5, 6], policy=True, logprobs=[-1.0, -2.0])
    with_lp.append([7], policy=False)
    with_lp.append([8], policy=True, logprobs=[-0.5])
    zeros = Trajectory(prompt_ids=[1])  # what the rollout driver writes for a backend without logprobs
    zeros.append([5, 6], policy=True, logprobs=[0.0, 0.0])
    none = Trajectory(prompt_ids=[1])
    none.append([5], policy=True)
    trainer_lp = [torch.tensor([-1.5, -2.0, -9.0, -0.25]), torch.tensor([-3.0, -3.0]), torch.tensor([-1.0])]
    total, peak, count = logprob_gap(trainer_lp, [with_lp, zeros, none])
    # policy tokens of the first trajectory only: |-1 + 1.5| + |-2 + 2| + |-0.5 + 0.25| (the observation is skipped)
    assert (total, peak, count) == (pytest.approx(0.75), pytest.approx(0.5), 3.0)
