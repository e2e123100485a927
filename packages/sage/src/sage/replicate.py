"""`sage replicate`: the CPU-scale replication of SAGE's claim (faster convergence than uniform DPO, at least as
accurate at the end).

Per seed: a tiny Qwen2 policy SFT'd on the synthetic arithmetic suite (shared.rl.warmstart, cached), one probe of
the training pool (k = 8 samples per problem) shared by all rows, then DPO (RPO loss by default) from the same
start for the same number of steps with four selection rules: uniform, curriculum, scoring, sage. Each row logs
accuracy every `eval.every` steps on held-out problems; steps_to_target is the first step reaching the start
accuracy + `eval.target_gain`, read on a 2-evaluation moving average. Rows are written per seed as they finish
(atomically), so an interrupted run resumes. Settings are chosen with `data.eval_split=dev` (a dev split drawn from
the same held-out sample as the test set) and the test split is run once with the chosen settings.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any

from shared.atomic import write_json

from sage.config import METHODS, SageConfig

ROWS = tuple(METHODS)  # uniform, curriculum, scoring, sage

# Settings of the two replication sizes (overrides on SageConfig defaults); measured on a shared 2-core CPU.
# A pool of 512 problems (~330 on the frontier at the 40% warm start) keeps pairs from repeating: with 128
# problems every rule, even SFT on the correct samples alone, lost accuracy within 60 steps at lr 1e-5..2e-5.
# The filters read margins in units of the candidates' RMS margin (scoring.thresholds=relative, our mode, not the
# spec's): at beta 0.1 the margins of this policy stay near 0.02, where the spec's absolute thresholds
# (sigmoid(-mu) < 0.2, spread > 0.5) never fire.
SCORING = ["scoring.thresholds=relative", "scoring.candidates_per_step=64"]
# steps_to_target reads a 2-evaluation moving average, so one lucky evaluation does not count as reaching the target
TARGET = ["eval.target_gain=0.03", "eval.target_smooth=2"]
QUICK = [
    "data.n_train=256", "data.n_test=200",
    "train.steps=60", "eval.every=10",
    "curriculum.refresh_every=20", *SCORING, *TARGET,
]
# 1000 test problems (one standard error ~1.5 points) and a dev split of 500 from the same shuffled held-out sample
FULL = [
    "data.n_train=512", "data.n_dev=500", "data.n_test=1000",
    "train.steps=150", "eval.every=10",
    "curriculum.refresh_every=30", *SCORING, *TARGET,
]


def replicate_config(quick: bool, overrides: list[str] | tuple[str, ...] = ()) -> SageConfig:
    from shared.config import load_config

    return load_config(SageConfig, None, [*(QUICK if quick else FULL), *overrides])


def warm_start_dir(m: Any, seed: int) -> Path | None:
    """Folder of the warm start: under $SAGE_CACHE when set, else None (the shared cache,
    `shared.rl.warmstart.shared_cache_root()`, where huijin's general base, the same settings, is the same folder)."""
    root = os.environ.get("SAGE_CACHE")
    if not root:
        return None
    return Path(root) / f"warmstart-steps{m.sft_steps}-lr{m.sft_lr:g}-b{m.sft_batch_size}-target{m.sft_target_accuracy}-seed{seed}"


def warm_start(cfg: SageConfig, seed: int):
    """(model, tokenizer) of the SFT'd tiny policy for `seed`, or of `model.path` when one is given."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if cfg.model.path:
        from shared.modeling import load_model

        return load_model(cfg.model.path, kind="causal", dtype=cfg.model.dtype, device=cfg.model.device)
    from shared.rl.warmstart import sft_arithmetic_policy

    m = cfg.model
    path = sft_arithmetic_policy(warm_start_dir(m, seed), steps=m.sft_steps, seed=seed, lr=m.sft_lr,
                                 batch_size=m.sft_batch_size, target_accuracy=m.sft_target_accuracy,
                                 eval_every=m.sft_eval_every)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def check_methods(methods: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The rows to run, in ROWS order; uniform is required (every other row is compared with it, seed-paired)."""
    unknown = [m for m in methods if m not in ROWS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; choose from {list(ROWS)}")
    if ROWS[0] not in methods:
        raise ValueError(f"--methods must include {ROWS[0]!r}, the paired baseline of every other row")
    return tuple(m for m in ROWS if m in methods)


def run_seed(cfg: SageConfig, seed: int, out_dir: Path, progress: bool = True,
             methods: tuple[str, ...] = ROWS) -> dict[str, dict[str, Any]]:
    """The rows `methods` for one seed; returns {method: result summary}. Finished rows found in out_dir are reused.

    Every row starts from the same warm start (one copy each) and the same step-0 probe and evaluation: the
    rows of a seed are paired and differ only in which pairs each step trains on."""
    import torch
    from shared.generation import HFGenerator

    from sage.data import load_problem_set
    from sage.evaluate import greedy_accuracy
    from sage.trainer import probe_policy, result_summary, train_dpo, write_log

    torch.set_num_threads(cfg.train.threads)
    seed_dir = out_dir / f"seed{seed}"
    done = {m: json.loads((seed_dir / f"{m}.json").read_text()) for m in methods if (seed_dir / f"{m}.json").is_file()}
    if len(done) == len(methods):
        return done
    cfg = copy.deepcopy(cfg)
    cfg.train.seed = seed
    model, tokenizer = warm_start(cfg, seed)
    problems = load_problem_set(cfg.data)
    gen = HFGenerator(model, tokenizer, batch_size=256)
    acc0, _ = greedy_accuracy(gen, problems.test, cfg.eval.max_new_tokens, cfg.eval.batch_size)
    target = cfg.eval.target_accuracy if cfg.eval.target_accuracy is not None else acc0 + cfg.eval.target_gain
    probe = probe_policy(cfg, gen, problems, 0, random.Random(f"probe|{seed}|0"), seed)
    for method in methods:
        if method in done:
            continue
        cfg.train.method = method
        policy = copy.deepcopy(model)
        t0 = time.time()
        result = train_dpo(cfg, policy, tokenizer, HFGenerator(policy, tokenizer, batch_size=256), problems,
                           initial_probe=probe, initial_accuracy=acc0, target=target, progress=progress)
        summary = result_summary(result) | {"seed": seed, "data": problems.info, "seconds": time.time() - t0}
        write_log(result, seed_dir / f"{method}.log.jsonl")
        write_json(seed_dir / f"{method}.json", summary)
        done[method] = summary
    return done


def _mean_std(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / len(xs))


def _mean_or_none(xs: list[float | None]) -> float | None:
    """Mean over seeds; None when a seed's row predates the metric."""
    return None if any(x is None for x in xs) else sum(xs) / len(xs)


def aggregate(per_seed: list[dict[str, dict[str, Any]]], cfg: SageConfig) -> list[dict[str, Any]]:
    """One results.json row per method: means and spreads over seeds, seed-paired differences with uniform, the
    mean accuracy curve and the per-seed values beside the metrics.

    steps_to_target is censored: a seed that never reaches its target counts as steps + eval.every; it is null
    only when no seed reaches it. `target_reached` is the share of seeds that did. The paired difference of
    steps_to_target uses the censored values.
    """
    from shared.eval import paired_differences

    censor = cfg.train.steps + cfg.eval.every
    methods = [m for m in ROWS if m in per_seed[0]]
    rows = []

    def curve_mean(run: dict[str, Any]) -> float:
        return sum(a for _, a in run["curve"]) / len(run["curve"])

    def censored(run: dict[str, Any]) -> float:
        return run["steps_to_target"] if run["steps_to_target"] is not None else censor

    # seed-paired differences (shared.eval.paired_differences) remove the warm start's share of the spread across
    # seeds; uniform is the paired baseline of every seed and its own differences are 0
    paired_keys = ("accuracy", "curve_mean", "steps_censored", "trivial_fraction")
    per_seed_values = [{m: {"accuracy": s[m]["curve"][-1][1], "curve_mean": curve_mean(s[m]),
                            "steps_censored": censored(s[m]), "trivial_fraction": s[m]["trivial_fraction"]}
                        for m in methods} for s in per_seed]
    paired = paired_differences(per_seed_values, methods, ROWS[0], metrics=paired_keys)
    zero = {k: {"mean": 0.0, "sd": 0.0, "per_seed": [0.0] * len(per_seed)} for k in paired_keys}
    for method in methods:
        runs = [s[method] for s in per_seed]
        final = [r["curve"][-1][1] for r in runs]
        acc_m, acc_s = _mean_std(final)
        reached = [r["steps_to_target"] for r in runs if r["steps_to_target"] is not None]
        stt = [censored(r) for r in runs]
        stt_m, stt_s = _mean_std(stt)
        trivial = [r["trivial_fraction"] for r in runs]
        triv_m, triv_s = _mean_std(trivial)
        steps = [p[0] for p in runs[0]["curve"]]
        curve = []
        for i, step in enumerate(steps):
            vals = [r["curve"][i][1] for r in runs if i < len(r["curve"])]
            m, s = _mean_std(vals)
            curve.append([step, round(m, 4), round(s, 4)])
        auc = sum(c[1] for c in curve) / len(curve)
        gain_m, gain_s = _mean_std([r["curve"][-1][1] - r["curve"][0][1] for r in runs])
        diff = paired.get(f"{method}-{ROWS[0]}", zero)
        delta_m, delta_s, deltas = diff["accuracy"]["mean"], diff["accuracy"]["sd"], diff["accuracy"]["per_seed"]
        dauc_m, dauc_s = diff["curve_mean"]["mean"], diff["curve_mean"]["sd"]
        dstt = diff["steps_censored"]
        dstt_m, dstt_s, dstts = dstt["mean"], dstt["sd"], dstt["per_seed"]
        dtriv_m, dtriv_s = diff["trivial_fraction"]["mean"], diff["trivial_fraction"]["sd"]
        rows.append({
            "method": method,
            "metrics": {
                "accuracy": acc_m,
                "accuracy_std": acc_s,
                "start_accuracy": _mean_std([r["curve"][0][1] for r in runs])[0],
                "accuracy_auc": auc,
                "accuracy_gain": gain_m,
                "accuracy_gain_std": gain_s,
                "delta_vs_uniform": delta_m,
                "delta_vs_uniform_std": delta_s,
                "auc_delta_vs_uniform": dauc_m,
                "auc_delta_vs_uniform_std": dauc_s,
                "steps_to_target": stt_m if reached else None,
                "steps_to_target_std": stt_s if reached else None,
                "steps_to_target_delta_vs_uniform": dstt_m,
                "steps_to_target_delta_vs_uniform_std": dstt_s,
                "target_reached": len(reached) / len(runs),
                "trivial_fraction": triv_m,
                "trivial_fraction_std": triv_s,
                "trivial_fraction_delta_vs_uniform": dtriv_m,
                "trivial_fraction_delta_vs_uniform_std": dtriv_s,
                "unstable_filtered_fraction": _mean_std([r["unstable_filtered"] for r in runs])[0],
                "unstable_filtered_fraction_std": _mean_std([r["unstable_filtered"] for r in runs])[1],
                "trivial_filtered_fraction": _mean_std([r["trivial_filtered"] for r in runs])[0],
                "trivial_filtered_fraction_std": _mean_std([r["trivial_filtered"] for r in runs])[1],
                "grad_norm_snr": _mean_std([r["grad_norm_snr"] for r in runs])[0],
                # batches filled up with pairs the filters dropped (fewer than a batch passed them), mean over seeds
                "topped_up_batches": _mean_or_none([r.get("topped_up_batches") for r in runs]),
                "filled_pair_share": _mean_or_none([r.get("filled_pair_share") for r in runs]),
            },
            "accuracy_curve": curve,  # [step, mean, std]; lists are not allowed inside metrics
            "seeds": [r["seed"] for r in runs],
            # per seed, in the order of "seeds"; steps_to_target censored at steps + eval.every
            "per_seed": {"accuracy": final, "delta_vs_uniform": deltas, "steps_to_target": stt,
                         "steps_to_target_delta_vs_uniform": dstts, "trivial_fraction": trivial},
        })
    return rows


def format_table(rows: list[dict[str, Any]], n_seeds: int) -> str:
    head = (f"{'method':<11} {'accuracy':>15} {'start':>6} {'auc':>6} {'d_vs_uniform':>16} {'steps_to_target':>17} "
            f"{'d_steps':>15} "
            f"{'reached':>8} {'trivial_frac':>12} {'unst_filt':>9} {'triv_filt':>9} {'topped_up':>9}"
            f"  (mean +- std over {n_seeds} seed{'s' if n_seeds > 1 else ''})")
    lines = [head, "-" * len(head)]
    for row in rows:
        m = row["metrics"]
        stt = "never" if m["steps_to_target"] is None else f"{m['steps_to_target']:.1f} +- {m['steps_to_target_std']:.1f}"
        delta = f"{m['delta_vs_uniform']:+.3f} +- {m['delta_vs_uniform_std']:.3f}"
        dstt = f"{m['steps_to_target_delta_vs_uniform']:+.1f} +- {m['steps_to_target_delta_vs_uniform_std']:.1f}"
        lines.append(f"{row['method']:<11} {m['accuracy']:>7.3f} +- {m['accuracy_std']:.3f} {m['start_accuracy']:>6.3f} "
                     f"{m['accuracy_auc']:>6.3f} {delta:>16} {stt:>17} {dstt:>15} {m['target_reached']:>8.2f} "
                     f"{m['trivial_fraction']:>12.3f} {m['unstable_filtered_fraction']:>9.3f} "
                     f"{m['trivial_filtered_fraction']:>9.3f} "
                     f"{'n/a' if m['topped_up_batches'] is None else format(m['topped_up_batches'], '.1f'):>9}")
    return "\n".join(lines)


def replicate(
    quick: bool = False,
    out_dir: str | Path = "runs/sage-replicate",
    seed: int = 0,
    n_seeds: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
    methods: list[str] | tuple[str, ...] = ROWS,
) -> Path:
    """Run the replication, print the table, write out_dir/config.yaml and out_dir/results.json.

    `methods` restricts the rows (uniform always included), e.g. uniform and sage for a dev comparison."""
    from shared.config import claim_run_dir
    from shared.eval import write_results

    import sage

    started = dt.datetime.now(dt.UTC)
    t0 = time.time()
    cfg = replicate_config(quick, overrides)
    methods = check_methods(methods)
    n_seeds = n_seeds if n_seeds is not None else (1 if quick else 3)
    if n_seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {n_seeds}")
    out = Path(out_dir)
    claim_run_dir(cfg, out)  # finished rows in out are reused: only for the same config
    per_seed = [run_seed(cfg, s, out, progress, methods) for s in range(seed, seed + n_seeds)]
    rows = aggregate(per_seed, cfg)
    first = per_seed[0][ROWS[0]]
    print(format_table(rows, n_seeds))
    target = first["target"]
    print(f"target = start accuracy + {cfg.eval.target_gain} (seed {seed}: {target:.3f}) on a "
          f"{cfg.eval.target_smooth}-evaluation moving average; evaluated on {cfg.data.eval_split}; "
          f"{cfg.train.steps} steps, batch {cfg.train.batch_size}, loss {cfg.train.loss}, beta {cfg.train.beta}")
    ours = [f"scoring.thresholds={cfg.scoring.thresholds}: ours, not the spec's (its thresholds are absolute)"
            ] if cfg.scoring.thresholds == "relative" else []
    ours.append(f"scoring.fill={cfg.scoring.fill}: inferred (batches topped up with filtered pairs are counted in "
                "topped_up_batches)")
    print("not the spec's: " + "; ".join(ours))
    path = write_results(out, "sage", sage.__version__, "replicate", rows, cfg, seed, quick, first["data"],
                         started, time.time() - t0, extra={"seeds": list(range(seed, seed + n_seeds)),
                                                           "not_from_spec": ours})
    print(f"wrote {path}")
    return path
