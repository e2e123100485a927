"""The replication end to end at toy size (two seeds, one RL step per row): rows, metric keys, claims, resume."""

import json

import pytest
from mask.config import MaskConfig, TrainSettings
from mask.replicate import aggregate, claims, pick_lr, pilot, replicate, row_lr

TOY = ["data.n_people=120", "data.n_companies=20", "data.n_cities=15", "data.n_countries=6",
       "data.n_dev=2", "data.n_test=3", "data.n_train=4", "model.hidden=32", "model.layers=1", "model.heads=2",
       "model.ffn=64", "model.vocab_size=400", "warm_start.mask_steps=3", "warm_start.monolithic_steps=3",
       "warm_start.val_questions=2", "warm_start.eval_every=2", "rl.steps=2", "rl.eval_every=1",
       "rl.checkpoint_every=1", "rl.progress=false", "train.questions_per_step=2", "train.episodes_per_question=2",
       "loop.max_iterations=2", "monolithic.max_turns=3"]


@pytest.mark.slow  # ~2 min under load: builds two toy warm starts, two seeds, the pilot
def test_replicate_toy_two_seeds(tmp_path):
    out = tmp_path / "run"
    path = replicate(quick=False, out=out, seeds=2, overrides=[*TOY, f"warm_start.cache_dir={tmp_path / 'ws'}"],
                     log=lambda m: None)
    doc = json.loads(path.read_text())
    assert [r["method"] for r in doc["rows"]] == ["mask_sft", "monolithic_sft", "mask", "monolithic"]
    for r in doc["rows"]:
        assert set(r["metrics"]) == {"f1", "em", "acc", "reward_std_across_seeds", "context_tokens_per_turn",
                                     "context_tokens_max", "generated_tokens", "mean_iterations"}
    assert doc["rows"][0]["metrics"]["reward_std_across_seeds"] is None  # a warm start has no training curve
    assert doc["rows"][2]["metrics"]["reward_std_across_seeds"] is not None  # two seeds: a sample sd
    assert doc["data"]["test_overlap"]["questions"] == 0
    assert set(doc["claims"]) == {"boundedness", "stability", "accuracy"}
    assert len(doc["curves"]["seed0"]["mask"]["train_f1"]) == 2 and len(doc["curves"]["seed0"]["mask"]["dev_f1"]) == 2
    assert doc["training"]["mask"]["generated_tokens"][0] > 0
    # a rerun finds every stage done and writes the same rows
    again = json.loads(replicate(quick=False, out=out, seeds=2, log=lambda m: None,
                                 overrides=[*TOY, f"warm_start.cache_dir={tmp_path / 'ws'}"]).read_text())
    assert again["rows"] == doc["rows"]
    # the dev pilot in two parts (as two processes would), then the decision
    args = dict(overrides=[*TOY, f"warm_start.cache_dir={tmp_path / 'ws'}"], steps=2, dev_every=1, log=lambda m: None)
    assert pilot(tmp_path / "pilot", rows=["mask"], **args) is None  # monolithic runs still missing
    decision = json.loads(pilot(tmp_path / "pilot", **args).read_text())
    assert set(decision["lr"]) == {"mask", "monolithic"} and decision["lr"]["mask"] in (1e-5, 3e-5)
    assert set(decision["curves"]["mask"]) == {"1e-05", "3e-05"} and len(decision["curves"]["mask"]["1e-05"]) == 3
    assert not (tmp_path / "pilot" / "sft").exists()  # the pilot reads no test data


def _seed(f1, curve, dev, ctx):
    return {"test": {"f1": f1, "em": f1, "acc": f1, "context_tokens_per_turn": 1.0, "context_tokens_max": 2.0,
                     "generated_tokens": 3.0, "mean_iterations": 1.0, "context_curve": ctx},
            "train_f1": curve, "dev_curve": dev}


def test_claims_by_hand():
    sft = {"mask": {"test": {"f1": 0.4, "em": 0.4, "acc": 0.4, "context_tokens_per_turn": 1.0,
                             "context_tokens_max": 2.0, "generated_tokens": 3.0, "mean_iterations": 1.0,
                             "context_curve": {"1": 80.0, "2": 90.0}}, "dev_f1": 0.5},
           "monolithic": {"test": {"f1": 0.3, "em": 0.3, "acc": 0.3, "context_tokens_per_turn": 1.0,
                                   "context_tokens_max": 2.0, "generated_tokens": 3.0, "mean_iterations": 1.0,
                                   "context_curve": {"1": 20.0, "2": 200.0}}, "dev_f1": 0.5}}
    flat = {"1": 80.0, "2": 84.0, "3": 88.0}
    grow = {"1": 20.0, "2": 200.0, "3": 380.0}
    per_seed = [{"mask": _seed(0.5, [0.1, 0.2], [[10, 0.6]], flat), "monolithic": _seed(0.4, [0.1, 0.3], [[10, 0.5]],
                                                                                          grow)},
                {"mask": _seed(0.6, [0.3, 0.2], [[10, 0.6]], flat), "monolithic": _seed(0.3, [0.5, 0.1], [[10, 0.5]],
                                                                                          grow)},
                {"mask": _seed(0.4, [0.2, 0.2], [[10, 0.6]], flat), "monolithic": _seed(0.5, [0.3, 0.4], [[10, 0.5]],
                                                                                          grow)}]
    c = claims(sft, per_seed, ["mask", "monolithic"])
    assert c["boundedness"]["slopes"]["mask"] == pytest.approx(4.0)
    assert c["boundedness"]["slopes"]["monolithic"] == pytest.approx(180.0) and c["boundedness"]["holds"]
    assert c["accuracy"]["f1_mask_minus_monolithic"] == pytest.approx([0.1, 0.3, -0.1]) and c["accuracy"]["ahead"] == 2
    assert c["stability"]["dev_f1_max_move"] == {"mask": pytest.approx(0.1), "monolithic": 0.0}
    table = aggregate(sft, per_seed, ["mask", "monolithic"])
    # smooth 5 over 2 steps: mask curves [0.1, 0.15], [0.3, 0.25], [0.2, 0.2] -> sd [0.1, 0.05] -> 0.075
    assert table[2]["metrics"]["reward_std_across_seeds"] == pytest.approx(0.075)
    assert table[2]["metrics"]["f1"] == pytest.approx(0.5)


def test_pick_lr_rule():
    assert pick_lr({"1e-05": [[0, 0.5], [15, 0.52], [20, 0.54]], "3e-05": [[0, 0.5], [15, 0.5], [20, 0.6]]}) == 3e-5
    assert pick_lr({"1e-05": [[15, 0.5], [20, 0.5]], "3e-05": [[15, 0.5], [20, 0.5]]}) == 1e-5  # tie: the lower


def test_row_lr_takes_the_pilots_pick_per_row():
    cfg = MaskConfig(train=TrainSettings(mask_lr=3e-5))
    assert row_lr(cfg, "mask") == 3e-5 and row_lr(cfg, "monolithic") == cfg.rl.lr == 1e-5
    cfg.train.mask_lr = -1.0
    with pytest.raises(ValueError, match="train.mask_lr"):
        cfg.validate()
