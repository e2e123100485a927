"""Our GRPO (shared.rl.trainer) vs TRL's GRPOTrainer on the same tiny policy, data and budget, over seeds.

Both start from the same tiny arithmetic policy (the cached SFT'd warm start when it exists, else a fresh random
tiny Qwen2), train on the same prompts with the same budget (prompts x generations x steps) and are then scored by
greedy exact match on the same held-out problems. Settings are TRL GRPOTrainer's defaults (trl 1.16, read from
its source) and ours are set to match: loss_type "dapo" = our token-mean (token sum over the global batch's
completion tokens), scale_rewards "group" = GRPO with the unbiased group std and eps 1e-4 (our default eps is
1e-6, set to 1e-4 here), beta 0 (no reference model), epsilon 0.2 both sides, temperature 1, top_p 1, top_k 0,
mask_truncated_completions False (ours never masks), num_iterations 1 (one update per batch, ratio 1), the eos
token inside the loss mask, AdamW (0.9, 0.999, eps 1e-8, no weight decay), constant lr, grad-norm clip 1.0, no
dynamic sampling. What still differs is the prompt order (TRL's RepeatSampler vs our PromptStream, both seeded)
and the random streams of sampling.

Per seed it prints seconds per step for each (the median over the steps after the first, a warm-up; the two
trainers' steps alternate so both run under the same machine load), their ratio and the final accuracy of each;
with several `--seeds` also mean +- sd over seeds. Writes the figures as JSON with `--json`.

Measured on the 2-core box when quiet (start policy: the test warm start, 0.562 on 500 test problems), mean +- sd
over seeds 0, 1, 2: 8x8x100 ours 0.217 +- 0.007 s/step vs TRL 0.226 +- 0.011 (ratio 1.04 +- 0.02), accuracy
0.564 +- 0.004 vs 0.545 +- 0.035 (no learning beyond noise yet at 100 steps); 16x8x300 ours 0.442 +- 0.001 vs
TRL 0.440 +- 0.004 s/step (ratio 0.99 +- 0.01), accuracy 0.624 +- 0.019 vs 0.637 +- 0.016.

    uv run python tools/bench/rl_vs_trl.py --quick            # ~1-2 minutes: 8 steps each, 100 test problems
    uv run python tools/bench/rl_vs_trl.py --steps 100 --seeds 0 1 2 --policy runs/warmstart/arith_sft_s0
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

DEFAULT_POLICY = Path("runs/warmstart/arith_sft_s0")


def load_policy(path: Path | None, work: Path):
    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path is None or not path.exists():
        path = tiny_causal_lm(work / "random_tiny", tokenizer=build_tokenizer(kind="char"), seed=0)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), path


def make_ours(policy: Path, train: list[dict], args, work: Path, seed: int):
    from shared.rl.trainer import RLConfig, RLTrainer
    from shared.rl.warmstart import arithmetic_reward
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = AutoModelForCausalLM.from_pretrained(policy), AutoTokenizer.from_pretrained(policy)
    cfg = RLConfig(output_dir=str(work / f"ours_s{seed}"), seed=seed, steps=args.steps, prompts_per_step=args.prompts,
                   generations=args.generations, max_new_tokens=args.max_new_tokens, lr=args.lr, beta=0.0,
                   advantage="grpo", adv_options={"eps": 1e-4}, loss_agg="token-mean", clip_low=0.2, clip_high=0.2,
                   temperature=1.0, top_p=1.0, lr_schedule="constant", max_grad_norm=1.0, weight_decay=0.0,
                   checkpoint_every=0, threads=args.threads, tensorboard=False, dynamic_sampling=False,
                   progress=False, skip_idle_rows=True)
    return RLTrainer(cfg, model, tok, train, arithmetic_reward)


def run_trl(policy: Path, train: list[dict], args, work: Path, seed: int, after_step=None):
    """Train TRL's GRPOTrainer; `after_step()` runs after each TRL step, outside its timing (interleaving)."""
    from datasets import Dataset
    from shared.rewards import math_reward
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    model, tok = AutoModelForCausalLM.from_pretrained(policy), AutoTokenizer.from_pretrained(policy)
    data = Dataset.from_list([{"prompt": r["prompt"], "answer": r["answer"]} for r in train])

    def reward(prompts, completions, answer, **_):
        return [math_reward(c, a) for c, a in zip(completions, answer)]

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.last = [], None

        def on_step_begin(self, *a, **k):
            self.last = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.last)
            if after_step is not None:
                after_step()

    timer = StepTimer()
    cfg = GRPOConfig(
        output_dir=str(work / f"trl_s{seed}"), seed=seed, max_steps=args.steps, learning_rate=args.lr,
        lr_scheduler_type="constant", warmup_steps=0, per_device_train_batch_size=args.prompts * args.generations,
        num_generations=args.generations, max_completion_length=args.max_new_tokens, temperature=1.0, beta=0.0,
        use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none", save_strategy="no",
        logging_steps=max(1, args.steps // 4), loss_type="dapo", disable_tqdm=True,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=data, processing_class=tok,
                          callbacks=[timer])
    trainer.train()
    return timer.times, trainer.model, tok


def per_step(times: list[float]) -> float:
    """Median of the steps after the first (warm-up): robust to load spikes from other jobs on a shared box."""
    body = sorted(times[1:] if len(times) > 1 else times)
    mid = len(body) // 2
    return body[mid] if len(body) % 2 else (body[mid - 1] + body[mid]) / 2


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Seconds per step and final accuracy: our GRPO vs TRL GRPOTrainer.")
    parser.add_argument("--quick", action="store_true", help="8 steps each and 100 test problems (~1-2 minutes)")
    parser.add_argument("--steps", type=int, default=100, help="training steps for each trainer")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per step")
    parser.add_argument("--generations", type=int, default=8, help="completions per prompt")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="completion length budget")
    parser.add_argument("--lr", type=float, default=3e-5, help="learning rate of both trainers")
    parser.add_argument("--test-n", type=int, default=500, help="held-out problems for the final accuracy")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="start policy (HF dir)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both trainers")
    parser.add_argument("--seed", type=int, default=0, help="seed of both trainers (one run)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds, one run of each per seed")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.test_n = 8, 100
    seeds = args.seeds or [args.seed]
    torch.set_num_threads(args.threads)

    from shared.rl.warmstart import arithmetic_accuracy, arithmetic_records

    train = arithmetic_records(2000, "train", 0)
    test = arithmetic_records(args.test_n, "test", 1000)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, _, policy = load_policy(args.policy, work)
        start_model, start_tok, _ = load_policy(policy, work)
        start_acc = arithmetic_accuracy(start_model, start_tok, test)
        print(f"policy {policy}  budget {args.prompts}x{args.generations}x{args.steps}  test problems {args.test_n}  "
              f"threads {args.threads}  start accuracy {start_acc:.3f}", flush=True)
        print(f"{'seed':>4} {'ours s/step':>11} {'trl s/step':>10} {'trl/ours':>8} {'ours acc':>8} {'trl acc':>7}",
              flush=True)
        for seed in seeds:
            # Steps alternate (TRL step k, then our step k) so both trainers see the same load on a shared machine.
            ours = make_ours(policy, train, args, work, seed)
            ours_t: list[float] = []
            trl_t, trl_m, tok = run_trl(policy, train, args, work, seed,
                                        after_step=lambda o=ours, t=ours_t: t.append(o.train_step()["step_seconds"]))
            run = {"seed": seed, "ours_s_per_step": per_step(ours_t), "trl_s_per_step": per_step(trl_t),
                   "ours_accuracy": arithmetic_accuracy(ours.policy, tok, test),
                   "trl_accuracy": arithmetic_accuracy(trl_m, tok, test),
                   "ours_step_times": ours_t, "trl_step_times": trl_t}
            run["ratio_trl_over_ours"] = run["trl_s_per_step"] / run["ours_s_per_step"]
            runs.append(run)
            print(f"{seed:>4} {run['ours_s_per_step']:>11.3f} {run['trl_s_per_step']:>10.3f} "
                  f"{run['ratio_trl_over_ours']:>8.2f} {run['ours_accuracy']:>8.3f} {run['trl_accuracy']:>7.3f}",
                  flush=True)
            del ours, trl_m

    res = {"policy": str(policy), "steps": args.steps, "budget": f"{args.prompts}x{args.generations}x{args.steps}",
           "max_new_tokens": args.max_new_tokens, "threads": args.threads, "test_n": args.test_n, "seeds": seeds,
           "start_accuracy": start_acc, "runs": runs}
    for key in ("ours_s_per_step", "trl_s_per_step", "ratio_trl_over_ours", "ours_accuracy", "trl_accuracy"):
        res[key], res[key + "_sd"] = mean_sd([r[key] for r in runs])
    n = len(runs)
    print(f"over {n} seed(s), mean +- sd:")
    print(f"{'trainer':<8} {'s/step':>15} {'accuracy':>15}")
    print(f"{'start':<8} {'':>15} {start_acc:>15.3f}")
    for name in ("ours", "trl"):
        print(f"{name:<8} {res[name + '_s_per_step']:>7.3f} +- {res[name + '_s_per_step_sd']:<5.3f} "
              f"{res[name + '_accuracy']:>7.3f} +- {res[name + '_accuracy_sd']:<5.3f}")
    print(f"TRL s/step / ours s/step = {res['ratio_trl_over_ours']:.2f} +- {res['ratio_trl_over_ours_sd']:.2f} "
          "(> 1 means ours is faster)")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
