"""`benchmarks` console script: evaluate a model on a task, list tasks and bundled data, export synthetic suites.

uv run benchmarks eval --task arithmetic --model PATH [--backend hf|vllm] [--limit N] [--out DIR]
uv run benchmarks tasks
uv run benchmarks datasets
uv run benchmarks synth arithmetic --n 1000 --split train --out runs/arith_train.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _eval(args: argparse.Namespace) -> int:
    from benchmarks.evaluate import EvalConfig, run_eval
    from benchmarks.tasks import get_task

    task = get_task(args.task)
    import torch

    torch.set_num_threads(args.threads)
    cfg = EvalConfig(task=task.name, task_version=task.version, model=args.model, backend=args.backend,
                     limit=args.limit or 0, batch_size=args.batch_size, seed=args.seed,
                     max_new_tokens=args.max_new_tokens or 0)  # fmt: skip
    out = args.out or Path("runs") / "eval" / task.name
    output, path = run_eval(cfg, task, out)
    width = max(len(k) for k in output.metrics)
    print(f"task {task.name} v{task.version} | model {args.model} | {len(output.predictions)} examples")
    for k, v in output.metrics.items():
        print(f"  {k:<{width}}  {v:.4f}")
    print(f"wrote {path}")
    return 0


def _tasks(_: argparse.Namespace) -> int:
    from benchmarks.tasks import TASKS

    for t in TASKS.values():
        print(f"{t.name:<16} {t.kind:<9} v{t.version}  {', '.join(t.metrics):<36} {t.description}")
    return 0


def _datasets(_: argparse.Namespace) -> int:
    from benchmarks.data.bundled import BUNDLED, DATA_DIR

    print(f"bundled real slices under {DATA_DIR} (origins and licences: benchmarks/DATA.md):")
    for name in BUNDLED:
        print(f"  {name}")
    print("synthetic suites: arithmetic, kb, tools, images, docs (benchmarks synth SUITE --help)")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from benchmarks.synthetic import write_jsonl

    out = Path(args.out)
    if args.suite == "arithmetic":
        from benchmarks.synthetic.arithmetic import make_arithmetic

        recs = make_arithmetic(args.n, seed=args.seed, split=args.split, variant=args.variant)
        print(f"wrote {write_jsonl(recs, out)} ({len(recs)} problems)")
    elif args.suite == "kb":
        from benchmarks.synthetic.kb import make_kb, make_kb_questions

        kb = make_kb(seed=args.seed)
        qs = make_kb_questions(kb, args.n, seed=args.seed, split=args.split)
        write_jsonl(kb.corpus(), out / "corpus.jsonl")
        write_jsonl([q.to_dict() for q in qs], out / f"{args.split}.jsonl")
        print(f"wrote {out}/corpus.jsonl ({len(kb.corpus())} passages) and {out}/{args.split}.jsonl ({len(qs)})")
    elif args.suite == "tools":
        from benchmarks.synthetic.tools import make_tool_tasks

        tasks = make_tool_tasks(args.n, seed=args.seed, split=args.split)
        print(f"wrote {write_jsonl([t.to_dict() for t in tasks], out)} ({len(tasks)} tasks)")
    elif args.suite == "images":
        from benchmarks.synthetic.images import make_image_suite

        suite = make_image_suite(args.n, seed=args.seed, split=args.split, size=args.size)
        print(f"wrote {suite.save(out)} ({args.n} images, MMEB jsonl per meta-task)")
    else:
        from benchmarks.synthetic.docs import make_docs

        suite = make_docs(args.n, seed=args.seed)
        write_jsonl(
            [{"docid": d.id, "title": d.title, "text": d.text} for d in suite.docs.values()], out / "docs.jsonl"
        )
        for name, pairs in (("train", suite.train), ("test", suite.test)):
            (out / f"{name}.tsv").write_text("".join(f"{q}\t{d}\n" for q, d in pairs), encoding="utf-8")
        print(f"wrote {out}/docs.jsonl, train.tsv, test.tsv ({len(suite.docs)} documents, NQ320k layout)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks", description="Datasets, tasks and evaluation for the workspace.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("eval", help="run a model on a task and write results.json")
    e.add_argument("--task", required=True, help="task name (see `benchmarks tasks`)")
    e.add_argument("--model", required=True, help="model path (causal LM; for retrieval tasks an encoder or 'bm25')")
    e.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="generation backend (default hf)")
    e.add_argument("--limit", type=int, default=0, help="evaluate only the first N examples (0 = all)")
    e.add_argument("--out", type=Path, help="output folder (default runs/eval/<task>)")
    e.add_argument("--batch-size", type=int, default=16, help="generation batch size")
    e.add_argument("--max-new-tokens", type=int, default=0, help="override the task's generation length")
    e.add_argument("--seed", type=int, default=0, help="random seed")
    e.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    e.set_defaults(fn=_eval)
    sub.add_parser("tasks", help="list the registered tasks").set_defaults(fn=_tasks)
    sub.add_parser("datasets", help="list the bundled real data slices").set_defaults(fn=_datasets)
    s = sub.add_parser("synth", help="export a synthetic suite to files")
    s.add_argument("suite", choices=("arithmetic", "kb", "tools", "images", "docs"), help="which suite")
    s.add_argument("--n", type=int, default=1000, help="number of items (documents for docs, images for images)")
    s.add_argument("--seed", type=int, default=0, help="random seed")
    s.add_argument("--split", choices=("train", "test"), default="train", help="split")
    s.add_argument("--variant", choices=("calibration", "word"), default="calibration", help="arithmetic phrasing")
    s.add_argument("--size", type=int, default=56, help="image size in pixels (images)")
    s.add_argument("--out", required=True, help="output file (arithmetic, tools) or folder (kb, images, docs)")
    s.set_defaults(fn=_synth)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except Exception as e:
        # bad task names, bad data and unloadable models end with one clear line; anything else is a bug
        known = isinstance(e, KeyError | ValueError | OSError) or type(e).__name__ in _LOAD_ERRORS
        if not known:
            raise
        print(f"benchmarks {args.command}: {e}", file=sys.stderr)
        return 2


_LOAD_ERRORS = ("ModelLoadError", "EncoderLoadError")
