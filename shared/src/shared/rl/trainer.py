"""On-policy RL trainer: rollout -> reward -> advantage -> clipped policy-gradient update, on accelerate.

One training step draws `prompts_per_step` prompts (the same global prompts on every process; each process rolls
out its share), samples `generations` rollouts per prompt, scores them with `reward_fn`, optionally drops groups
whose rewards are all equal and refills them with fresh prompts (dynamic sampling, DAPO), turns rewards into
token-level advantages, and runs `ppo_epochs` x `mini_batches` optimizer steps of the clipped surrogate (with
gradient accumulation over `grad_accum` micro-batches, grad-norm clipping, optional KL to a frozen reference and an
entropy bonus). Losses are normalised by global token/sequence counts across processes and micro-batches, so
`accelerate launch --num_processes 2` computes the same update as one process on the same global batch.
After each step the new weights are pushed to the generator; checkpoints are written atomically every
`checkpoint_every` steps and `resume=True` continues exactly (same RNG, data position, optimizer state).
With `advantage: gae` the trainer also trains a critic (`shared.rl.critic`, settings in `critic`): a value head on
the policy's last hidden states (`kind: head`) or a separate critic LM (`kind: model`, own forward and lr); GAE
(gamma, lam from `adv_options`) gives advantages and returns, and `critic.coef` x the clipped value loss joins the
PPO loss; during `critic.warmup_steps` only the critic learns. Critic and optimizer are in the checkpoint's state.

Groups: GRPO/RLOO and dynamic sampling compare trajectories of one `Trajectory.group` (its `group_key`, else its
`group_id`); `group_id` links a trajectory to its record. Dynamic sampling keeps a group when the chosen signal
(`dynamic_sampling_signal`: "reward", the final reward, or "return", the sum of final, turn and token rewards)
varies in it; every step logs `groups_informative`, the share of groups where it varies.

External rollouts: `step_on(trajs, stats)` updates on trajectories collected (and scored) outside the trainer, e.g.
a joint rollout of two policies (`shared.rollout.driver`), with the step counter, history, logging and checkpoint
cadence of `train()`. `shared.rl.checkpoint.MultiPolicyCheckpoint` saves and resumes several trainers under one
step folder.

Device and memory (GPU runs): `check_rl_settings` refuses impossible settings before any work; every tensor is made
on its inputs' device; response logprobs and entropies are computed chunk by chunk over positions without a full
float32 log-softmax copy (`shared.rl.losses`), and the entropy only when its coefficient or `entropy_metric` asks;
on CUDA a float32 policy runs its forwards (training and the default HF generator's) under bf16 autocast
(`autocast`) unless accelerate already does mixed precision. Health: every step logs `logprob_gap_mean` and
`logprob_gap_max`, |log p_rollout - log p_trainer| over policy tokens (the generator's sampling logprobs against
the trained weights before the update), and warns when the mean exceeds `logprob_gap_warn`: a gap well above 0
means the rollouts did not come from the weights being trained (weight sync, dtype, temperature, template). Checks:
`shared.rl.health`; forwards: `shared.rl.forward`; micro-batch loss: `shared.rl.losses.ppo_objective`.
Work skipped: old log-probs with one update per batch (the training forward's own, detached), the reference with
beta = 0, and with `skip_idle_rows` the backward of rows whose advantages are all 0 (a no-grad forward keeps their
logged stats; a mini-batch without a live row steps the optimizer on zero gradients, as the backward would have).

Hooks let method packages plug in their logic without touching the loop:
- `reward_fn(trajs, records) -> list[float]` sets each trajectory's final reward (may also fill turn_rewards or
  token_rewards on the trajectories);
- `rollout_fn(records, n, group_ids) -> list[Trajectory]` replaces single-turn sampling (e.g. `AgentLoop.run`);
  each trajectory must carry the group id of its record (rewards are matched to records through it);
- `advantage_fn(trajs, token_rewards, mask, group_ids) -> Tensor [B, R]` replaces the named estimator.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from shared.modeling import clone_model
from shared.rl.advantages import compute_advantages
from shared.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, write_checkpoint
from shared.rl.critic import ValueHead, build_critic_model, hidden_size_of
from shared.rl.data import MetricsLogger, PromptStream
from shared.rl.forward import critic_values, forward_logprobs, score_rows
from shared.rl.health import GapStats, autocast_dtype, check_policy_dtype, gap_report, logprob_gap
from shared.rl.launch import check_launch
from shared.rl.losses import kl_penalty, ppo_objective
from shared.rl.settings import RLConfig, check_rl_settings, lr_factor
from shared.rollout.trajectory import (
    GROUP_SIGNALS,
    Trajectory,
    group_index,
    informative_groups,
    pad_trajectories,
    rollout_stats,
)


def prepare_policy(model: torch.nn.Module, cfg: RLConfig) -> torch.nn.Module:
    """The config's dtype and LoRA applied to the policy before training (no-op with the defaults)."""
    from shared.modeling import apply_lora, pick_dtype

    if cfg.dtype != "auto":
        model = model.to(pick_dtype(cfg.dtype))
    if cfg.lora is not None and not hasattr(model, "peft_config"):
        model = apply_lora(model, cfg.lora)
    return model


__all__ = ["BATCH_WHITENED", "RLConfig", "RLTrainer", "lr_factor", "prepare_policy"]  # RLConfig: rl.settings

BATCH_WHITENED = ("gae", "reinforce_pp", "reinforce_pp_baseline")  # estimators normalised over the whole batch


def _chunks(items: list, k: int) -> list[list]:
    """Split into exactly k contiguous chunks (some may be empty), sizes differing by at most one."""
    q, r = divmod(len(items), k)
    out, start = [], 0
    for i in range(k):
        end = start + q + (1 if i < r else 0)
        out.append(items[start:end])
        start = end
    return out


class RLTrainer:
    """GRPO/PPO-style trainer. `model` is a causal LM (an nn.Module); `generator` follows shared.generation."""

    def __init__(
        self,
        cfg: RLConfig,
        model: torch.nn.Module,
        tokenizer: Any,
        records: Sequence[Mapping[str, Any]],
        reward_fn: Callable[[list[Trajectory], list[Mapping[str, Any]]], Sequence[float]],
        generator: Any = None,
        rollout_fn: Callable[..., list[Trajectory]] | None = None,
        advantage_fn: Callable[..., torch.Tensor] | None = None,
        eval_fn: Callable[[RLTrainer], dict[str, float]] | None = None,
        accelerator: Any = None,
    ) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        torch.set_num_threads(cfg.threads)
        check_launch()  # FSDP / DeepSpeed launch configs without a GPU: a clear error instead of a silent fallback
        if cfg.mini_batches < 1 or cfg.grad_accum < 1 or cfg.ppo_epochs < 1:
            raise ValueError("ppo_epochs, mini_batches and grad_accum must be >= 1")
        if cfg.generations < 1 or cfg.prompts_per_step < 1:
            raise ValueError("prompts_per_step and generations must be >= 1")
        if cfg.dynamic_sampling_signal not in GROUP_SIGNALS:
            raise ValueError(f"dynamic_sampling_signal must be one of {GROUP_SIGNALS}, got "
                             f"{cfg.dynamic_sampling_signal!r}")
        self.cfg = cfg
        self.accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.world = self.accelerator.num_processes
        self.rank = self.accelerator.process_index
        check_rl_settings(cfg, self.world)
        set_seed(cfg.seed + self.rank)  # python, numpy and torch; processes sample differently
        self.tokenizer = tokenizer
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.records = list(records)
        self.reward_fn = reward_fn
        self.advantage_fn = advantage_fn
        self.eval_fn = eval_fn
        self.ref_model = None
        model = prepare_policy(model, cfg)
        if cfg.beta > 0:
            self.ref_model = clone_model(model).eval().requires_grad_(False).to(self.accelerator.device)
        total_updates = cfg.steps * cfg.ppo_epochs * cfg.mini_batches
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        # The scheduler is stepped by hand once per optimizer step, so it sees the same count on any world size.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda i: lr_factor(i, cfg.warmup_steps, total_updates, cfg.lr_schedule))
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.policy = self.accelerator.unwrap_model(self.model)
        dtype = next(self.policy.parameters()).dtype
        check_policy_dtype(dtype, self.accelerator.device)
        self.autocast = autocast_dtype(self.cfg.autocast, self.accelerator.device, self.accelerator.mixed_precision,
                                       dtype)
        self.critic = self.critic_optimizer = self.value_head = None
        self.critic_kind = ""
        if cfg.advantage == "gae" and advantage_fn is None:
            cfg.critic.validate()
            self.critic_kind = cfg.critic.kind
            if cfg.critic.kind == "model":  # a separate critic LM with its own forward
                module = build_critic_model(cfg.critic, self.policy).to(self.accelerator.device)
            else:
                module = ValueHead(hidden_size_of(self.policy))
            critic_opt = torch.optim.AdamW(module.parameters(), lr=cfg.critic.lr)
            self.critic, self.critic_optimizer = self.accelerator.prepare(module, critic_opt)
            self.value_head = self.accelerator.unwrap_model(self.critic)  # the head, or the whole critic model
        elif cfg.critic.warmup_steps:
            raise ValueError("critic.warmup_steps needs advantage 'gae' (a critic to warm up)")
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.policy.forward).parameters
        if generator is None:
            from shared.generation import HFGenerator

            generator = HFGenerator(self.policy, tokenizer, batch_size=cfg.gen_batch_size,
                                    autocast=self.autocast is not None)
        self.generator = generator
        self.rollout_fn = rollout_fn
        # no records: the trainer only updates on trajectories collected outside it (step_on)
        self.stream = PromptStream(len(self.records), seed=cfg.seed) if self.records else None
        self.step = 0
        self.group_counter = 0
        self.out_dir = Path(cfg.output_dir)
        self.logger = MetricsLogger(self.out_dir, enabled=self.accelerator.is_main_process,
                                    tensorboard=cfg.tensorboard, wandb_project=cfg.wandb_project,
                                    run_config=dataclasses.asdict(cfg))
        self.history: list[dict[str, Any]] = []
        self._gap = GapStats()
        self.extra_state: dict[str, Any] = {}  # callers' values that must survive a resume

    # ---- rollout -------------------------------------------------------------------------------------------
    def sampling_params(self, seed: int | None = None) -> Any:
        from shared.generation import SamplingParams

        c = self.cfg
        return SamplingParams(max_new_tokens=c.max_new_tokens, temperature=c.temperature, top_p=c.top_p,
                              n=c.generations, stop=tuple(c.stop), logprobs=True, seed=seed)

    def rollout(self, records: list[Mapping[str, Any]], group_ids: list[int]) -> list[Trajectory]:
        """Sample `generations` trajectories per record (via rollout_fn when given)."""
        from shared.rollout.agent_loop import generate_trajectories

        if not records:
            return []
        self.policy.eval()
        try:
            if self.rollout_fn is not None:
                return self.rollout_fn(records, n=self.cfg.generations, group_ids=group_ids)
            if self.cfg.seeded_generation:
                out = []
                for rec, gid in zip(records, group_ids):
                    params = self.sampling_params(seed=self.cfg.seed * 1_000_003 + gid)
                    out += generate_trajectories(self.generator, [rec], self.cfg.generations, params, [gid])
                return out
            return generate_trajectories(self.generator, records, self.cfg.generations, self.sampling_params(),
                                         group_ids)
        finally:
            self.policy.train()

    def _score(self, trajs: list[Trajectory], recs: list[Mapping[str, Any]]) -> None:
        rewards = self.reward_fn(trajs, recs)
        if len(rewards) != len(trajs):
            raise ValueError(f"reward_fn returned {len(rewards)} rewards for {len(trajs)} trajectories")
        for t, r in zip(trajs, rewards):
            t.reward = float(r)

    def _global_sum(self, value: float) -> float:
        if self.world == 1:
            return float(value)
        t = torch.tensor([float(value)], device=self.accelerator.device)
        return float(self.accelerator.reduce(t, reduction="sum").item())

    def collect(self) -> tuple[list[Trajectory], dict[str, float]]:
        """Roll out and score one step's groups; with dynamic sampling keep only groups with reward variance."""
        cfg = self.cfg
        if self.stream is None:
            raise ValueError("this RLTrainer was built without prompt records; update it with step_on(trajs)")
        kept: list[Trajectory] = []
        all_trajs: list[Trajectory] = []
        need, rounds, gen_tokens, t0 = cfg.prompts_per_step, 0, 0, time.perf_counter()
        while need > 0:
            idx = self.stream.take(need)
            gids = list(range(self.group_counter, self.group_counter + len(idx)))
            self.group_counter += len(idx)
            mine = list(range(self.rank, len(idx), self.world))
            recs = [self.records[idx[i]] for i in mine]
            my_gids = [gids[i] for i in mine]
            trajs = self.rollout(recs, my_gids)
            rec_of = dict(zip(my_gids, recs))
            missing = {t.group_id for t in trajs} - set(rec_of)
            if missing:
                raise ValueError(f"rollout returned trajectories with unknown group ids {sorted(missing)[:5]}")
            per_traj_recs = [rec_of[t.group_id] for t in trajs]
            self._score(trajs, per_traj_recs)
            all_trajs += trajs
            gen_tokens += sum(t.num_policy_tokens for t in trajs)
            rounds += 1
            if not cfg.dynamic_sampling:
                kept = trajs
                break
            good = informative_groups(trajs, cfg.dynamic_sampling_signal)
            kept += [t for g in good for t in g]
            need -= int(self._global_sum(len(good)))
            if rounds > cfg.max_refill_rounds:
                break
        rewards = torch.tensor([t.reward for t in all_trajs]) if all_trajs else torch.zeros(1)
        stats = {
            "reward": self._global_sum(float(rewards.sum())) / max(1.0, self._global_sum(len(all_trajs))),
            "reward_std": float(rewards.std()) if len(all_trajs) > 1 else 0.0,
            "groups_kept": self._global_sum(len({t.group for t in kept})),
            "groups_informative": rollout_stats(all_trajs, cfg.dynamic_sampling_signal)["groups_informative"],
            "rollout_rounds": rounds,
            "response_len": gen_tokens / max(1, len(all_trajs)),
            "gen_seconds": time.perf_counter() - t0,
        }
        stats["tokens_per_s"] = self._global_sum(gen_tokens) / max(1e-9, stats["gen_seconds"])
        self._dummy = all_trajs[:1]  # for processes left without data: keeps collective calls in step
        return kept, stats

    # ---- update --------------------------------------------------------------------------------------------
    def _forward_logprobs(self, model: torch.nn.Module, batch: dict, need_logits: bool = False,
                          value_head: torch.nn.Module | None = None, detach_hidden: bool = False):
        """Response-token logprobs [B, R]; with need_logits also the logits, with value_head also values [B, R]."""
        return forward_logprobs(model, batch, self.cfg.temperature, self._keeps_logits, self.autocast, need_logits,
                                value_head, detach_hidden or not self.cfg.critic.shared_trunk)

    def _score_values(self, trajs: list[Trajectory], micro: int = 64) -> list[torch.Tensor]:
        """The critic's estimates on the rollout batch, before any update (V_old of the value clip)."""
        if self.critic_kind == "model":
            return score_rows(lambda b: critic_values(self.value_head, b), trajs, self.pad_id,
                              self.accelerator.device, micro)
        return score_rows(lambda b: self._forward_logprobs(self.policy, b, value_head=self.value_head)[2], trajs,
                          self.pad_id, self.accelerator.device, micro)

    def _score_logprobs(self, model: torch.nn.Module, trajs: list[Trajectory], micro: int = 64) -> list[torch.Tensor]:
        # no larger than a training micro-batch: at paper scale 64 rows of 4k-token logits do not fit on a GPU
        micro = max(1, min(micro, -(-len(trajs) // (self.cfg.mini_batches * self.cfg.grad_accum))))
        return score_rows(lambda b: self._forward_logprobs(model, b), trajs, self.pad_id, self.accelerator.device,
                          micro)

    def advantages(self, trajs: list[Trajectory]) -> list[torch.Tensor]:
        """Per-trajectory token advantages (computed on this process's complete groups)."""
        return self._advantages_and_targets(trajs)[0]

    def _advantages_and_targets(self, trajs: list[Trajectory]) -> tuple[list, list | None, list | None]:
        """Advantages, and with a critic the rollout values and GAE returns (value targets), per trajectory."""
        name, options = self.cfg.advantage, dict(self.cfg.adv_options)
        # Batch-whitened estimators whiten over the GLOBAL batch (all processes), as one process would: the local
        # estimator runs unwhitened and the mean and variance are all-reduced.
        global_whiten = (self.world > 1 and self.advantage_fn is None and name in BATCH_WHITENED
                         and bool(options.get("whiten", True)))
        if global_whiten and name == "gae":
            options["whiten"] = False
        if not trajs:
            if global_whiten:  # still join the collective sums of the processes that have data
                self._global_whiten(torch.zeros(1, 1), torch.zeros(1, 1))
            return [], None, None
        b = pad_trajectories(trajs, self.pad_id)
        rewards, mask, groups = b["token_rewards"], b["response_mask"], group_index(trajs)
        if self.cfg.kl_in_reward and self.ref_model is not None:
            lp = torch.nn.utils.rnn.pad_sequence(self._score_logprobs(self.policy, trajs), batch_first=True)
            ref = torch.nn.utils.rnn.pad_sequence(self._score_logprobs(self.ref_model, trajs), batch_first=True)
            rewards = rewards - self.cfg.beta * kl_penalty(lp, ref, "k1") * mask
        if self.advantage_fn is not None:
            adv = self.advantage_fn(trajs, rewards, mask, groups)
            return [adv[i, : len(t.response_ids)] for i, t in enumerate(trajs)], None, None
        values = None
        if self.critic is not None:
            values = torch.nn.utils.rnn.pad_sequence(self._score_values(trajs), batch_first=True)
        adv, ret = compute_advantages(name, rewards, mask, groups, values=values, **options)
        if global_whiten:
            adv = self._global_whiten(adv if name == "gae" else ret, mask)  # reinforce_pp: ret = raw returns
        rows = [slice(0, len(t.response_ids)) for t in trajs]
        advs = [adv[i, s] for i, s in enumerate(rows)]
        if values is None:
            return advs, None, None
        return advs, [values[i, s] for i, s in enumerate(rows)], [ret[i, s] for i, s in enumerate(rows)]

    def _global_whiten(self, x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        """masked_whiten over the policy tokens of every process (unbiased variance), returned masked."""
        n = self._global_sum(float(mask.sum()))
        mean = self._global_sum(float((x * mask).sum())) / max(n, 1.0)
        var = self._global_sum(float((((x - mean) ** 2) * mask).sum())) / max(n - 1.0, 1.0)
        return (x - mean) * torch.rsqrt(x.new_tensor(var + eps)) * mask

    @property
    def critic_warming_up(self) -> bool:
        """True during critic.warmup_steps: only the critic learns this step."""
        return self.critic is not None and self.step < self.cfg.critic.warmup_steps

    def _micro_loss(self, trajs, advs, olds, refs, denom, vals=None, rets=None,
                    gap: bool = True) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        b = pad_trajectories(trajs, self.pad_id, self.accelerator.device)
        r = b["response_mask"].shape[1]
        warm = self.critic_warming_up

        def stack(rows):
            return torch.stack([torch.nn.functional.pad(x, (0, r - len(x))) for x in rows]).to(b["response_mask"])

        if self.critic is not None and self.critic_kind == "head":
            lp, logits, values = self._forward_logprobs(self.model, b, value_head=self.critic, detach_hidden=warm)
        else:
            lp, logits = self._forward_logprobs(self.model, b, need_logits=True)
            if self.critic is not None:
                values = critic_values(self.critic, b)
        mask = b["response_mask"]
        if olds is None and gap:  # every micro-batch of this update precedes its optimizer step: lp is the
            self._gap.add(logprob_gap(lp.detach().float().cpu(), trajs))  # rollout policy's, one copy
        old = stack(olds) if olds is not None else lp.detach()
        ref = stack(refs) if refs is not None and not cfg.kl_in_reward else None
        critic = (values, stack(vals), stack(rets)) if self.critic is not None else None
        loss, stats = ppo_objective(cfg, lp, logits, old, stack(advs), mask, denom, ref, critic, warm)
        return loss * self.world, stats  # DDP averages gradients over processes; the denominators are global

    def update(self, trajs: list[Trajectory]) -> dict[str, float]:
        """PPO epochs over mini-batches with gradient accumulation; returns token-weighted mean stats."""
        cfg = self.cfg
        advs, vals, rets = self._advantages_and_targets(trajs)
        need_old = cfg.ppo_epochs > 1 or cfg.mini_batches > 1
        olds = self._score_logprobs(self.policy, trajs) if need_old and trajs else None
        self._gap = GapStats()
        if olds is not None:
            self._gap.add(logprob_gap(olds, trajs))
        refs = self._score_logprobs(self.ref_model, trajs) if self.ref_model is not None and trajs else None
        # A row whose advantages are all 0 has a policy loss of exactly 0 and gradient 0: without a KL loss term,
        # an entropy bonus or a critic it needs no graph (one process only: DDP expects every backward).
        skip_idle = (cfg.skip_idle_rows and self.world == 1 and self.critic is None and cfg.entropy_coef == 0
                     and (refs is None or cfg.kl_in_reward))
        sums: dict[str, float] = {}
        grad_norms: list[float] = []
        loss_sum, updates = 0.0, 0
        g = torch.Generator().manual_seed(cfg.seed * 7919 + self.step)
        for _ in range(cfg.ppo_epochs):
            order = torch.randperm(len(trajs), generator=g).tolist() if trajs else []
            for mb in _chunks(order, cfg.mini_batches):
                denom = {"tokens": self._global_sum(sum(trajs[i].num_policy_tokens for i in mb)),
                         "seqs": self._global_sum(len(mb))}
                if denom["seqs"] == 0:
                    continue
                micro = _chunks(mb, cfg.grad_accum)
                backward_done = False
                for j, mic in enumerate(micro):
                    sync = j == len(micro) - 1
                    ctx = contextlib.nullcontext() if sync or self.world == 1 else self.accelerator.no_sync(self.model)
                    with ctx:
                        if not mic:
                            if self.world == 1:
                                continue
                            # keep every process's backward count equal: a zero-weighted pass on a dummy row
                            dummy = self._dummy
                            zero = [torch.zeros(len(dummy[0].response_ids))]
                            loss, _ = self._micro_loss(dummy, zero, None, None, {"tokens": 1.0, "seqs": 1.0},
                                                       zero, zero, gap=False)
                            self.accelerator.backward(loss * 0.0)
                            continue
                        idle = [i for i in mic if skip_idle and not bool(advs[i].any())]
                        live = [i for i in mic if i not in idle]
                        for rows in (live, idle):
                            if not rows:
                                continue
                            with contextlib.nullcontext() if rows is live else torch.no_grad():
                                loss, st = self._micro_loss(
                                    [trajs[i] for i in rows], [advs[i] for i in rows],
                                    [olds[i] for i in rows] if olds is not None else None,
                                    [refs[i] for i in rows] if refs is not None else None, denom,
                                    [vals[i] for i in rows] if vals is not None else None,
                                    [rets[i] for i in rows] if rets is not None else None)
                            if rows is live:
                                self.accelerator.backward(loss)
                                backward_done = True
                            w = st.pop("tokens")
                            sums["_w"] = sums.get("_w", 0.0) + w
                            loss_sum += float(loss.detach()) / self.world  # this process's share of the loss
                            for k, v in st.items():
                                sums[k] = sums.get(k, 0.0) + v * w
                if skip_idle and not backward_done:  # the gradient the skipped backward would have left: zeros
                    for p in self.model.parameters():
                        if p.requires_grad and p.grad is None:
                            p.grad = torch.zeros_like(p)
                if not self.critic_warming_up:  # during critic warm-up the policy, its optimizer and lr stay put
                    if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                        gn = self.accelerator.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
                        grad_norms.append(float(gn))
                    self.optimizer.step()
                    self.scheduler.step()
                if self.critic is not None:
                    if cfg.max_grad_norm and cfg.max_grad_norm > 0:
                        self.accelerator.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                    self.critic_optimizer.step()
                    self.critic_optimizer.zero_grad(set_to_none=True)
                updates += 1
                self.optimizer.zero_grad(set_to_none=True)
        w = sums.pop("_w", 0.0)
        stats = {k: v / max(w, 1e-9) for k, v in sums.items()}
        stats["loss"] = self._global_sum(loss_sum) / max(1, updates)
        if grad_norms:
            stats["grad_norm"] = sum(grad_norms) / len(grad_norms)
        stats["lr"] = self.scheduler.get_last_lr()[0]
        stats.update(self._gap_stats())
        self.sync_weights()
        return stats

    def _gap_stats(self) -> dict[str, float]:
        """The step's rollout-vs-trainer gap over every process (`shared.rl.health`)."""
        peak = self._gap.peak
        if self.world > 1:
            t = torch.tensor([peak], device=self.accelerator.device)
            peak = float(self.accelerator.gather(t).max().item())
        return gap_report(self._global_sum(self._gap.total), peak, self._global_sum(self._gap.count),
                          self.cfg.logprob_gap_warn, self.step + 1, warn=self.accelerator.is_main_process)

    def sync_weights(self) -> None:
        """Push the policy's weights to the generator unless it samples from this very module. Sharded (FSDP2
        DTensor) parameters are gathered into full tensors first: a generator cannot load a shard."""
        if getattr(self.generator, "model", None) is self.policy:
            return
        state = self.policy.state_dict()
        if any(hasattr(v, "full_tensor") for v in state.values()):
            self.generator.update_weights({k: v.full_tensor() if hasattr(v, "full_tensor") else v
                                           for k, v in state.items()})
            return
        self.generator.update_weights(self.policy)

    # ---- loop ----------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"step": self.step, "stream": self.stream.state_dict() if self.stream is not None else None,
                 "group_counter": self.group_counter, "history": self.history, "world": self.world,
                 "extra": self.extra_state}
        if self.critic is not None:  # the critic lives outside the HF model, so it rides in trainer_state.pt
            key = "head" if self.critic_kind == "head" else "model"
            state["critic"] = {key: self.value_head.state_dict(), "optimizer": self.critic_optimizer.state_dict()}
        return state

    def save(self) -> Path:
        return save_checkpoint(self.out_dir, self.step, self.model, self.tokenizer, self.optimizer, self.scheduler,
                               self.state_dict(), self.accelerator, keep=self.cfg.keep_checkpoints)

    def write_to(self, folder: str | Path) -> Path:
        """Write this trainer's checkpoint files into `folder` (not atomic; `MultiPolicyCheckpoint` swaps the
        whole step folder in)."""
        return write_checkpoint(folder, self.model, self.tokenizer, self.optimizer, self.scheduler,
                                self.state_dict(), self.accelerator)

    def resume(self, path: str | Path | None = None) -> bool:
        """Load `path` or the latest checkpoint of output_dir; False when there is none."""
        path = Path(path) if path else latest_checkpoint(self.out_dir)
        if path is None:
            return False
        self.load_from(path)
        return True

    def load_from(self, path: str | Path) -> None:
        """Restore weights, optimizer, scheduler, RNG, counters, data position and critic from a checkpoint folder."""
        path = Path(path)
        state = load_checkpoint(path, self.model, self.optimizer, self.scheduler, self.accelerator)
        self.step, self.group_counter = state["step"], state["group_counter"]
        if self.stream is not None and state.get("stream") is not None:
            self.stream.load_state_dict(state["stream"])
        self.history = list(state["history"])
        self.extra_state = dict(state.get("extra", {}))
        if self.critic is not None:
            key = "head" if self.critic_kind == "head" else "model"
            if key not in state.get("critic", {}):
                raise ValueError(f"{path}: checkpoint has no {'value head' if key == 'head' else 'critic model'} "
                                 f"state, but advantage 'gae' with critic.kind {self.critic_kind!r} needs one")
            self.value_head.load_state_dict(state["critic"][key])
            self.critic_optimizer.load_state_dict(state["critic"]["optimizer"])
        self.logger.truncate_after(self.step)
        self.sync_weights()

    def train_step(self) -> dict[str, float]:
        t0 = time.perf_counter()
        trajs, stats = self.collect()
        t1 = time.perf_counter()
        stats.update(self.update(trajs))
        stats["train_seconds"] = time.perf_counter() - t1
        stats["step_seconds"] = time.perf_counter() - t0
        self.step += 1
        return stats

    def step_on(self, trajs: Sequence[Trajectory], stats: Mapping[str, Any] | None = None,
                save: bool = True) -> dict[str, Any]:
        """One training step on trajectories collected and scored outside the trainer (rewards already set):
        update, step + 1, evaluation hook, history, log line and (with `save`) the checkpoint cadence, as in
        `train()`. `stats` (e.g. the joint rollout's) join the rollout statistics computed here."""
        t0 = time.perf_counter()
        trajs = list(trajs)
        for i, t in enumerate(trajs):
            if not isinstance(t, Trajectory):
                raise TypeError(f"step_on: item {i} is a {type(t).__name__}, not a Trajectory")
        out: dict[str, Any] = rollout_stats(trajs, self.cfg.dynamic_sampling_signal)
        out.update(stats or {})
        if trajs:
            self._dummy = trajs[:1]  # for processes left without data: keeps collective calls in step
        self.policy.train()
        out.update(self.update(trajs))
        out["train_seconds"] = time.perf_counter() - t0
        self.step += 1
        return self._end_step(out, save)

    def _end_step(self, stats: dict[str, Any], save: bool = True) -> dict[str, Any]:
        """After a step's update: evaluation hook, history, log line, checkpoint cadence."""
        cfg = self.cfg
        if self.eval_fn is not None and cfg.eval_every and self.step % cfg.eval_every == 0:
            stats.update({f"eval/{k}": v for k, v in self.eval_fn(self).items()})
        self.history.append({"step": self.step, **stats})
        self.logger.log(self.step, stats)
        if save and cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
            self.save()
        return stats

    def close(self) -> None:
        """Flush and close the metrics sinks (train() does it at its end; callers of step_on call it)."""
        self.logger.close()

    def train(self, resume: bool = False, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Run until cfg.steps; `stop_after` ends this call after that many steps (the rest can be resumed)."""
        cfg = self.cfg
        if resume:
            self.resume()
        show = cfg.progress and self.accelerator.is_main_process and not os.environ.get("TQDM_DISABLE")  # --no-progress
        bar = tqdm(total=cfg.steps, initial=self.step, desc="rl", disable=not show, dynamic_ncols=True)
        done_now = 0
        while self.step < cfg.steps and (stop_after is None or done_now < stop_after):
            stats = self._end_step(self.train_step())
            done_now += 1
            bar.update(1)
            bar.set_postfix(reward=f"{stats['reward']:.3f}", kept=int(stats["groups_kept"]),
                            s=f"{stats['step_seconds']:.2f}")
        bar.close()
        self.close()
        return self.history
