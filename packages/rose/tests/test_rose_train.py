"""The shared trainer with rose's hooks: a toy reward is learned, zero-variance groups are dropped."""

import random

import torch
from rose.config import RoseConfig
from rose.train import build_trainer, rollout_summary

PROMPTS = [{"id": f"p{i}", "prompt": f"Q: {10 + i}+{i % 9 + 1}=?\nA: ", "answer": str(11 + i + i % 9)}
           for i in range(8)]
DIGITS = set("0123456789")


def small_cfg(**rl):
    cfg = RoseConfig()
    cfg.rl.steps = rl.pop("steps", 3)
    cfg.rl.prompts_per_step = 4
    cfg.rl.generations = 4
    cfg.rl.max_new_tokens = 6
    cfg.rl.checkpoint_every = 0
    cfg.rl.tensorboard = False
    cfg.rl.progress = False
    cfg.rl.threads = 1
    for k, v in rl.items():
        setattr(cfg.rl, k, v)
    cfg.rose.epsilon = 0.3
    return cfg


def has_digit(trajs, records):
    return [1.0 if DIGITS & set(t.text) else 0.0 for t in trajs]


@torch.no_grad()
def digit_mass(model, tok):
    """Mean probability of a digit as the first response token, over the prompts."""
    digit_ids = [tok.convert_tokens_to_ids(d) for d in "0123456789"]
    total = 0.0
    for rec in PROMPTS:
        ids = tok(rec["prompt"], add_special_tokens=False, return_tensors="pt")["input_ids"]
        total += float(model(input_ids=ids).logits[0, -1].softmax(-1)[digit_ids].sum())
    return total / len(PROMPTS)


def test_tree_rollouts_with_segment_advantages_learn_a_toy_reward(rose_tiny, tmp_path):
    model, tok = rose_tiny
    torch.manual_seed(0)
    random.seed(0)
    before = digit_mass(model, tok)
    cfg = small_cfg(steps=10, lr=5e-3, dynamic_sampling=False, max_new_tokens=5)
    trainer = build_trainer(cfg, model, tok, PROMPTS, tmp_path, reward=has_digit)
    history = trainer.train()
    after = digit_mass(trainer.policy, tok)
    assert after > 2 * before and after > before + 0.1, (before, after)
    summary = rollout_summary(history)
    assert summary["generated_tokens"] < summary["response_tokens"]  # prefixes were reused
    assert 0 < summary["branched_share"] < 1
    assert history[0]["rose/groups"] == 4 and history[0]["rose/rollouts"] == 16


def test_dynamic_sampling_drops_zero_variance_groups(rose_tiny, tmp_path):
    model, tok = rose_tiny
    torch.manual_seed(1)
    random.seed(1)

    def reward(trajs, records):
        # even prompts: every rollout scores 1 (no signal); odd prompts: alternate by rollout id (signal)
        out = []
        for t, r in zip(trajs, records):
            k = int(r["id"][1:])
            out.append(1.0 if k % 2 == 0 else float(t.metadata["rose_node"] % 2))
        return out

    seen = []
    cfg = small_cfg(steps=2, dynamic_sampling=True, max_refill_rounds=1)
    trainer = build_trainer(cfg, model, tok, PROMPTS, tmp_path, reward=reward)
    inner = trainer.advantage_fn

    def recording(trajs, token_rewards, mask, group_ids):
        for g in group_ids.unique():
            seen.append(sorted(set(token_rewards[group_ids == g].sum(-1).tolist())))
        return inner(trajs, token_rewards, mask, group_ids)

    trainer.advantage_fn = recording
    history = trainer.train()
    assert seen and all(v == [0.0, 1.0] for v in seen)
    assert sum(h["groups_kept"] for h in history) == len(seen)
    assert history[0]["rose/groups"] > history[0]["groups_kept"]  # refills sampled extra groups
