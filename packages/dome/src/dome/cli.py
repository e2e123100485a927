"""Command line of `dome`: train a generative retriever, evaluate it, edit new documents in, replicate the claim.

Built on the workspace's parent CLI (`shared.cli`): every verb takes `--config FILE`, `--out DIR`, `--seed N`,
`--print-config`, `--no-progress`, `--debug` and dotted `key=value` overrides anywhere on the line. The config,
the model and encoder paths, the documents file and the output folder are all checked before any model is built.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from shared.cli import App, CLIError, Run, Verb, check_encoder_source
from shared.dryrun import verb_dry_run

from dome import __version__


def _config_cls():
    from dome.config import DomeConfig

    return DomeConfig


def _threads(cfg) -> None:
    import torch

    torch.set_num_threads(max(1, cfg.threads))


def _write(out: Path, experiment: str, cfg, rows: list[dict], data: dict, started: float, quick: bool, paths=()):
    from shared.config import config_to_dict, save_config
    from shared.eval import sha256_of, write_results

    save_config(cfg, out)
    data = dict(data)
    if paths:
        data["sha256"] = sha256_of(list(paths))
    return write_results(
        out, package="dome", version=__version__, experiment=experiment, rows=rows, config=config_to_dict(cfg),
        seed=cfg.seed, quick=quick, data=data, started=datetime.fromtimestamp(started, UTC).isoformat(),
        seconds=time.time() - started,
    )


def _docs_jsonl(path: Path, docs) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in docs), encoding="utf-8")
    tmp.replace(path)


# ---- checks before any work ---------------------------------------------------------------------------------------
def _check_source(run: Run) -> None:
    """data.source: a readable documents JSONL (every line checked) or a bundled corpus name."""
    from dome.data import BUNDLED_CORPORA, read_documents_jsonl

    source = run.cfg.data.source
    if source.endswith(".jsonl"):
        read_documents_jsonl(source)
    elif source not in BUNDLED_CORPORA:
        raise CLIError(f"data.source {source!r}: use a .jsonl file of documents or one of {sorted(BUNDLED_CORPORA)}")
    if run.cfg.docids.scheme == "semantic":
        check_encoder_source(run.cfg.docids.encoder, "docids.encoder")


def _model_meta(path: Path) -> dict:
    """docids.json of a model folder written by `dome train` / `dome edit` (checked before loading the model)."""
    meta = path / "docids.json"
    if not path.is_dir():
        raise CLIError(f"--model {path}: no such model folder")
    if not meta.is_file() or not (path / "config.json").is_file():
        raise CLIError(f"--model {path}: no docids.json or config.json; is this a model saved by `dome train`?")
    try:
        return json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CLIError(f"{meta}: not valid JSON ({err.msg}, line {err.lineno})") from err


def _check_stored_queries(model: Path) -> None:
    """The held-out test spans stored with the model (models saved by dome < 0.4 have none and are refused)."""
    from dome.data import DocumentError
    from dome.heldout import read_queries

    try:
        read_queries(model / "queries.jsonl")
    except DocumentError as err:
        raise CLIError(str(err)) from err


def _check_eval(run: Run) -> None:
    from dome.data import read_documents_jsonl

    _model_meta(run.args.model)
    read_documents_jsonl(run.args.model / "documents.jsonl")
    _check_stored_queries(run.args.model)


def _check_edit(run: Run) -> None:
    from dome.data import read_documents_jsonl

    meta = _model_meta(run.args.model)
    read_documents_jsonl(run.args.model / "documents.jsonl")
    _check_stored_queries(run.args.model)
    new = read_documents_jsonl(run.args.docs)
    indexed = meta.get("scheme", {}).get("ids", {})
    clash = [d.id for d in new if d.id in indexed]
    if clash:
        raise CLIError(f"{run.args.docs}: ids already indexed by {run.args.model}: {clash[:5]}")
    if meta.get("scheme", {}).get("kind") == "semantic":
        check_encoder_source(run.cfg.docids.encoder, "docids.encoder")


def _check_replicate(run: Run) -> None:
    if run.args.seeds is not None and run.args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {run.args.seeds}")
    _check_source(run)


# ---- verbs --------------------------------------------------------------------------------------------------------
def cmd_train(run: Run) -> int:
    from dome.data import load_documents
    from dome.gr import train
    from dome.heldout import make_queries, write_queries
    from dome.pipeline import build_retriever, embed_documents, evaluate, examples_for, make_scheme, mix

    cfg, out = run.cfg, run.out
    _threads(cfg)
    started = time.time()
    docs, name = load_documents(cfg.data)
    emb = embed_documents(docs, cfg.docids.encoder) if cfg.docids.scheme == "semantic" else None
    scheme = make_scheme(cfg, docs, emb)
    gr = build_retriever(cfg, docs, scheme, out)
    queries = make_queries(docs, cfg.data, cfg.seed)
    train_q, test_q = queries.train, queries.test
    index, retr = examples_for(gr, docs, train_q, cfg.data.index_words)
    out_train = train(
        gr, mix(index, retr, cfg.train.index_weight), cfg.train.steps, cfg.train.batch_size, cfg.train.lr,
        cfg.train.warmup, cfg.seed, checkpoint=out / "checkpoint" / "train.pt",
        checkpoint_every=cfg.train.checkpoint_every, resume=run.resume,
    )
    if out_train["resumed_from"]:
        run.log(f"resumed training at step {out_train['resumed_from']}")
    run.write_metrics([{"train/loss": loss} for loss in out_train["losses"]])  # a resumed run returns every step
    gr.save(out / "model")
    _docs_jsonl(out / "model" / "documents.jsonl", docs)
    write_queries(out / "model" / "queries.jsonl", queries)  # `dome eval` scores these test spans, never redraws
    metrics = evaluate(gr, test_q, cfg.eval.beams, cfg.eval.batch_size)
    print(json.dumps(metrics))
    data = {"name": name, "docs": len(docs), "sha256": _corpus_hash(docs), "test_queries": len(test_q),
            "heldout": queries.counts}  # fmt: skip
    _write(out, "train", cfg, [{"method": "gr", "metrics": metrics}], data, started, False)
    print(f"model saved to {out / 'model'}")
    return 0


def cmd_eval(run: Run) -> int:
    from dome.data import read_documents_jsonl
    from dome.gr import GenerativeRetriever
    from dome.heldout import read_queries
    from dome.pipeline import evaluate

    cfg, model_dir = run.cfg, run.args.model
    _threads(cfg)
    started = time.time()
    gr = GenerativeRetriever.load(model_dir)
    docs = read_documents_jsonl(model_dir / "documents.jsonl")
    stored = model_dir / "queries.jsonl"
    test_q = read_queries(stored).test  # the held-out spans saved with the model (config seeds cannot redraw them)
    metrics = evaluate(gr, test_q, cfg.eval.beams, cfg.eval.batch_size)
    print(json.dumps(metrics))
    if run.out is not None:
        _write(run.out, "eval", cfg, [{"method": "gr", "metrics": metrics}],
               {"name": str(model_dir), "docs": len(docs), "test_queries": len(test_q)}, started, False,
               [model_dir / "documents.jsonl", stored])  # fmt: skip
    return 0


def cmd_edit(run: Run) -> int:
    from dome.data import index_text, read_documents_jsonl
    from dome.edit import KeyValueEditor
    from dome.gr import GenerativeRetriever
    from dome.heldout import QuerySplit, make_queries, ngrams, read_queries, write_queries
    from dome.pipeline import embed_documents, evaluate, examples_for
    from dome.replicate import trace_layers

    cfg, out, args = run.cfg, run.out, run.args
    _threads(cfg)
    started = time.time()
    gr = GenerativeRetriever.load(args.model)
    indexed = read_documents_jsonl(args.model / "documents.jsonl")
    new = read_documents_jsonl(args.docs)
    stored = read_queries(args.model / "queries.jsonl")
    _, old_retr = examples_for(gr, indexed, stored.train, cfg.data.index_words)
    ecfg = cfg.edit if args.method == "dome" else cfg.memit
    layers = list(ecfg.layers) or (trace_layers(gr, old_retr, cfg)["layers"] if args.method == "dome"
                                    else list(range(len(gr.model.get_decoder().block))))
    editor = KeyValueEditor(gr, ecfg, layers, cfg.eval.batch_size)
    editor.add_preserved(old_retr)
    emb = embed_documents(new, cfg.docids.encoder) if gr.scheme.kind == "semantic" else None
    gr.add_documents([d.id for d in new], emb)
    # the new documents' held-out spans avoid every earlier training input too; earlier test spans that share an
    # n-gram with the new training inputs are no longer held out and are dropped from the stored test set
    earlier = [q.text for q in stored.train] + [index_text(d, cfg.data.index_words) for d in indexed]
    added = make_queries(new, cfg.data, cfg.seed, trained_texts=earlier)
    new_test = added.test
    index, retr = examples_for(gr, new, added.train, cfg.data.index_words)
    log = editor.edit(retr + index)
    gr.save(out / "model")
    _docs_jsonl(out / "model" / "documents.jsonl", indexed + new)
    banned = set().union(*(ngrams(t, cfg.data.heldout_ngram) for t in [e.text for e in index + retr]))
    kept = [q for q in stored.test if not ngrams(q.text, cfg.data.heldout_ngram) & banned]
    write_queries(out / "model" / "queries.jsonl",
                  QuerySplit(stored.train + added.train, kept + new_test, stored.dev + added.dev))  # fmt: skip
    metrics = {f"{k}_new": v for k, v in evaluate(gr, new_test, cfg.eval.beams, cfg.eval.batch_size).items()}
    metrics["update_seconds"] = log["seconds"]
    metrics["old_test_dropped"] = len(stored.test) - len(kept)
    print(json.dumps({"layers": layers, **metrics}))
    _write(out, "edit", cfg, [{"method": args.method, "metrics": metrics}],
           {"name": str(args.docs), "docs": len(new)}, started, False, [args.docs])
    print(f"edited model saved to {out / 'model'}")
    return 0


def cmd_replicate(run: Run) -> int:
    from dome.replicate import format_table, replicate

    cfg, args, out = run.cfg, run.args, run.out
    if args.seeds is not None:
        cfg.seeds = [cfg.seed + k for k in range(args.seeds)]
    _threads(cfg)
    started = time.time()
    res = replicate(cfg, out, log=run.log, resume=run.resume)
    for s, r in res["per_seed"].items():  # each seed's training on D0, in the workspace's training-output layout
        run.write_metrics([{"train/loss": loss} for loss in r["base_train_losses"]],
                          folder=out / "work" / (f"seed{s}" if len(res["seeds"]) > 1 else ""))
    first = res["per_seed"][res["seeds"][0]]
    data = dict(first["data"])
    data["seeds"] = res["seeds"]
    data["before_update_old"] = res["before"]
    data["sha256"] = _corpus_hash(first["docs"])
    # per seed: tracing, dev curves and chosen λ, per-batch edit logs and incremental steps, per-seed rows
    data["per_seed"] = {
        str(s): {
            "tracing_effects": r["tracing"]["effects"], "dome_layers": r["tracing"]["layers"],
            "before_update_old": r["before"], "before_dev_old_recall@10": r["before_dev_old_recall@10"],
            "base_train_seconds": r["base_train_seconds"], "updates": r["details"], "rows": r["rows"],
            "split": r["data"],
        }
        for s, r in res["per_seed"].items()
    }
    path = _write(out, "replicate", cfg, res["rows"], data, started, args.quick)
    print(format_table(res["rows"], res["before"]))
    n = len(res["seeds"])
    print(f"(mean ± sd over {n} seeds: {res['seeds']})" if n > 1 else f"(seed {res['seeds'][0]})")
    for s, r in res["per_seed"].items():
        chosen = {m: r["details"][m]["chosen"]["weight"] for m in ("dome", "memit") if "chosen" in r["details"][m]}
        print(f"seed {s}: tracing effects {[round(e, 3) for e in r['tracing']['effects']]}, dome layers "
              f"{r['tracing']['layers']}, λ chosen on dev {chosen}")
    print(f"results: {path}")
    return 0


def _corpus_hash(docs) -> str:
    from shared.eval import sha256_of

    return sha256_of("".join(f"{d.id}\t{d.text}\n" for d in docs).encode("utf-8"))


def _model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True, help="model folder written by `dome train` or `dome edit`")


def _edit_args(p: argparse.ArgumentParser) -> None:
    _model_arg(p)
    p.add_argument("--docs", type=Path, required=True, help='JSONL of new documents {"id", "text"}')
    p.add_argument("--method", choices=["dome", "memit"], default="dome", help="editor (default: dome)")


def _replicate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="small collection and fewer steps (minutes on 2 cores)")
    p.add_argument("--seeds", type=int, default=None,
                   help="number of seeds from --seed/seed up (rows = mean ± sd); default: config `seeds` or one")


def _quick(args: argparse.Namespace) -> list[str]:
    if not args.quick:
        return []
    from dome.replicate import quick_overrides

    return quick_overrides()


COMMON = {"config": _config_cls, "seed_key": "seed", "model_keys": ("model.path",)}
APP = App(
    prog="dome", version=__version__,
    description="Generative retrieval with docID-oriented model editing (DOME).",
    verbs=[
        Verb("train", "train a generative retriever (T5, docIDs, pseudo-queries) on a collection", cmd_train,
             out="required", resume=True, trains=True, check=_check_source,
             dry_run=verb_dry_run("dome.dryrun:specs"), **COMMON),
        Verb("eval", "Recall@1/10 and MRR@10 of a trained retriever on its stored held-out spans", cmd_eval,
             arguments=_model_arg, check=_check_eval, **COMMON),
        Verb("edit", "add new documents to a trained retriever by model editing and save it", cmd_edit,
             arguments=_edit_args, out="required", check=_check_edit, **COMMON),
        Verb("replicate", "none vs incremental vs MEMIT vs DOME on the corpus-update protocol", cmd_replicate,
             arguments=_replicate_args, presets=_quick, resume=True, check=_check_replicate,
             default_out=lambda run: "runs/dome-replicate-quick" if run.args.quick else "runs/dome-replicate",
             description="none vs incremental vs MEMIT vs DOME on the corpus-update protocol; --resume continues "
                         "base training from OUT/work/checkpoint/train.pt", **COMMON),
    ],
)


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
