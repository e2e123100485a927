"""Grouping by `Trajectory.group_key` (two roles of one question are normalised apart; hand numbers), dynamic
sampling by group key and by the dense return, and `RLTrainer.step_on` on trajectories collected outside it."""

from __future__ import annotations

import json

import pytest
import torch
from shared.generation import SamplingParams
from shared.rl.trainer import RLConfig, RLTrainer
from shared.rollout.agent_loop import generate_trajectories
from shared.rollout.trajectory import Trajectory, group_index, informative_groups, rollout_stats
from transformers import AutoModelForCausalLM, AutoTokenizer


def _trainer(model_dir, out, records=None, reward_fn=None, **kw):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = dict(output_dir=str(out), steps=4, prompts_per_step=2, generations=2, max_new_tokens=4, lr=1e-2,
                checkpoint_every=0, progress=False, tensorboard=False, threads=1)
    records = [{"id": f"r{i}", "prompt": f"Q{i}: "} for i in range(6)] if records is None else records
    return RLTrainer(RLConfig(**{**base, **kw}), model, tok, records, reward_fn or (lambda t, r: [0.0] * len(t)))


def _t(gid, key, reward, token_rewards=None):
    t = Trajectory(prompt_ids=[5], response_ids=[7, 8], loss_mask=[1, 1], reward=reward, group_id=gid,
                   group_key=key)
    t.token_rewards = token_rewards
    return t


def test_group_key_normalises_roles_apart_hand_numbers(tiny_qwen2_dir, tmp_path):
    roles = [_t(0, (0, "a"), 1.0), _t(0, (0, "a"), 0.0), _t(0, (0, "b"), 5.0), _t(0, (0, "b"), 3.0)]
    assert group_index(roles).tolist() == [0, 0, 1, 1]
    tr = _trainer(tiny_qwen2_dir, tmp_path / "g")
    adv = torch.stack([a[0] for a in tr.advantages(roles)])
    # per role: a = (1, 0): mean .5, unbiased sd .707107 -> +-.707106; b = (5, 3): mean 4, sd 1.414214 -> +-.707107
    torch.testing.assert_close(adv, torch.tensor([0.707106, -0.707106, 0.707107, -0.707107]), atol=1e-5, rtol=0)
    # the same four grouped by record only: mean 2.25, sd sqrt(14.75 / 3) = 2.217356
    mixed = [_t(0, None, r.reward) for r in roles]
    adv = torch.stack([a[0] for a in tr.advantages(mixed)])
    torch.testing.assert_close(adv, torch.tensor([-0.563735, -1.014723, 1.240216, 0.338241]), atol=1e-5, rtol=0)
    tr.cfg.advantage = "rloo"  # leave-one-out within a role: 1 - 0, 0 - 1, 5 - 3, 3 - 5
    adv = torch.stack([a[0] for a in tr.advantages(roles)])
    torch.testing.assert_close(adv, torch.tensor([1.0, -1.0, 2.0, -2.0]))


def test_informative_groups_by_reward_and_by_dense_return():
    same_final = [_t(0, (0, "v"), 1.0, [0.0, 0.2]), _t(0, (0, "v"), 1.0, [0.0, 0.0])]
    varied = [_t(0, (0, "r"), 1.0), _t(0, (0, "r"), 0.0)]
    flat = [_t(1, [1, "r"], 0.5), _t(1, (1, "r"), 0.5)]  # a list key (read back from JSON) equals its tuple
    trajs = same_final + varied + flat
    assert [g[0].group for g in informative_groups(trajs, "reward")] == [(0, "r")]
    # the verifier's turn/token rewards differ although its final rewards are equal: a signal for GRPO on returns
    assert [g[0].group for g in informative_groups(trajs, "return")] == [(0, "v"), (0, "r")]
    stats = rollout_stats(trajs, "reward")
    assert stats["groups_informative"] == pytest.approx(1 / 3) and stats["reward"] == pytest.approx(4 / 6)
    with pytest.raises(ValueError, match="unknown dynamic sampling signal"):
        informative_groups(trajs, "tokens")


def test_dynamic_sampling_keeps_groups_by_key(tiny_qwen2_dir, tmp_path):
    def two_roles(records, n, group_ids):
        out = []
        for gid in group_ids:
            for role in ("a", "b"):
                for k in range(n):
                    t = Trajectory(prompt_ids=[5, 6], group_id=gid, group_key=(gid, role))
                    t.append([7, 8, 9], policy=True, logprobs=[-1.0] * 3)
                    t.metadata = {"role": role, "sample": k}
                    out.append(t)
        return out

    def reward(trajs, recs):  # role a always 1 (no signal), role b 0 / 1 by sample
        return [1.0 if t.metadata["role"] == "a" else float(t.metadata["sample"]) for t in trajs]

    tr = _trainer(tiny_qwen2_dir, tmp_path / "ds", reward_fn=reward, dynamic_sampling=True)
    tr.rollout_fn = two_roles
    kept, stats = tr.collect()
    assert {t.group for t in kept} == {(0, "b"), (1, "b")} and stats["groups_kept"] == 2
    assert stats["groups_informative"] == 0.5 and stats["rollout_rounds"] == 1
    with pytest.raises(ValueError, match="dynamic_sampling_signal must be one of"):
        _trainer(tiny_qwen2_dir, tmp_path / "bad", dynamic_sampling_signal="tokens")


def test_step_on_external_trajectories(tiny_qwen2_dir, tmp_path):
    tr = _trainer(tiny_qwen2_dir, tmp_path / "ext", records=[], checkpoint_every=2)
    with pytest.raises(ValueError, match="built without prompt records; update it with step_on"):
        tr.collect()
    before = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    params = SamplingParams(max_new_tokens=5, temperature=1.0, n=3, seed=0, logprobs=True)
    for step in (1, 2, 3):
        trajs = generate_trajectories(tr.generator, [{"prompt": "Q: "}, {"prompt": "A: "}], 3, params, [0, 1])
        for t in trajs:
            t.reward = float(sum(c.isdigit() for c in t.text)) + 0.1 * len(t.text)
        stats = tr.step_on(trajs, {"joint_turns": 2.0})
        assert tr.step == step and stats["joint_turns"] == 2.0
        assert stats["reward"] == pytest.approx(sum(t.reward for t in trajs) / 6)
    tr.close()
    assert any(not torch.equal(before[k], v) for k, v in tr.policy.state_dict().items())
    assert [h["step"] for h in tr.history] == [1, 2, 3]
    lines = [json.loads(x) for x in (tmp_path / "ext" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3] and all("loss" in x and "groups_informative" in x for x in lines)
    names = sorted(p.name for p in (tmp_path / "ext" / "checkpoints").iterdir())
    assert names == ["latest", "step_000002"]  # the checkpoint cadence of train()
    tr.step_on(trajs, save=False)
    assert tr.step == 4 and not (tmp_path / "ext" / "checkpoints" / "step_000004").exists()
    with pytest.raises(TypeError, match="step_on: item 0 is a dict"):
        tr.step_on([{"reward": 1.0}])
