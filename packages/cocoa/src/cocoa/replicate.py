"""``cocoa replicate``: does EOS-based reconstruction (stage 2) before contrastive training raise MMEB P@1?

For every seed: build a tiny random Qwen2-VL, pre-train it generatively on the procedural image-text suite
(image -> caption language modelling by default) — the shared starting MLLM, checked to read its images (image
reliance, caption ranking on held-out images) — then train each row from that same checkpoint:

* ``contrastive``: stage 3 only (InfoNCE on <EOS>, in-batch + hard negatives);
* ``cocoa``: stage 2 (EOS-based reconstruction) then the same stage 3;
* ``cocoa_s1`` (when listed in ``rows``): stage 1 (collaborative attention) + stage 2 + stage 3.

Every row gets the same contrastive steps. Metrics: MMEB P@1 per meta-task and overall on held-out attribute
combinations, ``recon_loss_eos`` (the text copy decoded from <EOS> alone), and the same two figures measured
*before* stage 3 (``*_start``) as the diagnostic of what reconstruction did to the <EOS> state, and with
``contrastive.eval_every`` P@1 along the way (``p@1_overall@<step>``). Each finished row
and base model is checkpointed, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import torch
from shared.atomic import write_json
from shared.config import claim_run_dir, load_config
from shared.eval import seed_mean, write_results

from cocoa import __version__
from cocoa.backbone import build_tiny, load_cocoa
from cocoa.config import CocoaConfig
from cocoa.evaluate import caption_ranking, image_reliance
from cocoa.model import Item
from cocoa.pipeline import (
    contrastive,
    generative_items,
    generative_pretrain,
    measure,
    pair_items,
    set_seed,
    stage1,
    stage2,
)
from cocoa.suite import Suite, load_suite

PRESETS = Path(__file__).parent / "presets"
RECIPES = {"contrastive": (), "cocoa": ("stage2",), "cocoa_s1": ("stage1", "stage2")}
HEADLINE = ("p@1_overall", "p@1_retrieval", "p@1_classification", "p@1_vqa", "recon_loss_eos")
DIAGNOSTIC = ("p@1_overall_start", "recon_loss_eos_start")
CAPTION_DATASET = "i2t"  # the suite's image -> caption retrieval dataset, reused for the caption checks


def caption_checks(model, suite: Suite, cfg: CocoaConfig) -> dict[str, float]:
    """Does the model read its images? Image reliance on training captions and on held-out test images, and the
    caption-ranking accuracy on the held-out image -> text dataset (chance 1 / candidates)."""
    n, bs = cfg.eval.probe_items, cfg.eval.batch_size
    out = {}
    if len(suite.captions) >= 2:
        out["image_reliance"] = image_reliance(model, suite.captions[:n], bs)
    i2t = [d for d in suite.evals if d.name == CAPTION_DATASET]
    if i2t:
        gold = [Item(q.candidates[q.gold].text, q.query.image) for q in i2t[0].queries[:n]]
        out["image_reliance_heldout"] = image_reliance(model, gold, bs)
        out["caption_p@1_heldout"] = caption_ranking(model, i2t[0], bs)
    return out


def base_model(run_dir: Path, suite: Suite, cfg: CocoaConfig, seed: int) -> tuple[Path, dict]:
    """The generatively pre-trained starting MLLM of this seed (built once, shared by every row, reused on resume)."""
    final = run_dir / "base"
    done = final / "done.json"
    if done.is_file():
        return final, json.loads(done.read_text())
    tmp = run_dir / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    set_seed(seed)
    if cfg.model.path:
        path = Path(cfg.model.path)
    else:
        path = build_tiny(tmp / "random", suite.texts, cfg.model, cfg.data.image_size, seed=seed)
    model = load_cocoa(path, cfg.model)
    before = caption_checks(model, suite, cfg)
    items = generative_items(suite, cfg)
    logs = generative_pretrain(model, items, cfg, seed) if cfg.generative.steps else []
    model.save(tmp / "model")
    after = caption_checks(model, suite, cfg)
    info = {
        "generative_items": len(items),
        "generative_loss_first": logs[0]["lm"] if logs else None,
        "generative_loss_last": logs[-1]["lm"] if logs else None,
        # caption loss with swapped images minus with the right ones: > 0 once the model reads its images
        **{f"{k}_random": v for k, v in before.items()},
        **{f"{k}_base": v for k, v in after.items()},
    }
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp / "model", final)
    shutil.rmtree(tmp, ignore_errors=True)
    write_json(done, info)
    return final, info


def run_row(row: str, base: Path, suite: Suite, cfg: CocoaConfig, seed: int, row_dir: Path) -> dict:
    """Train one row from the base checkpoint and return its metrics (cached in row_dir/metrics.json)."""
    cached = row_dir / "metrics.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    row_dir.mkdir(parents=True, exist_ok=True)
    model = load_cocoa(base, cfg.model)
    set_seed(seed)
    logs: dict[str, list] = {}
    if "stage1" in RECIPES[row]:
        logs["stage1"] = stage1(model, pair_items(suite.train), cfg, seed)
    if "stage2" in RECIPES[row]:
        logs["stage2"] = stage2(model, pair_items(suite.train), cfg, seed)
    start = measure(model, suite.evals, cfg)
    logs["contrastive"] = contrastive(model, suite.train, cfg, seed, suite.evals)
    metrics = measure(model, suite.evals, cfg)
    # learning curve: P@1 after n contrastive steps (the final step is p@1_overall itself)
    for n, log in enumerate(logs["contrastive"], start=1):
        if "p@1_overall" in log:
            metrics[f"p@1_overall@{n}"] = log["p@1_overall"]
    metrics["p@1_overall_start"] = start["p@1_overall"]
    metrics["recon_loss_eos_start"] = start["recon_loss_eos"]
    summary = {k: [v[0], v[-1]] for k, v in logs.items() if v}
    write_json(row_dir / "logs.json", {"first_last": summary, "logs": logs})
    write_json(cached, metrics)
    return metrics


def aggregate(per_seed: dict[int, dict[str, dict]], rows: list[str]) -> list[dict]:
    """Mean over seeds of the headline and diagnostic metrics, with ``<metric>_std`` when several seeds ran."""
    return [{"method": row, "metrics": seed_mean([per_seed[s][row] for s in per_seed], HEADLINE + DIAGNOSTIC)}
            for row in rows]


def format_table(rows: list[dict]) -> str:
    keys = HEADLINE + DIAGNOSTIC
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in rows:
        m = r["metrics"]
        cells = []
        for k in keys:
            cells.append(f"{m[k]:.3f} ± {m[k + '_std']:.3f}" if f"{k}_std" in m else f"{m[k]:.3f}")
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def replicate(
    quick: bool = False,
    out: str | Path | None = None,
    seed: int | None = None,
    config: str | Path | None = None,
    overrides: list[str] = (),
) -> Path:
    """Run the replication and write ``out/results.json``; returns its path."""
    started = dt.datetime.now(dt.UTC)
    t0 = time.time()
    cfg = load_config(CocoaConfig, config or PRESETS / ("quick.yaml" if quick else "full.yaml"), list(overrides))
    if seed is not None:
        cfg.seeds = [seed + k for k in range(len(cfg.seeds))]
    torch.set_num_threads(cfg.threads)
    out_dir = Path(out or cfg.out_dir)
    cfg.out_dir = str(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    claim_run_dir(cfg, out_dir, ignore=("seeds",))  # finished rows are reused (per seed folder): same config only
    suite = load_suite(cfg.data, seed=0)
    rows = list(cfg.rows)
    unknown = [r for r in rows if r not in RECIPES]
    if unknown:
        raise ValueError(f"unknown rows {unknown}; choose from {sorted(RECIPES)}")
    per_seed: dict[int, dict[str, dict]] = {}
    bases = {}
    for s in cfg.seeds:
        run_dir = out_dir / f"seed{s}"
        run_dir.mkdir(parents=True, exist_ok=True)
        base, info = base_model(run_dir, suite, cfg, s)
        bases[s] = info
        per_seed[s] = {row: run_row(row, base, suite, cfg, s, run_dir / row) for row in rows}
    table_rows = aggregate(per_seed, rows)
    print(format_table(table_rows))
    for s, info in bases.items():
        checks = " ".join(
            f"{k[: -len('_base')]} {info[k[: -len('_base')] + '_random']:.4f} -> {v:.4f};"
            for k, v in info.items()
            if k.endswith("_base")
        )
        print(
            f"seed {s} base (random -> pre-trained): generative loss {info['generative_loss_first']} -> "
            f"{info['generative_loss_last']}; {checks}"
        )
    data = {
        "name": suite.name,
        "sha256": suite.sha256,
        "train_pairs": len(suite.train),
        "eval_queries": sum(len(d.queries) for d in suite.evals),
    }
    extra = {"per_seed": {str(s): v for s, v in per_seed.items()}, "base_models": {str(s): v for s, v in bases.items()}}
    path = write_results(
        out_dir,
        "cocoa",
        __version__,
        "replicate",
        table_rows,
        cfg,
        cfg.seeds[0],
        quick,
        data,
        started,
        time.time() - t0,
        extra=extra,
    )
    print(f"wrote {path}")
    return path
