"""`matchtir replicate`: the CPU-scale test of MatchTIR's claim on the synthetic tool suite.

One seed: build the tiny policy, SFT it on a few gold traces, then run GRPO four times from the same warm start
at the same budget and seed: `trajectory` (outcome reward = answer F1, plain GRPO advantage), `km_traj` (turn
rewards from Kuhn-Munkres matching, trajectory-level advantage of their sum), `km` (the same rewards, dual-level
advantage) and `ot` (optimal-transport matching, dual-level advantage). `km` vs `km_traj` isolates the paper's
variable, the advantage, at the same reward; `km_traj` vs `trajectory` the reward at the same advantage.
Each row is scored by greedy rollouts on held-out tasks (solve F1, solve rate, precision, answer F1, mean turns);
the warm start itself is the `sft` reference row. The full run repeats this over 3 seeds and reports means with
the spread (population std over seeds) and the solve-F1 curves. Every stage writes its result atomically under
the output directory and is skipped when rerun, so an interrupted replication resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shared.atomic import write_json
from shared.config import claim_run_dir, config_to_dict, load_config
from shared.eval import sha256_of, write_results

from matchtir import __version__
from matchtir.config import MatchTIRConfig
from matchtir.data import suite_name, suite_samples
from matchtir.evaluate import METRICS, evaluate_policy

ROWS: dict[str, dict[str, Any]] = {
    "trajectory": {"reward": {"scheme": "outcome"}, "advantage": {"mode": "trajectory"}},
    "km_traj": {"reward": {"scheme": "matching", "mode": "hard", "assignment": "hungarian"},
                "advantage": {"mode": "trajectory"}},
    "km": {"reward": {"scheme": "matching", "mode": "hard", "assignment": "hungarian"},
           "advantage": {"mode": "dual"}},
    "ot": {"reward": {"scheme": "matching", "mode": "soft"}, "advantage": {"mode": "dual"}},
}
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def default_config(quick: bool) -> Path:
    return CONFIG_DIR / ("replicate_quick.yaml" if quick else "replicate.yaml")


def row_config(cfg: MatchTIRConfig, row: str) -> MatchTIRConfig:
    """The config of one row: the shared settings with the row's reward and advantage."""
    spec = ROWS[row]
    return dataclasses.replace(cfg, reward=dataclasses.replace(cfg.reward, **spec["reward"]),
                               advantage=dataclasses.replace(cfg.advantage, **spec["advantage"]))


def run_seed(cfg: MatchTIRConfig, seed: int, out: Path, rows: Sequence[str], log: Any = print) -> dict[str, Any]:
    """Warm start and RL rows for one seed; returns {row: metrics} plus curves."""
    from shared.modeling import clone_model, load_model

    from matchtir.train import rl_train
    from matchtir.warmstart import cached_warm_start

    cfg = dataclasses.replace(cfg, seed=seed)
    torch.manual_seed(seed)
    d = cfg.data
    train, test = suite_samples(d, "train"), suite_samples(d, "test")
    # curves follow a dev split when there is one, so the test split is only read for the final figures
    dev = suite_samples(d, "dev") if d.dev_tasks > 0 else test
    results: dict[str, Any] = {"metrics": {}, "curves": {}, "dev": {}}
    t0 = time.perf_counter()
    if cfg.model.path and cfg.sft.steps <= 0:  # a saved warm start: every seed starts from it
        warm_dir, hit = Path(cfg.model.path), True
    else:
        warm_dir, hit = cached_warm_start(cfg, seed, out, log)
    model, tok = load_model(str(warm_dir), kind="causal", dtype="float32", device="auto")
    results["warm_start"] = str(warm_dir)
    log(f"[seed {seed}] warm start {'found' if hit else 'built'} at {warm_dir} ({time.perf_counter() - t0:.0f}s)")
    done = out / "sft_metrics.json"
    if not done.exists():
        sft_eval = evaluate_policy(cfg, model, tok, test, seed=seed)
        if d.dev_tasks > 0:
            sft_eval = {**sft_eval, "dev_solve_f1": evaluate_policy(cfg, model, tok, dev, seed=seed)["solve_f1"]}
        write_json(done, sft_eval)
    sft_saved = json.loads(done.read_text())
    results["dev"]["sft"] = sft_saved.pop("dev_solve_f1", None)
    results["metrics"]["sft"] = sft_saved
    log(f"[seed {seed}] sft: " + " ".join(f"{k}={v:.3f}" for k, v in sft_saved.items()))
    for row in rows:
        done = out / row / "metrics.json"
        if done.exists():
            saved = json.loads(done.read_text())
        else:
            rcfg = row_config(cfg, row)
            curve: list[list[float]] = []

            def eval_fn(trainer: Any, rcfg: MatchTIRConfig = rcfg, curve: list = curve) -> dict[str, float]:
                m = evaluate_policy(rcfg, trainer.policy, tok, dev, seed=seed)
                curve.append([trainer.step, m["solve_f1"]])
                return m

            t1 = time.perf_counter()
            policy, history = rl_train(rcfg, clone_model(model), tok, train, out / row / "rl", eval_fn=eval_fn)
            metrics = evaluate_policy(rcfg, policy, tok, test, seed=seed)
            if not curve or curve[-1][0] != len(history):
                curve.append([len(history), evaluate_policy(rcfg, policy, tok, dev, seed=seed)["solve_f1"]
                              if d.dev_tasks > 0 else metrics["solve_f1"]])
            saved = {"metrics": metrics, "curve": curve,
                     "train_reward": [h["reward"] for h in history], "seconds": time.perf_counter() - t1}
            write_json(done, saved)
        results["metrics"][row] = saved["metrics"]
        results["curves"][row] = saved["curve"]
        log(f"[seed {seed}] {row}: " + " ".join(f"{k}={v:.3f}" for k, v in saved["metrics"].items()))
    return results


def aggregate(per_seed: Sequence[dict[str, Any]], rows: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of results.json: the mean over seeds of each metric and, with several seeds, `solve_f1_std`."""
    out = []
    for row in ["sft", *rows]:
        vals = {k: [s["metrics"][row][k] for s in per_seed] for k in METRICS}
        metrics: dict[str, float | None] = {k: float(np.mean(v)) for k, v in vals.items()}
        metrics["solve_f1_std"] = float(np.std(vals["solve_f1"])) if len(per_seed) > 1 else None
        out.append({"method": row, "metrics": metrics, "seeds": len(per_seed)})
    return out


# (row, baseline) pairs of the paired differences: each row against the outcome-only row, and the dual-level km
# against km_traj (same matching rewards, trajectory-level advantage): the paper's variable alone
PAIRS = (("km_traj", "trajectory"), ("km", "trajectory"), ("ot", "trajectory"), ("km", "km_traj"))


def paired_differences(per_seed: Sequence[dict[str, Any]], rows: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per-seed differences `row - baseline` of every metric for the `PAIRS` whose rows ran (same seed, same warm
    start), with their mean, the population sd and the number of seeds where the row is ahead
    (`shared.eval.paired_differences`)."""
    from shared.eval import paired_differences as seed_paired

    out: dict[str, dict[str, Any]] = {}
    for baseline in dict.fromkeys(b for _, b in PAIRS):
        ran = [r for r, b in PAIRS if b == baseline and r in rows]
        if baseline in rows and ran:
            out |= seed_paired([s["metrics"] for s in per_seed], ran, baseline, metrics=METRICS)
    return {f"{r}-{b}": out[f"{r}-{b}"] for r, b in PAIRS if f"{r}-{b}" in out}


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    keys = [*METRICS, "solve_f1_std"]
    lines = ["| method | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        cells = ["-" if r["metrics"][k] is None else f"{r['metrics'][k]:.3f}" for k in keys]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replicate(quick: bool = False, out: str | Path = "runs/matchtir_replicate", seed: int = 0,
              config: str | Path | None = None, overrides: Sequence[str] = (), seeds: int | None = None,
              rows: Sequence[str] | None = None) -> Path:
    """Run the replication; writes config.yaml, per-stage files and results.json under `out`. `rows` picks a
    subset of the rows (separate processes can run different rows into the same `out`, then one call with all
    rows finds them done and writes the combined results)."""
    torch.set_num_threads(2)
    started = dt.datetime.now(dt.UTC)
    t0 = time.perf_counter()
    cfg = load_config(MatchTIRConfig, config or default_config(quick), list(overrides))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)  # finished rows in out are reused: only for the same config
    n_seeds = seeds if seeds is not None else (1 if quick else 3)
    rows = list(ROWS) if rows is None else [r for r in rows if r != "sft"]  # the sft row is always there
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; known: {list(ROWS)}")
    per_seed = [run_seed(cfg, seed + k, out / f"seed{seed + k}", rows) for k in range(n_seeds)]
    table = aggregate(per_seed, rows)
    print(format_table(table))
    d = cfg.data
    data = {"name": f"{suite_name(d)}, {d.sft_traces} SFT traces",
            "sha256": sha256_of(json.dumps(suite_samples(d, "test")).encode())}
    curves = {f"seed{seed + k}": s["curves"] for k, s in enumerate(per_seed)}
    pairs = paired_differences(per_seed, rows)
    for name, diff in pairs.items():
        print(f"{name}: " + "; ".join(f"{k} {v['mean']:+.3f} ± {v['sd']:.3f} (ahead {v['ahead']}/{len(per_seed)})"
                                      for k, v in diff.items()))
    extra = {"main_method": "km", "headline": "solve_f1", "curves": curves, "curve_split": "dev" if d.dev_tasks
             else "test", "dev_sft_solve_f1": {f"seed{seed + k}": s["dev"]["sft"] for k, s in enumerate(per_seed)},
             "paired_differences": pairs, "warm_starts": [s["warm_start"] for s in per_seed], "seeds": n_seeds}
    return write_results(out, "matchtir", __version__, "replicate", table, config_to_dict(cfg), seed, quick, data,
                         started, time.perf_counter() - t0, extra=extra)
