"""Golden values for SAGE's margins, gradient weights, running statistics, score, filters and top-B selection.

Every expected number is computed by hand in the comment beside it.
"""

import math
import random

import pytest
from sage.scoring import (
    MarginStats,
    MarginTracker,
    ScoringSettings,
    dpo_margin,
    gradient_weight,
    score_pairs,
    select_top,
    sigmoid,
    stability_score,
    weight_stats,
)


def test_sigmoid_and_margin_golden():
    assert sigmoid(0.0) == 0.5
    # sigmoid(-800) must not overflow: e^-800 underflows to 0 -> 0.0
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0
    # m = 0.1 * ((-10 - -11) - (-12 - -11)) = 0.1 * (1 - (-1)) = 0.2
    assert dpo_margin(-10.0, -12.0, -11.0, -11.0, beta=0.1) == pytest.approx(0.2)
    # w = sigmoid(-0.2) = 1 / (1 + e^0.2) = 1 / 2.2214028 = 0.4501660
    assert gradient_weight(0.2) == pytest.approx(0.4501660, abs=1e-7)


def test_running_mean_and_spread_over_window():
    tracker = MarginTracker(window=3)
    for m in (1.0, 2.0, 4.0, 7.0):
        tracker.update("p", m)
    st = tracker.stats("p")
    # window keeps [2, 4, 7]: mean 13/3 = 4.333333
    # var = ((2-4.3333)^2 + (4-4.3333)^2 + (7-4.3333)^2) / 3 = (5.4444 + 0.1111 + 7.1111) / 3 = 4.222222
    assert st.count == 3
    assert st.mean == pytest.approx(13 / 3)
    assert st.std == pytest.approx(math.sqrt(38 / 9))  # 4.222222 = 38/9 -> 2.054805
    assert tracker.stats("never-seen").count == 0


def test_tracker_retain_and_bad_values():
    tracker = MarginTracker(window=2)
    tracker.update_many(["a", "b", "c"], [0.1, 0.2, 0.3])
    tracker.retain(["b"])
    assert len(tracker) == 1 and tracker.stats("b").mean == pytest.approx(0.2)
    with pytest.raises(ValueError, match="non-finite margin"):
        tracker.update("b", float("nan"))
    with pytest.raises(ValueError, match="2 ids but 1 margins"):
        tracker.update_many(["a", "b"], [0.0])
    with pytest.raises(ValueError, match="window"):
        MarginTracker(window=0)


def test_stability_score_golden():
    # mu = -2, s = 0.15, eps = 0.05: sigmoid(2) = 0.8807971; 0.8807971 * 2 / 0.2 = 8.807971
    assert stability_score(-2.0, 0.15, 0.05) == pytest.approx(8.807971, abs=1e-6)
    # mu = 3, s = 0.45: sigmoid(-3) = 0.0474259; 0.0474259 * 3 / 0.5 = 0.2845552
    assert stability_score(3.0, 0.45, 0.05) == pytest.approx(0.2845552, abs=1e-6)
    # a confident error outranks an equally stable correct pair of the same |mu|
    assert stability_score(-1.0, 0.1, 0.05) > stability_score(1.0, 0.1, 0.05)


def _five_pair_tracker():
    tracker = MarginTracker(window=4)
    tracker.update_many(["A", "A"], [-2.1, -1.9])  # mean -2, std 0.1
    tracker.update_many(["B", "B"], [3.0, 3.0])  # mean 3, std 0 -> weight sigmoid(-3) = 0.047 < 0.2: trivial
    tracker.update_many(["C", "C"], [-1.0, 1.0])  # mean 0, std 1 > 0.5: unstable
    tracker.update("D", -0.5)  # one observation < min_obs 2: std taken as prior 0.25
    tracker.update_many(["E", "E"], [-0.2, -0.4])  # mean -0.3, std 0.1
    return tracker


def test_scores_and_filters_golden():
    settings = ScoringSettings(eps=0.05, unstable_std=0.5, trivial_weight=0.2, min_obs=2, prior_std=0.25)
    scores = {s.pair_id: s for s in score_pairs(_five_pair_tracker(), list("ABCDE"), settings)}
    # A: sigmoid(2) * 2 / (0.1 + 0.05) = 0.8807971 * 2 / 0.15 = 11.743961
    assert scores["A"].score == pytest.approx(11.743961, abs=1e-5)
    assert not scores["A"].unstable and not scores["A"].trivial
    # B: weight sigmoid(-3) = 0.0474259 < 0.2 -> trivial; score 0.0474259 * 3 / 0.05 = 2.845552
    assert scores["B"].trivial and not scores["B"].unstable
    assert scores["B"].score == pytest.approx(2.845552, abs=1e-5)
    # C: std 1 > 0.5 -> unstable; mean 0 -> score 0
    assert scores["C"].unstable and scores["C"].score == 0.0
    # D: std = prior 0.25; sigmoid(0.5) * 0.5 / 0.3 = 0.6224593 * 0.5 / 0.3 = 1.037432
    assert scores["D"].std == 0.25 and scores["D"].score == pytest.approx(1.037432, abs=1e-5)
    # E: sigmoid(0.3) * 0.3 / 0.15 = 0.5744425 * 2 = 1.148885
    assert scores["E"].score == pytest.approx(1.148885, abs=1e-5)


def test_top_b_selection_and_fill_order():
    settings = ScoringSettings(eps=0.05, unstable_std=0.5, trivial_weight=0.2, min_obs=2, prior_std=0.25)
    scores = score_pairs(_five_pair_tracker(), list("ABCDE"), settings)
    top2 = select_top(scores, 2, random.Random(0))
    assert top2.pair_ids == ["A", "E"]  # 11.74 > 1.149 > 1.037 (D)
    assert (top2.n_candidates, top2.n_unstable, top2.n_trivial, top2.n_eligible, top2.n_filled) == (5, 1, 1, 3, 0)
    assert top2.unstable_fraction == pytest.approx(0.2) and top2.trivial_fraction == pytest.approx(0.2)
    # mean score of the chosen: (11.743961 + 1.148885) / 2 = 6.446423
    assert top2.mean_score == pytest.approx(6.446423, abs=1e-5)
    # batch 5: the three eligible, then the unstable C (score 0) before the trivial B (score 2.85)
    full = select_top(scores, 5, random.Random(0))
    assert full.pair_ids == ["A", "E", "D", "C", "B"] and full.n_filled == 2
    assert select_top(scores, 5, random.Random(0), fill="none").pair_ids == ["A", "E", "D"]


def test_ties_broken_at_random_but_reproducibly():
    tracker = MarginTracker(window=2)
    ids = [f"p{i}" for i in range(20)]
    tracker.update_many(ids, [0.0] * 20)  # all margins 0 (policy == reference): every score is 0
    scores = score_pairs(tracker, ids, ScoringSettings())
    a = select_top(scores, 5, random.Random(1)).pair_ids
    assert a == select_top(scores, 5, random.Random(1)).pair_ids
    assert a != select_top(scores, 5, random.Random(2)).pair_ids
    with pytest.raises(ValueError, match="fill"):
        select_top(scores, 5, random.Random(1), fill="pad")


def test_weight_stats_golden():
    stats = weight_stats([0.0, 2.0, -2.0], trivial_weight=0.2)
    # weights 0.5, sigmoid(-2) = 0.1192029, sigmoid(2) = 0.8807971; mean = 1.5 / 3 = 0.5
    assert stats["weight_mean"] == pytest.approx(0.5)
    # std = sqrt((0 + 0.3807971^2 + 0.3807971^2) / 3) = sqrt(0.0966711) = 0.3109198
    assert stats["weight_std"] == pytest.approx(0.3109198, abs=1e-6)
    assert stats["weight_min"] == pytest.approx(0.1192029, abs=1e-6)
    assert stats["trivial_fraction"] == pytest.approx(1 / 3)  # only 0.119 < 0.2
    assert stats["margin_mean"] == 0.0
    with pytest.raises(ValueError, match="empty"):
        weight_stats([], 0.2)


def test_tracker_state_round_trip_keeps_window():
    tracker = MarginTracker(window=2)
    tracker.update_many(["a", "a", "a"], [1.0, 2.0, 3.0])
    copy = MarginTracker(window=2)
    copy.load_state_dict(tracker.state_dict())
    copy.update("a", 5.0)  # window 2: [3, 5] -> mean 4, std 1
    assert copy.stats("a") == MarginStats(mean=4.0, std=1.0, count=2)


def test_weight_form_golden_and_monotone_where_margin_form_is_not():
    # weight form: mu = -2, s = 0.15, eps = 0.05: sigmoid(2) / 0.2 = 0.8807971 / 0.2 = 4.4039855
    assert stability_score(-2.0, 0.15, 0.05, form="weight") == pytest.approx(4.4039855, abs=1e-6)
    # margin form on two learnt pairs (mu > 0), same spread 0.05 (+ eps 0.05 = 0.1):
    #   mu = 0.5: sigmoid(-0.5) * 0.5 / 0.1 = 0.3775407 * 5 = 1.8877033
    #   mu = 1.0: sigmoid(-1) * 1 / 0.1 = 0.2689414 * 10 = 2.6894142 -> the better-learnt pair ranks higher
    assert stability_score(0.5, 0.05, 0.05) == pytest.approx(1.8877033, abs=1e-6)
    assert stability_score(1.0, 0.05, 0.05) == pytest.approx(2.6894142, abs=1e-6)
    # weight form: 0.3775407 / 0.1 = 3.775407 > 0.2689414 / 0.1 = 2.689414 -> the less-learnt pair ranks higher
    assert stability_score(0.5, 0.05, 0.05, "weight") == pytest.approx(3.775407, abs=1e-6)
    assert stability_score(1.0, 0.05, 0.05, "weight") == pytest.approx(2.689414, abs=1e-6)
    with pytest.raises(ValueError, match="form must be one of"):
        stability_score(0.0, 0.1, 0.05, form="abs")


def test_selection_reports_tracked_share_and_chosen_margin():
    settings = ScoringSettings(eps=0.05, unstable_std=0.5, trivial_weight=0.2, min_obs=2, prior_std=0.25)
    sel = select_top(score_pairs(_five_pair_tracker(), list("ABCDE"), settings), 2, random.Random(0))
    # A, B, C, E have two evaluations each, D one (< min_obs) -> 4 tracked of 5
    assert sel.n_tracked == 4
    # chosen A (mu -2) and E (mu -0.3): mean -1.15
    assert sel.chosen_margin == pytest.approx(-1.15)


def test_relative_thresholds_fire_on_small_margins():
    """Toy-scale margins (|mu| < 0.1): no filter fires on the absolute scale, both fire in RMS-margin units."""
    from sage.scoring import margin_scale

    tracker = MarginTracker(window=4)
    tracker.update_many(["A", "A"], [-0.03, -0.03])  # mean -0.03, std 0
    tracker.update_many(["B", "B"], [0.09, 0.09])  # mean 0.09, std 0
    tracker.update_many(["C", "C"], [-0.04, 0.04])  # mean 0, std 0.04
    ids = ["A", "B", "C"]
    absolute = score_pairs(tracker, ids, ScoringSettings())
    assert not any(p.unstable or p.trivial for p in absolute)
    # RMS of the means: sqrt((0.03^2 + 0.09^2 + 0^2) / 3) = sqrt(0.003) = 0.0547723
    assert margin_scale([tracker.stats(i) for i in ids]) == pytest.approx(0.0547723, abs=1e-7)
    rel = {p.pair_id: p for p in score_pairs(tracker, ids, ScoringSettings(relative=True))}
    # B: z = 0.09 / 0.0547723 = 1.6431677; weight 1 / (1 + e^1.6431677) = 1 / 6.1717 = 0.1620345 < 0.2 -> trivial
    assert rel["B"].mean == pytest.approx(1.6431677, abs=1e-6) and rel["B"].trivial
    assert rel["B"].weight == pytest.approx(0.1620345, abs=1e-6)
    # C: spread 0.04 / 0.0547723 = 0.7302967 > 0.5 -> unstable
    assert rel["C"].std == pytest.approx(0.7302967, abs=1e-6) and rel["C"].unstable
    # A: z = -0.5477226, weight 1 / (1 + e^-0.5477226) = 1 / 1.5782763 = 0.6336010; score 0.6336010 * 0.5477226 / 0.05
    #    = 6.940817 -> the only eligible pair
    assert rel["A"].score == pytest.approx(6.940817, abs=1e-5) and not (rel["A"].unstable or rel["A"].trivial)
    assert select_top(list(rel.values()), 1, random.Random(0)).pair_ids == ["A"]


def test_filters_fire_along_a_hand_made_margin_history():
    """Per-step filter tallies on a scripted history: a pair being learnt turns trivial, an oscillating one turns
    unstable once its window holds both signs, a flat one stays eligible."""
    settings = ScoringSettings(eps=0.05, unstable_std=0.5, trivial_weight=0.2, min_obs=2, prior_std=0.25)
    tracker = MarginTracker(window=3)
    history = {  # margins at steps 1..4
        # window means 1.0, 1.2, 1.4, 1.8: weight sigmoid(-1.4) = 0.1978 < 0.2 from step 3; spread 0.3266 (stable)
        "learnt": [1.0, 1.4, 1.8, 2.2],
        "swing": [0.0, 0.2, -1.2, 1.2],  # window [0, .2, -1.2]: std 0.6182 > 0.5 at step 3
        "flat": [-0.5, -0.5, -0.5, -0.5],
    }
    tallies = []
    for step in range(4):
        tracker.update_many(list(history), [h[step] for h in history.values()])
        sel = select_top(score_pairs(tracker, list(history), settings), 1, random.Random(0))
        tallies.append((sel.n_unstable, sel.n_trivial, sel.pair_ids))
    assert [t[:2] for t in tallies] == [(0, 0), (0, 0), (1, 1), (1, 1)]
    assert tallies[3][2] == ["flat"]


def test_random_rank_keeps_the_filters_but_not_the_order():
    settings = ScoringSettings(eps=0.05, unstable_std=0.5, trivial_weight=0.2, min_obs=2, prior_std=0.25)
    scores = score_pairs(_five_pair_tracker(), list("ABCDE"), settings)
    picks = {tuple(select_top(scores, 3, random.Random(s), rank="random").pair_ids) for s in range(20)}
    assert all(set(p) == {"A", "D", "E"} for p in picks)  # only the eligible pairs (B trivial, C unstable)
    assert len(picks) > 1  # in varying order, unlike rank="score" which always gives A, E, D
    full = select_top(scores, 5, random.Random(0), rank="random")
    assert set(full.pair_ids[:3]) == {"A", "D", "E"} and full.pair_ids[3:] == ["C", "B"]  # fill: unstable first
    with pytest.raises(ValueError, match="rank must be one of"):
        select_top(scores, 2, random.Random(0), rank="best")
