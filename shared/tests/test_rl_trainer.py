"""RLTrainer on the tiny Qwen2: a step changes the weights, checkpoints are atomic, and a run killed after a
checkpoint and resumed ends with exactly the parameters of an uninterrupted run."""

import json

import pytest
import torch
from shared.rl.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from shared.rl.trainer import RLConfig, RLTrainer
from transformers import AutoModelForCausalLM, AutoTokenizer


def _records():
    return [{"id": f"r{i}", "prompt": f"Q: {i}+1=?\nA: ", "answer": str(i + 1)} for i in range(10)]


def _digit_reward(trajs, recs):
    # graded reward (share of digits in the completion) so every group has variance and gradients are non-zero
    return [sum(c.isdigit() for c in t.text) / max(1, len(t.text)) for t in trajs]


def _trainer(model_dir, out, **kw):
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    kw = {"tensorboard": False, "steps": 4, "checkpoint_every": 2, "progress": False, **kw}
    cfg = RLConfig(output_dir=str(out), prompts_per_step=2, generations=3, max_new_tokens=6, lr=1e-2, threads=1, **kw)
    return RLTrainer(cfg, model, tok, _records(), _digit_reward)


def _params(trainer):
    return {k: v.detach().clone() for k, v in trainer.policy.state_dict().items()}


def test_killed_and_resumed_run_matches_uninterrupted(tiny_qwen2_dir, tmp_path):
    full = _trainer(tiny_qwen2_dir, tmp_path / "full", mini_batches=2, ppo_epochs=2, grad_accum=2,
                    clip_high=0.28, dynamic_sampling=True)
    start = _params(full)
    hist_full = full.train()
    end_full = _params(full)
    assert any(not torch.equal(start[k], end_full[k]) for k in start), "training did not change the weights"

    killed = _trainer(tiny_qwen2_dir, tmp_path / "resumed", mini_batches=2, ppo_epochs=2, grad_accum=2,
                      clip_high=0.28, dynamic_sampling=True)
    killed.train(stop_after=3)  # dies after step 3; the last checkpoint is step 2
    assert latest_checkpoint(tmp_path / "resumed").name == "step_000002"
    resumed = _trainer(tiny_qwen2_dir, tmp_path / "resumed", mini_batches=2, ppo_epochs=2, grad_accum=2,
                       clip_high=0.28, dynamic_sampling=True)
    hist = resumed.train(resume=True)
    end = _params(resumed)
    for k in end_full:
        assert torch.equal(end_full[k], end[k]), k
    assert [h["reward"] for h in hist] == [h["reward"] for h in hist_full]
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [1, 2, 3, 4]  # step 3 of the killed run was dropped
    # keep=2 prunes older checkpoints; no .tmp directory is left behind
    names = sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").iterdir())
    assert names == ["latest", "step_000002", "step_000004"]


def test_metrics_and_kl_reference(tiny_qwen2_dir, tmp_path):
    tr = _trainer(tiny_qwen2_dir, tmp_path / "kl", beta=0.1, kl_estimator="k3", entropy_coef=0.01)
    tr.cfg.steps = 2
    hist = tr.train()
    for key in ("reward", "kl", "entropy", "clip_frac", "response_len", "tokens_per_s", "grad_norm", "loss", "lr"):
        assert key in hist[-1], key
    assert hist[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # the policy equals the reference before any update
    assert hist[1]["kl"] > 0.0


def test_bad_inputs(tiny_qwen2_dir, tmp_path):
    with pytest.raises(ValueError, match="returned 1 rewards for 6 trajectories"):
        tr = _trainer(tiny_qwen2_dir, tmp_path / "bad")
        tr.reward_fn = lambda trajs, recs: [0.0]
        tr.train_step()
    with pytest.raises(ValueError, match="mini_batches"):
        _trainer(tiny_qwen2_dir, tmp_path / "bad2", mini_batches=0)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        load_checkpoint(tmp_path, torch.nn.Linear(1, 1))


def test_multi_turn_rollout_fn_and_kl_in_reward(tiny_qwen2_dir, tmp_path):
    from shared.rollout.agent_loop import AgentLoop
    from shared.rollout.envs import SearchEnv

    class Docs:
        def retrieve(self, queries, topk=3):
            return [[{"id": "d", "contents": "T\nbody"}] for _ in queries]

    # the policy equals the reference at step 1, so the KL term is 0 here: its values are checked in
    # test_kl_in_reward_subtracts_beta_k1_of_each_token; this test runs the combination with a multi-turn rollout_fn
    tr = _trainer(tiny_qwen2_dir, tmp_path / "mt", beta=0.05, kl_in_reward=True, advantage="rloo")
    loop = AgentLoop(tr.generator, lambda rec: SearchEnv(Docs()), max_turns=2, max_new_tokens_per_turn=5)
    seen = []

    def rollout(records, n, group_ids):
        trajs = loop.run(records, n=n, group_ids=group_ids)
        seen.extend(trajs)
        return trajs

    tr.rollout_fn = rollout
    before = _params(tr)
    stats = tr.train_step()
    assert len(seen) == 6 and all(t.group_id in (0, 1) for t in seen)
    # a random policy writes no valid action: each episode is turn, corrective observation (mask 0), turn
    for t in seen:
        assert len(t.turn_spans) == 2 and 0 in t.loss_mask and t.finish_reason in ("max_turns", "eos", "length")
    assert stats["groups_kept"] == 2
    assert any(not torch.equal(before[k], v) for k, v in _params(tr).items())


def test_kl_in_reward_subtracts_beta_k1_of_each_token(tiny_qwen2_dir, tmp_path):
    """kl_in_reward: the estimator sees token rewards r_t - beta * (log pi - log ref)_t. At step 1 the policy equals
    the reference and that term is 0, so the policy is moved first; the log-probs are recomputed here with plain
    forward passes, one trajectory at a time (no padding, no trainer code)."""
    from shared.rl.advantages import compute_advantages
    from shared.rollout.trajectory import group_index, pad_trajectories

    tr = _trainer(tiny_qwen2_dir, tmp_path / "klr", beta=0.5, kl_in_reward=True, advantage="reinforce_pp")
    torch.manual_seed(1)
    with torch.no_grad():
        for p in tr.policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    trajs, _ = tr.collect()
    got = tr.advantages(trajs)

    def logprobs(model, t):
        ids = torch.tensor([t.prompt_ids + t.response_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
        p = len(t.prompt_ids)
        return torch.stack([logp[p + k - 1, tok] for k, tok in enumerate(t.response_ids)])

    batch = pad_trajectories(trajs, tr.pad_id)
    rewards, mask = batch["token_rewards"].clone(), batch["response_mask"]
    for i, t in enumerate(trajs):
        k1 = logprobs(tr.policy, t) - logprobs(tr.ref_model, t)
        assert float(k1.abs().max()) > 1e-3  # the policy differs from the reference on these tokens
        rewards[i, : len(k1)] -= 0.5 * k1
    want, _ = compute_advantages("reinforce_pp", rewards, mask, group_index(trajs))
    without, _ = compute_advantages("reinforce_pp", batch["token_rewards"], mask, group_index(trajs))
    for i, t in enumerate(trajs):
        n = len(t.response_ids)
        assert got[i].tolist() == pytest.approx(want[i, :n].tolist(), abs=1e-4)
        assert got[i].tolist() != pytest.approx(without[i, :n].tolist(), abs=1e-3)  # the KL term did change them


def test_tensorboard_events_hold_the_logged_metrics(tiny_qwen2_dir, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tr = _trainer(tiny_qwen2_dir, tmp_path / "tb", tensorboard=True)
    tr.cfg.steps = 2
    hist = tr.train()
    events = list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    rewards = acc.Scalars("reward")
    assert [e.step for e in rewards] == [1, 2]
    assert [e.value for e in rewards] == pytest.approx([h["reward"] for h in hist], abs=1e-6)
    assert "loss" in acc.Tags()["scalars"] and "entropy" in acc.Tags()["scalars"]


def test_wandb_missing_is_a_warning_not_a_crash(tmp_path, monkeypatch):
    import sys

    from shared.rl.data import MetricsLogger

    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    with pytest.warns(UserWarning, match="wandb is not installed"):
        log = MetricsLogger(tmp_path, tensorboard=False, wandb_project="rl-tests")
    log.log(1, {"reward": 0.5})
    log.close()
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 1, "reward": 0.5}


def test_gpu_only_engines_fail_clearly_on_cpu(tiny_qwen2_dir, tmp_path, monkeypatch):
    from shared.rl.cli import GRPOJob, run_grpo_job
    from shared.rl.launch import LaunchError, check_launch

    check_launch("hf", cuda=False)  # the plain CPU path passes
    with pytest.raises(LaunchError, match="generator_backend=vllm needs a CUDA GPU"):
        check_launch("vllm", cuda=False)
    with pytest.raises(ValueError, match="'sglang' is unknown"):
        check_launch("sglang", cuda=False)
    job = GRPOJob()
    job.rl.generator_backend, job.policy.path = "vllm", str(tiny_qwen2_dir)
    if not torch.cuda.is_available():
        with pytest.raises(LaunchError, match="vllm"):
            run_grpo_job(job)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(LaunchError, match="DeepSpeed ZeRO .* needs CUDA GPUs"):
        check_launch("hf", cuda=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(LaunchError, match="FSDP .* needs CUDA GPUs.*cpu_2proc.yaml"):
        check_launch("hf", cuda=False)
    check_launch("hf", cuda=True)  # on GPUs the FSDP launch goes ahead
    if not torch.cuda.is_available():
        with pytest.raises(LaunchError, match="FSDP"):  # the trainer checks before building its Accelerator
            _trainer(tiny_qwen2_dir, tmp_path / "fsdp")


def test_lr_factor_warmup_then_schedules():
    from shared.rl.trainer import lr_factor

    assert [lr_factor(s, 2, 6) for s in (0, 1)] == [0.5, 1.0]  # warm-up
    # cosine over the 4 decay steps: 1 after warm-up, (1 + cos(pi/4))/2 a quarter in, 1/2 halfway, 0 at the end
    assert lr_factor(2, 2, 6) == 1.0 and lr_factor(3, 2, 6) == pytest.approx(0.8535534)
    assert lr_factor(4, 2, 6) == pytest.approx(0.5) and abs(lr_factor(6, 2, 6)) < 1e-12
    assert lr_factor(3, 2, 6, "linear") == pytest.approx(0.75) and lr_factor(5, 0, 6, "constant") == 1.0
    with pytest.raises(ValueError, match="unknown lr_schedule"):
        lr_factor(0, 0, 6, "step")


def test_no_progress_env_silences_the_rl_bar(tiny_qwen2_dir, tmp_path, monkeypatch, capsys):
    # the parent CLI's --no-progress sets TQDM_DISABLE; recipes with many RL stages (huijin) have no single
    # progress key to turn off, so the bar must read it even when the stage's config says progress=True
    _trainer(tiny_qwen2_dir, tmp_path / "a", steps=1, checkpoint_every=0, progress=True).train()
    assert "rl:" in capsys.readouterr().err
    monkeypatch.setenv("TQDM_DISABLE", "1")
    _trainer(tiny_qwen2_dir, tmp_path / "b", steps=1, checkpoint_every=0, progress=True).train()
    assert "rl:" not in capsys.readouterr().err
