"""`huijin replicate`: the CPU-scale test of the paradigm's ablation claim on the synthetic finance suite.

Per seed, one stage folder tree holds every row: `full` runs init -> cpt -> sft -> reasoning_rl -> agentic_rl ->
general_rl; `no_reasoning_rl` drops reasoning_rl, so its cpt and sft folders are the very folders of `full` (same
chain keys, reused, never retrained) and the comparison is paired on one warm start. `sft` is the warm-start row
(the shared stage-2 model). Optional row `no_agentic_rl` drops agentic_rl (the paper's second ablation).

Row metrics are the last stage's evaluation (`fin_numeric`, `fin_choice`, `fin_tool`, `general_accuracy`,
`filings_ppl`, `tatqa_numeric`) plus `fin_numeric_after_stage3`: the value after reasoning_rl, or for a row without
it the value of the stage it would follow (sft). `extra.stage_table[row][stage][benchmark]` is the whole table
(null where a benchmark was not scored), printed and drawn (`stage_table.png`). The claim, fixed before the full run
(README): full - no_reasoning_rl on fin_numeric > 0 in 3/3 seeds and its mean above 2 standard errors of the
evaluation, both after stage 3 and at the end; `extra.claim` holds the check.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.config import claim_run_dir, config_to_dict
from shared.eval import paired_differences, sha256_of, write_results

from huijin import __version__
from huijin.recipe import BENCHMARKS, Recipe, load_recipe
from huijin.runner import format_table, run_recipe

ROWS: dict[str, str | None] = {"full": None, "no_reasoning_rl": "reasoning_rl", "no_agentic_rl": "agentic_rl"}
DEFAULT_ROWS = ("full", "no_reasoning_rl")
METRICS = ("fin_numeric", "fin_numeric_after_stage3", "fin_choice", "fin_tool", "general_accuracy", "filings_ppl",
           "tatqa_numeric")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def default_config(quick: bool) -> Path:
    return CONFIG_DIR / ("replicate_quick.yaml" if quick else "replicate.yaml")


def row_recipe(recipe: Recipe, row: str) -> Recipe:
    """The recipe of a row: every stage, or all but the ablated one."""
    drop = ROWS[row]
    if drop is not None and drop not in recipe.stages:
        raise ValueError(f"row {row!r} drops stage {drop!r}, which the recipe does not have ({list(recipe.stages)})")
    return dataclasses.replace(recipe, stages={k: v for k, v in recipe.stages.items() if k != drop})


def row_metrics(table: dict[str, dict[str, float | None]]) -> dict[str, float | None]:
    """The row's metrics from its stage table (see the module docstring)."""
    stages = list(table)
    last = table[stages[-1]]
    after3 = table["reasoning_rl"] if "reasoning_rl" in table else table.get("sft", last)
    return {"fin_numeric": last["fin_numeric"], "fin_numeric_after_stage3": after3["fin_numeric"],
            **{b: last[b] for b in BENCHMARKS if b != "fin_numeric"}}


def overlap_counts(recipe: Recipe) -> dict[str, int]:
    """Test items that share a key with what any stage trains on (the disjointness the claim needs: all 0)."""
    from benchmarks.synthetic.arithmetic import make_arithmetic
    from benchmarks.synthetic.finance import overlap

    from huijin.data import finance_suite

    fin = finance_suite(recipe.suite.seed, recipe.suite.n_companies)
    e = recipe.eval
    test_num, train_num = fin.numeric("test", e.fin_numeric), fin.numeric("train")
    test_tool, train_tool = fin.tool("test", e.fin_tool), fin.tool("train")
    train_companies = [{"company": d["company"]} for d in fin.filings("train")]
    general_test = [{"expression": r.question} for r in make_arithmetic(e.general_accuracy, seed=0, split="test")]
    general_train = [{"expression": r.question} for r in make_arithmetic(10_000, seed=0, split="train")]
    choice_test, choice_train = fin.choice("test", e.fin_choice), fin.choice("train", 2000)
    return {
        "fin_numeric_prompt": overlap(test_num, train_num, "prompt"),
        "fin_numeric_expression": overlap(test_num, train_num, "expression"),
        "fin_numeric_company_in_cpt_filings": overlap(test_num, train_companies, "company"),
        "fin_tool_expression": overlap(test_tool, train_tool, "expression"),
        "fin_tool_company_in_cpt_filings": overlap(test_tool, train_companies, "company"),
        "fin_choice_term": overlap(choice_test, choice_train, "term"),
        "general_expression_in_general_train": overlap(general_test, general_train, "expression"),
        "general_expression_in_fin_train": overlap(general_test, train_num, "expression"),
    }


def claim_check(per_seed: Sequence[dict[str, dict[str, Any]]], n_items: int) -> dict[str, Any]:
    """full - no_reasoning_rl on fin_numeric, after stage 3 and at the end: ahead in every seed, and the mean
    difference above 2 standard errors of an n-item accuracy at the rows' mean accuracy."""
    out: dict[str, Any] = {}
    for key in ("fin_numeric_after_stage3", "fin_numeric"):
        diffs = [s["full"][key] - s["no_reasoning_rl"][key] for s in per_seed]
        p = sum(s[r][key] for s in per_seed for r in ("full", "no_reasoning_rl")) / (2 * len(per_seed))
        threshold = 2 * math.sqrt(max(p * (1 - p), 1e-12) / n_items)
        mean = sum(diffs) / len(diffs)
        out["after_stage3" if key != "fin_numeric" else "end"] = {
            "per_seed": diffs, "mean": mean, "ahead": sum(d > 0 for d in diffs), "seeds": len(diffs),
            "threshold_2se": threshold, "holds": all(d > 0 for d in diffs) and mean > threshold}
    return out


def run_seed(recipe: Recipe, seed: int, out: Path, rows: Sequence[str], log: Any = print) -> dict[str, Any]:
    """Every row for one seed in one stage tree; returns metrics, tables, stamps and what each row rebuilt."""
    recipe = dataclasses.replace(recipe, seed=seed)
    root = out / f"seed{seed}" / "stages"
    result: dict[str, Any] = {"metrics": {}, "tables": {}, "built": {}, "stamps": {}, "paths": {}}
    for row in rows:
        t0 = time.perf_counter()
        run = run_recipe(row_recipe(recipe, row), root, log=lambda m, row=row: log(f"[seed {seed} {row}] {m}"))
        table = run.table()
        result["tables"][row] = table
        result["metrics"][row] = row_metrics(table)
        result["built"][row] = run.built
        result["paths"][row] = {n: str(run.results[n].path.relative_to(out)) for n in run.order}
        result["stamps"][row] = {n: {k: v for k, v in run.stamp(n).items() if k != "settings"}
                                 for n in run.order if n != "init"}
        result["seconds_" + row] = time.perf_counter() - t0
        if "sft" in table:
            result["metrics"].setdefault("sft", {**{b: table["sft"][b] for b in BENCHMARKS},
                                                 "fin_numeric_after_stage3": table["sft"]["fin_numeric"]})
    return result


def _mean(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type]


def replicate(quick: bool = False, out: str | Path = "runs/huijin_replicate", seed: int = 0,
              config: str | Path | None = None, overrides: Sequence[str] = (), seeds: int | None = None,
              rows: Sequence[str] | None = None, log: Any = print) -> Path:
    """Run the replication; writes config.yaml, the stage folders per seed, stage_table.png and results.json."""
    from huijin.plot import draw_stage_tables

    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    recipe = load_recipe(config or default_config(quick), list(overrides))
    rows = list(rows or DEFAULT_ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown or "full" not in rows:
        raise ValueError(f"rows must include 'full' and come from {list(ROWS)}; got {rows}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(recipe, out)  # finished stages in out are reused: only for the same recipe
    n_seeds = seeds if seeds is not None else (1 if quick else 3)
    per_seed = [run_seed(recipe, seed + k, out, rows, log) for k in range(n_seeds)]
    names = ["sft", *rows] if "sft" in per_seed[0]["metrics"] else rows
    table_rows = []
    for name in names:
        metrics = {m: _mean([s["metrics"][name][m] for s in per_seed]) for m in METRICS}
        table_rows.append({"method": name, "metrics": metrics, "seeds": n_seeds})
    mean_tables = {row: {stage: {b: _mean([s["tables"][row][stage][b] for s in per_seed]) for b in BENCHMARKS}
                         for stage in per_seed[0]["tables"][row]} for row in rows}
    for row in rows:
        log(f"\nstage x benchmark, row {row} (mean over {n_seeds} seed(s)):\n" + format_table(mean_tables[row]))
    picture = draw_stage_tables(mean_tables, BENCHMARKS, out / "stage_table.png",
                                f"huijin {__version__}: stage x benchmark, mean over {n_seeds} seed(s)")
    pairs = paired_differences([s["metrics"] for s in per_seed], [r for r in rows if r != "no_reasoning_rl"] +
                               [r for r in rows if r == "no_reasoning_rl"], "no_reasoning_rl", list(METRICS)) \
        if "no_reasoning_rl" in rows else {}
    claim = claim_check([s["metrics"] for s in per_seed], recipe.eval.fin_numeric) if "no_reasoning_rl" in rows \
        else {}
    for key, c in claim.items():
        log(f"claim {key}: full - no_reasoning_rl fin_numeric per seed {[round(d, 3) for d in c['per_seed']]}, "
            f"mean {c['mean']:+.3f} (2 SE {c['threshold_2se']:.3f}), ahead {c['ahead']}/{c['seeds']}: "
            f"{'holds' if c['holds'] else 'does not hold'}")
    fin_test = json.dumps([config_to_dict(recipe.suite), recipe.eval.fin_numeric]).encode()
    data = {"name": f"synthetic finance suite (seed {recipe.suite.seed}, {recipe.suite.n_companies} companies), "
                    f"calibration arithmetic, bundled TAT-QA dev arithmetic", "sha256": sha256_of(fin_test)}
    extra = {"main_method": "full", "headline": "fin_numeric", "claim": claim, "paired_differences": pairs,
             "stage_table": mean_tables,
             "stage_table_per_seed": {f"seed{seed + k}": s["tables"] for k, s in enumerate(per_seed)},
             "per_seed": {f"seed{seed + k}": s["metrics"] for k, s in enumerate(per_seed)},
             "built": {f"seed{seed + k}": s["built"] for k, s in enumerate(per_seed)},
             "stage_folders": {f"seed{seed + k}": s["paths"] for k, s in enumerate(per_seed)},
             "stages": {f"seed{seed + k}": s["stamps"] for k, s in enumerate(per_seed)},
             "overlap": overlap_counts(recipe), "picture": str(picture.name), "seeds": n_seeds,
             "general_rl_reward": _general_reward_name(recipe),
             "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}
    return write_results(out, "huijin", __version__, "replicate", table_rows, config_to_dict(recipe), seed, quick,
                         data, started, time.perf_counter() - t0, extra=extra)


def _general_reward_name(recipe: Recipe) -> str:
    for spec in recipe.stages.values():
        if spec.trainer == "general_rl":
            if "rm" in spec.reward:
                return "reward model (TRL RewardTrainer on (correct, incorrect) solution pairs)"
            if spec.judge is not None and spec.judge.endpoint:
                return f"rubric judge at {spec.judge.endpoint}"
            return ("rubric judge, CPU stand-in: a deterministic rubric (7 points right answer, 3 points right chained "
                    "steps) served by the core's loopback ChatServer and read by the real JudgeClient")
    return "no general_rl stage"
