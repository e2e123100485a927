"""Command line of `dome`: train a generative retriever, evaluate it, edit new documents in, replicate the claim."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from dome import __version__

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _config(args: argparse.Namespace, extra: list[str] = ()):
    from shared.config import load_config

    from dome.config import DomeConfig

    overrides = list(extra) + list(args.overrides or [])
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    return load_config(DomeConfig, args.config, overrides)


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


def cmd_train(args: argparse.Namespace) -> int:
    from dome.data import load_documents, pseudo_queries
    from dome.gr import train
    from dome.pipeline import build_retriever, embed_documents, evaluate, examples_for, make_scheme, mix

    cfg = _config(args)
    _threads(cfg)
    started, out = time.time(), Path(args.out)
    docs, name = load_documents(cfg.data)
    emb = embed_documents(docs, cfg.docids.encoder) if cfg.docids.scheme == "semantic" else None
    scheme = make_scheme(cfg, docs, emb)
    gr = build_retriever(cfg, docs, scheme, out)
    train_q, test_q = pseudo_queries(docs, cfg.data, cfg.seed)
    index, retr = examples_for(gr, docs, train_q, cfg.data.index_words)
    out_train = train(
        gr, mix(index, retr, cfg.train.index_weight), cfg.train.steps, cfg.train.batch_size, cfg.train.lr,
        cfg.train.warmup, cfg.seed, checkpoint=out / "checkpoint" / "train.pt",
        checkpoint_every=cfg.train.checkpoint_every, resume=args.resume,
    )
    if out_train["resumed_from"]:
        print(f"resumed training at step {out_train['resumed_from']}", file=sys.stderr)
    gr.save(out / "model")
    _docs_jsonl(out / "model" / "documents.jsonl", docs)
    metrics = evaluate(gr, test_q, cfg.eval.beams, cfg.eval.batch_size)
    print(json.dumps(metrics))
    data = {"name": name, "docs": len(docs), "sha256": _corpus_hash(docs)}
    _write(out, "train", cfg, [{"method": "gr", "metrics": metrics}], data, started, False)
    print(f"model saved to {out / 'model'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from dome.data import pseudo_queries, read_documents_jsonl
    from dome.gr import GenerativeRetriever
    from dome.pipeline import evaluate

    cfg = _config(args)
    _threads(cfg)
    started = time.time()
    gr = GenerativeRetriever.load(args.model)
    docs = read_documents_jsonl(Path(args.model) / "documents.jsonl")
    _, test_q = pseudo_queries(docs, cfg.data, cfg.seed)
    metrics = evaluate(gr, test_q, cfg.eval.beams, cfg.eval.batch_size)
    print(json.dumps(metrics))
    if args.out:
        _write(Path(args.out), "eval", cfg, [{"method": "gr", "metrics": metrics}],
               {"name": str(args.model), "docs": len(docs)}, started, False, [Path(args.model) / "documents.jsonl"])
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from dome.data import DocumentError, pseudo_queries, read_documents_jsonl
    from dome.edit import KeyValueEditor
    from dome.gr import GenerativeRetriever
    from dome.pipeline import embed_documents, evaluate, examples_for
    from dome.replicate import trace_layers

    cfg = _config(args)
    _threads(cfg)
    started, out = time.time(), Path(args.out)
    gr = GenerativeRetriever.load(args.model)
    indexed = read_documents_jsonl(Path(args.model) / "documents.jsonl")
    new = read_documents_jsonl(args.docs)
    clash = [d.id for d in new if d.id in gr.scheme.ids]
    if clash:
        raise DocumentError(f"{args.docs}: ids already indexed by {args.model}: {clash[:5]}")
    old_q, _ = pseudo_queries(indexed, cfg.data, cfg.seed)
    _, old_retr = examples_for(gr, indexed, old_q, cfg.data.index_words)
    ecfg = cfg.edit if args.method == "dome" else cfg.memit
    layers = list(ecfg.layers) or (trace_layers(gr, old_retr, cfg)["layers"] if args.method == "dome"
                                    else list(range(len(gr.model.get_decoder().block))))
    editor = KeyValueEditor(gr, ecfg, layers, cfg.eval.batch_size)
    editor.add_preserved(old_retr)
    emb = embed_documents(new, cfg.docids.encoder) if gr.scheme.kind == "semantic" else None
    gr.add_documents([d.id for d in new], emb)
    new_q, new_test = pseudo_queries(new, cfg.data, cfg.seed)
    index, retr = examples_for(gr, new, new_q, cfg.data.index_words)
    log = editor.edit(retr + index)
    gr.save(out / "model")
    _docs_jsonl(out / "model" / "documents.jsonl", indexed + new)
    metrics = {f"{k}_new": v for k, v in evaluate(gr, new_test, cfg.eval.beams, cfg.eval.batch_size).items()}
    metrics["update_seconds"] = log["seconds"]
    print(json.dumps({"layers": layers, **metrics}))
    _write(out, "edit", cfg, [{"method": args.method, "metrics": metrics}],
           {"name": str(args.docs), "docs": len(new)}, started, False, [args.docs])
    print(f"edited model saved to {out / 'model'}")
    return 0


def cmd_replicate(args: argparse.Namespace) -> int:
    from dome.replicate import format_table, quick_overrides, replicate

    cfg = _config(args, quick_overrides() if args.quick else [])
    if args.seeds is not None:
        if args.seeds < 1:
            raise SystemExit(f"dome replicate: --seeds must be >= 1, got {args.seeds}")
        cfg.seeds = [cfg.seed + k for k in range(args.seeds)]
    _threads(cfg)
    started = time.time()
    out = Path(args.out or ("runs/dome-replicate-quick" if args.quick else "runs/dome-replicate"))
    res = replicate(cfg, out, log=lambda m: print(m, file=sys.stderr, flush=True), resume=args.resume)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dome", description="Generative retrieval with docID-oriented model editing (DOME).")
    p.add_argument("--version", action="version", version=f"dome {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, out_required: bool):
        sp.add_argument("--config", help="YAML config (see packages/dome/configs)")
        sp.add_argument("--seed", type=int, default=None, help="random seed (overrides the config)")
        sp.add_argument("--out", required=out_required, help="output directory")
        sp.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. train.steps=200")

    sp = sub.add_parser("train", help="train a generative retriever (T5, docIDs, pseudo-queries) on a collection")
    common(sp, True)
    sp.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint/train.pt")
    sp.set_defaults(fn=cmd_train)
    sp = sub.add_parser("eval", help="Recall@1/10 and MRR@10 of a trained retriever on held-out pseudo-queries")
    sp.add_argument("--model", required=True, help="model directory written by `dome train` or `dome edit`")
    common(sp, False)
    sp.set_defaults(fn=cmd_eval)
    sp = sub.add_parser("edit", help="add new documents to a trained retriever by model editing and save it")
    sp.add_argument("--model", required=True, help="model directory written by `dome train` or `dome edit`")
    sp.add_argument("--docs", required=True, help='JSONL of new documents {"id", "text"}')
    sp.add_argument("--method", choices=["dome", "memit"], default="dome", help="editor (default: dome)")
    common(sp, True)
    sp.set_defaults(fn=cmd_edit)
    sp = sub.add_parser("replicate", help="none vs incremental vs MEMIT vs DOME on the corpus-update protocol")
    sp.add_argument("--quick", action="store_true", help="small collection and fewer steps (minutes on 2 cores)")
    sp.add_argument("--resume", action="store_true", help="continue base training from OUT/work/checkpoint/train.pt")
    sp.add_argument("--seeds", type=int, default=None,
                    help="number of seeds from --seed/seed up (rows = mean ± sd); default: config `seeds` or one")
    common(sp, False)
    sp.set_defaults(fn=cmd_replicate)
    return p


def main(argv: list[str] | None = None) -> int:
    from shared.dryrun import cli_hook  # `train --config FILE --dry-run`: size the run, run nothing

    argv = sys.argv[1:] if argv is None else argv
    code = cli_hook("dome", argv, "dome.config:DomeConfig", "dome.dryrun:specs", verbs=("train",))
    if code is not None:
        return code
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    sys.exit(main())
