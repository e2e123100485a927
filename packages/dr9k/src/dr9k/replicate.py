"""`dr9k replicate`: the CPU-scale test of DeepResearch-9K's two claims on the synthetic KB.

1. Synthesis (`dr9k.synth`, stages cached): seeds from the KB with the (entity, chain) split, L1/L2/L3 by
   construction, filters, the scripted teacher's trajectories through the loopback chat endpoint, the stand-in
   judge's verdicts, the hard subset. The test split shares no (sub-question, passage) hop with the training
   split (counted: `overlap.shared_hops`, expected 0) and no question text.
2. Warm start: a tiny Qwen2 SFT'd on the training split's judged-correct teacher trajectories (cached).
3. Rows `L1`, `L2`, `L3` (and `warm_start`, all levels): the fixed warm-start agent, greedy, on each level's test
   items: claim (a), the levels mean something: accuracy L1 > L2 > L3, with per-item paired bootstrap intervals
   of L1 - L2 (paired by seed question) and L2 - L3 (paired by rank).
4. Rows `sft`, `grpo`, `ppo`, per seed from the same warm start on the same training prompts with the same budget
   (`rl.steps` steps of `rl.prompts_per_step` prompts; the SFT baseline trains as many steps on as many teacher
   trajectories per step): claim (b), RL raises reward over SFT, read from the seed-paired differences.
Each finished part is saved atomically under the output folder and reused on a rerun; RL rows checkpoint and
resume. The judge runs through the real client against the loopback stand-in and is named in results.json.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from shared.atomic import write_json
from shared.config import claim_run_dir, config_to_dict, load_config
from shared.eval import sha256_of, write_results
from shared.eval.stats import paired_bootstrap_ci, paired_differences

from dr9k import __version__
from dr9k.config import LEVELS, Dr9kConfig
from dr9k.evaluate import METRICS, evaluate, extra_metrics, summarize
from dr9k.levels import seed_id
from dr9k.synth import Pipeline, read_jsonl

RL_ROWS = ("sft", "grpo", "ppo")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def default_config(quick: bool) -> Path:
    return CONFIG_DIR / ("replicate_quick.yaml" if quick else "replicate.yaml")


def _rank(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def pick_test(rows: Sequence[Mapping[str, Any]], per_level: int) -> list[dict]:
    """`per_level` test rows per level in the hash order of their seed question; L2 takes the L2 rows of the seeds
    whose L1 was picked first, so the L1 - L2 interval pairs most items by seed."""
    out: list[dict] = []
    picked_seeds: set[str] = set()
    for level in LEVELS:
        of_level = [r for r in rows if r["level"] == level]
        chosen = sorted(of_level, key=lambda r, lv=level, seen=picked_seeds: (
            lv == "L2" and seed_id(r) not in seen, _rank(seed_id(r))))[:per_level]
        if level == "L1":
            picked_seeds = {seed_id(r) for r in chosen}
        out += [dict(r) for r in chosen]
    return out


def overlap(train: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Test items that share a hop or a question text with the training split (both must be 0)."""
    from benchmarks.synthetic.kb import shared_hops

    train_questions = {r["question"] for r in train}
    return {"shared_hops": shared_hops(list(train), list(test)),
            "shared_questions": sum(r["question"] in train_questions for r in test)}


@dataclasses.dataclass
class Setup:
    cfg: Dr9kConfig
    out: Path
    train: list[dict]
    dev: list[dict]
    test: list[dict]
    corpus: list[dict]
    env_factory: Callable
    retriever: Any
    synth: dict[str, Any]
    judge: Any = None
    judge_info: dict[str, Any] | None = None


def prepare(cfg: Dr9kConfig, out: Path, log: Callable[[str], None]) -> Setup:
    """Synthesis (cached) and the data of the rows."""
    from dr9k.search import make_env_factory, make_retriever

    root = Path(cfg.synth.cache_dir).expanduser() if cfg.synth.cache_dir else out / "synth"
    results = Pipeline(cfg, root, log=log).run("calibrate")
    data = results["calibrate"].path
    corpus = read_jsonl(results["seed"].output("corpus.jsonl"))
    retriever = make_retriever(cfg.search, corpus)
    synth = {"root": str(root), "stages": {n: r.key[:12] for n, r in results.items()},
             "teacher": results["trajectories"].stamp.get("teacher"), "judge": results["verdicts"].stamp.get("judge"),
             "stats": {n: r.stamp.get("stats") for n, r in results.items()}}
    return Setup(cfg, out, read_jsonl(data / "train.jsonl"), read_jsonl(data / "dev.jsonl"),
                 pick_test(read_jsonl(data / "test.jsonl"), cfg.eval.test_per_level), corpus,
                 make_env_factory(retriever, cfg.search.topk), retriever, synth)


def _saved(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    write_json(path, result)
    return result


def _load(path: str | Path) -> tuple[Any, Any]:
    from shared.modeling import load_model

    return load_model(str(path), kind="causal", dtype="float32", device="auto")


def warm_start_eval(s: Setup, warm: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """Per-item test scores and dev metrics of the warm-start agent (saved; the level rows come from them)."""

    def compute() -> dict[str, Any]:
        model, tok = _load(warm)
        t0 = time.perf_counter()
        items = evaluate(s.cfg, model, tok, s.test, s.env_factory, s.judge, seed=0)
        dev_rows = [r for lv in LEVELS for r in [x for x in s.dev if x["level"] == lv][: s.cfg.eval.dev_per_level]]
        dev = evaluate(s.cfg, model, tok, dev_rows, s.env_factory, s.judge, seed=0, hard=False) if dev_rows else []
        log(f"warm start evaluated on {len(items)} test and {len(dev)} dev items ({time.perf_counter() - t0:.0f}s)")
        return {"items": items, "dev": {lv: summarize([i for i in dev if i["level"] == lv]) for lv in LEVELS
                                        if any(i["level"] == lv for i in dev)}}

    return _saved(s.out / "warm_start" / "items.json", compute)


def run_row(s: Setup, warm: Path, row: str, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    """One RL-stage row of one seed from the warm start: train, then score on the test items (saved)."""
    from dr9k.train import continue_sft, rl_train

    folder = s.out / f"seed{seed}" / row

    def compute() -> dict[str, Any]:
        torch.manual_seed(seed)
        model, tok = _load(warm)
        cfg = s.cfg
        t0 = time.perf_counter()
        if row == "sft":
            budget = dataclasses.replace(cfg.sft, steps=cfg.rl.steps, batch_size=cfg.rl.prompts_per_step)
            model, logs = continue_sft(dataclasses.replace(cfg, sft=budget), model, tok, s.train, folder / "trl", seed)
            history = [{"step": x["step"], "loss": x["loss"]} for x in logs if "loss" in x]
        else:
            model, history = rl_train(cfg, model, tok, s.train, s.env_factory, folder / "rl", row, seed, s.judge)
            history = [{k: h[k] for k in ("step", "reward", "groups_informative", "grad_norm", "kl") if k in h}
                       for h in history]
        seconds = time.perf_counter() - t0
        items = evaluate(cfg, model, tok, s.test, s.env_factory, s.judge, seed=seed)
        log(f"[seed {seed}] {row}: trained {seconds:.0f}s, evaluated {time.perf_counter() - t0 - seconds:.0f}s")
        return {"items": items, "history": history, "train_seconds": seconds}

    return _saved(folder / "metrics.json", compute)


def aggregate(per_seed: Sequence[Mapping[str, dict]], rows: Sequence[str]) -> list[dict[str, Any]]:
    """Mean over seeds of each metric, with the sd over seeds of accuracy and reward (None with one seed)."""
    out = []
    for row in rows:
        vals = {k: [s[row][k] for s in per_seed] for k in METRICS}
        metrics: dict[str, float | None] = {k: (float(np.mean(v)) if None not in v else None) for k, v in vals.items()}
        for k in ("accuracy", "reward"):
            metrics[f"{k}_std"] = float(np.std(vals[k])) if len(per_seed) > 1 else None
        out.append({"method": row, "metrics": metrics, "seeds": len(per_seed)})
    return out


def level_intervals(items: Sequence[Mapping[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Paired bootstrap intervals of the warm-start accuracy L1 - L2 (items of one seed question) and L2 - L3
    (items of equal rank in the hash order: different questions, so the interval is that of two independent
    means)."""
    by = {lv: [i for i in items if i["level"] == lv] for lv in LEVELS}
    out: dict[str, Any] = {}
    l2_by_seed = {seed_id(i): i for i in by["L2"]}
    pairs = [(i, l2_by_seed[seed_id(i)]) for i in by["L1"] if seed_id(i) in l2_by_seed]
    if pairs:
        out["L1-L2"] = paired_bootstrap_ci([float(a["correct"]) for a, _ in pairs],
                                           [float(b["correct"]) for _, b in pairs], seed=seed)
        out["L1-L2"]["pairing"] = "same seed question"
    n = min(len(by["L2"]), len(by["L3"]))
    if n:
        out["L2-L3"] = paired_bootstrap_ci([float(i["correct"]) for i in by["L2"][:n]],
                                           [float(i["correct"]) for i in by["L3"][:n]], seed=seed)
        out["L2-L3"]["pairing"] = "rank (independent questions)"
    return out


def claims(intervals: Mapping[str, Any], per_seed: Sequence[Mapping[str, dict]]) -> dict[str, Any]:
    """Claim (a): both level intervals above 0. Claim (b) per RL row: reward over sft in every seed and the mean
    difference above the churn (the sd over seeds of the sft row's reward; with one seed, above 0)."""
    a = bool(intervals) and all(iv["low"] > 0 for iv in intervals.values()) and len(intervals) == 2
    sft = [s["sft"]["reward"] for s in per_seed] if per_seed and "sft" in per_seed[0] else []
    churn = float(np.std(sft)) if len(sft) > 1 else 0.0
    b: dict[str, Any] = {}
    for row in ("grpo", "ppo"):
        if per_seed and row in per_seed[0] and sft:
            diffs = [s[row]["reward"] - s["sft"]["reward"] for s in per_seed]
            b[row] = {"diffs": diffs, "ahead": sum(d > 0 for d in diffs), "churn": churn,
                      "holds": all(d > 0 for d in diffs) and float(np.mean(diffs)) > churn}
    return {"a_levels_get_harder": a, "b_rl_over_sft": any(v["holds"] for v in b.values()) if b else None,
            "b_rows": b}


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = [*METRICS, "reward_std"]
    lines = ["| method | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    for r in rows:
        cells = ["-" if r["metrics"].get(k) is None else f"{r['metrics'][k]:.3f}" for k in keys]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replicate(quick: bool = False, out: str | Path = "runs/dr9k_replicate", seed: int = 0,
              config: str | Path | None = None, overrides: Sequence[str] = (), seeds: int | None = None,
              rows: Sequence[str] | None = None, log: Callable[[str], None] = print) -> Path:
    """Run the replication (module docstring); writes config.yaml, per-part files and results.json under `out`.
    Separate processes may run single seeds (`seed=K, seeds=1`) into one `out`; a call covering every seed then
    finds them done and writes the combined results."""
    from dr9k.endpoints import serve
    from dr9k.judge import STUB_JUDGE, grade_client, stub_reply
    from dr9k.search import check_search
    from dr9k.train import warm_start

    torch.set_num_threads(1)
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    cfg = load_config(Dr9kConfig, config or default_config(quick), list(overrides))
    cfg.validate()
    check_search(cfg.search)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out)
    n_seeds = seeds if seeds is not None else (1 if quick else 3)
    rows = list(RL_ROWS) if rows is None else list(rows)
    unknown = [r for r in rows if r not in RL_ROWS]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; known: {list(RL_ROWS)} (the level rows are always there)")
    s = prepare(cfg, out, log)
    lap = overlap(s.train + s.dev, s.test)
    if any(lap.values()):
        raise ValueError(f"test items overlap the training data: {lap}")
    cache = Path(cfg.warm_start.cache_dir).expanduser() if cfg.warm_start.cache_dir else out / "warm_starts"
    warm = warm_start(cfg, s.train, s.corpus, cache, log)
    with serve(cfg.judge, stub_reply, STUB_JUDGE, "judge") as (url, model_name, info):
        s.judge, s.judge_info = grade_client(url, model_name, cfg.judge), info
        base = warm_start_eval(s, warm, log)
        per_seed_items = [{row: run_row(s, warm, row, seed + k, log)["items"] for row in rows}
                          for k in range(n_seeds)]
        judge_stats = s.judge.stats()
    items = base["items"]
    level_rows = [{"method": lv, "metrics": {**summarize([i for i in items if i["level"] == lv]),
                                             "accuracy_std": None, "reward_std": None}} for lv in LEVELS]
    level_rows.append({"method": "warm_start", "metrics": {**summarize(items), "accuracy_std": None,
                                                           "reward_std": None}})
    per_seed = [{row: summarize(v) for row, v in d.items()} for d in per_seed_items]
    table = level_rows + aggregate(per_seed, rows)
    log(format_table(table))
    intervals = level_intervals(items, seed)
    verdict = claims(intervals, per_seed)
    pairs = {}
    if "sft" in rows and len(rows) > 1:
        pairs = paired_differences(per_seed, [r for r in rows if r != "sft"], "sft", metrics=list(METRICS[:4]))
    from dr9k.search import first_hop_recall

    extra = {
        "main_method": "grpo", "headline": "reward", "seeds": n_seeds,
        "claims": verdict, "level_intervals": intervals, "paired_differences": pairs,
        "per_level": {row: [extra_metrics(d[row]) for d in per_seed_items] for row in rows}
        | {"warm_start": extra_metrics(items)},
        "retrieval_recall@k": {lv: first_hop_recall(s.retriever, [r for r in s.test if r["level"] == lv],
                                                    cfg.search.topk) for lv in LEVELS},
        "dev_warm_start": base["dev"], "overlap": lap,
        "test_items": {lv: sum(r["level"] == lv for r in s.test) for lv in LEVELS},
        "train_items": {lv: sum(r["level"] == lv and bool(r.get("teacher_correct")) for r in s.train)
                        for lv in LEVELS},
        "judge": {**(s.judge_info or {}), "template": cfg.judge.template, "stats": judge_stats},
        "teacher": s.synth["teacher"], "synthesis": s.synth, "warm_start": str(warm),
        "warm_start_stamp": {k: v for k, v in json.loads((warm / "warmstart.json").read_text()).items()
                             if k in ("final_loss", "seconds", "stopped_at")},
        "curves": {f"seed{seed + k}": {row: _curve(out / f"seed{seed + k}" / row / "metrics.json") for row in rows}
                   for k in range(n_seeds)},
    }
    log(f"claim (a) levels get harder: {verdict['a_levels_get_harder']} ({_ci_text(intervals)}); "
        f"claim (b) RL over SFT: {verdict['b_rl_over_sft']}")
    data = {"name": f"synthetic KB DR9K levels ({cfg.seeds.kb.n_people} people), test "
                    f"{'/'.join(str(sum(r['level'] == lv for r in s.test)) for lv in LEVELS)} per level",
            "sha256": sha256_of(json.dumps([r["id"] for r in s.test]).encode())}
    return write_results(out, "dr9k", __version__, "replicate", table, config_to_dict(cfg), seed, quick, data,
                         started, time.perf_counter() - t0, extra=extra)


def _curve(path: Path) -> list[list[float]]:
    if not path.is_file():
        return []
    hist = json.loads(path.read_text()).get("history", [])
    key = "reward" if hist and "reward" in hist[0] else "loss"
    return [[h["step"], h[key]] for h in hist if key in h]


def _ci_text(intervals: Mapping[str, Any]) -> str:
    return "; ".join(f"{k} {v['mean']:+.3f} [{v['low']:+.3f}, {v['high']:+.3f}]" for k, v in intervals.items())
