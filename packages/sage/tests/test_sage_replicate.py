"""Aggregation of replication rows over seeds: means, spreads, censored steps_to_target, the results.json schema."""

import pytest
from sage.replicate import ROWS, aggregate, check_methods, format_table, replicate_config
from sage.trainer import steps_to_target


def _summary(curve, stt, trivial, seed, topped=0):
    return {"curve": curve, "steps_to_target": stt, "trivial_fraction": trivial, "unstable_filtered": 0.1,
            "trivial_filtered": 0.2, "grad_norm_snr": 3.0, "seed": seed, "topped_up_batches": topped,
            "filled_pair_share": topped / 40}


def test_aggregate_golden_and_censoring():
    cfg = replicate_config(True, ["train.steps=20", "eval.every=10"])
    seed0 = {m: _summary([[0, 0.4], [10, 0.5], [20, 0.6]], 10, 0.0, 0) for m in ROWS}
    seed1 = {m: _summary([[0, 0.4], [10, 0.4], [20, 0.4]], None, 0.5, 1) for m in ROWS}
    seed1["sage"] = _summary([[0, 0.4], [10, 0.45], [20, 0.5]], 20, 0.25, 1, topped=3)
    rows = {r["method"]: r for r in aggregate([seed0, seed1], cfg)}
    u = rows["uniform"]["metrics"]
    # accuracy: mean(0.6, 0.4) = 0.5, population std = 0.1
    assert u["accuracy"] == pytest.approx(0.5) and u["accuracy_std"] == pytest.approx(0.1)
    # steps_to_target: seed 1 never reaches it -> censored at steps + every = 30; mean(10, 30) = 20, std 10
    assert u["steps_to_target"] == pytest.approx(20) and u["steps_to_target_std"] == pytest.approx(10)
    assert u["target_reached"] == 0.5
    # auc: curve means [0.4, 0.45, 0.5] -> 0.45
    assert u["accuracy_auc"] == pytest.approx(0.45)
    assert rows["uniform"]["accuracy_curve"][1] == [10, 0.45, 0.05]
    s = rows["sage"]["metrics"]
    assert s["steps_to_target"] == pytest.approx(15) and s["target_reached"] == 1.0  # mean(10, 20)
    assert s["trivial_fraction"] == pytest.approx(0.125)  # mean(0, 0.25)
    assert s["topped_up_batches"] == pytest.approx(1.5) and s["filled_pair_share"] == pytest.approx(0.0375)
    # seed-paired: uniform gains (0.6 - 0.4, 0.4 - 0.4) -> mean 0.1, std 0.1; its delta to itself is 0
    assert u["accuracy_gain"] == pytest.approx(0.1) and u["accuracy_gain_std"] == pytest.approx(0.1)
    assert u["delta_vs_uniform"] == 0.0 and u["auc_delta_vs_uniform"] == 0.0
    # sage - uniform final: seed 0: 0.6 - 0.6 = 0, seed 1: 0.5 - 0.4 = 0.1 -> mean 0.05, std 0.05
    assert s["delta_vs_uniform"] == pytest.approx(0.05) and s["delta_vs_uniform_std"] == pytest.approx(0.05)
    # curve averages: seed 1 sage (0.4 + 0.45 + 0.5) / 3 = 0.45 vs uniform 0.4 -> 0.05; seed 0 equal -> mean 0.025
    assert s["auc_delta_vs_uniform"] == pytest.approx(0.025) and s["auc_delta_vs_uniform_std"] == pytest.approx(0.025)
    assert len({tuple(sorted(r["metrics"])) for r in rows.values()}) == 1  # same metric keys in every row
    assert "sage" in format_table(list(rows.values()), 2)


def test_no_seed_reaching_target_gives_null():
    cfg = replicate_config(True, ["train.steps=20", "eval.every=10"])
    seed0 = {m: _summary([[0, 0.4], [20, 0.4]], None, 0.0, 0) for m in ROWS}
    rows = aggregate([seed0], cfg)
    assert all(r["metrics"]["steps_to_target"] is None and r["metrics"]["target_reached"] == 0 for r in rows)
    assert "never" in format_table(rows, 1)


def test_steps_to_target_on_a_two_evaluation_moving_average():
    curve = [[0, 0.40], [10, 0.44], [20, 0.41], [30, 0.43], [40, 0.44]]
    # target 0.43: the single evaluation at step 10 reaches it; the moving average first at step 30 ((0.41+0.43)/2
    # = 0.42 < 0.43 -> no; step 40: (0.43+0.44)/2 = 0.435 -> yes)
    assert steps_to_target(curve, 0.43) == 10
    assert steps_to_target(curve, 0.43, smooth=2) == 40
    assert steps_to_target(curve, 0.42, smooth=2) == 10  # (0.40+0.44)/2 = 0.42
    assert steps_to_target(curve, 0.45, smooth=2) is None
    assert steps_to_target([[0, 0.5]], 0.45, smooth=2) == 0  # the start alone where there is no earlier point
    with pytest.raises(ValueError, match="target_smooth must be >= 1"):
        steps_to_target(curve, 0.43, smooth=0)


def test_paired_differences_of_steps_and_trivial_fraction():
    cfg = replicate_config(True, ["train.steps=20", "eval.every=10"])
    seed0 = {"uniform": _summary([[0, 0.4], [20, 0.5]], 20, 0.0, 0),
             "sage": _summary([[0, 0.4], [20, 0.5]], 10, 0.1, 0)}
    seed1 = {"uniform": _summary([[0, 0.3], [20, 0.3]], None, 0.0, 1),
             "sage": _summary([[0, 0.3], [20, 0.35]], 20, 0.3, 1)}
    rows = {r["method"]: r for r in aggregate([seed0, seed1], cfg)}
    assert list(rows) == ["uniform", "sage"]  # only the rows that were run
    s = rows["sage"]["metrics"]
    # steps: seed 0: 10 - 20 = -10; seed 1: 20 - 30 (uniform censored at steps + every) = -10 -> mean -10, std 0
    assert s["steps_to_target_delta_vs_uniform"] == pytest.approx(-10)
    assert s["steps_to_target_delta_vs_uniform_std"] == pytest.approx(0)
    # trivial fraction: 0.1 and 0.3 -> mean 0.2, std 0.1
    assert s["trivial_fraction_delta_vs_uniform"] == pytest.approx(0.2)
    assert s["trivial_fraction_delta_vs_uniform_std"] == pytest.approx(0.1)
    per_seed = rows["sage"]["per_seed"]
    assert per_seed["delta_vs_uniform"] == pytest.approx([0.0, 0.05])
    assert per_seed["steps_to_target"] == [10, 20] and per_seed["steps_to_target_delta_vs_uniform"] == [-10, -10]
    assert rows["uniform"]["per_seed"]["steps_to_target"] == [20, 30]


def test_methods_must_be_known_and_include_uniform():
    assert check_methods(["sage", "uniform"]) == ("uniform", "sage")
    with pytest.raises(ValueError, match="must include 'uniform'"):
        check_methods(["sage", "scoring"])
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['greedy'\]"):
        check_methods(["uniform", "greedy"])
