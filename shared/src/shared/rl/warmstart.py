"""A tiny SFT'd policy on the synthetic arithmetic suite, built once and cached: the start point of RL tests.

`sft_arithmetic_policy(out_dir, steps, seed, target_accuracy)` builds the calibration model (Qwen2 h128 L2 heads 4
FFN 512, char tokenizer), fine-tunes it with TRL's SFTTrainer on arithmetic prompt -> worked solution (lr 3e-3
cosine over `steps`, warmup 30, batch 32) and saves it with save_pretrained. With `target_accuracy`, greedy
exact match on 200 validation problems (train-split expressions never trained on) is measured every `eval_every`
steps and training stops once it reaches the target: the accuracy of a tiny model jumps within a few dozen steps (measured here: 300
cosine steps gave 7%, 400 gave 6%), so stopping on the metric gives a reproducible ~35-40% start for RL. The
directory is written under a temporary name and renamed, and reused when a finished one with the same settings
exists. `records=` swaps in the caller's own prompt -> completion records (e.g. another solution style): the same
recipe and cache, with the records' sha256 and count in the stamp so a cache built on other records is never reused.
`arithmetic_accuracy` is greedy exact match (last \\boxed{} vs the gold answer) on a list of records.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from shared.atomic import cached_dir

STAMP = "warmstart.json"


def arithmetic_records(n: int, split: str, seed: int = 0) -> list[dict[str, Any]]:
    """Calibration-format arithmetic records (dicts with prompt, solution, answer)."""
    from benchmarks.synthetic.arithmetic import make_arithmetic

    return [r.to_dict() for r in make_arithmetic(n, seed=seed, split=split)]


def arithmetic_reward(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]]) -> list[float]:
    """RLTrainer reward_fn: 1 when the completion's last \\boxed{} equals the record's answer."""
    from shared.rewards import math_reward

    return [math_reward(t.text, str(r["answer"])) for t, r in zip(trajs, records)]


@torch.no_grad()
def arithmetic_accuracy(model: torch.nn.Module, tokenizer: Any, records: Sequence[Mapping[str, Any]],
                        max_new_tokens: int = 40, batch_size: int = 250) -> float:
    """Greedy exact-match accuracy on records."""
    from shared.generation import HFGenerator, SamplingParams
    from shared.rewards import math_reward

    gen = HFGenerator(model, tokenizer, batch_size=batch_size)
    prompts = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in records]
    outs = gen.generate(prompts, SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0))
    hits = [math_reward(o[0].text, str(r["answer"])) for o, r in zip(outs, records)]
    return sum(hits) / max(1, len(hits))


class _StopAtAccuracy(TrainerCallback):
    """Every `every` steps measure validation accuracy; stop training once it reaches the target."""

    def __init__(self, tokenizer: Any, val: Sequence[Mapping[str, Any]], target: float | None, every: int) -> None:
        self.tokenizer, self.val, self.target, self.every = tokenizer, val, target, every
        self.curve: list[tuple[int, float]] = []
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.target is None or state.global_step % self.every:
            return
        acc = arithmetic_accuracy(model, self.tokenizer, self.val)
        self.curve.append((state.global_step, acc))
        if acc >= self.target:
            self.stopped_at = state.global_step
            control.should_training_stop = True


def sft_arithmetic_policy(
    out_dir: str | Path,
    steps: int = 300,
    seed: int = 0,
    lr: float = 3e-3,
    batch_size: int = 32,
    n_train: int = 20_000,
    eval_n: int = 500,
    lr_schedule: str = "cosine",
    target_accuracy: float | None = None,
    eval_every: int = 10,
    records: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Path of a saved SFT'd tiny policy (built and evaluated on first call, reused afterwards).

    `records`: SFT data as dicts with `prompt` and `completion` (replaces the n_train arithmetic records; n_train
    is then unused). Validation for `target_accuracy` stays on the 200 arithmetic problems after the first
    n_train of the train split, and the test accuracy on the held-out test split."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from shared.rl.sft import SFTSettings, run_sft

    out = Path(out_dir)
    settings: dict[str, Any] = {"steps": steps, "seed": seed, "lr": lr, "batch_size": batch_size,
                                "n_train": n_train, "arch": "qwen2-h128-L2-heads4-ffn512-char"}
    # newer options enter the stamp only when used, so caches built by earlier calls stay valid
    if lr_schedule != "cosine":
        settings["lr_schedule"] = lr_schedule
    if target_accuracy is not None:
        settings.update(target_accuracy=target_accuracy, eval_every=eval_every)
    if records is not None:
        from shared.eval import sha256_of
        from shared.rl.trl_common import check_records

        check_records(records, ("prompt", "completion"), "sft_arithmetic_policy records")
        pairs = [{"prompt": str(r["prompt"]), "completion": str(r["completion"])} for r in records]
        settings.update(n_train=len(pairs), records_sha256=sha256_of(json.dumps(pairs).encode()))

    def build(tmp: Path) -> dict[str, Any]:
        base = tiny_causal_lm(tmp / "init", tokenizer=build_tokenizer(kind="char"), seed=seed)
        model = AutoModelForCausalLM.from_pretrained(base)
        tokenizer = AutoTokenizer.from_pretrained(base)
        pool = arithmetic_records(n_train + 200, "train", seed)  # distinct expressions: the last 200 validate
        train, val = pool[:n_train], pool[n_train:]
        if records is None:
            data = [{"prompt": r["prompt"], "completion": r["solution"], "id": r["id"]} for r in train]
        else:
            data = pairs
        stopper = _StopAtAccuracy(tokenizer, val, target_accuracy, eval_every)
        sft = SFTSettings(output_dir=str(tmp / "trl"), steps=steps, lr=lr, batch_size=batch_size, seed=seed,
                          logging_steps=50, lr_schedule=lr_schedule)
        model, log = run_sft(model, tokenizer, data, sft, callbacks=[stopper])
        model.eval()
        acc = arithmetic_accuracy(model, tokenizer, arithmetic_records(eval_n, "test", seed=1000 + seed))
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(tmp / "init", ignore_errors=True)
        shutil.rmtree(tmp / "trl", ignore_errors=True)
        return {"test_accuracy": acc, "stopped_at": stopper.stopped_at, "validation_curve": stopper.curve,
                "final_loss": next((x["loss"] for x in reversed(log) if "loss" in x), None)}

    return cached_dir(out, settings, build, stamp=STAMP)[0]
