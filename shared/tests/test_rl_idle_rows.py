"""Rows whose advantages are all 0 skip the backward (`RLConfig.skip_idle_rows`) without changing the update.

Today's code path (`skip_idle_rows=False`: every row in the graph) is the reference. When every row of a step is
idle, weights, optimizer state and logged stats are bit-identical (the skipped backward left exact zeros; Adam
still steps on its momentum). When some rows are idle the live rows' graph is a smaller batch, so gradients
agree up to float summation order (compared before the optimizer step: Adam turns the rounding noise of a
gradient that is 0 in exact arithmetic, such as a key projection's bias, into steps of size lr, in either path). With an entropy bonus or a KL loss nothing is skipped."""

import pytest
import torch
from shared.rl.trainer import RLConfig, RLTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer


def _records():
    return [{"id": f"r{i}", "prompt": f"Q: {i}+1=?\nA: ", "answer": str(i + 1)} for i in range(10)]


def _trainer(model_dir, out, reward_fn, **kw):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    cfg = RLConfig(output_dir=str(out), steps=3, prompts_per_step=2, generations=4, max_new_tokens=8, lr=1e-2,
                   checkpoint_every=0, progress=False, threads=1, tensorboard=False, **kw)
    tr = RLTrainer(cfg, model, tok, _records(), reward_fn)
    tr.calls = []  # (rows, grad enabled) of every training forward
    inner = tr._micro_loss

    def spy(trajs, *a, **k):
        tr.calls.append((len(trajs), torch.is_grad_enabled()))
        return inner(trajs, *a, **k)

    tr._micro_loss = spy
    return tr


def _graded(t):
    return len(t.text) / 8 + sum(c.isdigit() for c in t.text)


def _run(model_dir, out, reward_fn, steps, **kw):
    tr = _trainer(model_dir, out, reward_fn, **kw)
    hist = [tr.train_step() for _ in range(steps)]
    params = {k: v.detach().clone() for k, v in tr.policy.state_dict().items()}
    return tr, hist, params


STATS = ("loss", "clip_frac", "approx_kl", "ratio_mean", "entropy", "logprob_gap_mean", "logprob_gap_max", "grad_norm")


def test_all_idle_step_is_bit_identical_and_skips_the_backward(tiny_qwen2_dir, tmp_path):
    def reward(trajs, recs):  # step 1 graded (a real gradient, Adam momentum), step 2 constant: every row idle
        return [_graded(t) if t.group_id < 2 else 1.0 for t in trajs]

    ref, ref_hist, ref_params = _run(tiny_qwen2_dir, tmp_path / "ref", reward, 2, skip_idle_rows=False)
    new, new_hist, new_params = _run(tiny_qwen2_dir, tmp_path / "new", reward, 2, skip_idle_rows=True)
    assert new.calls[-1] == (8, False) and ref.calls[-1] == (8, True)  # step 2: one no-grad forward, no graph
    for k in ref_params:
        assert torch.equal(ref_params[k], new_params[k]), k
    ref_opt, new_opt = ref.optimizer.state_dict()["state"], new.optimizer.state_dict()["state"]
    for i in ref_opt:
        for key in ref_opt[i]:
            assert torch.equal(ref_opt[i][key], new_opt[i][key]), (i, key)
    for a, b in zip(ref_hist, new_hist):
        for key in STATS:
            assert a[key] == b[key], key
    # the idle step still moved the weights (Adam's momentum from step 1), as it did before
    tr = _trainer(tiny_qwen2_dir, tmp_path / "one", reward)
    tr.train_step()
    after_one = {k: v.detach().clone() for k, v in tr.policy.state_dict().items()}
    assert any(not torch.equal(after_one[k], new_params[k]) for k in after_one)


@pytest.mark.parametrize("kw", [{}, {"mini_batches": 2, "ppo_epochs": 2, "grad_accum": 2, "clip_high": 0.28}])
def test_partly_idle_step_matches_the_full_backward(tiny_qwen2_dir, tmp_path, kw):
    def reward(trajs, recs):  # group 1 constant (idle rows), group 0 graded
        return [_graded(t) if t.group_id % 2 == 0 else 0.5 for t in trajs]

    runs = []
    for name, skip in (("ref", False), ("new", True)):
        tr = _trainer(tiny_qwen2_dir, tmp_path / name, reward, skip_idle_rows=skip, **kw)
        grads, inner = [], tr.optimizer.step

        def step(*a, tr=tr, grads=grads, inner=inner, **k):  # the gradients each optimizer step applies
            grads.append({n: p.grad.detach().clone() for n, p in tr.policy.named_parameters()})
            return inner(*a, **k)

        tr.optimizer.step = step
        runs.append((tr, tr.train_step(), grads))
    (ref, ref_stats, ref_grads), (new, new_stats, new_grads) = runs
    assert all(grad for _, grad in ref.calls)
    assert any(not grad for _, grad in new.calls) and any(grad for _, grad in new.calls)
    assert sum(n for n, _ in ref.calls) == sum(n for n, _ in new.calls)  # every row still gets its forward
    assert len(ref_grads) == len(new_grads) == kw.get("mini_batches", 1) * kw.get("ppo_epochs", 1)
    for a, b in zip(ref_grads, new_grads):
        scale = max(float(g.abs().max()) for g in a.values())
        assert scale > 0, "the reference had no gradient"
        for n in a:  # equal up to float summation order (the live rows form a smaller batch)
            torch.testing.assert_close(b[n], a[n], rtol=1e-4, atol=1e-5 * scale, msg=n)
    for key in STATS:
        assert new_stats[key] == pytest.approx(ref_stats[key], rel=1e-5, abs=1e-7), key


@pytest.mark.parametrize("kw", [{"entropy_coef": 0.01}, {"beta": 0.1}])
def test_nothing_is_skipped_when_idle_rows_still_have_a_gradient(tiny_qwen2_dir, tmp_path, kw):
    tr = _trainer(tiny_qwen2_dir, tmp_path / "t", lambda trajs, recs: [1.0] * len(trajs), skip_idle_rows=True, **kw)
    tr.train_step()
    assert tr.calls == [(8, True)]


def test_skipping_is_off_by_default(tiny_qwen2_dir, tmp_path):
    """Recorded replications stay bit for bit: without the option every row keeps its place in the backward."""
    tr = _trainer(tiny_qwen2_dir, tmp_path / "t", lambda trajs, recs: [1.0] * len(trajs))
    tr.train_step()
    assert tr.calls == [(8, True)]
