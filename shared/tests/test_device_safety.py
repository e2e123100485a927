"""Device and memory safety of the RL engine, checked on a CPU box.

- the chunked selective log-softmax and entropy equal the full float32 computations (values and gradients, 1e-6)
  and keep no [N, V] float32 copy for backward;
- the loss functions run on the `meta` device, and every advantage estimator and loss runs under
  `shared.devicecheck.simulated_device`, which refuses a CPU tensor meeting a device tensor as CUDA does (the
  checker is shown to catch the bug these functions had: a group statistic made without `device=`);
- temperature 0 scores greedily (T = 1) instead of dividing by zero; `check_rl_settings` refuses temperature, batch
  and dtype settings that cannot run; the trainer refuses a float16 policy; the autocast decision table.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from shared.devicecheck import DeviceMixError, simulated_device
from shared.rl.advantages import ADVANTAGES, compute_advantages
from shared.rl.losses import (
    aggregate,
    dpo_loss,
    entropy_from_logits,
    kl_penalty,
    policy_loss,
    scoring_temperature,
    selective_log_softmax,
    token_logprobs,
    value_loss,
)
from shared.rl.settings import RLConfig, check_rl_settings


def _full_logprobs(logits, index, t=1.0):
    return torch.gather(F.log_softmax(logits.double() / t, -1), -1, index[..., None]).squeeze(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.3])
@pytest.mark.parametrize("chunk_bytes", [None, 4 * 50 * 3])  # default (one chunk here) and 3 positions per chunk
def test_selective_log_softmax_equals_the_full_one(temperature, chunk_bytes):
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(3, 7, 50, generator=g) * 2).requires_grad_(True)
    index = torch.randint(0, 50, (3, 7), generator=g)
    ours = selective_log_softmax(logits, index, temperature, chunk_bytes=chunk_bytes)
    ref_logits = logits.detach().double().requires_grad_(True)
    ref = _full_logprobs(ref_logits, index, temperature)
    assert ours.dtype == torch.float32 and ours.shape == (3, 7)
    # 1e-6, relative to the value (float32 resolves about 1e-6 at a logprob of -10)
    assert torch.allclose(ours.double(), ref, atol=1e-6, rtol=1e-6)
    weights = torch.randn(3, 7, generator=g)
    (ours * weights).sum().backward()
    (ref * weights.double()).sum().backward()
    assert torch.allclose(logits.grad.double(), ref_logits.grad, atol=1e-6, rtol=1e-6)


def test_selective_log_softmax_is_as_exact_as_the_full_float32_one_at_a_real_vocabulary():
    g = torch.Generator().manual_seed(4)
    vocab = 32_000
    logits = torch.randn(2, 8, vocab, generator=g) * 2
    index = torch.randint(0, vocab, (2, 8), generator=g)
    exact = _full_logprobs(logits, index)
    ours = selective_log_softmax(logits, index, chunk_bytes=4 * vocab * 3)
    full32 = torch.gather(F.log_softmax(logits, -1), -1, index[..., None]).squeeze(-1)
    ulp = torch.finfo(torch.float32).eps * exact.abs().max()
    assert (ours.double() - exact).abs().max() <= (full32.double() - exact).abs().max() + ulp
    assert (ours - full32).abs().max() < 1e-5


def test_selective_log_softmax_gradcheck_in_float64():
    logits = torch.randn(5, 9, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (5,))
    # float64 input: the function computes in float32, so compare its gradient with the analytic one by hand
    lp = selective_log_softmax(logits, index, 0.5, chunk_bytes=4 * 9 * 2)
    lp.sum().backward()
    p = F.softmax(logits.detach() / 0.5, -1)
    expected = (F.one_hot(index, 9).double() - p) / 0.5
    assert torch.allclose(logits.grad, expected, atol=1e-5)


def test_bf16_logits_are_scored_in_float32():
    logits = torch.randn(4, 6, 64).to(torch.bfloat16)
    index = torch.randint(0, 64, (4, 6))
    ours = selective_log_softmax(logits, index)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours.double(), _full_logprobs(logits.float(), index), atol=1e-6, rtol=0)


def test_entropy_equals_the_full_one_with_masked_logits():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 30, generator=g) * 3
    logits[0, 0, :10] = float("-inf")  # a top-k/top-p filtered row: exp(-inf) * -inf must count as 0
    logits.requires_grad_(True)
    ours = entropy_from_logits(logits, chunk_bytes=4 * 30 * 2)
    ref_logits = logits.detach().double().requires_grad_(True)
    logp = F.log_softmax(ref_logits, -1)
    ref = -(logp.exp() * logp).nan_to_num(0.0).sum(-1)
    assert torch.allclose(ours.double(), ref, atol=1e-6, rtol=0)
    w = torch.randn(2, 5, generator=g)
    (ours * w).sum().backward()
    (ref * w.double()).sum().backward()
    clean = torch.isfinite(logits.detach()).all(-1)  # autograd of the reference gives nan on the masked row
    assert torch.allclose(logits.grad.double()[clean], ref_logits.grad[clean], atol=1e-6, rtol=0)
    row, keep = logits.detach()[0, 0].double(), torch.isfinite(logits.detach()[0, 0])
    p = torch.softmax(row[keep], -1)
    h = -(p * p.log()).sum()
    by_hand = -p * (p.log() + h) * w[0, 0].double()  # dH/dz = -p (log p + H)
    assert torch.allclose(logits.grad[0, 0][keep].double(), by_hand, atol=1e-6)
    assert torch.all(logits.grad[0, 0][~keep] == 0)


def _saved_bytes(fn) -> int:
    """Bytes autograd keeps for backward while `fn()` runs (tensors counted once by storage)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_selective_log_softmax_keeps_no_float32_vocabulary_copy_for_backward():
    n, vocab = 64, 4096
    logits = torch.randn(n, vocab).to(torch.bfloat16).requires_grad_(True)
    index = torch.randint(0, vocab, (n,))
    ours = _saved_bytes(lambda: selective_log_softmax(logits, index).sum())
    full = _saved_bytes(lambda: torch.gather(F.log_softmax(logits.float(), -1), -1, index[:, None]).sum())
    # ours: the bf16 logits (already held by the model's output) + index + one float per position
    assert ours <= logits.numel() * 2 + n * 8 + n * 4
    assert full >= n * vocab * 4  # the old path kept a float32 [N, V] log-softmax
    entropy = _saved_bytes(lambda: entropy_from_logits(logits).sum())
    assert entropy <= logits.numel() * 2 + n * 4


def test_a_slice_of_the_models_logits_is_not_copied():
    """The trainer scores out.logits[:, -(r + 1):-1] (not contiguous): nothing beyond the logits' own storage, the
    index and one float per position is kept, and values equal the full computation."""
    base = torch.randn(3, 9, 512).to(torch.bfloat16).requires_grad_(True)
    index = torch.randint(0, 512, (3, 8))
    sliced = lambda: base[:, :-1]  # noqa: E731 - a fresh view each call
    assert not sliced().is_contiguous()
    saved = _saved_bytes(lambda: selective_log_softmax(sliced(), index, chunk_bytes=4 * 512 * 3).sum())
    assert saved <= base.numel() * 2 + index.numel() * 8 + index.numel() * 4
    ours = selective_log_softmax(sliced(), index, 0.9, chunk_bytes=4 * 512 * 3)
    assert torch.allclose(ours.double(), _full_logprobs(sliced().float(), index, 0.9), atol=1e-6, rtol=1e-6)
    ours.sum().backward()
    assert base.grad.shape == base.shape and torch.all(base.grad[:, -1] == 0)


def test_temperature_zero_scores_greedily_and_negative_is_refused():
    logits = torch.randn(2, 3, 11)
    index = torch.randint(0, 11, (2, 3))
    assert torch.equal(token_logprobs(logits, index, 0.0), token_logprobs(logits, index, 1.0))
    assert torch.isfinite(token_logprobs(logits, index, 0.0)).all()
    assert scoring_temperature(0) == 1.0 and scoring_temperature(0.6) == 0.6
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        token_logprobs(logits, index, -0.5)
    with pytest.raises(ValueError, match="index must be"):
        selective_log_softmax(logits, index[:, :2])


def test_loss_functions_run_on_the_meta_device():
    meta = torch.device("meta")
    logits = torch.empty(2, 5, 151_936, device=meta, dtype=torch.bfloat16)  # a Qwen2.5 vocabulary, no memory
    index = torch.empty(2, 5, dtype=torch.long, device=meta)
    lp = selective_log_softmax(logits, index)
    ent = entropy_from_logits(logits)
    mask = torch.empty(2, 5, device=meta)
    outs = [lp, ent, kl_penalty(lp, lp, "k3"), kl_penalty(lp, lp, "k2"), aggregate(lp, mask, "seq-mean-token-mean"),
            aggregate(lp, mask, "seq-mean-token-sum-norm"), value_loss(lp, lp, lp, mask)]
    assert all(o.device == meta for o in outs)
    assert lp.shape == ent.shape == (2, 5) and lp.dtype == torch.float32


def _batch():
    rewards = torch.zeros(4, 6)
    rewards[torch.arange(4), torch.tensor([3, 4, 2, 5])] = torch.tensor([1.0, 0.0, 1.0, 0.5])
    mask = torch.ones(4, 6)
    mask[:, 1] = 0  # an observation token inside every row
    return rewards, mask, torch.tensor([0, 0, 1, 1]), torch.randn(4, 6, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("name", sorted(ADVANTAGES))
def test_every_advantage_estimator_stays_on_its_inputs_device(name):
    rewards, mask, groups, values = _batch()
    expected = compute_advantages(name, rewards, mask, groups, values=values)
    with simulated_device() as dev:
        adv, ret = compute_advantages(name, dev.put(rewards), dev.put(mask), groups, values=dev.put(values))
        assert dev.on_device(adv) and dev.on_device(ret)
        assert dev.calls > 5
    assert torch.equal(adv.as_subclass(torch.Tensor), expected[0])
    assert torch.equal(ret.as_subclass(torch.Tensor), expected[1])


def test_losses_stay_on_their_inputs_device():
    g = torch.Generator().manual_seed(3)
    lp, old, adv = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    mask = torch.ones(3, 4)
    with simulated_device() as dev:
        loss, stats = policy_loss(dev.put(lp), dev.put(old), dev.put(adv), dev.put(mask), 0.2, 0.28, 3.0)
        assert dev.on_device(loss) and set(stats) == {"clip_frac", "approx_kl", "ratio_mean"}
        d, s = dpo_loss(*(dev.put(torch.randn(3, generator=g)) for _ in range(4)))
        assert dev.on_device(d) and isinstance(s["reward_accuracy"], float)
        logits = dev.put(torch.randn(3, 4, 9, generator=g))
        assert dev.on_device(selective_log_softmax(logits, dev.put(torch.randint(0, 9, (3, 4), generator=g))))


def test_the_device_checker_catches_a_tensor_made_without_device():
    def buggy_group_mean(scores, inv):  # the shape of the bug the advantage functions had before issue 24
        count = torch.zeros(2, dtype=scores.dtype).scatter_add_(0, inv, torch.ones_like(scores))
        return count

    scores, inv = torch.ones(4), torch.tensor([0, 0, 1, 1])
    assert torch.equal(buggy_group_mean(scores, inv), torch.tensor([2.0, 2.0]))  # fine on one device
    with simulated_device() as dev, pytest.raises(DeviceMixError, match="scatter_add_"):
        buggy_group_mean(dev.put(scores), dev.put(inv))
    with simulated_device() as dev:  # scalars and 0-dim CPU tensors mix freely, as on CUDA; .cpu() leaves
        x = dev.put(torch.ones(3))
        assert dev.on_device(x * 2.0 + torch.tensor(1.0))
        assert not dev.on_device(x.cpu()) and not dev.on_device(x.to("cpu"))
        assert dev.on_device(torch.zeros(3, device=x.device) + x)


def _cfg(**kw):
    return RLConfig(**kw)


@pytest.mark.parametrize(("kw", "world", "message"), [
    ({"temperature": -1.0}, 1, "temperature must be >= 0"),
    ({"temperature": 0.0, "generations": 4}, 1, "identical"),
    ({"top_p": 0.0}, 1, "top_p"),
    ({"gen_batch_size": 0}, 1, "gen_batch_size"),
    ({"prompts_per_step": 2, "generations": 2, "mini_batches": 3, "grad_accum": 2}, 1, "6 micro-batches"),
    ({"prompts_per_step": 2, "generations": 2, "mini_batches": 2, "grad_accum": 2}, 2, "at most 2 rollouts"),
    ({"logprob_gap_warn": -1.0}, 1, "logprob_gap_warn"),
])
def test_check_rl_settings_refuses(kw, world, message):
    with pytest.raises(ValueError, match=message):
        check_rl_settings(_cfg(**kw), world)


def test_check_rl_settings_accepts_greedy_single_generation_and_refuses_float16_dtype():
    check_rl_settings(_cfg(temperature=0.0, generations=1))
    check_rl_settings(_cfg(prompts_per_step=2, generations=3, mini_batches=2, grad_accum=2))  # uneven is fine
    cfg = _cfg()
    cfg.dtype = "float16"  # the RLConfig dtype key (parent CLI), read when present
    with pytest.raises(ValueError, match="float16"):
        check_rl_settings(cfg)


def test_trainer_refuses_a_float16_policy_and_temperature_settings(tiny_qwen2_dir, tmp_path):
    from shared.rl.trainer import RLTrainer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir)
    records = [{"id": "a", "prompt": "1+1="}]
    cfg = RLConfig(output_dir=str(tmp_path / "a"), tensorboard=False, progress=False)
    half = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir, dtype=torch.float16)
    with pytest.raises(ValueError, match="float16"):
        RLTrainer(cfg, half, tok, records, lambda t, r: [0.0] * len(t))
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2_dir)
    with pytest.raises(ValueError, match="identical"):
        RLTrainer(RLConfig(output_dir=str(tmp_path / "b"), temperature=0.0, tensorboard=False), model, tok, records,
                  lambda t, r: [0.0] * len(t))
    trainer = RLTrainer(cfg, model, tok, records, lambda t, r: [0.0] * len(t))
    assert trainer.autocast is None  # CPU: no autocast


def test_autocast_decision(monkeypatch):
    from shared.rl.health import autocast_dtype

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)

    def decide(device="cuda", mixed="no", dtype=torch.float32, flag=True):
        return autocast_dtype(flag, torch.device(device), mixed, dtype)

    assert decide() == torch.bfloat16
    assert decide(device="cpu") is None
    assert decide(mixed="bf16") is None  # accelerate already autocasts (accelerate launch with mixed_precision)
    assert decide(dtype=torch.bfloat16) is None  # bf16 weights need no autocast
    assert decide(flag=False) is None
