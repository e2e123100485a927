"""Golden values of every ARR reward term and the advantage, computed by hand (design note section 4)."""

import math

import pytest
import torch
from arr.advantage import arr_advantage_fn, outcome_advantages
from arr.rewards import (
    adversarial_bonus,
    clarity,
    entropy_trend,
    impact,
    outcome_f1,
    presence_multipliers,
    release_f1,
    score_bin,
)
from shared.config import ConfigError
from shared.rollout.trajectory import Trajectory


def test_adversarial_bins_by_hand():
    # F1_r 0.8 -> bin 4, F1_v 0.3 -> bin 1: reasoner +3 (w_out 1), verifier 0
    assert adversarial_bonus(0.8, 0.3) == (3.0, 0.0)
    # 0.19 -> 0, 0.41 -> 2: verifier +2
    assert adversarial_bonus(0.19, 0.41) == (0.0, 2.0)
    assert adversarial_bonus(0.8, 0.3, w_out=0.5) == (1.5, 0.0)
    assert score_bin(1.0) == 4  # capped at bins - 1
    assert adversarial_bonus(0.6, 0.6) == (0.0, 0.0)
    # no bonus unless both roles answered
    assert adversarial_bonus(None, 0.8) == (0.0, 0.0)
    assert adversarial_bonus(1.0, None) == (0.0, 0.0)


@pytest.mark.parametrize("n_pred,n_gold,overlap,value,exact_bin", [(1, 9, 1, 0.2, 1), (4, 11, 3, 0.4, 2),
                                                                   (7, 8, 6, 0.8, 4)])
def test_float_bin_edges(n_pred, n_gold, overlap, value, exact_bin):
    """The release's float F1 lands just below k/5 for these counts; exact bins put it in bin k, the release's
    int(5*F1) one bin lower."""
    gold = " ".join(f"g{i}" for i in range(n_gold))
    pred = " ".join([f"g{i}" for i in range(overlap)] + [f"x{i}" for i in range(n_pred - overlap)])
    f1 = release_f1(pred, [gold])
    assert f1 == pytest.approx(value, abs=1e-12) and f1 < value  # 0.19999999999999998 etc.
    assert score_bin(f1, exact=True) == exact_bin
    assert score_bin(f1, exact=False) == exact_bin - 1
    assert outcome_f1(pred, [gold], "hotpot") == value  # the core's F1 from integer counts is exact


def test_f1_variants_yes_no_rule():
    assert outcome_f1("no", ["no answer"], "hotpot") == 0.0  # HotpotQA rule
    assert outcome_f1("no", ["no answer"], "release") == pytest.approx(2 / 3, abs=1e-4)  # 0.6667
    assert outcome_f1(None, ["x"], "hotpot") == 0.0


def test_clarity_by_hand():
    assert clarity([0.2, 0.4, 0.6]) == pytest.approx(math.exp(-0.4))
    assert round(clarity([0.2, 0.4, 0.6]), 6) == 0.670320
    assert clarity([]) == 0.0


def test_presence_per_span_and_sticky():
    gold = ["Lomiville"]
    # docs before both spans hold the gold; response 1 has it, response 2 drops it
    blocks = [("information", "Doc 1 Kara was born in Lomiville."), ("response", "born in Lomiville"),
              ("information", "Doc 1 Kara was born in Lomiville."), ("response", "no answer")]
    assert presence_multipliers(blocks, gold, "per_span", tags=("response",)) == [1, -1]
    assert presence_multipliers(blocks, gold, "sticky", tags=("response",)) == [1, 1]
    # info 1 has the gold, info 2 does not, a span after info 2 lacks it
    blocks = [("information", "Lomiville is here"), ("information", "nothing"), ("response", "no answer")]
    assert presence_multipliers(blocks, gold, "per_span") == [0]
    assert presence_multipliers(blocks, gold, "sticky") == [-1]
    # verify and response are separate tags; neither in docs nor span -> 0
    blocks = [("information", "nothing"), ("verify", "hm"), ("response", "Lomiville")]
    assert presence_multipliers(blocks, gold) == [0, 1]


@pytest.mark.parametrize("means,release,intended", [
    ([1.2, 0.9, 0.5], 1.0, 1.0),  # decreasing
    ([0.5, 0.55, 0.52], 0.4, 0.4),  # flat (within the 0.1 threshold)
    ([0.5, 0.9, 0.4], 0.2, 0.8),  # peak: the release's branch order makes it "increasing"
    ([0.9, 0.4, 0.8], 0.2, 0.3),  # valley: 1.5 / 5 only in the intended classifier
    ([0.9, 0.5], 1.0, 1.0),
    ([0.5, 0.9], 0.2, 0.2),
    ([0.7], 0.4, 0.4),  # one block: flat
    ([], 0.4, 0.4),  # no <think> block: flat (the release's empty-list branch)
    ([1.0, 1.0, 0.5], 0.2, 1.0),  # plateau then drop: release "increasing", intended monotone decreasing
])
def test_impact_by_hand(means, release, intended):
    assert impact(means, "release") == pytest.approx(release)
    assert impact(means, "intended") == pytest.approx(intended)


def test_impact_uses_last_three_blocks():
    assert entropy_trend([0.1, 2.0, 1.5, 1.0]) == "monotonic_decreasing"


def _traj(n: int, role: str, reward: float, token_rewards=None) -> Trajectory:
    t = Trajectory(prompt_ids=[1])
    t.append(list(range(2, 2 + n)), policy=True)
    t.reward, t.token_rewards, t.metadata = reward, token_rewards, {"role": role}
    return t


def test_advantage_sum_vs_release_by_hand():
    scores = [1.0, 0.0, 0.0, 1.0, 0.0]
    a = outcome_advantages(scores, torch.zeros(5, dtype=torch.long))
    # mean 0.4, unbiased sd sqrt(0.3) = 0.547723
    expected = [1.095443, -0.730295, -0.730295, 1.095443, -0.730295]
    assert [round(float(x), 6) for x in a] == expected
    r = 0.335160
    trajs = [_traj(2, "verifier", s, [r, 0.0] if i == 0 else None) for i, s in enumerate(scores)]
    mask = torch.ones(5, 2)
    groups = torch.zeros(5, dtype=torch.long)
    summed = arr_advantage_fn("sum")(trajs, torch.zeros(5, 2), mask, groups)
    release = arr_advantage_fn("release")(trajs, torch.zeros(5, 2), mask, groups)
    assert summed[0, 0].item() == pytest.approx(1.430603, abs=1e-5)  # A + r
    assert release[0, 0].item() == pytest.approx(2.526046, abs=1e-5)  # 2A + r
    assert summed[0, 1].item() == pytest.approx(1.095443, abs=1e-5)
    assert summed[1, 0].item() == pytest.approx(-0.730295, abs=1e-5)
    assert release[1, 0].item() == pytest.approx(-1.460591, abs=1e-5)


def test_advantage_release_doubles_the_verifier_only_and_respects_the_mask():
    trajs = [_traj(2, "reasoner", s) for s in (1.0, 0.0)] + [_traj(2, "verifier", s) for s in (1.0, 0.0)]
    groups = torch.tensor([0, 0, 1, 1])
    mask = torch.tensor([[1.0, 0.0]] * 4)
    adv = arr_advantage_fn("release")(trajs, torch.zeros(4, 2), mask, groups)
    a = 1 / (math.sqrt(0.5) + 1e-6)  # (1 - 0.5) / sd([1, 0]) with sd = sqrt(0.5)
    assert adv[0, 0].item() == pytest.approx(0.5 * a, abs=1e-5)
    assert adv[2, 0].item() == pytest.approx(2 * 0.5 * a, abs=1e-5)
    assert adv[:, 1].abs().sum().item() == 0.0  # observation tokens get nothing


def test_unknown_advantage_form_is_a_config_error():
    with pytest.raises(ConfigError, match="advantage.form"):
        arr_advantage_fn("double")
