"""RL on the shared engine: one PPO step on mask's per-call samples changes the policy's weights; the step's
questions follow a seeded order; a killed run resumes from its checkpoint with its curve."""

import pytest
import torch
from mask.episode import run_episodes
from mask.oracle import oracle_episode
from mask.train import make_trainer, rl_train, step_questions


@pytest.fixture()
def tiny(char_tok, tmp_path):
    from shared.modeling import load_model
    from shared.modeling.tiny import tiny_causal_lm

    path = tiny_causal_lm(tmp_path / "tiny", tokenizer=char_tok, hidden=32, layers=1, heads=2, ffn=64)
    return load_model(str(path), kind="causal", dtype="float32", device="cpu")


def test_step_questions_seeded_epochs():
    recs = list(range(10))
    steps = [step_questions(recs, s, 4, seed=3) for s in range(5)]
    assert sorted(steps[0] + steps[1] + steps[2][:2]) == recs  # one epoch covers every question once
    assert steps == [step_questions(recs, s, 4, seed=3) for s in range(5)]
    assert steps != [step_questions(recs, s, 4, seed=4) for s in range(5)]


def test_one_ppo_step_changes_the_weights(cfg, tiny, scripted, small_kb, tmp_path):
    model, tok = tiny
    for role in ("plan", "search", "summary", "answer"):
        setattr(cfg.loop, f"{role}_tokens", 300)
    good, bad = small_kb["questions"][0], small_kb["questions"][1]
    replies = {r["prompt"]: r["completion"] for r in oracle_episode(good, small_kb["retrieve"], cfg)[0]}
    gen = scripted(tok, lambda prompt: replies.get(prompt, "no idea"))
    trajs, logs = run_episodes(gen, [good, bad], cfg, small_kb["retrieve"], n=2, temperature=1.0, seed=0)
    assert {t.reward for t in trajs} >= {1.0, -1.0}  # the oracle's last calls score 1, the junk plan -1
    trainer = make_trainer(cfg, model, tok, tmp_path / "rl")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    head = trainer.value_head.weight.detach().clone()
    stats = trainer.step_on(trajs, {"train_f1": 0.5}, save=False)
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert moved and stats["grad_norm"] > 0 and trainer.step == 1
    assert not torch.equal(trainer.value_head.weight, head)  # the critic learned too
    assert trainer.history[-1]["train_f1"] == 0.5


def test_rl_train_resumes(cfg, tiny, small_kb, tmp_path):
    model, tok = tiny
    cfg.train.questions_per_step, cfg.train.episodes_per_question = 2, 2
    cfg.rl.steps, cfg.rl.checkpoint_every, cfg.rl.progress = 2, 1, False
    recs = small_kb["questions"]
    out = tmp_path / "rl"
    _, history = rl_train(cfg, "mask", model, tok, recs, small_kb["retriever"], small_kb["retrieve"], out,
                          progress=False)
    assert [h["step"] for h in history] == [1, 2] and all("train_f1" in h for h in history)
    cfg.rl.steps = 3  # a longer run in the same folder continues from step 2's checkpoint
    _, again = rl_train(cfg, "mask", model, tok, recs, small_kb["retriever"], small_kb["retrieve"], out,
                        progress=False)
    assert [h["step"] for h in again] == [1, 2, 3] and again[:2] == history
