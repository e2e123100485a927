"""Where one GRPO step of our trainer (shared.rl.trainer) spends its time, on rl_vs_trl.py's setting.

Builds the trainer exactly as `tools/bench/rl_vs_trl.py` does (same policy, data, budget and settings: beta 0,
one update per batch), runs one warm-up step, then times `--steps` steps with wall-clock timers wrapped around
the step's parts (perf_counter; no profiler, so Python overhead is not inflated):

- generation: `RLTrainer.rollout`, of which the policy's forward calls and the rest (sampling, stop checks, the
  generator's Python work, building trajectories);
- reward: `reward_fn` through `_score`; advantages: `_advantages_and_targets` (padding included);
- old / reference log-probs: `_score_logprobs` (a no-grad forward each; absent when not needed);
- training forward: padding (`pad_trajectories`), the policy's forward, token log-probs, entropy metric, the
  rollout-vs-trainer gap, the clipped loss; backward; grad-norm clip; optimizer step (AdamW + scheduler);
  zero_grad; weight sync to the generator;
- other: the step's wall time minus every timed part (collect's bookkeeping, stats, Python glue).

Each row is seconds per step (mean over the timed steps) and its share of the step.

    uv run python tools/bench/rl_step_profile.py --steps 5
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rl_vs_trl import DEFAULT_POLICY, load_policy, make_ours  # noqa: E402

PHASE = {"name": "train"}  # which phase a policy forward belongs to


def timed(totals: dict, key: str, fn):
    """`fn` wrapped so that its wall time adds to totals[key]; a key starting with '@' gets the current phase."""

    @functools.wraps(fn)
    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            name = f"{PHASE['name']}: {key[2:]}" if key.startswith("@ ") else key
            totals[name] += time.perf_counter() - t0

    return wrapper


def instrument(trainer, totals: dict) -> None:
    """Wrap the step's parts of one trainer (instance attributes and the trainer module's imported names)."""
    import shared.rl.forward as fm
    import shared.rl.losses as lm
    import shared.rl.trainer as tm

    def phase(name, fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            old, PHASE["name"] = PHASE["name"], name
            try:
                return fn(*a, **k)
            finally:
                PHASE["name"] = old

        return wrapper

    trainer.rollout = timed(totals, "generation (total)", phase("generation", trainer.rollout))
    trainer._score = timed(totals, "reward", trainer._score)
    trainer._advantages_and_targets = timed(totals, "advantages (padding included)",
                                            phase("advantages", trainer._advantages_and_targets))
    trainer._score_logprobs = timed(totals, "old/ref log-probs (no-grad forwards)",
                                    phase("scoring", trainer._score_logprobs))
    trainer._micro_loss = timed(totals, "training loss (total)", trainer._micro_loss)
    trainer.policy.forward = timed(totals, "@ policy forward", trainer.policy.forward)
    for name in ("pad_trajectories", "logprob_gap", "token_logprobs", "entropy_from_logits", "policy_loss"):
        for module in (tm, fm, lm):  # wherever the trainer's code calls it from (also on older commits)
            if hasattr(module, name):
                setattr(module, name, timed(totals, f"@ {name}", getattr(module, name)))
    trainer.accelerator.backward = timed(totals, "backward", trainer.accelerator.backward)
    trainer.accelerator.clip_grad_norm_ = timed(totals, "grad-norm clip", trainer.accelerator.clip_grad_norm_)
    trainer.optimizer.step = timed(totals, "optimizer step", trainer.optimizer.step)
    trainer.scheduler.step = timed(totals, "optimizer step", trainer.scheduler.step)
    trainer.optimizer.zero_grad = timed(totals, "zero_grad", trainer.optimizer.zero_grad)
    trainer.sync_weights = timed(totals, "weight sync", trainer.sync_weights)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Time the parts of our GRPO step on rl_vs_trl.py's setting.")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from shared.rl.warmstart import arithmetic_records

    train = arithmetic_records(2000, "train", 0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, _, policy = load_policy(args.policy, work)
        args.steps, steps = args.steps + 1, args.steps  # make_ours reads args.steps for the schedule
        trainer = make_ours(policy, train, args, work, args.seed)
        trainer.train_step()  # warm-up, untimed
        totals: dict[str, float] = defaultdict(float)
        instrument(trainer, totals)
        wall, tokens, informative, reward = 0.0, 0.0, 0.0, 0.0
        for _ in range(steps):
            PHASE["name"] = "train"
            t0 = time.perf_counter()
            stats = trainer.train_step()
            wall += time.perf_counter() - t0
            tokens += stats["response_len"]
            informative += stats["groups_informative"]
            reward += stats["reward"]
    gen = totals.pop("generation (total)")
    gen_fwd = totals.pop("generation: policy forward", 0.0)
    loss_total = totals.pop("training loss (total)")
    loss_parts = {k.removeprefix("train: "): v for k, v in totals.items() if k.startswith("train: ")}
    rest = {k: v for k, v in totals.items() if ": " not in k}
    rows = [("generation: policy forwards", gen_fwd), ("generation: sampling, stops, Python", gen - gen_fwd)]
    rows += [(f"training loss: {k}", v) for k, v in loss_parts.items()]
    rows += [("training loss: other (gap copy, stats, stacking)", loss_total - sum(loss_parts.values()))]
    rows += sorted(rest.items())
    rows += [("other (step wall - timed parts)", wall - gen - loss_total - sum(rest.values()))]
    print(f"policy {policy}  budget {args.prompts}x{args.generations}  max_new_tokens {args.max_new_tokens}  "
          f"threads {args.threads}  timed steps {steps}  mean response length {tokens / steps:.1f}  mean reward "
          f"{reward / steps:.3f}  groups with reward variance {informative / steps:.2f} (the rest: all-zero advantages)")
    print(f"{'part':<52} {'s/step':>8} {'share':>6}")
    for name, v in rows:
        print(f"{name:<52} {v / steps:>8.4f} {v / wall:>6.1%}")
    print(f"{'step (wall)':<52} {wall / steps:>8.4f} {1:>6.0%}")
    return {"rows": dict(rows), "wall": wall, "steps": steps}


if __name__ == "__main__":
    main()
