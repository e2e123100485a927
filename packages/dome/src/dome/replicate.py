"""`dome replicate`: the corpus-update protocol at CPU scale — none vs incremental vs MEMIT vs DOME, per seed.

A tiny T5 is trained as a generative retriever on D0 (real HotpotQA passages, semantic docIDs, pseudo-queries);
the new batches D1..Dn are then added by each method starting from the same trained weights, same docIDs and same
seed. Test and dev spans are held-out windows of every document that share no word n-gram with any training input
(`dome.heldout`; written to `<work>/queries.jsonl`). The editors (DOME, MEMIT) are compared at a matched forgetting
budget: each one's C0 weight λ is chosen on the dev spans by `dome.selection`, then the test spans are scored once;
MEMIT at its published λ is reported beside it as `memit_asis`. Incremental training runs until
its new-document Recall@10 on the dev spans of the batch reaches the value DOME reached on them (or a step cap), so
update times compare equal effectiveness.
Reported per method: Recall@1/10 and MRR@10 on held-out queries of new and of old documents, the update time of
all batches, for the editors the time of the λ selection (`selection_seconds`), the one-off preparation time
(tracing, key statistics) and the λ used; with several seeds, the mean and `<metric>_std` (sample sd) over seeds.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from pathlib import Path

import torch
from shared.eval import seed_mean

from dome.config import DomeConfig
from dome.data import Document, Query, index_text, load_documents, split_protocol
from dome.edit import KeyValueEditor
from dome.gr import Example, GenerativeRetriever, train
from dome.heldout import QuerySplit, make_queries, ngram_overlap, write_queries
from dome.pipeline import build_retriever, embed_documents, evaluate, examples_for, make_scheme, mix
from dome.selection import edit_batches, weight_grid_run
from dome.tracing import critical_layers, trace_decoder_layers

METHODS = ("none", "incremental", "memit_asis", "memit", "dome")
NEW_DEV_PER_DOC = 2  # dev spans per new document (the new-document side of the λ selection and incremental stop)


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
        "protocol.incremental_check_every=10",
        # 10 edit-vector steps at lr 1.0: on dev spans of seeds 0 and 1 as much new-document recall at the matched
        # forgetting budget as 30 steps at lr 0.5, in 40% of the optimisation time (README, "Update time")
        "edit.steps=10",
        "edit.lr=1.0",
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


def heldout_report(queries: QuerySplit, docs: list[Document], cfg, new_ids: set[str]) -> dict:
    """What the held-out windows came to (kept, no room, dropped for overlap), per split and old/new test counts,
    and the check itself: test and dev spans sharing a word n-gram with a training input (0 by construction)."""
    training = [q.text for q in queries.train] + [index_text(d, cfg.index_words) for d in docs]
    return {
        "ngram": cfg.heldout_ngram, **queries.counts,
        "test_kept_old": sum(q.doc_id not in new_ids for q in queries.test),
        "test_kept_new": sum(q.doc_id in new_ids for q in queries.test),
        "test_overlap_after": ngram_overlap([q.text for q in queries.test], training, cfg.heldout_ngram),
        "dev_overlap_after": ngram_overlap([q.text for q in queries.dev], training, cfg.heldout_ngram),
    }  # fmt: skip


def run_protocol(cfg: DomeConfig, workdir: str | Path, log=print, resume: bool = False) -> dict:
    """One seed: train on D0, add D1..Dn with every method, evaluate; returns rows and run facts."""
    torch.manual_seed(cfg.seed)
    p = cfg.protocol
    docs, data_name = load_documents(cfg.data)
    parts = split_protocol(docs, p.initial_share, p.batches, cfg.seed)
    d0, batches = parts[0], parts[1:]
    # every update method gets the same, larger set of pseudo-queries for the new documents (the first
    # data.train_queries of them are the ones a D0 document would get); test and dev spans are held-out windows of
    # every document, n-gram disjoint from all training inputs, chosen the same way for old and new documents
    new_ids = {d.id for b in batches for d in b}
    n_new = p.new_queries or cfg.data.train_queries
    queries = make_queries(
        docs, cfg.data, cfg.seed, {i: n_new for i in new_ids},
        {d.id: NEW_DEV_PER_DOC if d.id in new_ids else p.old_dev_per_doc for d in docs},
    )  # fmt: skip
    train_q, test_q, dev_q = queries.train, queries.test, queries.dev
    Path(workdir).mkdir(parents=True, exist_ok=True)
    write_queries(Path(workdir) / "queries.jsonl", queries, {d.id: "new" if d.id in new_ids else "old" for d in docs})
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

    def ev(qs: list[Query]) -> dict:
        return evaluate(gr, qs, cfg.eval.beams, cfg.eval.batch_size)

    old_test = queries_of(test_q, d0)
    new_test = queries_of(test_q, [d for b in batches for d in b])
    before = ev(old_test)
    log(f"before update, old docs: {before}")
    t0 = time.perf_counter()
    tracing = trace_layers(gr, retr0, cfg)
    trace_seconds = time.perf_counter() - t0
    log(f"causal tracing effects per decoder layer: {[round(e, 4) for e in tracing['effects']]} -> {tracing['layers']}")
    base = (copy.deepcopy(gr.model.state_dict()), gr.scheme.to_dict())
    n_dec = len(gr.model.get_decoder().block)

    def examples_of(batch: list[Document]):
        def make() -> list[Example]:
            index_b, retr_b = examples_for(gr, batch, queries_of(train_q, batch), cfg.data.index_words)
            return retr_b + index_b
        return make

    specs = [([d.id for d in b], rows_of(b), examples_of(b)) for b in batches]
    new_devs = [queries_of(dev_q, b) for b in batches]
    old_dev = queries_of(dev_q, d0)
    select = bool(p.weight_grid)
    before_dev = ev(old_dev)["recall@10"] if select else None

    def score(
        method: str, seconds: float, prep: float | None, weight: float | None, selection: float | None = None
    ) -> dict:
        metrics = {f"{k}_new": v for k, v in ev(new_test).items()} | {f"{k}_old": v for k, v in ev(old_test).items()}
        metrics["update_seconds"] = seconds
        metrics["selection_seconds"] = selection  # choosing λ on dev spans: every λ of the grid run once
        metrics["prep_seconds"] = prep  # one-off tracing + key statistics (editors only)
        metrics["c0_weight"] = weight
        log(f"{method}: {metrics}")
        return {"method": method, "metrics": metrics}

    rows, details = [], {}
    edit_cfgs = {"dome": (cfg.edit, tracing["layers"]), "memit": (cfg.memit, list(cfg.memit.layers) or list(range(n_dec)))}
    for method, (ecfg, layers) in edit_cfgs.items():
        gr.restore(*base)
        t0 = time.perf_counter()
        editor = KeyValueEditor(gr, ecfg, layers, cfg.eval.batch_size)
        editor.add_preserved(retr0 + index0)
        prep = time.perf_counter() - t0 + (trace_seconds if method == "dome" and not cfg.edit.layers else 0.0)
        if not select:
            run = edit_batches(gr, editor, specs, new_devs, ev)
            details[method] = {"layers": layers, "batches": run["batches"]}
            rows.append(score(method, run["seconds"], prep, ecfg.cov_weight))
            continue
        log(f"{method}: choosing λ on dev spans (old R@10 ≥ {before_dev:.3f} − {p.max_old_drop})")
        asis = float(ecfg.cov_weight)
        keep = (asis,) if method == "memit" else ()
        sel = weight_grid_run(gr, editor, base, specs, new_devs, old_dev, before_dev, list(p.weight_grid),
                              p.max_old_drop, ev, log=log, keep=keep)
        w = sel["chosen"]["weight"]
        details[method] = {"layers": layers, "batches": sel["runs"][w]["batches"], "dev_curve": sel["curve"],
                           "chosen": sel["chosen"], "selection_seconds": sel["selection_seconds"]}
        gr.restore(*sel["states"][w])
        rows.append(score(method, sel["runs"][w]["seconds"], prep, w, sel["selection_seconds"]))
        if method == "memit":  # MEMIT as published (its own λ), beside MEMIT at the matched forgetting budget
            if asis in sel["states"]:
                run = sel["runs"][asis]
                gr.restore(*sel["states"][asis])
            else:
                gr.restore(*base)
                editor.cfg = dataclasses.replace(editor.cfg, cov_weight=asis)
                editor.reset_edits()
                run = edit_batches(gr, editor, specs, new_devs, ev)
            details["memit_asis"] = {"layers": layers, "batches": run["batches"]}
            rows.append(score("memit_asis", run["seconds"], prep, asis))
    dome_dev = [b["dev_recall@10"] for b in details["dome"]["batches"]]

    gr.restore(*base)
    for ids, em, _ in specs:
        gr.add_documents(ids, em)
    details["none"] = {"batches": []}
    rows.append(score("none", 0.0, None, None))

    gr.restore(*base)
    replay, inc = list(pool0), {"batches": []}
    update_seconds = 0.0
    for b, batch in enumerate(batches):
        gr.add_documents([d.id for d in batch], rows_of(batch))
        index_b, retr_b = examples_for(gr, batch, queries_of(train_q, batch), cfg.data.index_words)
        pool_b = mix(index_b, retr_b, cfg.train.index_weight)
        step = _incremental(gr, cfg, pool_b, replay, new_devs[b], dome_dev[b], cfg.seed + 1000 * b)
        update_seconds += step["seconds"]
        replay += pool_b
        inc["batches"].append(step)
        log(f"incremental: batch {b + 1}/{len(batches)} ({len(batch)} docs) {step}")
    details["incremental"] = inc
    rows.append(score("incremental", update_seconds, None, None))

    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: order[r["method"]])
    return {
        "rows": rows,
        "data": {"name": data_name, "docs": len(docs), "d0": len(d0), "new": [len(b) for b in batches],
                 "test_queries_old": len(old_test), "test_queries_new": len(new_test),
                 "dev_queries_old": len(old_dev), "dev_queries_new": sum(len(d) for d in new_devs),
                 "heldout": heldout_report(queries, docs, cfg.data, new_ids)},
        "before": before,
        "before_dev_old_recall@10": before_dev,
        "tracing": tracing,
        "details": details,
        "base_train_seconds": base_train["seconds"],
        "base_train_losses": base_train["losses"],  # per step (a resumed run: every step)
        "docs": docs,
    }


def replicate(cfg: DomeConfig, out: str | Path, log=print, resume: bool = False) -> dict:
    """run_protocol for every seed of `cfg.seeds` (or `cfg.seed`); rows = mean (and `<metric>_std`) over seeds."""
    seeds = list(cfg.seeds) or [cfg.seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    per_seed = {}
    for s in seeds:
        work = Path(out) / "work" / (f"seed{s}" if len(seeds) > 1 else "")
        log(f"=== seed {s} ===")
        per_seed[s] = run_protocol(dataclasses.replace(cfg, seed=s, seeds=[]), work, log=log, resume=resume)
    return {"seeds": seeds, "per_seed": per_seed, "rows": aggregate([per_seed[s]["rows"] for s in seeds]),
            "before": seed_mean([per_seed[s]["before"] for s in seeds])}


def aggregate(per_seed_rows: list[list[dict]]) -> list[dict]:
    """Rows of several seeds (same methods, same order) -> one row per method with mean ± sd metrics."""
    methods = [r["method"] for r in per_seed_rows[0]]
    for rows in per_seed_rows[1:]:
        if [r["method"] for r in rows] != methods:
            raise ValueError(f"seed runs have different methods: {methods} vs {[r['method'] for r in rows]}")
    return [
        {"method": m, "metrics": seed_mean([rows[i]["metrics"] for rows in per_seed_rows])}
        for i, m in enumerate(methods)
    ]


def format_table(rows: list[dict], before: dict) -> str:
    """Markdown table of the replicate rows (plus the pre-update old-document line); mean ± sd over seeds."""
    keys = ["recall@1_new", "recall@10_new", "mrr@10_new", "recall@1_old", "recall@10_old", "update_seconds",
            "selection_seconds"]  # fmt: skip

    def cell(m: dict, k: str) -> str:
        if m.get(k) is None:
            return "–"
        fmt = ".1f" if k.endswith("seconds") else ".3f"
        return f"{m[k]:{fmt}}" + (f" ± {m[k + '_std']:{fmt}}" if f"{k}_std" in m else "")

    lines = ["| method | " + " | ".join(keys) + " | C0 weight λ |", "|---" * (len(keys) + 2) + "|"]
    lines.append(
        f"| before update (D0 only) | – | – | – | {cell(before, 'recall@1')} | {cell(before, 'recall@10')} | – | – | – |"
    )
    for r in rows:
        m = r["metrics"]
        lam = "–" if m.get("c0_weight") is None else f"{m['c0_weight']:.3g}" + (
            f" ± {m['c0_weight_std']:.2g}" if m.get("c0_weight_std") else "")
        lines.append(f"| {r['method']} | " + " | ".join(cell(m, k) for k in keys) + f" | {lam} |")
    return "\n".join(lines)
