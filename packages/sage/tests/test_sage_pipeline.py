"""End-to-end: probe -> frontier pairs -> selection -> DPO steps, for all four ablations, on a tiny real policy.

The fixture policy is a 1-layer Qwen2 briefly SFT'd on a two-answer task ("Q: 37=?" -> \\boxed{4} when the number
is odd, else \\boxed{3}): after 40 steps it writes a boxed 3 or 4 but has not learnt which, so sampled pass rates
sit strictly between 0 and 1 and every problem can yield (correct, incorrect) pairs.
"""

import copy
import json
import random

import pytest
import torch
from sage.config import SageConfig
from sage.data import load_problem_set
from sage.pairs import FrontierEmptyError
from sage.trainer import probe_policy, train_dpo


def _answer(n: int) -> int:
    return 3 + n % 2


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("parity")
    path = tiny_causal_lm(root / "init", tokenizer=build_tokenizer(kind="char"), hidden=32, layers=1, heads=2,
                          ffn=64, seed=0)
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    nums, rng = list(range(10, 50)), random.Random(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        rows = []
        for n in rng.sample(nums, 32):
            p = tok(f"Q: {n}=?\nA: ")["input_ids"]
            c = tok(f"\\boxed{{{_answer(n)}}}", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
            rows.append((p + c, len(p)))
        width = max(len(x) for x, _ in rows)
        ids = torch.full((32, width), tok.pad_token_id)
        labels = torch.full((32, width), -100)
        att = torch.zeros((32, width), dtype=torch.long)
        for i, (x, k) in enumerate(rows):
            ids[i, : len(x)], att[i, : len(x)], labels[i, k : len(x)] = torch.tensor(x), 1, torch.tensor(x[k:])
        loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    data = root / "parity.jsonl"
    data.write_text("".join(json.dumps({"question": str(n), "answer": str(_answer(n))}) + "\n" for n in nums))
    return model, tok, data, root / "model"


def _cfg(data, method: str) -> SageConfig:
    cfg = SageConfig()
    cfg.data.source, cfg.data.path, cfg.data.n_train, cfg.data.n_test = "jsonl", str(data), 24, 16
    cfg.data.prompt_template = "Q: {question}=?\nA: "
    cfg.sampling.samples_per_problem, cfg.sampling.max_new_tokens = 4, 10
    cfg.eval.max_new_tokens, cfg.eval.every = 10, 3
    cfg.train.method, cfg.train.steps, cfg.train.batch_size, cfg.train.lr = method, 6, 4, 1e-3
    cfg.curriculum.refresh_every = 3
    cfg.scoring.candidates_per_step = 8
    cfg.train.threads = 1
    return cfg


@pytest.mark.parametrize("method", ["uniform", "curriculum", "scoring", "sage"])
def test_pipeline_runs_every_ablation(parity, method):
    from shared.generation import HFGenerator

    model, tok, data, _ = parity
    cfg = _cfg(data, method)
    problems = load_problem_set(cfg.data)
    policy = copy.deepcopy(model)
    before = [p.detach().clone() for p in policy.parameters()]
    result = train_dpo(cfg, policy, tok, HFGenerator(policy, tok), problems, progress=False)
    assert [s for s, _ in result.curve] == [0, 3, 6]
    assert len(result.logs) == 6 and all(e["batch"] == 4 for e in result.logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters()))  # the policy was updated
    pools = result.pools
    assert len(pools) == (2 if method in ("curriculum", "sage") else 1)  # refresh at step 3 (before step 4)
    assert all(0 < p["n_frontier"] <= 24 for p in pools)
    if method in ("scoring", "sage"):
        assert all("mean_score" in e for e in result.logs)
    metrics = result.metrics()
    assert set(metrics) >= {"accuracy", "steps_to_target", "trivial_fraction"}


def test_probe_pairs_are_verified_correct_vs_incorrect(parity):
    from shared.generation import HFGenerator
    from shared.rewards import math_reward

    model, tok, data, _ = parity
    cfg = _cfg(data, "sage")
    problems = load_problem_set(cfg.data)
    probe = probe_policy(cfg, HFGenerator(model, tok), problems, 0, random.Random(0), seed=0)
    gold = {p.problem_id: p.answer for p in problems.train}
    assert probe.pairs and probe.summary.n_frontier > 0
    for pair in probe.pairs:
        assert math_reward(pair.chosen, gold[pair.problem_id]) == 1.0
        assert math_reward(pair.rejected, gold[pair.problem_id]) == 0.0


def test_no_frontier_stops_cleanly_or_continues(parity, tmp_path):
    """A pool the policy never solves: the first probe raises; a later empty refresh keeps or stops as configured."""
    from shared.generation import HFGenerator

    model, tok, data, _ = parity
    cfg = _cfg(data, "sage")
    problems = load_problem_set(cfg.data)
    hard = copy.deepcopy(problems)
    for p in hard.train:  # answers the policy never writes
        object.__setattr__(p, "answer", "123456")
    with pytest.raises(FrontierEmptyError, match="no frontier problem at step 0"):
        probe_policy(cfg, HFGenerator(model, tok), hard, 0, random.Random(0), seed=0)

    probe = probe_policy(cfg, HFGenerator(model, tok), problems, 0, random.Random(0), seed=0)
    for mode, expect_steps in (("continue", 6), ("stop", 3)):
        cfg.curriculum.on_empty_frontier = mode
        policy = copy.deepcopy(model)
        result = train_dpo(cfg, policy, tok, HFGenerator(policy, tok), hard, initial_probe=probe, progress=False)
        assert len(result.logs) == expect_steps
        assert (result.stopped_reason != "") == (mode == "stop")


def _cli_common(model_dir, out):
    return ["--out", str(out), "--no-progress", f"model.path={model_dir}", "model.device=cpu",
            "sampling.samples_per_problem=4", "sampling.max_new_tokens=10", "eval.max_new_tokens=10",
            "train.batch_size=4", "train.lr=1e-3", "eval.every=2", "curriculum.refresh_every=2",
            "scoring.candidates_per_step=8", "data.prompt_template=Q: {question}=?\nA: "]


def test_cli_train_writes_results_model_and_resumes(parity, tmp_path):
    from sage.cli import main
    from shared.eval import read_results

    _, _, data, model_dir = parity
    out = tmp_path / "run"
    args = ["train", *_cli_common(model_dir, out), "data.source=jsonl", f"data.path={data}", "data.n_train=24",
            "data.n_test=16", "train.checkpoint_every=2"]
    assert main([*args, "train.steps=2"]) == 0
    doc = read_results(out)
    assert doc["rows"][0]["method"] == "sage" and doc["rows"][0]["accuracy_curve"][-1][0] == 2
    assert (out / "model" / "config.json").is_file() and (out / "config.yaml").is_file()
    assert main([*args, "train.steps=4"]) == 0  # resumes from the step-2 checkpoint
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log] == [1, 2, 3, 4]
    straight = tmp_path / "straight"  # the same 4 steps without interruption give the same losses
    args = ["train", *_cli_common(model_dir, straight), "data.source=jsonl", f"data.path={data}", "data.n_train=24",
            "data.n_test=16"]
    assert main([*args, "train.steps=4"]) == 0
    again = [json.loads(line) for line in (straight / "train_log.jsonl").read_text().splitlines()]
    assert [e["loss"] for e in again] == pytest.approx([e["loss"] for e in log], abs=1e-5)


def test_cli_on_gsm8k_slice_with_a_model_path(parity, tmp_path):
    """Plumbing on the bundled GSM8K slice with a user-supplied model path: train and eval run unchanged."""
    from sage.cli import main
    from shared.eval import read_results

    _, _, _, model_dir = parity
    args = [*_cli_common(model_dir, tmp_path / "g"), "data.source=gsm8k", "data.n_train=8", "data.n_test=4"]
    assert main(["train", *args, "train.steps=2"]) == 0
    doc = read_results(tmp_path / "g")
    assert doc["data"]["name"] == "gsm8k:test.jsonl" and doc["rows"][0]["accuracy_curve"][-1][0] == 2
    assert main(["eval", *_cli_common(model_dir, tmp_path / "e"), "eval.tasks=[gsm8k,math500,aime24]",
                 "eval.n_per_task=4"]) == 0
    metrics = read_results(tmp_path / "e")["rows"][0]["metrics"]
    assert set(metrics) == {f"{t}_{m}" for t in ("gsm8k", "math500", "aime24") for m in ("accuracy", "boxed_rate")}
    assert metrics["gsm8k_boxed_rate"] > 0.5  # the format is learnt even where the answers are not


def test_cli_stops_cleanly_when_nothing_is_on_the_frontier(parity, tmp_path, capsys):
    from sage.cli import main

    _, _, _, model_dir = parity
    unsolvable = tmp_path / "u.jsonl"
    unsolvable.write_text("".join(json.dumps({"question": str(n), "answer": "123456"}) + "\n" for n in range(10, 40)))
    args = [*_cli_common(model_dir, tmp_path / "u"), "data.source=jsonl", f"data.path={unsolvable}",
            "data.n_train=20", "data.n_test=10", "train.steps=2"]
    assert main(["train", *args]) == 3
    assert "no frontier problem at step 0: 0 of 20 probed problems are always solved and 20 never solved" in (
        capsys.readouterr().err)


def test_relative_filters_fire_on_a_real_run(parity):
    """With the replication's relative thresholds both filters flag candidates on a real (tiny) run, and the
    per-step log carries the filtered fractions, the tracked share and the margin scale."""
    from shared.generation import HFGenerator

    model, tok, data, _ = parity
    cfg = _cfg(data, "scoring")
    cfg.scoring.thresholds, cfg.scoring.candidates_per_step = "relative", 0  # every pair scored every step
    problems = load_problem_set(cfg.data)
    policy = copy.deepcopy(model)
    result = train_dpo(cfg, policy, tok, HFGenerator(policy, tok), problems, progress=False)
    logs = result.logs
    assert all({"unstable_filtered", "trivial_filtered", "tracked_fraction", "margin_scale"} <= set(e) for e in logs)
    assert logs[0]["margin_scale"] == 0.0  # policy == reference at step 1: every margin is 0
    assert max(e["unstable_filtered"] for e in logs) > 0 and max(e["trivial_filtered"] for e in logs) > 0
    assert result.unstable_filtered > 0 and result.trivial_filtered > 0
    assert logs[-1]["tracked_fraction"] == 1.0  # from step 2 on every pair has >= min_obs evaluations


def test_batches_topped_up_with_filtered_pairs_are_counted(parity):
    """trivial_weight 1.0 flags every candidate (sigmoid(-mu) < 1 always): no pair passes the filters, so every
    batch of 4 is filled entirely with dropped pairs, and the run says so."""
    from shared.generation import HFGenerator

    model, tok, data, _ = parity
    problems = load_problem_set(_cfg(data, "scoring").data)
    cfg = _cfg(data, "scoring")
    cfg.scoring.trivial_weight = 1.0
    policy = copy.deepcopy(model)
    result = train_dpo(cfg, policy, tok, HFGenerator(policy, tok), problems, progress=False)
    assert [e["filled"] for e in result.logs] == [4] * 6
    assert result.metrics()["topped_up_batches"] == 6 and result.metrics()["filled_pair_share"] == 1.0
    # the spec's thresholds on the same run: margins ~0 flag nothing, nothing is put back
    cfg.scoring.trivial_weight = 0.2
    policy = copy.deepcopy(model)
    result = train_dpo(cfg, policy, tok, HFGenerator(policy, tok), problems, progress=False)
    filled = [e["filled"] for e in result.logs]
    assert result.metrics()["topped_up_batches"] == sum(f > 0 for f in filled)
    assert result.metrics()["filled_pair_share"] == sum(filled) / 24
