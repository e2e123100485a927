"""Statistics for replications over seeds and items: paired seed differences, curve spread, paired bootstrap CI.

Tiny-model results churn (±0.03–0.05 on 64 items between runs that differ only in sampling), so a row is compared
with its baseline seed by seed (the two share the warm start and data order), curves are compared by their spread
over seeds, and a per-item difference on one fixed model gets a bootstrap interval.

- `paired_differences(per_seed, rows, baseline)`: per metric, the per-seed differences `row - baseline`, their
  mean, sd and the number of seeds where the row is ahead (above the baseline).
- `curve_spread(curves, smooth)`: the mean curve over seeds, the sd over seeds at each step and its mean over steps,
  after an optional trailing moving average of each seed's curve.
- `paired_bootstrap_ci(a, b, ...)`: mean of the per-item differences a_i - b_i and a percentile bootstrap interval,
  resampling items (pairs kept together) with a seeded generator.

The sd is the population sd (ddof=0) by default: the replications of this workspace reported it so, and it is
defined for one seed (a quick run); pass ddof=1 for the sample sd (None with one seed).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _sd(values: Sequence[float], ddof: int) -> float | None:
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 (population sd) or 1 (sample sd), got {ddof!r}")
    if ddof == 1:
        return statistics.stdev(values) if len(values) > 1 else None
    return statistics.pstdev(values)


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: expected a finite number or None, got {value!r}")
    return float(value)


def paired_differences(
    per_seed: Sequence[Mapping[str, Mapping[str, float | None]]],
    rows: Sequence[str],
    baseline: str,
    metrics: Sequence[str] | None = None,
    ddof: int = 0,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Seed-paired differences of every row (except the baseline) against the baseline.

    `per_seed[k]` maps each row name to its metrics for seed k. Returns ``{"<row>-<baseline>": {metric: {"per_seed":
    [d_0, d_1, ...], "mean", "sd", "ahead"}}}`` where d_k = row - baseline in seed k and `ahead` counts d_k > 0.
    `metrics` defaults to the baseline's metric names in the first seed. A metric that is None (not applicable) in
    some seed keeps None in `per_seed` and gets None for mean, sd and ahead."""
    if not per_seed:
        raise ValueError("paired_differences: no seeds")
    for k, seed in enumerate(per_seed):
        for name in (baseline, *rows):
            if name not in seed:
                raise ValueError(f"paired_differences: seed {k} has no row {name!r} (rows: {sorted(seed)})")
    names = list(metrics) if metrics is not None else list(per_seed[0][baseline])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for row in rows:
        if row == baseline:
            continue
        table: dict[str, dict[str, Any]] = {}
        for metric in names:
            diffs: list[float | None] = []
            for k, seed in enumerate(per_seed):
                if metric not in seed[row] or metric not in seed[baseline]:
                    raise ValueError(f"paired_differences: seed {k}: metric {metric!r} missing in row {row!r} or "
                                     f"{baseline!r}")
                value = _number(seed[row][metric], f"seed {k} row {row!r} metric {metric!r}")
                base = _number(seed[baseline][metric], f"seed {k} row {baseline!r} metric {metric!r}")
                diffs.append(None if value is None or base is None else value - base)
            if any(d is None for d in diffs):
                table[metric] = {"per_seed": diffs, "mean": None, "sd": None, "ahead": None}
                continue
            values = [float(d) for d in diffs if d is not None]
            table[metric] = {"per_seed": values, "mean": statistics.fmean(values), "sd": _sd(values, ddof),
                             "ahead": sum(d > 0 for d in values)}
        out[f"{row}-{baseline}"] = table
    return out


def _smoothed(values: Sequence[float], window: int) -> list[float]:
    """Trailing moving average: point i is the mean of points max(0, i - window + 1) .. i."""
    return [statistics.fmean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]


def curve_spread(curves: Sequence[Sequence[tuple[float, float]]], smooth: int = 1, ddof: int = 0) -> dict[str, Any]:
    """Spread over seeds of curves of one metric: each curve is a list of (step, value) and all share the steps.

    Each seed's values are first smoothed by a trailing moving average over `smooth` points (1: none). Returns
    {"steps", "mean" (per step), "per_step_sd" (sd over seeds per step), "mean_sd" (mean of per_step_sd over the
    steps; None when an sd is undefined)}."""
    if not curves:
        raise ValueError("curve_spread: no curves")
    if not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"curve_spread: smooth must be an integer >= 1, got {smooth!r}")
    steps = [float(step) for step, _ in curves[0]]
    if not steps:
        raise ValueError("curve_spread: curve 0 is empty")
    series = []
    for k, curve in enumerate(curves):
        these = [float(step) for step, _ in curve]
        if these != steps:
            raise ValueError(f"curve_spread: curve {k} has steps {these[:8]}..., curve 0 has {steps[:8]}...")
        values = [_number(v, f"curve {k} step {s:g}") for s, v in curve]
        if any(v is None for v in values):
            raise ValueError(f"curve_spread: curve {k} has a missing value")
        series.append(_smoothed([float(v) for v in values if v is not None], smooth))
    columns = list(zip(*series))
    per_step_sd = [_sd(col, ddof) for col in columns]
    mean_sd = None if any(s is None for s in per_step_sd) else statistics.fmean(s for s in per_step_sd if s is not None)
    return {"steps": [int(s) if s.is_integer() else s for s in steps], "mean": [statistics.fmean(c) for c in columns],
            "per_step_sd": per_step_sd, "mean_sd": mean_sd}


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, float | int]:
    """Mean of the per-item differences a_i - b_i with a percentile bootstrap interval.

    Items are resampled with replacement (n of n, pairs kept together) `n_resamples` times with
    numpy.random.default_rng(seed); low and high are the (1 - confidence)/2 and (1 + confidence)/2 quantiles of the
    resampled means. Returns {"mean", "low", "high", "n", "resamples", "confidence", "seed"}."""
    if len(a) != len(b):
        raise ValueError(f"paired_bootstrap_ci: {len(a)} scores in a but {len(b)} in b (items must be paired)")
    if not a:
        raise ValueError("paired_bootstrap_ci: no items")
    if not 0 < confidence < 1:
        raise ValueError(f"paired_bootstrap_ci: confidence must be in (0, 1), got {confidence!r}")
    if not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"paired_bootstrap_ci: n_resamples must be an integer >= 1, got {n_resamples!r}")
    diffs = np.asarray([_number(x, f"a[{i}]") for i, x in enumerate(a)], dtype=float) - np.asarray(
        [_number(y, f"b[{i}]") for i, y in enumerate(b)], dtype=float)
    if np.isnan(diffs).any():
        raise ValueError("paired_bootstrap_ci: scores must not be None")
    rng = np.random.default_rng(seed)
    n = len(diffs)
    means = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)  # bounded memory for many items (the chunking depends on n only: reproducible)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        means[start : start + size] = diffs[rng.integers(0, n, size=(size, n))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return {"mean": float(diffs.mean()), "low": float(low), "high": float(high), "n": n, "resamples": n_resamples,
            "confidence": confidence, "seed": seed}
