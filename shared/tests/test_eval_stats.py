"""Golden values, computed by hand, for the seed and item statistics of shared.eval.stats."""

import math

import pytest
from shared.eval import curve_spread, paired_bootstrap_ci, paired_differences

# three seeds; row "a" minus baseline "b" on metric f1: 0.1, -0.2, 0.4
PER_SEED = [
    {"a": {"f1": 0.6, "em": 0.5, "n/a": None}, "b": {"f1": 0.5, "em": 0.5, "n/a": None}, "c": {"f1": 0.5, "em": 0.4, "n/a": 1.0}},
    {"a": {"f1": 0.3, "em": 0.2, "n/a": None}, "b": {"f1": 0.5, "em": 0.1, "n/a": None}, "c": {"f1": 0.5, "em": 0.4, "n/a": 1.0}},
    {"a": {"f1": 0.9, "em": 0.4, "n/a": None}, "b": {"f1": 0.5, "em": 0.4, "n/a": None}, "c": {"f1": 0.5, "em": 0.4, "n/a": 1.0}},
]


def test_paired_differences_golden():
    out = paired_differences(PER_SEED, ["b", "a", "c"], baseline="b")
    assert list(out) == ["a-b", "c-b"]  # the baseline is not compared with itself
    f1 = out["a-b"]["f1"]
    assert f1["per_seed"] == pytest.approx([0.1, -0.2, 0.4])
    assert f1["mean"] == pytest.approx(0.1)
    # deviations 0, -0.3, 0.3: population variance 0.18 / 3 = 0.06
    assert f1["sd"] == pytest.approx(math.sqrt(0.06))
    assert f1["ahead"] == 2
    em = out["a-b"]["em"]
    assert em["per_seed"] == pytest.approx([0.0, 0.1, 0.0]) and em["ahead"] == 1  # a tie is not ahead
    assert out["a-b"]["n/a"] == {"per_seed": [None, None, None], "mean": None, "sd": None, "ahead": None}
    assert out["c-b"]["f1"] == {"per_seed": [0.0, 0.0, 0.0], "mean": 0.0, "sd": 0.0, "ahead": 0}
    # sample sd: 0.18 / 2 = 0.09
    assert paired_differences(PER_SEED, ["a"], "b", metrics=["f1"], ddof=1)["a-b"]["f1"]["sd"] == pytest.approx(0.3)
    one_seed = paired_differences(PER_SEED[:1], ["a"], "b", metrics=["f1"])["a-b"]["f1"]
    assert one_seed["sd"] == 0.0 and one_seed["mean"] == pytest.approx(0.1)  # a quick run: one seed
    assert paired_differences(PER_SEED[:1], ["a"], "b", metrics=["f1"], ddof=1)["a-b"]["f1"]["sd"] is None


def test_paired_differences_errors_name_seed_row_and_metric():
    with pytest.raises(ValueError, match=r"seed 1 has no row 'd'"):
        paired_differences([{"b": {}, "d": {}}, {"b": {}}], ["d"], "b")
    with pytest.raises(ValueError, match=r"seed 0: metric 'x' missing"):
        paired_differences(PER_SEED, ["a"], "b", metrics=["x"])
    bad = [{"a": {"f1": "high"}, "b": {"f1": 0.5}}]
    with pytest.raises(ValueError, match=r"seed 0 row 'a' metric 'f1': expected a finite number"):
        paired_differences(bad, ["a"], "b")


def test_curve_spread_golden():
    curves = [[(0, 0.0), (10, 1.0), (20, 2.0)], [(0, 2.0), (10, 1.0), (20, 4.0)]]
    out = curve_spread(curves)
    assert out["steps"] == [0, 10, 20]
    assert out["mean"] == pytest.approx([1.0, 1.0, 3.0])
    assert out["per_step_sd"] == pytest.approx([1.0, 0.0, 1.0])  # population sd over the two seeds
    assert out["mean_sd"] == pytest.approx(2 / 3)
    # trailing mean over 2 points: seed 0 -> 0, 0.5, 1.5; seed 1 -> 2, 1.5, 2.5
    smooth = curve_spread(curves, smooth=2)
    assert smooth["mean"] == pytest.approx([1.0, 1.0, 2.0])
    assert smooth["per_step_sd"] == pytest.approx([1.0, 0.5, 0.5])
    assert smooth["mean_sd"] == pytest.approx(2 / 3)
    sample = curve_spread(curves, ddof=1)
    assert sample["per_step_sd"] == pytest.approx([math.sqrt(2), 0.0, math.sqrt(2)])
    with pytest.raises(ValueError, match=r"curve 1 has steps"):
        curve_spread([[(0, 1.0), (10, 1.0)], [(0, 1.0), (20, 1.0)]])
    with pytest.raises(ValueError, match="smooth must be"):
        curve_spread(curves, smooth=0)


def test_paired_bootstrap_ci_golden():
    # differences 0, 1: a resample's mean is 0, 0.5 or 1 with chances 1/4, 1/2, 1/4, so the 95% interval is [0, 1]
    two = paired_bootstrap_ci([1.0, 1.0], [1.0, 0.0], seed=3)
    assert (two["mean"], two["low"], two["high"], two["n"]) == (0.5, 0.0, 1.0, 2)
    # differences 0, 0, 0, 1: the mean is k/4 with k ~ Binomial(4, 1/4); P(k = 0) = 81/256 > 2.5% and
    # P(k <= 2) = 243/256 < 97.5% <= P(k <= 3) = 255/256, so the interval is [0, 0.75]
    four = paired_bootstrap_ci([0, 0, 0, 1], [0, 0, 0, 0], seed=0)
    assert (four["mean"], four["low"], four["high"]) == (0.25, 0.0, 0.75)
    # pairing: a = b + 0.1 item by item, however much the items differ, gives a zero-width interval at 0.1
    b = [0.0, 1.0, 0.2, 0.9, 0.5, 0.0, 1.0]
    paired = paired_bootstrap_ci([x + 0.1 for x in b], b, seed=1)
    assert paired["low"] == pytest.approx(0.1) and paired["high"] == pytest.approx(0.1)


def test_paired_bootstrap_ci_is_seeded_and_sized_like_the_normal_interval():
    import numpy as np

    rng = np.random.default_rng(7)
    a = rng.integers(0, 2, 400).astype(float).tolist()
    b = rng.integers(0, 2, 400).astype(float).tolist()
    first, again = paired_bootstrap_ci(a, b, seed=5), paired_bootstrap_ci(a, b, seed=5)
    assert first == again
    other = paired_bootstrap_ci(a, b, seed=6)
    assert (other["low"], other["high"]) != (first["low"], first["high"]) and other["mean"] == first["mean"]
    d = np.array(a) - np.array(b)
    half = 1.96 * d.std() / math.sqrt(len(d))
    assert first["high"] - first["low"] == pytest.approx(2 * half, rel=0.1)
    assert first["low"] < first["mean"] < first["high"]


def test_paired_bootstrap_ci_refuses_unpaired_input():
    with pytest.raises(ValueError, match="3 scores in a but 2 in b"):
        paired_bootstrap_ci([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="no items"):
        paired_bootstrap_ci([], [])
    with pytest.raises(ValueError, match=r"b\[1\]: expected a finite number"):
        paired_bootstrap_ci([1, 0], [1, float("nan")])
