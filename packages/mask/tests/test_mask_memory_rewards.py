"""Golden tests of the memory updates, the answer score, the per-turn credit on a hand-made episode, the reward's
placement under GAE (gamma = lam = 1) and the stability metric."""

import pytest
import torch
from mask.memory import Memory
from mask.rewards import answer_score, call_rewards, final_answer, qa_scores

Q = "In which city is the company that Ada works for headquartered?"


# ---- memory ------------------------------------------------------------------------------------------------------
def test_reset_after_plan():
    m = Memory(Q)
    m.after_plan("Paris", [("Which company?", "unkown"), ("Where is it?", "unkown")])
    assert m.render() == f"t1: Q: {Q} | A: Paris"
    keep = Memory(Q)
    keep.after_plan("Paris", [("Which company?", "unkown"), ("Where is it?", "x")], mode="keep_plan")
    assert keep.keys() == ["t1", "t2"] and keep.slots["t2"].answer == "x"
    with pytest.raises(ValueError, match="after_plan"):
        Memory(Q).after_plan("x", mode="forget")


def test_update_and_add():
    m = Memory(Q)
    m.after_plan("unkown")
    m.apply("add", "t2", "Which company does Ada work for?", "Ada works for Acme Corp.")
    m.apply("update", "t1", "Where is Acme Corp headquartered?", "Acme Corp is headquartered in Lyon.")
    assert m.render() == ("t1: Q: Where is Acme Corp headquartered? | A: Acme Corp is headquartered in Lyon.\n"
                          "t2: Q: Which company does Ada work for? | A: Ada works for Acme Corp.")
    with pytest.raises(KeyError, match="t7"):
        m.apply("update", "t7", "q", "e")


def test_history_render():
    m = Memory(Q)
    assert m.render_history() == "(No previous searches)"
    m.history += [("q1", "s1"), ("q2", "s2")]
    assert m.render_history() == "1. Query: q1 | Summary: s1\n2. Query: q2 | Summary: s2"


# ---- answer score ------------------------------------------------------------------------------------------------
def test_answer_score_by_hand():
    assert answer_score("Paris France", ["Paris"]) == pytest.approx(2 * (0.5 * 1) / (0.5 + 1))  # 0.6667
    assert answer_score("yes it is", ["yes"]) == 0.0  # EM for yes/no golds
    assert answer_score("Yes.", ["yes"]) == 1.0
    assert answer_score("Lyon", ["Paris", "Lyon"]) == 1.0
    assert qa_scores("the city of Lyon", ["Lyon"]) == {"f1": pytest.approx(0.5), "em": 0.0, "acc": 1.0}


# ---- per-turn credit ---------------------------------------------------------------------------------------------
def _episode(summary2_legal=True, plan_answer="unkown"):
    c = [{"role": "plan", "iteration": 0, "legal": True, "answer": plan_answer}]
    for it, ans, legal2 in ((1, "Alpha Gamma", True), (2, "Alpha Beta", summary2_legal)):
        c += [{"role": "search", "iteration": it, "legal": True, "action": "search"},
              {"role": "summary", "iteration": it, "legal": legal2},
              {"role": "update", "iteration": it, "legal": True},
              {"role": "answer", "iteration": it, "legal": True, "answer": ans}]
    c.append({"role": "search", "iteration": 3, "legal": True, "action": "end"})
    return c


def test_per_turn_credit_hand_made_episode():
    # gold "Alpha Beta": F1_0 = 0 (unkown), F1_1 = 0.5 ("Alpha Gamma"), F1_2 = 1.0
    r = call_rewards(_episode(), ["Alpha Beta"])
    assert r == pytest.approx([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 0.0])
    illegal = call_rewards(_episode(summary2_legal=False), ["Alpha Beta"])
    assert illegal == pytest.approx([0.0, 0.5, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 1.0, 0.0])
    assert final_answer(_episode()) == "Alpha Beta"


def test_plan_reward_and_turn_penalty():
    calls = [{"role": "plan", "iteration": 0, "legal": False, "answer": "Paris France"},
             {"role": "search", "iteration": 1, "legal": True, "action": "end"}]
    assert call_rewards(calls, ["Paris"]) == pytest.approx([2 / 3 - 1, 0.0])
    # a worse answer at iteration 1 gives its iteration's calls the (negative) delta plus the turn penalty
    calls = _episode(plan_answer="Alpha Beta")[:5]
    assert call_rewards(calls, ["Alpha Beta"], turn_penalty=-0.1) == pytest.approx([1.0, -0.6, -0.6, -0.6, 0.5])
    assert final_answer(calls[:1]) == "Alpha Beta"


def test_per_turn_credit_needs_plan_first():
    with pytest.raises(ValueError, match="plan"):
        call_rewards([{"role": "search", "iteration": 1, "legal": True, "action": "end"}], ["x"])


# ---- reward placement and GAE ------------------------------------------------------------------------------------
def test_reward_on_last_token_gae_by_hand():
    from shared.rl.advantages import gae_advantages
    from shared.rollout.trajectory import Trajectory

    t = Trajectory(prompt_ids=[1, 2])
    t.append([5, 6, 7], policy=True)
    t.reward = 0.5
    assert t.dense_rewards() == [0.0, 0.0, 0.5]
    adv, ret = gae_advantages(torch.tensor([t.dense_rewards()]), torch.ones(1, 3), torch.tensor([[0.2, 0.3, 0.4]]),
                              gamma=1.0, lam=1.0, whiten=False)
    assert adv[0].tolist() == pytest.approx([0.3, 0.2, 0.1])
    assert ret[0].tolist() == pytest.approx([0.5, 0.5, 0.5])


# ---- stability metric --------------------------------------------------------------------------------------------
def test_curve_spread_by_hand():
    from mask.evaluate import reward_std_across_seeds

    curves = [[0.1, 0.2], [0.3, 0.2], [0.2, 0.2]]  # 3 seeds x 2 steps: per-step sample sd [0.1, 0.0]
    assert reward_std_across_seeds(curves, smooth=1) == pytest.approx(0.05)
    # with a 2-step trailing mean: seed curves [0.1, 0.15], [0.3, 0.25], [0.2, 0.2] -> sd [0.1, 0.05]
    assert reward_std_across_seeds(curves, smooth=2) == pytest.approx(0.075)
    assert reward_std_across_seeds(curves[:1]) is None


def test_seed_bootstrap_and_slope():
    from mask.evaluate import context_slope, seed_bootstrap

    a = [[0.1, 0.2], [0.3, 0.2], [0.2, 0.2]]
    b = [[0.2, 0.2], [0.2, 0.2], [0.2, 0.2]]  # no spread at all
    boot = seed_bootstrap(a, b, smooth=1, n_resamples=500, seed=0)
    assert boot["difference"] == pytest.approx(0.05)
    assert boot["low"] >= 0.0 and boot["high"] <= 0.1 + 1e-9 and boot["skipped"] > 0
    assert seed_bootstrap(a[:1], b[:1]) is None
    assert context_slope({1: 100.0, 2: 110.0, 3: 120.0}) == pytest.approx(10.0)
    assert context_slope({1: 5.0}) is None
