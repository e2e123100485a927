"""Cached SFT warm starts: train until a validation metric reaches a target, build once, reuse by settings.

`cached_sft_policy(out_dir, build_model, records, val_fn, target, settings, eval_every, key)` is the generic recipe:
`build_model(scratch)` makes the initial (model, tokenizer), `run_sft` trains on the caller's records (prompt /
completion strings or `{input_ids, completion_mask}` token examples), and every `eval_every` steps
`val_fn(model, tokenizer)` is measured; training stops once it reaches `target` (the accuracy of a tiny model jumps
within a few dozen steps, so stopping on the metric gives a reproducible start for RL where a fixed step count
does not: 300 cosine steps gave 7% on arithmetic, 400 gave 6%). The folder is written under a temporary name and
renamed (`shared.atomic.cached_dir`), and reused when a finished one with the same stamp settings exists: the SFT
settings, the records' count and sha256, the target and `key` (what `build_model` builds and `val_fn` measures,
which a function cannot say about itself). The stamp `warmstart.json` also holds the validation curve, the step it
stopped at, the last training loss and what `test_fn` measured.

The core knows no benchmark: records come from the caller, or by name from `RECORD_SOURCES`, a plain dict filled
from the `shared.record_sources` entry points of installed packages (the workspace's benchmarks package registers
"arithmetic"). `sft_arithmetic_policy` is the arithmetic warm start of the RL tests, sage, rose and huijin, built on
`cached_sft_policy` with the same stamp as before (existing caches stay valid): the calibration model (Qwen2 h128
L2 heads 4 FFN 512, char tokenizer), prompt -> worked solution, validated by greedy exact match on 200 train-split
problems never trained on, tested on the held-out test split. `arithmetic_accuracy` is greedy exact match (last
\\boxed{} vs the gold answer) on a list of records. Without an `out_dir` it lives in the shared cache
(`shared_cache_root()/warmstarts/arithmetic-<stamp hash>`), so two packages asking for the same settings (sage's warm
start and huijin's general base are one model) build it once, and one waits on the other's lock when they run at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from shared.atomic import cached_dir

STAMP = "warmstart.json"
ENTRY_POINT_GROUP = "shared.record_sources"
# name -> fn(n, split, seed) returning a list of record dicts; filled on first use from ENTRY_POINT_GROUP
RECORD_SOURCES: dict[str, Callable[[int, str, int], list[dict[str, Any]]]] = {}
# SFTSettings fields that do not change the trained weights, so no cache key holds them (a package that builds its
# own stamp drops these too: turning on wandb must not retrain a cached warm start)
SFT_STAMP_IGNORED = ("output_dir", "logging_steps", "threads", "report_to")


class RecordSourceError(LookupError):
    """No installed package provides the named record source."""


def record_source(name: str) -> Callable[[int, str, int], list[dict[str, Any]]]:
    """The record source `name`: from RECORD_SOURCES, else loaded from an installed package's entry point."""
    if name not in RECORD_SOURCES:
        for point in entry_points(group=ENTRY_POINT_GROUP):
            if point.name == name:
                RECORD_SOURCES[name] = point.load()
                break
    if name not in RECORD_SOURCES:
        known = sorted({*RECORD_SOURCES, *(p.name for p in entry_points(group=ENTRY_POINT_GROUP))})
        raise RecordSourceError(f"no record source {name!r} is installed (known: {known or 'none'}); install the "
                                f"package that registers it under the {ENTRY_POINT_GROUP!r} entry points (this "
                                f"workspace's benchmarks package provides 'arithmetic'), or pass records yourself")
    return RECORD_SOURCES[name]


def arithmetic_records(n: int, split: str, seed: int = 0) -> list[dict[str, Any]]:
    """Calibration-format arithmetic records (dicts with prompt, solution, answer) from the 'arithmetic' source."""
    return record_source("arithmetic")(n, split, seed)


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


class StopAtTarget(TrainerCallback):
    """Every `every` steps measure `val_fn(model, tokenizer)` (in eval mode); stop once it reaches `target`."""

    def __init__(self, tokenizer: Any, val_fn: Callable[[Any, Any], float] | None, target: float | None,
                 every: int) -> None:
        if every < 1:
            raise ValueError(f"eval_every must be >= 1, got {every}")
        self.tokenizer, self.val_fn, self.target, self.every = tokenizer, val_fn, target, every
        self.curve: list[tuple[int, float]] = []
        self.stopped_at: int | None = None

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if self.val_fn is None or state.global_step % self.every:
            return
        training = model.training
        model.eval()
        value = float(self.val_fn(model, self.tokenizer))
        model.train(training)
        self.curve.append((state.global_step, value))
        if self.target is not None and value >= self.target:
            self.stopped_at = state.global_step
            control.should_training_stop = True


def records_digest(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{"n", "sha256"} of the training fields of records (prompt/completion, or input_ids/completion_mask)."""
    from shared.eval import sha256_of
    from shared.rl.sft import TOKEN_FIELDS, is_token_records

    fields = TOKEN_FIELDS if is_token_records(records) else ("prompt", "completion")
    rows = [{f: (list(r[f]) if f in TOKEN_FIELDS else str(r[f])) for f in fields} for r in records]
    return {"n": len(rows), "sha256": sha256_of(json.dumps(rows).encode())}


def sft_stamp_settings(settings: Any, records: Sequence[Mapping[str, Any]], target: float | None, eval_every: int,
                       key: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default cache key of `cached_sft_policy`: `key`, the SFT settings that shape the weights, the records'
    count and hash, and the stopping rule."""
    sft = {k: v for k, v in dataclasses.asdict(settings).items() if k not in SFT_STAMP_IGNORED}
    return {"key": dict(key or {}), "sft": sft, "records": records_digest(records), "target": target,
            "eval_every": eval_every if target is not None else None}


def cached_sft_policy(
    out_dir: str | Path,
    build_model: Callable[[Path], tuple[torch.nn.Module, Any]],
    records: Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]],
    val_fn: Callable[[torch.nn.Module, Any], float] | None = None,
    target: float | None = None,
    settings: Any = None,
    eval_every: int = 10,
    key: Mapping[str, Any] | None = None,
    test_fn: Callable[[torch.nn.Module, Any], Mapping[str, Any]] | None = None,
    stamp_settings: Mapping[str, Any] | None = None,
    sft_fn: Callable[..., tuple[torch.nn.Module, list[dict[str, Any]]]] | None = None,
) -> Path:
    """Path of a saved SFT'd policy (built on first call, reused while the stamp settings are equal).

    build_model(scratch_dir) -> (model, tokenizer): the starting point (e.g. a tiny random model, or a checkpoint).
    records: `run_sft` records, or a function returning them (with `stamp_settings` it is called only when the
    folder is built, so costly records are not made on a cache hit). val_fn(model, tokenizer) -> float, measured
    every `eval_every` steps; with `target`, training stops once it reaches the target (else it runs
    `settings.steps`). settings: an `SFTSettings` (its output_dir is replaced by a scratch folder). key: JSON-able
    description of build_model and val_fn for the stamp. test_fn(model, tokenizer) -> {name: value}, measured once
    after training and kept in the stamp. stamp_settings: the full cache key instead of `sft_stamp_settings(...)`
    (for callers with older stamps). sft_fn: the trainer, `run_sft`'s signature (default `run_sft`; e.g.
    `shared.rl.sft_plain.run_plain_sft`, which the caller should name in `key`). Bad records raise ValueError before
    any training (and before anything is built when they are given as a list)."""
    from shared.rl.sft import SFTSettings, prepare_sft_data, run_sft

    settings = settings if settings is not None else SFTSettings()
    if target is not None and val_fn is None:
        raise ValueError("cached_sft_policy: a target needs a val_fn to measure it")
    source = "cached_sft_policy records"
    made: list[Sequence[Mapping[str, Any]]] = []

    def get_records() -> Sequence[Mapping[str, Any]]:
        if not made:
            made.append(records() if callable(records) else records)
            prepare_sft_data(None, None, made[0], settings, source)  # bad records fail before any training
        return made[0]

    if stamp_settings is not None:
        stamp = dict(stamp_settings)
        if not callable(records):
            get_records()
    else:
        stamp = sft_stamp_settings(settings, get_records(), target, eval_every, key)

    def build(tmp: Path) -> dict[str, Any]:
        t0 = time.perf_counter()
        data = get_records()
        model, tokenizer = build_model(tmp / "init")
        stopper = StopAtTarget(tokenizer, val_fn, target, eval_every)
        sft = dataclasses.replace(settings, output_dir=str(tmp / "trl"))
        model, log = (sft_fn or run_sft)(model, tokenizer, data, sft, source=source, callbacks=[stopper])
        model.eval()
        tested = dict(test_fn(model, tokenizer)) if test_fn is not None else {}
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(tmp / "init", ignore_errors=True)
        shutil.rmtree(tmp / "trl", ignore_errors=True)
        return {**tested, "stopped_at": stopper.stopped_at, "validation_curve": stopper.curve,
                "final_loss": next((x["loss"] for x in reversed(log) if "loss" in x), None),
                "seconds": time.perf_counter() - t0}

    return cached_dir(Path(out_dir), stamp, build, stamp=STAMP)[0]


def shared_cache_root() -> Path:
    """Where warm starts that several packages may share are kept: $SHARED_CACHE, else ~/.cache/shared."""
    return Path(os.environ.get("SHARED_CACHE") or Path.home() / ".cache" / "shared").expanduser()


def sft_arithmetic_policy(
    out_dir: str | Path | None = None,
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
    """Path of a saved SFT'd tiny arithmetic policy (built and evaluated on first call, reused afterwards).

    `out_dir`: its folder; None = the shared cache, named by the stamp's hash (the same settings, the same folder).

    `records`: SFT data as dicts with `prompt` and `completion` (replaces the n_train arithmetic records). Validation
    for `target_accuracy` stays on the 200 arithmetic problems after the first n_train of the train split, and the
    test accuracy on the held-out test split."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from shared.modeling.tiny import build_tokenizer, tiny_causal_lm
    from shared.rl.sft import SFTSettings
    from shared.rl.trl_common import check_records

    # the stamp of the earlier arithmetic-only warm start, so the caches it built stay valid
    stamp: dict[str, Any] = {"steps": steps, "seed": seed, "lr": lr, "batch_size": batch_size,
                             "n_train": n_train, "arch": "qwen2-h128-L2-heads4-ffn512-char"}
    # newer options enter the stamp only when used
    if lr_schedule != "cosine":
        stamp["lr_schedule"] = lr_schedule
    if target_accuracy is not None:
        stamp.update(target_accuracy=target_accuracy, eval_every=eval_every)
    if records is not None:
        check_records(records, ("prompt", "completion"), "sft_arithmetic_policy records")
        data = [{"prompt": str(r["prompt"]), "completion": str(r["completion"])} for r in records]
        stamp.update(n_train=len(data), records_sha256=records_digest(data)["sha256"])
    if out_dir is None:
        digest = hashlib.sha256(json.dumps(stamp, sort_keys=True).encode()).hexdigest()[:16]
        out_dir = shared_cache_root() / "warmstarts" / f"arithmetic-{digest}"
    made: dict[str, list[dict[str, Any]]] = {}  # built on a cache miss only: 20k problems take seconds

    def pool() -> list[dict[str, Any]]:  # distinct expressions: the n_train first train, the last 200 validate
        if "pool" not in made:
            made["pool"] = arithmetic_records(n_train + 200, "train", seed)
        return made["pool"]

    def train_records() -> list[dict[str, Any]]:
        if records is not None:
            return data
        return [{"prompt": r["prompt"], "completion": r["solution"], "id": r["id"]} for r in pool()[:n_train]]

    def build_model(scratch: Path) -> tuple[torch.nn.Module, Any]:
        base = tiny_causal_lm(scratch, tokenizer=build_tokenizer(kind="char"), seed=seed)
        return AutoModelForCausalLM.from_pretrained(base), AutoTokenizer.from_pretrained(base)

    def val_fn(model: torch.nn.Module, tokenizer: Any) -> float:
        return arithmetic_accuracy(model, tokenizer, pool()[n_train:])

    def test_fn(model: torch.nn.Module, tokenizer: Any) -> dict[str, float]:
        test = arithmetic_records(eval_n, "test", 1000 + seed)
        return {"test_accuracy": arithmetic_accuracy(model, tokenizer, test)}

    sft = SFTSettings(steps=steps, lr=lr, batch_size=batch_size, seed=seed, logging_steps=50, lr_schedule=lr_schedule)
    return cached_sft_policy(out_dir, build_model, train_records, val_fn if target_accuracy is not None else None,
                             target_accuracy, sft, eval_every, test_fn=test_fn, stamp_settings=stamp)
