"""Aggregation of replication rows over seeds: means, spreads, censored steps_to_target, the results.json schema."""

import pytest
from sage.replicate import ROWS, aggregate, format_table, replicate_config


def _summary(curve, stt, trivial, seed):
    return {"curve": curve, "steps_to_target": stt, "trivial_fraction": trivial, "unstable_filtered": 0.1,
            "trivial_filtered": 0.2, "grad_norm_snr": 3.0, "seed": seed}


def test_aggregate_golden_and_censoring():
    cfg = replicate_config(True, ["train.steps=20", "eval.every=10"])
    seed0 = {m: _summary([[0, 0.4], [10, 0.5], [20, 0.6]], 10, 0.0, 0) for m in ROWS}
    seed1 = {m: _summary([[0, 0.4], [10, 0.4], [20, 0.4]], None, 0.5, 1) for m in ROWS}
    seed1["sage"] = _summary([[0, 0.4], [10, 0.45], [20, 0.5]], 20, 0.25, 1)
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
