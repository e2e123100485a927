"""PPO with GAE in RLTrainer: the value head's targets match a hand computation, its loss falls on a fixed reward,
and a killed-and-resumed run with the critic ends exactly where an uninterrupted one does."""

import pytest
import torch
from shared.rl.checkpoint import latest_checkpoint
from shared.rl.critic import CriticConfig, ValueHead, hidden_size_of
from shared.rl.trainer import RLConfig, RLTrainer
from shared.rollout.trajectory import Trajectory
from transformers import AutoModelForCausalLM, AutoTokenizer


def _records():
    return [{"id": f"r{i}", "prompt": f"Q: {i}+1=?\nA: ", "answer": str(i + 1)} for i in range(10)]


def _trainer(model_dir, out, reward_fn, **kw):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    base = dict(output_dir=str(out), steps=4, prompts_per_step=2, generations=3, max_new_tokens=6, lr=1e-3,
                checkpoint_every=2, progress=False, tensorboard=False, threads=1, advantage="gae")
    cfg = RLConfig(**{**base, **kw})
    return RLTrainer(cfg, model, tok, _records(), reward_fn)


def _digit_reward(trajs, recs):
    return [sum(c.isdigit() for c in t.text) / max(1, len(t.text)) for t in trajs]


def test_gae_targets_through_trainer_match_hand_computation(tiny_qwen2_dir, tmp_path):
    tr = _trainer(tiny_qwen2_dir, tmp_path, _digit_reward, adv_options={"gamma": 0.5, "lam": 0.5, "whiten": 0.0})
    a = Trajectory(prompt_ids=[5, 6], response_ids=[7, 8, 9], loss_mask=[1, 1, 1], reward=1.0, group_id=0)
    # the middle token is an observation (mask 0): the recursion skips it
    b = Trajectory(prompt_ids=[5], response_ids=[7, 8, 9], loss_mask=[1, 0, 1], reward=2.0, group_id=1)
    values = [torch.tensor([0.5, 0.2, 0.4]), torch.tensor([0.5, 9.0, 1.0])]
    tr._score_values = lambda trajs: values  # known V(s_t) in place of the head's
    advs, vals, rets = tr._advantages_and_targets([a, b])
    # gamma*lam = 0.25. a: d2 = 1 - .4 = .6; d1 = .5*.4 - .2 = 0 -> .25*.6 = .15; d0 = .5*.2 - .5 = -.4 -> -.3625
    torch.testing.assert_close(advs[0], torch.tensor([-0.3625, 0.15, 0.6]))
    torch.testing.assert_close(rets[0], torch.tensor([0.1375, 0.35, 1.0]))  # A + V
    # b: d2 = 2 - 1 = 1; token 1 skipped; d0 = .5*1 - .5 = 0 -> .25*1 = .25
    torch.testing.assert_close(advs[1], torch.tensor([0.25, 0.0, 1.0]))
    torch.testing.assert_close(rets[1], torch.tensor([0.75, 0.0, 2.0]))
    torch.testing.assert_close(vals[1], values[1])


def test_value_loss_falls_on_fixed_reward(tiny_qwen2_dir, tmp_path):
    tr = _trainer(tiny_qwen2_dir, tmp_path, lambda trajs, recs: [1.0] * len(trajs), steps=12, checkpoint_every=0,
                  lr=1e-5, critic=CriticConfig(lr=1e-3, coef=0.5, value_clip=None))
    hist = tr.train()
    losses = [h["value_loss"] for h in hist]
    # zero-initialised head: V = 0 against returns of 1 on every token, so the first loss is 0.5 * 1^2
    assert losses[0] == pytest.approx(0.5, abs=1e-6)
    print("value losses", [round(x, 4) for x in losses])
    assert max(losses[-3:]) < 0.25 * losses[0], losses
    assert hist[-1]["value_mean"] > 0.3


def test_killed_and_resumed_run_with_critic_matches_uninterrupted(tiny_qwen2_dir, tmp_path):
    kw = dict(mini_batches=2, ppo_epochs=2, adv_options={"gamma": 1.0, "lam": 0.95},
              critic=CriticConfig(lr=1e-2, coef=0.5, value_clip=0.2))
    full = _trainer(tiny_qwen2_dir, tmp_path / "full", _digit_reward, **kw)
    hist_full = full.train()
    assert float(full.value_head.weight.detach().abs().sum()) > 0, "value head did not train"
    killed = _trainer(tiny_qwen2_dir, tmp_path / "resumed", _digit_reward, **kw)
    killed.train(stop_after=3)  # the last checkpoint is step 2
    assert latest_checkpoint(tmp_path / "resumed").name == "step_000002"
    resumed = _trainer(tiny_qwen2_dir, tmp_path / "resumed", _digit_reward, **kw)
    hist = resumed.train(resume=True)
    for k, v in full.policy.state_dict().items():
        assert torch.equal(v, resumed.policy.state_dict()[k]), k
    assert torch.equal(full.value_head.weight, resumed.value_head.weight)
    assert torch.equal(full.value_head.bias, resumed.value_head.bias)
    assert [h["value_loss"] for h in hist] == [h["value_loss"] for h in hist_full]


def test_critic_bad_inputs(tiny_qwen2_dir, tmp_path):
    with pytest.raises(ValueError, match="critic.lr > 0 and critic.coef > 0"):
        _trainer(tiny_qwen2_dir, tmp_path / "c0", _digit_reward, critic=CriticConfig(coef=0.0))
    with pytest.raises(ValueError, match="no hidden_size"):
        hidden_size_of(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="hidden_size >= 1"):
        ValueHead(0)
    # a checkpoint written without a critic cannot resume a GAE run
    plain = _trainer(tiny_qwen2_dir, tmp_path / "plain", _digit_reward, advantage="grpo", steps=1, checkpoint_every=1)
    plain.train()
    gae = _trainer(tiny_qwen2_dir, tmp_path / "plain", _digit_reward, steps=2)
    with pytest.raises(ValueError, match="no value head state"):
        gae.resume()


def test_global_whitening_equals_batch_whitening(tiny_qwen2_dir, tmp_path):
    # the multi-process path of batch-whitened estimators (gae, reinforce_pp): unwhitened locally, then whitened
    # with all-reduced sums; on one process it must give masked_whiten's numbers
    from shared.rl.advantages import masked_whiten

    tr = _trainer(tiny_qwen2_dir, tmp_path, _digit_reward)
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    torch.testing.assert_close(tr._global_whiten(x, mask), masked_whiten(x, mask))
    # hand check: mean 19/5 = 3.8, unbiased var (7.84+3.24+0.64+0.04+27.04)/4 = 9.7
    assert float(tr._global_whiten(x, mask)[1, 2]) == pytest.approx((9 - 3.8) / 9.7**0.5, rel=1e-5)


@pytest.mark.parametrize("shared_trunk", [True, False])
def test_value_loss_reaches_the_backbone_only_with_a_shared_trunk(tiny_qwen2_dir, tmp_path, shared_trunk):
    tr = _trainer(tiny_qwen2_dir, tmp_path, _digit_reward, critic=CriticConfig(shared_trunk=shared_trunk))
    t = Trajectory(prompt_ids=[5, 6], response_ids=[7, 8, 9], loss_mask=[1, 1, 1], reward=1.0, group_id=0)
    with torch.no_grad():
        tr.value_head.weight.fill_(0.1)  # a zero head (its start) passes no gradient back to the hidden states
    zero = [torch.zeros(3)]  # zero advantages: the policy term has no gradient, only the value loss does
    loss, _ = tr._micro_loss([t], zero, None, None, {"tokens": 3.0, "seqs": 1.0}, [torch.zeros(3)],
                             [torch.ones(3)])
    loss.backward()
    head_grad = tr.value_head.weight.grad
    backbone = [p.grad for p in tr.policy.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert head_grad is not None and head_grad.abs().sum() > 0
    assert bool(backbone) == shared_trunk


def test_separate_critic_model_learns_alone_during_warmup(tiny_qwen2_dir, tmp_path):
    critic = CriticConfig(kind="model", model_path=str(tiny_qwen2_dir), lr=3e-3, value_clip=None, warmup_steps=6)
    tr = _trainer(tiny_qwen2_dir, tmp_path / "m", lambda trajs, recs: [1.0] * len(trajs), steps=8,
                  checkpoint_every=0, critic=critic)
    policy_ptrs = {p.data_ptr() for p in tr.policy.parameters()}
    assert not policy_ptrs & {p.data_ptr() for p in tr.value_head.parameters()}  # its own trunk, not the policy's
    start = {k: v.clone() for k, v in tr.policy.state_dict().items()}
    critic_start = {k: v.clone() for k, v in tr.value_head.state_dict().items()}
    hist = tr.train(stop_after=6)
    losses = [h["value_loss"] for h in hist]
    print("separate critic value losses", [round(x, 4) for x in losses])
    assert losses[0] == pytest.approx(0.5, abs=1e-6)  # zero head: V = 0 against returns of 1
    assert max(losses[-2:]) < 0.5 * losses[0], losses
    for k, v in tr.policy.state_dict().items():  # warm-up: the policy did not move at all
        assert torch.equal(v, start[k]), k
    assert not tr.optimizer.state and tr.scheduler.last_epoch == 0  # neither its optimizer nor its lr schedule ran
    assert any(not torch.equal(v, critic_start[k]) for k, v in tr.value_head.state_dict().items())
    tr.save()
    resumed = _trainer(tiny_qwen2_dir, tmp_path / "m", lambda trajs, recs: [1.0] * len(trajs), steps=8,
                       checkpoint_every=0, critic=critic)
    assert resumed.resume() and resumed.step == 6
    for k, v in tr.value_head.state_dict().items():
        assert torch.equal(v, resumed.value_head.state_dict()[k]), k
    tr.train()  # steps 7 and 8 are past the warm-up: now the policy learns too
    assert any(not torch.equal(v, start[k]) for k, v in tr.policy.state_dict().items())


def test_critic_kind_and_warmup_are_checked(tiny_qwen2_dir, tmp_path):
    with pytest.raises(ValueError, match="critic.kind must be one of"):
        _trainer(tiny_qwen2_dir, tmp_path / "k", _digit_reward, critic=CriticConfig(kind="twin"))
    with pytest.raises(ValueError, match="warmup_steps needs advantage 'gae'"):
        _trainer(tiny_qwen2_dir, tmp_path / "w", _digit_reward, advantage="grpo", critic=CriticConfig(warmup_steps=2))
