"""`dome replicate`: the corpus-update protocol at CPU scale — none vs incremental vs MEMIT vs DOME, one run.

A tiny T5 is trained as a generative retriever on D0 (real HotpotQA passages, semantic docIDs, pseudo-queries);
the new batches D1..Dn are then added by each method starting from the same trained weights, same docIDs and same
seed. Incremental training runs until its new-document Recall@10 on held-out dev spans of the batch (disjoint from
training and test queries) reaches the value DOME reached on them (or a step cap), so update times compare equal
effectiveness.
Reported per method: Recall@1/10 and MRR@10 on held-out queries of new and of old documents, the update time of
all batches, and for the editors the one-off preparation time (tracing, key statistics).
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from pathlib import Path

import torch

from dome.config import DomeConfig
from dome.data import Document, Query, dev_queries, load_documents, pseudo_queries, split_protocol
from dome.edit import KeyValueEditor
from dome.gr import Example, GenerativeRetriever, train
from dome.pipeline import build_retriever, embed_documents, evaluate, examples_for, make_scheme, mix
from dome.tracing import critical_layers, trace_decoder_layers

METHODS = ("none", "incremental", "memit", "dome")


def quick_overrides() -> list[str]:
    """Settings of `--quick`: a smaller collection and fewer steps (minutes on 2 CPU cores)."""
    return [
        "data.max_docs=150",
        "train.steps=500",
        "train.lr=0.003",
        "protocol.new_queries=20",
        "data.train_queries=6",
        "protocol.batches=1",
        "protocol.incremental_max_steps=300",
        "protocol.incremental_check_every=25",
        "edit.steps=30",
        "memit.steps=30",
    ]


def trace_layers(gr: GenerativeRetriever, examples: list[Example], cfg: DomeConfig) -> dict:
    """Causal tracing on a sample of indexed (query, docID) pairs; picks DOME's layers unless set in the config."""
    sample = random.Random(cfg.seed).sample(examples, min(cfg.edit.trace_queries, len(examples)))
    enc = gr.encode([e.text for e in sample])
    dec, labels, mask = gr.decoder_tensors([e.docid for e in sample])
    out = trace_decoder_layers(gr.model, enc["input_ids"], enc["attention_mask"], dec, labels, mask, seed=cfg.seed)
    out["layers"] = list(cfg.edit.layers) or critical_layers(out["effects"], cfg.edit.top_layers)
    return out


def _incremental(
    gr: GenerativeRetriever,
    cfg: DomeConfig,
    new_pool: list[Example],
    replay: list[Example],
    dev: list[Query],
    target: float,
    seed: int,
) -> dict:
    """Continue training on the new batch with replay until dev Recall@10 >= target or the step cap."""
    p = cfg.protocol
    seconds, steps, opt, reached = 0.0, 0, None, 0.0
    while steps < p.incremental_max_steps:
        chunk = min(p.incremental_check_every, p.incremental_max_steps - steps)
        out = train(
            gr, new_pool, chunk, cfg.train.batch_size, p.incremental_lr, seed=seed + steps, replay=replay,
            replay_ratio=p.replay_ratio, desc="incremental", optimizer=opt, decay=False,
        )
        opt, seconds, steps = out["optimizer"], seconds + out["seconds"], steps + chunk
        reached = evaluate(gr, dev, cfg.eval.beams, cfg.eval.batch_size)["recall@10"]
        if reached >= target:
            break
    return {"seconds": seconds, "steps": steps, "dev_recall@10": reached}


def run_protocol(cfg: DomeConfig, workdir: str | Path, log=print, resume: bool = False) -> dict:
    """Train on D0, add D1..Dn with every method, evaluate; returns rows and run facts."""
    torch.manual_seed(cfg.seed)
    docs, data_name = load_documents(cfg.data)
    parts = split_protocol(docs, cfg.protocol.initial_share, cfg.protocol.batches, cfg.seed)
    d0, batches = parts[0], parts[1:]
    train_q, test_q = pseudo_queries(docs, cfg.data, cfg.seed)
    if cfg.protocol.new_queries:
        # every update method gets the same, larger set of pseudo-queries for the new documents; their held-out
        # test spans are redrawn against all of them (the first data.train_queries spans are the same as before)
        new_ids = {d.id for b in parts[1:] for d in b}
        more = dataclasses.replace(cfg.data, train_queries=cfg.protocol.new_queries)
        new_train, new_test_q = pseudo_queries([d for d in docs if d.id in new_ids], more, cfg.seed)
        train_q = [q for q in train_q if q.doc_id not in new_ids] + new_train
        test_q = [q for q in test_q if q.doc_id not in new_ids] + new_test_q
    pos = {d.id: i for i, d in enumerate(docs)}
    emb = embed_documents(docs, cfg.docids.encoder) if cfg.docids.scheme == "semantic" else None

    def rows_of(ds: list[Document]):
        return emb[[pos[d.id] for d in ds]] if emb is not None else None

    def queries_of(qs: list[Query], ds: list[Document]) -> list[Query]:
        ids = {d.id for d in ds}
        return [q for q in qs if q.doc_id in ids]

    scheme = make_scheme(cfg, d0, rows_of(d0))
    gr = build_retriever(cfg, d0, scheme, workdir, total_docs=len(docs))
    index0, retr0 = examples_for(gr, d0, queries_of(train_q, d0), cfg.data.index_words)
    pool0 = mix(index0, retr0, cfg.train.index_weight)
    t0 = time.perf_counter()
    base_train = train(
        gr, pool0, cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.warmup, cfg.seed,
        checkpoint=Path(workdir) / "checkpoint" / "train.pt", checkpoint_every=cfg.train.checkpoint_every,
        resume=resume,
    )
    log(f"trained GR on D0 ({len(d0)} docs, {cfg.train.steps} steps) in {time.perf_counter() - t0:.0f}s")
    old_test = queries_of(test_q, d0)
    new_docs = [d for b in batches for d in b]
    new_test = queries_of(test_q, new_docs)
    before = evaluate(gr, old_test, cfg.eval.beams, cfg.eval.batch_size)
    log(f"before update, old docs: {before}")
    t0 = time.perf_counter()
    tracing = trace_layers(gr, retr0, cfg)
    trace_seconds = time.perf_counter() - t0
    log(f"causal tracing effects per decoder layer: {[round(e, 4) for e in tracing['effects']]} -> {tracing['layers']}")
    base_state = copy.deepcopy(gr.model.state_dict())
    base_scheme = gr.scheme.to_dict()
    n_dec = len(gr.model.get_decoder().block)
    edit_cfgs = {"dome": (cfg.edit, tracing["layers"]), "memit": (cfg.memit, list(cfg.memit.layers) or list(range(n_dec)))}
    rows, details, dome_dev = [], {}, {}
    for method in ("none", "dome", "memit", "incremental"):
        gr.restore(base_state, base_scheme)
        info: dict = {"batches": []}
        prep = 0.0
        editor = None
        if method in edit_cfgs:
            ecfg, layers = edit_cfgs[method]
            t0 = time.perf_counter()
            editor = KeyValueEditor(gr, ecfg, layers, cfg.eval.batch_size)
            editor.add_preserved(retr0 + index0)
            prep = time.perf_counter() - t0 + (trace_seconds if method == "dome" and not cfg.edit.layers else 0.0)
            info["layers"] = layers
        replay = list(pool0)
        update_seconds = 0.0
        for b, batch in enumerate(batches):
            gr.add_documents([d.id for d in batch], rows_of(batch))
            index_b, retr_b = examples_for(gr, batch, queries_of(train_q, batch), cfg.data.index_words)
            dev = dev_queries(batch, cfg.data, cfg.seed, per_doc=2)
            if editor is not None:
                step = editor.edit(retr_b + index_b)
                update_seconds += step["seconds"]
                dev_r10 = evaluate(gr, dev, cfg.eval.beams, cfg.eval.batch_size)["recall@10"]
                if method == "dome":
                    dome_dev[b] = dev_r10
                info["batches"].append({**step, "dev_recall@10": dev_r10})
            elif method == "incremental":
                pool_b = mix(index_b, retr_b, cfg.train.index_weight)
                step = _incremental(gr, cfg, pool_b, replay, dev, dome_dev.get(b, 1.0), cfg.seed + 1000 * b)
                update_seconds += step["seconds"]
                replay += pool_b
                info["batches"].append(step)
            log(f"{method}: batch {b + 1}/{len(batches)} ({len(batch)} docs) {info['batches'][-1] if info['batches'] else ''}")
        new_m = evaluate(gr, new_test, cfg.eval.beams, cfg.eval.batch_size)
        old_m = evaluate(gr, old_test, cfg.eval.beams, cfg.eval.batch_size)
        metrics = {f"{k}_new": v for k, v in new_m.items()} | {f"{k}_old": v for k, v in old_m.items()}
        metrics["update_seconds"] = update_seconds
        metrics["prep_seconds"] = prep if editor is not None else None  # one-off tracing + key statistics
        rows.append({"method": method, "metrics": metrics})
        details[method] = info
        log(f"{method}: {metrics}")
    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: order[r["method"]])
    return {
        "rows": rows,
        "data": {"name": data_name, "docs": len(docs), "d0": len(d0), "new": [len(b) for b in batches],
                 "test_queries_old": len(old_test), "test_queries_new": len(new_test)},
        "before": before,
        "tracing": tracing,
        "details": details,
        "base_train_seconds": base_train["seconds"],
        "docs": docs,
    }


def format_table(rows: list[dict], before: dict) -> str:
    """Markdown table of the replicate rows (plus the pre-update old-document line)."""
    keys = ["recall@1_new", "recall@10_new", "mrr@10_new", "recall@1_old", "recall@10_old", "update_seconds"]
    lines = ["| method | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    lines.append(
        "| before update (D0 only) | – | – | – | "
        f"{before['recall@1']:.3f} | {before['recall@10']:.3f} | – |"
    )
    for r in rows:
        m = r["metrics"]
        cells = [f"{m[k]:.1f}" if k == "update_seconds" else f"{m[k]:.3f}" for k in keys]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
