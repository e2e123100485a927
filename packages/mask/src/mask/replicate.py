"""`mask replicate`: the CPU-scale test of M-ASK's claims against a monolithic Search-R1-style agent.

Data: the synthetic KB's 2-3-hop questions split by (entity, chain) (`data.py`; the test-train hop overlap is
counted and must be 0), BM25 top-5 for both rows. Warm starts: one per row, built once and shared by every seed
(`warmstart.py`), reported as rows `mask_sft` and `monolithic_sft`. Then per seed and row: RL from that warm start
with the same questions, episodes per question, steps and optimiser (`train.py`), dev F1 every `rl.eval_every`
steps, greedy test metrics at the end. Rows of results.json: `mask_sft`, `monolithic_sft`, `mask`, `monolithic`,
each with f1, em, acc, reward_std_across_seeds, context_tokens_per_turn, context_tokens_max, generated_tokens,
mean_iterations (means over seeds). `extra` holds the claims as measured (`claims`), the per-iteration context
curves, the training and dev curves per seed, the paired per-seed differences and the training token counts.

`pilot` is the dev-only settings run fixed in the README before the test run: per row and per lr of
`train.lr_grid`, `pilot_steps` RL steps with the first seed, dev F1 measured along the way; the lr rule and the
"not testable at this scale" check read only these dev figures.

Every stage writes its result atomically and is skipped when found, so an interrupted replication resumes (RL runs
resume from their checkpoints); per-seed processes (`--seed K --seeds 1`) can share one output folder.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shared.atomic import save_pretrained, write_json
from shared.config import claim_run_dir, config_to_dict, load_config
from shared.eval import paired_differences, sha256_of, write_results

from mask import __version__
from mask.config import MaskConfig
from mask.evaluate import METRICS, context_slope, reward_std_across_seeds, row_metrics, seed_bootstrap

ROWS = ("mask", "monolithic")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
CHURN = 0.03  # greedy churn of dev F1 on 128 questions: movement below it is not learning (fixed in advance)


def default_config(quick: bool) -> Path:
    return CONFIG_DIR / ("replicate_quick.yaml" if quick else "replicate.yaml")


@dataclasses.dataclass
class Context:
    """What every stage shares: the splits, corpus, retriever, tokenizer and the warm-start folders."""

    splits: dict[str, list]
    corpus: list
    retriever: Any
    retrieve: Callable
    warm: dict[str, Path]
    overlap: dict[str, int]


def prepare(cfg: MaskConfig, out: Path, log: Callable[[str], Any] = print) -> Context:
    from mask.data import build_retriever, corpus, make_retrieve, overlap, synthetic_splits
    from mask.warmstart import policy_paths

    splits = synthetic_splits(cfg.data)
    seen = overlap(splits["train"] + splits["dev"] + splits["sft"], splits["test"])
    if any(seen.values()):
        raise ValueError(f"test questions overlap the training data: {seen} (expected 0)")
    docs = corpus(cfg.data)
    retriever = build_retriever(cfg.data)
    retrieve = make_retrieve(retriever, cfg.loop.topk)
    log(f"data: {', '.join(f'{k} {len(v)}' for k, v in splits.items())}; test overlap {seen}")
    warm = policy_paths(cfg, out, splits, docs, retriever, retrieve, log=log)
    return Context(splits, docs, retriever, retrieve, warm, seen)


def _load(path: Path) -> tuple[Any, Any]:
    from shared.modeling import load_model

    return load_model(str(path), kind="causal", dtype="float32", device="cpu")


def sft_results(cfg: MaskConfig, ctx: Context, out: Path, dev: bool = True,
                log: Callable[[str], Any] = print) -> dict[str, dict]:
    """Greedy test metrics of both warm starts (with `dev`, also greedy and sampled dev F1), once per folder."""
    from mask.evaluate import evaluate

    res = {}
    for row in ROWS:
        done = out / "sft" / f"{row}.json"
        if not done.exists():
            t0 = time.perf_counter()
            model, tok = _load(ctx.warm[row])
            test = evaluate(cfg, row, model, tok, ctx.splits["test"], ctx.retriever, ctx.retrieve)
            saved = {"test": test, "dev_f1": None, "dev_sampled_f1": None, "warm_start": str(ctx.warm[row])}
            if dev:
                saved["dev_f1"] = evaluate(cfg, row, model, tok, ctx.splits["dev"], ctx.retriever, ctx.retrieve)["f1"]
                # the precondition's measure: F1 of episodes sampled at the RL temperature on dev
                hot = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, temperature=cfg.rl.temperature))
                saved["dev_sampled_f1"] = evaluate(hot, row, model, tok, ctx.splits["dev"], ctx.retriever,
                                                   ctx.retrieve, seed=1)["f1"]
            write_json(done, {**saved, "seconds": time.perf_counter() - t0})
        res[row] = json.loads(done.read_text())
        log(f"{row}_sft: " + " ".join(f"{k}={res[row]['test'][k]:.3f}" for k in ("f1", "em", "acc",
                                                                                   "context_tokens_per_turn")))
    return res


def run_row(cfg: MaskConfig, ctx: Context, row: str, seed: int, out: Path, dev_every: int | None = None,
            final_test: bool = True, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """RL of one row for one seed from the row's warm start; returns (and stores) its curves and test metrics."""
    from mask.evaluate import evaluate
    from mask.train import rl_train

    done = out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    cfg = dataclasses.replace(cfg, seed=seed)
    torch.manual_seed(seed)
    model, tok = _load(ctx.warm[row])
    every = cfg.rl.eval_every if dev_every is None else dev_every

    def eval_fn(trainer: Any) -> dict[str, float]:
        return {"dev_f1": evaluate(cfg, row, trainer.policy, tok, ctx.splits["dev"], ctx.retriever, ctx.retrieve)["f1"]}

    rl_cfg = dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, eval_every=every, lr=row_lr(cfg, row)))
    t0 = time.perf_counter()
    policy, history = rl_train(rl_cfg, row, model, tok, ctx.splits["train"], ctx.retriever, ctx.retrieve, out / "rl",
                               eval_fn=eval_fn if every else None)
    seconds = time.perf_counter() - t0
    # the dev points are read from the history, which the checkpoints keep across a resume
    dev_curve = [[h["step"], h["eval/dev_f1"]] for h in history if "eval/dev_f1" in h]
    saved: dict[str, Any] = {
        "row": row, "seed": seed, "seconds": seconds,
        "train_f1": [h["train_f1"] for h in history], "call_reward": [h["call_reward"] for h in history],
        "train_generated_tokens": float(sum(h["generated_tokens"] for h in history)),
        "train_samples": float(sum(h["samples"] for h in history)), "dev_curve": dev_curve,
        "history": [{k: v for k, v in h.items() if isinstance(v, int | float)} for h in history]}
    if final_test:
        save_pretrained(out / "final_model", policy, tok)
        saved["test"] = evaluate(cfg, row, policy, tok, ctx.splits["test"], ctx.retriever, ctx.retrieve, seed=seed)
    write_json(done, saved)
    return json.loads(done.read_text())  # as a rerun reads it (curve keys as strings)


def row_lr(cfg: MaskConfig, row: str) -> float:
    """The actor lr of `row`: `train.<row>_lr` when set (the pilot's pick), else `rl.lr`."""
    return float(getattr(cfg.train, f"{row}_lr") or cfg.rl.lr)


def aggregate(sft: dict[str, dict], per_seed: Sequence[dict[str, dict]], rows: Sequence[str]) -> list[dict]:
    """results.json rows: both warm starts, then the RL `rows` as means over seeds (reward_std_across_seeds from the
    training curves)."""
    table = []
    for row in ROWS:
        table.append({"method": f"{row}_sft", "metrics": row_metrics(sft[row]["test"]), "seeds": 1})
    for row in rows:
        runs = [s[row] for s in per_seed]
        metrics = {k: float(np.mean([r["test"][k] for r in runs])) for k in METRICS
                   if k != "reward_std_across_seeds"}
        metrics["reward_std_across_seeds"] = reward_std_across_seeds([r["train_f1"] for r in runs])
        table.append({"method": row, "metrics": {k: metrics[k] for k in METRICS}, "seeds": len(runs)})
    return table


def _context_curves(sft: dict, per_seed: Sequence[dict], rows: Sequence[str]) -> dict[str, dict[str, float]]:
    curves: dict[str, dict[str, float]] = {}
    for row in rows:
        curves[f"{row}_sft"] = {str(k): v for k, v in sft[row]["test"]["context_curve"].items()}
        keys = sorted({int(k) for s in per_seed for k in s[row]["test"]["context_curve"]})
        curves[row] = {str(k): float(np.mean([s[row]["test"]["context_curve"][str(k)] for s in per_seed
                                              if str(k) in s[row]["test"]["context_curve"]])) for k in keys}
    return curves


def claims(sft: dict, per_seed: Sequence[dict], rows: Sequence[str]) -> dict[str, Any]:
    """The README's claims, measured: boundedness, stability, accuracy (see the README for the rules)."""
    out: dict[str, Any] = {}
    if set(ROWS) <= set(rows):
        curves = _context_curves(sft, per_seed, rows)
        slopes = {name: context_slope(c) for name, c in curves.items()}
        m, b = slopes["mask"], slopes["monolithic"]
        out["boundedness"] = {"slopes": slopes, "holds": m is not None and b is not None and b > 0 and m < b / 4}
        a = [s["mask"]["train_f1"] for s in per_seed]
        c = [s["monolithic"]["train_f1"] for s in per_seed]
        sd = {"mask": reward_std_across_seeds(a), "monolithic": reward_std_across_seeds(c)}
        moved = {row: max((abs(f1 - sft[row]["dev_f1"]) for s in per_seed for _, f1 in s[row]["dev_curve"]),
                          default=0.0) if sft[row]["dev_f1"] is not None else None for row in rows}
        boot = seed_bootstrap(a, c) if len(per_seed) > 1 else None
        if len(per_seed) < 2:
            verdict = "not measured (one seed)"
        elif all(m is not None and m <= CHURN for m in moved.values()):
            verdict = "not testable at this scale (no row's dev F1 moved beyond the churn)"
        elif boot["high"] is not None and boot["high"] < 0:
            verdict = "holds"
        elif boot["difference"] < 0:
            verdict = "suggestive (lower for mask, CI includes 0)"
        else:
            verdict = "fails"
        out["stability"] = {"reward_std_across_seeds": sd, "bootstrap_mask_minus_monolithic": boot,
                            "dev_f1_max_move": moved, "verdict": verdict}
        diffs = [s["mask"]["test"]["f1"] - s["monolithic"]["test"]["f1"] for s in per_seed]
        out["accuracy"] = {"f1_mask_minus_monolithic": diffs, "mean": float(np.mean(diffs)),
                           "ahead": int(sum(d > 0 for d in diffs)),
                           "f1_minus_warm_start": {row: [s[row]["test"]["f1"] - sft[row]["test"]["f1"]
                                                         for s in per_seed] for row in rows}}
    return out


def format_table(rows: Sequence[dict]) -> str:
    lines = ["| method | " + " | ".join(METRICS) + " |", "|" + "---|" * (len(METRICS) + 1)]
    for r in rows:
        cells = ["-" if r["metrics"][k] is None else f"{r['metrics'][k]:.3f}" for k in METRICS]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replicate(quick: bool = False, out: str | Path = "runs/mask_replicate", seed: int = 0,
              config: str | Path | None = None, overrides: Sequence[str] = (), seeds: int | None = None,
              rows: Sequence[str] | None = None, log: Callable[[str], Any] = print) -> Path:
    """Run the replication (see the module docstring); returns the path of results.json. `rows=["sft"]` builds
    and scores the warm starts only."""
    torch.set_num_threads(1)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    cfg = load_config(MaskConfig, config or default_config(quick), list(overrides))
    cfg.validate()
    rows = list(ROWS) if rows is None else list(rows)
    unknown = [r for r in rows if r not in (*ROWS, "sft")]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; known: {[*ROWS, 'sft']}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)
    ctx = prepare(cfg, out, log)
    sft = sft_results(cfg, ctx, out, dev=not quick, log=log)
    rl_rows = [r for r in rows if r in ROWS]
    n_seeds = seeds if seeds is not None else (1 if quick else 3)
    per_seed = []
    for k in range(seed, seed + n_seeds if rl_rows else seed):
        results = {}
        for row in rl_rows:
            results[row] = run_row(cfg, ctx, row, k, out / f"seed{k}" / row, log=log)
            log(f"[seed {k}] {row}: " + " ".join(f"{m}={results[row]['test'][m]:.3f}" for m in
                                                 ("f1", "em", "acc", "context_tokens_per_turn")))
        per_seed.append(results)
    table = aggregate(sft, per_seed, rl_rows if per_seed else [])
    print(format_table(table))
    measured = claims(sft, per_seed, rl_rows) if per_seed else {}
    for name, value in measured.items():
        log(f"claim {name}: {json.dumps(value, default=float)[:300]}")
    pairs = paired_differences([{row: s[row]["test"] for row in rl_rows} for s in per_seed], rl_rows, "monolithic",
                               metrics=["f1", "em", "acc"]) if len(rl_rows) == 2 and per_seed else {}
    data = {"name": _data_name(cfg), "sha256": sha256_of(json.dumps(ctx.splits["test"]).encode()),
            "splits": {k: len(v) for k, v in ctx.splits.items()}, "test_overlap": ctx.overlap}
    extra = {"main_method": "mask", "headline": "reward_std_across_seeds", "claims": measured,
             "context_curves": _context_curves(sft, per_seed, rl_rows) if per_seed and len(rl_rows) == 2 else {},
             "sft": {row: {"dev_f1": sft[row]["dev_f1"], "dev_sampled_f1": sft[row].get("dev_sampled_f1"),
                           "illegal": sft[row]["test"].get("illegal"),
                           "warm_start": sft[row]["warm_start"]} for row in ROWS},
             "seeds": [seed + k for k in range(len(per_seed))], "paired_differences": pairs,
             "curves": {f"seed{seed + k}": {row: {"train_f1": s[row]["train_f1"], "call_reward": s[row]["call_reward"],
                                                  "dev_f1": s[row]["dev_curve"]} for row in rl_rows}
                        for k, s in enumerate(per_seed)},
             "training": {row: {"generated_tokens": [s[row]["train_generated_tokens"] for s in per_seed],
                                "samples": [s[row]["train_samples"] for s in per_seed],
                                "seconds": [s[row]["seconds"] for s in per_seed],
                                "illegal": [s[row]["test"]["illegal"] for s in per_seed]} for row in rl_rows}}
    return write_results(out, "mask", __version__, "replicate", table, config_to_dict(cfg), seed, quick, data,
                         started, time.perf_counter() - t0, extra=extra)


def _data_name(cfg: MaskConfig) -> str:
    from mask.data import data_name

    return data_name(cfg.data)


def warm_dev(cfg: MaskConfig, ctx: Context, out: Path, log: Callable[[str], Any] = print) -> dict[str, dict]:
    """Greedy and sampled (the RL temperature) dev F1 of both warm starts, once per folder (no test data read)."""
    from mask.evaluate import evaluate

    res = {}
    hot = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, temperature=cfg.rl.temperature))
    for row in ROWS:
        done = out / "warm_dev" / f"{row}.json"
        if not done.exists():
            model, tok = _load(ctx.warm[row])
            greedy = evaluate(cfg, row, model, tok, ctx.splits["dev"], ctx.retriever, ctx.retrieve)
            sampled = evaluate(hot, row, model, tok, ctx.splits["dev"], ctx.retriever, ctx.retrieve, seed=1)
            write_json(done, {"dev_f1": greedy["f1"], "dev_sampled_f1": sampled["f1"], "dev": greedy})
        res[row] = json.loads(done.read_text())
        log(f"{row} warm start: dev F1 greedy {res[row]['dev_f1']:.3f}, sampled {res[row]['dev_sampled_f1']:.3f}")
    return res


def pilot(out: str | Path, config: str | Path | None = None, overrides: Sequence[str] = (), seed: int = 0,
          steps: int = 10, dev_every: int = 5, rows: Sequence[str] | None = None, lrs: Sequence[float] | None = None,
          log: Callable[[str], Any] = print) -> Path | None:
    """The dev-only pilot: per row and lr of `train.lr_grid`, `steps` RL steps (seed `seed`), dev F1 every
    `dev_every` steps. `rows` / `lrs` run a subset (separate processes can share `out`); once every run is done,
    pilot.json gets the curves, the lr the README's rule picks per row, whether any row moved beyond the churn and
    the preconditions. Returns its path (None while runs are missing)."""
    torch.set_num_threads(1)
    cfg = load_config(MaskConfig, config or default_config(False), list(overrides))
    cfg.validate()
    cfg = dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, steps=steps))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)
    ctx = prepare(cfg, out, log)
    start = warm_dev(cfg, ctx, out, log)
    grid = [float(x) for x in cfg.train.lr_grid]
    for row in rows or ROWS:
        for lr in lrs or grid:
            rcfg = dataclasses.replace(cfg, rl=dataclasses.replace(cfg.rl, lr=lr),
                                       train=dataclasses.replace(cfg.train, mask_lr=0.0, monolithic_lr=0.0))
            res = run_row(rcfg, ctx, row, seed, out / f"{row}_lr{lr:g}", dev_every=dev_every, final_test=False,
                          log=log)
            log(f"pilot {row} lr {lr:g}: dev F1 {res['dev_curve']}")
    done = {(row, lr): out / f"{row}_lr{lr:g}" / "result.json" for row in ROWS for lr in grid}
    if not all(p.exists() for p in done.values()):
        return None
    runs = {key: json.loads(p.read_text()) for key, p in done.items()}
    curves = {row: {f"{lr:g}": [[0, start[row]["dev_f1"]], *runs[(row, lr)]["dev_curve"]] for lr in grid}
              for row in ROWS}
    moved = {row: max(abs(f1 - start[row]["dev_f1"]) for c in curves[row].values() for _, f1 in c) for row in ROWS}

    def mean_of(row: str, key: str) -> float:
        return float(np.mean([h[key] for lr in grid for h in runs[(row, lr)]["history"] if key in h]))

    pre = {"sampled_dev_f1": {row: start[row]["dev_sampled_f1"] for row in ROWS},
           "sampled_in_range": {row: 0.2 <= start[row]["dev_sampled_f1"] <= 0.8 for row in ROWS},
           "mask_nonzero_reward_share": mean_of("mask", "nonzero_reward"),
           "groups_informative": {row: mean_of(row, "groups_informative") for row in ROWS}}
    doc = {"curves": curves, "lr": {row: pick_lr(c) for row, c in curves.items()}, "dev_f1_max_move": moved,
           "churn": CHURN, "testable": max(moved.values()) > CHURN, "preconditions": pre, "steps": steps,
           "seed": seed, "train_f1": {row: {f"{lr:g}": runs[(row, lr)]["train_f1"] for lr in grid} for row in ROWS}}
    return write_json(out / "pilot.json", doc)


def pick_lr(curves: dict[str, list]) -> float:
    """The README's rule: the lr with the highest mean dev F1 over its last two measurements; ties -> the lower."""
    def score(points: list) -> float:
        return float(np.mean([f1 for _, f1 in points[-2:]]))

    return min((-score(points), float(lr)) for lr, points in curves.items())[1]
