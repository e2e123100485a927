"""Training pieces on a tiny random policy over the hand-built KB: one GRPO step and one PPO step change the policy's
weights (gradient norm > 0; the regression guard of matchtir's clone bug), the reward function reads the answer from
the policy's own turns, and the equal-budget SFT baseline trains on the teacher's turns."""

import dataclasses

import pytest
import torch
from dr9k.config import Dr9kConfig, LevelSettings
from dr9k.levels import build_levels
from dr9k.search import make_env_factory
from dr9k.teacher import run_teacher, stub_teacher
from dr9k.train import build_policy, continue_sft, make_reward_fn, rl_records, rl_train, tokenizer_texts
from shared.config import load_config
from shared.retrieval import Retriever
from shared.rollout.trajectory import Trajectory
from shared.serving import ChatClient, ChatServer
from shared.stages import DropStats

TINY = ["model.hidden=32", "model.ffn=64", "model.heads=2", "model.vocab_size=400", "model.max_positions=512",
        "rollout.max_turns=2", "rollout.max_new_tokens_per_turn=8", "rollout.max_response_tokens=200",
        "rl.steps=1", "rl.prompts_per_step=2", "rl.generations=3", "rl.checkpoint_every=0", "rl.lr=0.01",
        "rl.progress=false"]


@pytest.fixture
def setup(kb, seed_of, tmp_path):
    seeds = [seed_of(kb, "Ce Lo", ("born_in", "located_in")), seed_of(kb, "Bo Ka", ("works_for", "founded_in"))]
    rows = build_levels(seeds, ["L1", "L2"], LevelSettings(), kb, DropStats())
    env_factory = make_env_factory(Retriever("bm25", kb.corpus()), topk=2)
    with ChatServer(stub_teacher(rows)) as server:
        episodes = run_teacher(ChatClient(server.url, "t"), rows, env_factory, "short", 6, 1, {})
    for r, ep in zip(rows, episodes):
        r.update(trajectory=ep["turns"], teacher_correct=True)
    cfg = load_config(Dr9kConfig, None, TINY)
    model, tok = build_policy(cfg, tokenizer_texts(kb.corpus(), rows), tmp_path / "init")
    return cfg, model, tok, rows, env_factory


@pytest.mark.parametrize("algorithm", ["grpo", "ppo"])
def test_one_rl_step_changes_the_weights(setup, tmp_path, algorithm, monkeypatch):
    cfg, model, tok, rows, env_factory = setup
    # a random policy writes no answer (every outcome reward 0: no advantage), so this guard scores rollouts by
    # their length, which varies within a group; the real reward is tested above and in test_dr9k_rewards
    monkeypatch.setattr("dr9k.rewards.reward", lambda response, *a, **k: float(len(response.generated) % 7))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy, history = rl_train(cfg, model, tok, rows, env_factory, tmp_path / algorithm, algorithm, seed=0)
    assert len(history) == 1 and history[0]["grad_norm"] > 0
    changed = [k for k, v in policy.state_dict().items() if k in before and not torch.equal(v, before[k])]
    assert changed, "one RL step left every weight as it was"


def test_reward_reads_the_policy_turns_only(setup):
    cfg, model, tok, rows, _ = setup
    rec = rl_records(rows[:1], "short")[0]
    gold = rec["golden_answers"][0]

    def traj(policy_text, observation):
        t = Trajectory(prompt_ids=tok(rec["prompt"], add_special_tokens=False)["input_ids"])
        t.append(tok(policy_text, add_special_tokens=False)["input_ids"], policy=True)
        t.append(tok(observation, add_special_tokens=False)["input_ids"], policy=False)
        t.text = policy_text + observation
        return t

    reward_fn = make_reward_fn(cfg, tok)
    seen = f"\n\n<information>Doc 1(Title: x) {gold} is here.</information>\n\n"
    got = reward_fn([traj("<think>a</think><search>q</search>", seen + "<answer>" + gold + "</answer>"),
                     traj("<think>a</think><answer>" + gold + "</answer>", ""),
                     traj("<think>a</think><answer>nowhere</answer>", seen)], [rec] * 3)
    assert got == pytest.approx([0.0, 1.2, 0.3])  # an answer inside an observation is not the policy's


def test_sft_baseline_trains_on_teacher_turns(setup, tmp_path):
    cfg, model, tok, rows, _ = setup
    sft = dataclasses.replace(cfg.sft, steps=2, batch_size=2, logging_steps=1)
    before = next(model.parameters()).detach().clone()
    model, logs = continue_sft(dataclasses.replace(cfg, sft=sft), model, tok, rows, tmp_path / "sft", seed=0)
    assert any("loss" in x for x in logs) and not torch.equal(next(model.parameters()).detach(), before)
