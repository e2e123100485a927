"""The SAGE training loop: self-generated verified pairs, optional coarse curriculum, optional stability scoring.

Per step: (curriculum) every `refresh_every` steps re-probe the pool and keep frontier pairs; (scoring) re-evaluate
the margins of up to `candidates_per_step` candidate pairs without gradient, update their running statistics,
filter unstable and trivial pairs and take the top-B by score; (no scoring) take the next B pairs of a shuffled
epoch. Then one DPO/RPO step on the B pairs. The four ablations share everything else, including the seed, so with
the same starting pool they differ only in which pairs each step trains on.

Logged per step: loss, gradient norm, gradient-weight statistics of the trained batch, and for scoring the fractions
of candidates filtered as unstable/trivial, the mean score of the chosen pairs and how many filtered pairs were put
back to fill the batch (`filled`; inferred fill-up, `scoring.fill`). The run reports how many batches were topped up
that way and the share of trained pairs that were filtered ones.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from shared.atomic import write_jsonl
from tqdm.auto import tqdm

from sage.config import SageConfig, method_flags
from sage.data import ProblemSet
from sage.evaluate import greedy_accuracy, rewards_of, sample_solutions
from sage.pairs import FrontierEmptyError, Pair, PoolSummary, refresh_pool
from sage.policy import ReferenceCache, encode_pairs, pair_margins, preference_loss, sequence_logprobs
from sage.scoring import MarginTracker, ScoringSettings, margin_scale, score_pairs, select_top, weight_stats

log = logging.getLogger(__name__)


@dataclass
class Probe:
    """Pairs and pool summary from probing the policy at one step."""

    pairs: list[Pair]
    summary: PoolSummary


@dataclass
class RunResult:
    method: str
    curve: list[list[float]]  # [step, accuracy]
    target: float
    steps_to_target: int | None
    trivial_fraction: float
    unstable_filtered: float
    trivial_filtered: float
    mean_score: float
    grad_norm_mean: float
    grad_norm_snr: float
    pools: list[dict[str, float]]
    stopped_reason: str = ""
    logs: list[dict[str, float]] = field(default_factory=list)
    topped_up_batches: int = 0  # steps whose batch was filled up with pairs the filters had dropped
    filled_pair_share: float = 0.0  # share of all trained pairs that were such put-back pairs

    @property
    def accuracy(self) -> float:
        return self.curve[-1][1]

    def metrics(self) -> dict[str, Any]:
        """Scalar results.json metrics of this row (same keys for every method); the curve goes beside them."""
        return {
            "accuracy": self.accuracy,
            "start_accuracy": self.curve[0][1],
            "steps_to_target": self.steps_to_target,
            "target_accuracy": self.target,
            "trivial_fraction": self.trivial_fraction,
            "unstable_filtered_fraction": self.unstable_filtered,
            "trivial_filtered_fraction": self.trivial_filtered,
            "mean_score": self.mean_score,
            "grad_norm_mean": self.grad_norm_mean,
            "grad_norm_snr": self.grad_norm_snr,
            "pool_refreshes": len(self.pools),
            "topped_up_batches": self.topped_up_batches,
            "filled_pair_share": self.filled_pair_share,
        }


def probe_policy(
    cfg: SageConfig, generator, problems: ProblemSet, step: int, rng: random.Random, seed: int
) -> Probe:
    """Sample k solutions per (probed) problem, verify them, and build the frontier pairs.

    Raises FrontierEmptyError when no probed problem has 0 < pass rate < 1.
    """
    pool = list(problems.train)
    size = cfg.curriculum.probe_size
    if 0 < size < len(pool):
        pool = rng.sample(pool, size)
    samples = sample_solutions(generator, pool, cfg.sampling, seed=seed)
    rewards = rewards_of(pool, samples)
    pairs, _, summary = refresh_pool(pool, samples, rewards, cfg.curriculum.max_pairs_per_problem, rng, step=step)
    return Probe(pairs, summary)


def steps_to_target(curve: list[list[float]], target: float, smooth: int = 1) -> int | None:
    """First evaluated step where the mean accuracy of the last `smooth` evaluations (this one included; fewer at
    the start of the curve) reaches `target`; None if never. smooth=1 is the evaluation alone. Averaging two
    evaluations keeps a single lucky evaluation (one standard error is ~1.5 points on 1000 problems) from
    counting as reaching the target."""
    if smooth < 1:
        raise ValueError(f"eval.target_smooth must be >= 1, got {smooth}")
    for i, (step, _) in enumerate(curve):
        window = [acc for _, acc in curve[max(0, i - smooth + 1) : i + 1]]
        if sum(window) / len(window) >= target - 1e-12:
            return int(step)
    return None


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _snr(xs: list[float]) -> float:
    """mean / std of a series (0 when it has no spread or fewer than two values)."""
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))
    return m / sd if sd > 0 else 0.0


class EpochSampler:
    """Uniform DPO's data order: shuffled passes over the pool, B pairs per step."""

    def __init__(self, pairs: list[Pair], rng: random.Random) -> None:
        self.pairs = list(pairs)
        self.rng = rng
        self.queue: list[Pair] = []

    def take(self, n: int) -> list[Pair]:
        out: list[Pair] = []
        while len(out) < min(n, len(self.pairs)):
            if not self.queue:
                self.queue = list(self.pairs)
                self.rng.shuffle(self.queue)
            pair = self.queue.pop()
            if pair not in out:
                out.append(pair)
        return out


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def train_dpo(
    cfg: SageConfig,
    policy,
    tokenizer,
    generator,
    problems: ProblemSet,
    initial_probe: Probe | None = None,
    initial_accuracy: float | None = None,
    target: float | None = None,
    checkpoint: Path | None = None,
    progress: bool = True,
) -> RunResult:
    """Run `cfg.train.steps` preference-optimisation steps with the selection rule of `cfg.train.method`.

    `initial_probe`/`initial_accuracy` let several ablations share the step-0 probe and evaluation of one starting
    policy. `target` defaults to `eval.target_accuracy`, else the starting accuracy + `eval.target_gain`.
    With `checkpoint`, the run state is saved atomically every `train.checkpoint_every` steps and resumed from it.
    """
    tc, sc = cfg.train, cfg.scoring
    use_curriculum, use_scoring = method_flags(tc.method)
    device = next(policy.parameters()).device
    rng = random.Random(f"sage|{tc.seed}")
    torch.manual_seed(tc.seed)

    reference = copy.deepcopy(policy).eval()
    for p in reference.parameters():
        p.requires_grad_(False)
    ref_cache = ReferenceCache(reference, tokenizer, device)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=tc.lr, weight_decay=0.0)
    settings = ScoringSettings(sc.eps, sc.unstable_std, sc.trivial_weight, sc.min_obs, sc.prior_std, sc.score,
                               sc.thresholds == "relative")
    tracker = MarginTracker(sc.window)

    state = torch.load(checkpoint, weights_only=False) if checkpoint is not None and checkpoint.is_file() else None
    if state is not None:  # resume: the start-of-run evaluation and probe are in the checkpoint
        initial_accuracy = state["curve"][0][1]
        target = state["target"]
    if initial_accuracy is None:
        generator.update_weights(policy)
        initial_accuracy, _ = greedy_accuracy(generator, problems.test, cfg.eval.max_new_tokens, cfg.eval.batch_size)
    if target is None:
        target = cfg.eval.target_accuracy if cfg.eval.target_accuracy is not None else (
            initial_accuracy + cfg.eval.target_gain)
    if initial_probe is None and state is None:
        generator.update_weights(policy)
        initial_probe = probe_policy(cfg, generator, problems, 0, random.Random(f"probe|{tc.seed}|0"), tc.seed)
    pairs = list(initial_probe.pairs) if initial_probe is not None else []
    pools = [initial_probe.summary.as_dict()] if initial_probe is not None else []
    curve: list[list[float]] = [[0, initial_accuracy]]
    logs: list[dict[str, float]] = []
    stopped = ""
    start_step = 1
    sampler = EpochSampler(pairs, rng)

    if state is not None:
        policy.load_state_dict(state["policy"])
        optimizer.load_state_dict(state["optimizer"])
        reference.load_state_dict(state["reference"])
        pairs, pools, curve, logs = state["pairs"], state["pools"], state["curve"], state["logs"]
        tracker.load_state_dict(state["tracker"])
        rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        sampler = EpochSampler(pairs, rng)
        sampler.queue = state["queue"]
        start_step = state["step"] + 1
        log.info("resumed %s from %s at step %d", tc.method, checkpoint, state["step"])

    policy.train()
    bar = tqdm(range(start_step, tc.steps + 1), desc=f"sage {tc.method}", disable=not progress, leave=False)
    for step in bar:
        if use_curriculum and step > 1 and (step - 1) % cfg.curriculum.refresh_every == 0:
            generator.update_weights(policy)
            try:
                probe = probe_policy(cfg, generator, problems, step - 1,
                                     random.Random(f"probe|{tc.seed}|{step - 1}"), tc.seed * 7919 + step)
                pairs = probe.pairs
                pools.append(probe.summary.as_dict())
                sampler = EpochSampler(pairs, rng)
                keep = [p.pair_id for p in pairs]
                tracker.retain(keep)
                ref_cache.retain(keep)
            except FrontierEmptyError as err:
                if cfg.curriculum.on_empty_frontier == "stop":
                    stopped = f"stopped at step {step - 1}: {err}"
                    log.warning("%s", stopped)
                    break
                log.warning("%s; keeping the previous pool of %d pairs", err, len(pairs))
                pools.append({"step": step - 1, "n_frontier": 0, "n_pairs": len(pairs), "kept_previous": 1})

        entry: dict[str, float] = {"step": step, "pool_pairs": len(pairs)}
        if use_scoring:
            candidates = pairs
            if 0 < sc.candidates_per_step < len(pairs):
                candidates = rng.sample(pairs, sc.candidates_per_step)
            margins = pair_margins(policy, tokenizer, candidates, ref_cache, tc.beta)
            tracker.update_many([p.pair_id for p in candidates], margins)
            scale = margin_scale([tracker.stats(p.pair_id) for p in candidates])
            selection = select_top(score_pairs(tracker, [p.pair_id for p in candidates], settings),
                                   tc.batch_size, rng, sc.fill, sc.rank)
            by_id = {p.pair_id: p for p in candidates}
            batch = [by_id[i] for i in selection.pair_ids]
            entry.update(unstable_filtered=selection.unstable_fraction, trivial_filtered=selection.trivial_fraction,
                         mean_score=selection.mean_score, filled=selection.n_filled,
                         tracked_fraction=selection.n_tracked / max(selection.n_candidates, 1),
                         chosen_margin=selection.chosen_margin, margin_scale=scale)
        else:
            batch = sampler.take(tc.batch_size)
        if not batch:
            stopped = f"stopped at step {step}: no pair to train on"
            break

        encoded = encode_pairs(tokenizer, batch, device)
        logps, counts = sequence_logprobs(policy, encoded)
        loss, batch_margins = preference_loss(logps, ref_cache.logps(batch), counts, tc.beta, tc.loss, tc.sft_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(policy.parameters(), tc.grad_clip))
        optimizer.step()
        entry.update(loss=float(loss.detach()), grad_norm=grad_norm, batch=len(batch),
                     **weight_stats([float(m) for m in batch_margins], sc.trivial_weight))
        logs.append(entry)

        if step % cfg.eval.every == 0 or step == tc.steps:
            generator.update_weights(policy)
            acc, _ = greedy_accuracy(generator, problems.test, cfg.eval.max_new_tokens, cfg.eval.batch_size)
            curve.append([step, acc])
            policy.train()
            bar.set_postfix(acc=f"{acc:.3f}", loss=f"{float(loss.detach()):.3f}")
        if checkpoint is not None and tc.checkpoint_every > 0 and step % tc.checkpoint_every == 0:
            _save_checkpoint(checkpoint, {
                "step": step, "policy": policy.state_dict(), "optimizer": optimizer.state_dict(),
                "reference": reference.state_dict(), "pairs": pairs, "pools": pools, "curve": curve, "logs": logs,
                "tracker": tracker.state_dict(), "rng": rng.getstate(), "torch_rng": torch.get_rng_state(),
                "queue": sampler.queue, "target": target,
            })

    if curve[-1][0] != (logs[-1]["step"] if logs else 0):  # stopped early between evaluations
        generator.update_weights(policy)
        acc, _ = greedy_accuracy(generator, problems.test, cfg.eval.max_new_tokens, cfg.eval.batch_size)
        curve.append([logs[-1]["step"], acc])
    grad_norms = [e["grad_norm"] for e in logs]
    return RunResult(
        method=tc.method,
        curve=curve,
        target=target,
        steps_to_target=steps_to_target(curve, target, cfg.eval.target_smooth),
        trivial_fraction=_mean([e["trivial_fraction"] for e in logs]),
        unstable_filtered=_mean([e.get("unstable_filtered", 0.0) for e in logs]),
        trivial_filtered=_mean([e.get("trivial_filtered", 0.0) for e in logs]),
        mean_score=_mean([e.get("mean_score", 0.0) for e in logs]),
        grad_norm_mean=_mean(grad_norms),
        grad_norm_snr=_snr(grad_norms),
        pools=pools,
        stopped_reason=stopped,
        logs=logs,
        topped_up_batches=sum(e.get("filled", 0) > 0 for e in logs),
        filled_pair_share=sum(e.get("filled", 0) for e in logs) / max(sum(e["batch"] for e in logs), 1),
    )


def write_log(result: RunResult, path: Path) -> Path:
    """Per-step log as JSON lines (atomically), for plots and inspection."""
    return write_jsonl(path, result.logs)


def result_summary(result: RunResult) -> dict[str, Any]:
    """RunResult without the per-step logs (for results.json)."""
    out = asdict(result)
    out.pop("logs")
    return out
