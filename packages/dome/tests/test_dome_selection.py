"""The matched-forgetting-budget selection of the editors' C0 weight λ and the mean ± sd aggregation over seeds
of `dome replicate`."""

import pytest
from dome.cli import main
from dome.replicate import aggregate
from dome.selection import choose_weight


def _pt(weight, new, old):
    return {"weight": weight, "new_recall@10": new, "old_recall@10": old}


# hand-made dev curve: more λ → fewer new docs stored, more old docs kept (before = 0.350)
CURVE = [_pt(1e3, 0.483, 0.225), _pt(3e3, 0.417, 0.300), _pt(1e4, 0.317, 0.333), _pt(3e4, 0.150, 0.358)]


def test_choose_weight_takes_most_new_recall_within_budget():
    # budget 0.03: floor 0.320 -> feasible 1e4 (0.333) and 3e4 (0.358); 1e4 stores more new docs
    got = choose_weight(CURVE, before_old=0.350, max_old_drop=0.03)
    assert got["weight"] == 1e4 and got["feasible"] is True
    # budget 0.06: floor 0.290 -> 3e3 (old 0.300) becomes feasible and stores more (0.417)
    assert choose_weight(CURVE, 0.350, 0.06)["weight"] == 3e3
    # budget 0.2: everything feasible -> the most new recall, 1e3
    assert choose_weight(CURVE, 0.350, 0.2)["weight"] == 1e3


def test_choose_weight_respects_the_constraint_even_against_more_new_recall():
    curve = [_pt(1e3, 0.90, 0.319), _pt(1e4, 0.10, 0.320)]
    # 0.319 is one tick below the floor 0.350 - 0.030 = 0.320: excluded although it stores 9x more
    assert choose_weight(curve, 0.350, 0.03)["weight"] == 1e4
    # exactly at the floor is allowed (recall fractions carry float noise)
    assert choose_weight([_pt(1e3, 0.5, 0.35 - 0.03)], 0.35, 0.03)["feasible"] is True


def test_choose_weight_ties_and_infeasible_fallback():
    tie = [_pt(1e3, 0.3, 0.33), _pt(3e3, 0.3, 0.34), _pt(1e4, 0.3, 0.34)]
    assert choose_weight(tie, 0.35, 0.03)["weight"] == 1e4  # same new and old recall: the larger λ
    bad = [_pt(1e3, 0.5, 0.10), _pt(1e4, 0.2, 0.20), _pt(3e4, 0.1, 0.20)]
    got = choose_weight(bad, 0.35, 0.03)  # nothing within budget: forget least, then most new recall
    assert got["weight"] == 1e4 and got["feasible"] is False


def test_choose_weight_bad_input():
    with pytest.raises(ValueError, match="empty dev curve"):
        choose_weight([], 0.3, 0.03)
    with pytest.raises(ValueError, match="old_recall@10"):
        choose_weight([{"weight": 1.0, "new_recall@10": 0.1}], 0.3, 0.03)


def test_aggregate_mean_and_sample_sd_over_seeds():
    rows = [
        [{"method": "dome", "metrics": {"recall@10_new": 0.2, "prep_seconds": 1.0, "c0_weight": 1e4}},
         {"method": "none", "metrics": {"recall@10_new": 0.0, "prep_seconds": None, "c0_weight": None}}],
        [{"method": "dome", "metrics": {"recall@10_new": 0.4, "prep_seconds": 3.0, "c0_weight": 3e4}},
         {"method": "none", "metrics": {"recall@10_new": 0.0, "prep_seconds": None, "c0_weight": None}}],
    ]
    out = {r["method"]: r["metrics"] for r in aggregate(rows)}
    assert out["dome"]["recall@10_new"] == pytest.approx(0.3)
    assert out["dome"]["recall@10_new_std"] == pytest.approx(0.1414213562)  # sqrt(((0.1)^2 * 2) / 1)
    assert out["dome"]["c0_weight"] == pytest.approx(2e4)
    # n/a stays n/a, and every row has the same keys (results.json requires it)
    assert out["none"]["prep_seconds"] is None and out["none"]["prep_seconds_std"] is None
    assert set(out["none"]) == set(out["dome"])
    with pytest.raises(ValueError, match="different methods"):
        aggregate([rows[0], rows[1][::-1]])


def test_replicate_rejects_zero_seeds(tmp_path, capsys):
    assert main(["replicate", "--out", str(tmp_path / "r"), "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
