"""`benchmarks` console script: evaluate a model on tasks (lm-evaluation-harness's command shape), list tasks and
bundled data, export synthetic suites.

    uv run benchmarks eval --tasks arithmetic,gsm8k --model hf --model_args pretrained=PATH[,dtype=float32] \\
        [--num_fewshot K] [--apply_chat_template] [--batch_size 16] [--limit N] [--output_path DIR]
    uv run benchmarks eval --tasks cranfield --model_args pretrained=bm25      # retrieval: bm25 or an encoder
    uv run benchmarks tasks
    uv run benchmarks datasets
    uv run benchmarks synth arithmetic --n 1000 --split train --out runs/arith_train.jsonl

Built on the workspace's parent CLI (`shared.cli`): the flags of `eval` set keys of `EvalCommand` (so a YAML
`--config` and `key=value` overrides work too); task names, the model path and the output folder are checked before
the model loads. Each task writes `OUTPUT/<task>/{config.yaml, predictions.jsonl, results.json}`, and the run writes
`OUTPUT/summary.json` in lm-eval's shape (`results`, `versions`, `n-shot`, `config`) and prints its table.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from shared.cli import App, CLIError, Run, Verb, check_encoder_source, check_model_source, deprecated_alias

from benchmarks import __version__


@dataclass
class EvalCommand:
    """The resolved settings of one `benchmarks eval` (written as OUTPUT/config.yaml)."""

    tasks: list[str] = field(default_factory=list)
    model: Literal["hf", "vllm"] = "hf"  # generation backend; retrieval tasks use pretrained=bm25 or an encoder
    model_args: str = ""  # pretrained=PATH[,dtype=auto|float32|bfloat16|float16]
    num_fewshot: int = 0
    apply_chat_template: bool = False
    batch_size: int = 16
    limit: int = 0  # evaluate only the first N examples of each task (0 = all)
    max_new_tokens: int = 0  # 0 = each task's own length
    seed: int = 0
    threads: int = 1
    output_path: str = "runs/eval"


MODEL_ARGS = ("pretrained", "dtype")


def parse_model_args(text: str) -> dict[str, str]:
    """`pretrained=PATH,dtype=float32` -> dict; unknown keys and items without `=` are errors."""
    args: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--model_args item {item!r} is not key=value")
        if key not in MODEL_ARGS:
            raise CLIError(f"--model_args key {key!r} unknown; known: {', '.join(MODEL_ARGS)}")
        args[key] = value
    return args


def _eval_tasks(run: Run) -> list:
    from benchmarks.tasks import TASKS

    cfg = run.cfg
    if not cfg.tasks:
        raise CLIError("give --tasks a,b (see `benchmarks tasks`)")
    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise CLIError(f"unknown task(s) {unknown}; tasks: {', '.join(sorted(TASKS))}")
    tasks = [TASKS[t] for t in cfg.tasks]
    mmeb = [t.name for t in tasks if t.kind == "mmeb"]
    if mmeb:
        raise CLIError(f"task(s) {mmeb} need query/candidate embedding functions: call benchmarks.evaluate."
                       "evaluate_mmeb from the method package (e.g. `cocoa eval`)")
    kinds = {"retrieval" if t.kind == "retrieval" else "generative" for t in tasks}
    if len(kinds) > 1:
        raise CLIError("retrieval tasks take an encoder or bm25 and generative tasks a causal LM: run them in "
                       "separate commands")
    return tasks


def _check_eval(run: Run) -> None:
    cfg = run.cfg
    tasks = _eval_tasks(run)
    margs = parse_model_args(cfg.model_args)
    if cfg.num_fewshot < 0 or cfg.limit < 0 or cfg.batch_size < 1:
        raise CLIError("--num_fewshot and --limit must be >= 0 and --batch_size >= 1")
    if tasks[0].kind == "retrieval":
        if cfg.num_fewshot or cfg.apply_chat_template:
            raise CLIError("--num_fewshot and --apply_chat_template apply to generative tasks only")
        check_encoder_source(margs.get("pretrained", ""), "--model_args pretrained", allow=("bm25",))
        return
    if not margs.get("pretrained"):
        raise CLIError("give --model_args pretrained=PATH (a causal LM folder or hub id)")
    if margs.get("dtype", "auto") not in ("auto", "float32", "bfloat16", "float16"):
        raise CLIError(f"--model_args dtype {margs['dtype']!r}: use auto, float32, bfloat16 or float16")
    check_model_source(margs["pretrained"], "--model_args pretrained")


def cmd_eval(run: Run) -> int:
    import torch
    from shared.atomic import write_json

    from benchmarks.evaluate import EvalConfig, load_generator, run_eval

    cfg, out = run.cfg, run.out
    torch.set_num_threads(cfg.threads)
    tasks = _eval_tasks(run)
    margs = parse_model_args(cfg.model_args)
    model = margs.get("pretrained", "")
    generator, summary = None, {"results": {}, "versions": {}, "n-shot": {}, "config": {}}
    for task in tasks:
        ecfg = EvalConfig(task=task.name, task_version=task.version, model=model, backend=cfg.model,
                          limit=cfg.limit, batch_size=cfg.batch_size, seed=cfg.seed,
                          max_new_tokens=cfg.max_new_tokens, num_fewshot=cfg.num_fewshot,
                          apply_chat_template=cfg.apply_chat_template, dtype=margs.get("dtype", "auto"))
        if task.kind != "retrieval" and generator is None:
            generator = load_generator(ecfg)  # one model load for every task of the run
        output, path = run_eval(ecfg, task, out / task.name, generator=generator, progress=run.progress)
        summary["results"][task.name] = {**output.metrics, "n": len(output.predictions)}
        summary["versions"][task.name] = task.version
        summary["n-shot"][task.name] = cfg.num_fewshot
        run.log(f"{task.name}: wrote {path}")
    summary["config"] = {"model": cfg.model, "model_args": cfg.model_args, "batch_size": cfg.batch_size,
                         "limit": cfg.limit or None, "apply_chat_template": cfg.apply_chat_template,
                         "seed": cfg.seed, "benchmarks_version": __version__}
    path = write_json(out / "summary.json", summary)
    print(format_summary(summary))
    print(f"wrote {path}")
    return 0


def format_summary(summary: dict) -> str:
    """lm-eval's results table: one line per (task, metric) with the task's version and n-shot."""
    lines = ["| task | version | n-shot | metric | value |", "|---|---:|---:|---|---:|"]
    for task, metrics in summary["results"].items():
        for i, (name, value) in enumerate(m for m in metrics.items() if m[0] != "n"):
            head = f"| {task} | {summary['versions'][task]} | {summary['n-shot'][task]} |" if i == 0 else "| | | |"
            lines.append(f"{head} {name} | {value:.4f} |")
    return "\n".join(lines)


def _eval_args(p: argparse.ArgumentParser) -> None:
    """lm-eval's flags; each sets the EvalCommand key of the same name (a YAML --config can hold them too)."""
    p.add_argument("--tasks", help="comma-separated task names (see `benchmarks tasks`)")
    p.add_argument("--model", help="generation backend: hf (default) or vllm")
    p.add_argument("--model_args", help="pretrained=PATH[,dtype=float32]; retrieval: pretrained=bm25 or an encoder")
    p.add_argument("--num_fewshot", type=int, help="solved examples before each prompt (default 0)")
    p.add_argument("--apply_chat_template", action="store_true", default=None,
                   help="render each prompt as a user turn of the tokenizer's chat template")
    p.add_argument("--batch_size", type=int, help="generation batch size (default 16)")
    p.add_argument("--limit", type=int, help="evaluate only the first N examples of each task (0 = all)")
    p.add_argument("--max_new_tokens", type=int, help="override each task's generation length")
    p.add_argument("--output_path", dest="out", type=Path, help="output folder (same as --out; default runs/eval)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default 1)")
    # the 0.2 spellings, kept for one version
    deprecated_alias(p, "--task", "--tasks", dest="tasks")
    deprecated_alias(p, "--backend", "--model", dest="model")
    deprecated_alias(p, "--batch-size", "--batch_size", dest="batch_size", type=int)
    deprecated_alias(p, "--max-new-tokens", "--max_new_tokens", dest="max_new_tokens", type=int)


FLAGS = ("tasks", "model", "model_args", "num_fewshot", "apply_chat_template", "batch_size", "limit",
         "max_new_tokens", "threads")


def _flag_overrides(args: argparse.Namespace) -> list[str]:
    """The eval flags as overrides on top of the YAML config (flags given on the line win over the file)."""
    import json

    out = []
    model = args.model
    if model is not None and model not in ("hf", "vllm"):  # 0.2: --model PATH (the backend was --backend)
        print(f"benchmarks eval: --model {model} as a path is deprecated and goes in the next version; use "
              f"--model_args pretrained={model}", file=sys.stderr)
        out.append(f"model_args={json.dumps('pretrained=' + model)}")
        model = None
    for name in FLAGS:
        value = model if name == "model" else getattr(args, name)
        if value is None or (name == "model_args" and any(o.startswith("model_args=") for o in out)):
            continue
        if name == "tasks":
            value = [t.strip() for t in value.split(",") if t.strip()]
        out.append(f"{name}={json.dumps(value)}")
    return out


# ---- tasks, datasets, synth -------------------------------------------------------------------------------------
def _tasks(_: Run) -> int:
    from benchmarks.tasks import TASKS

    for t in TASKS.values():
        print(f"{t.name:<16} {t.kind:<9} v{t.version}  {', '.join(t.metrics):<36} {t.description}")
    return 0


def _datasets(_: Run) -> int:
    from benchmarks.data.bundled import BUNDLED

    print("bundled real slices (origins and licences: benchmarks/DATA.md):")
    for name in BUNDLED:
        print(f"  {name}")
    print("synthetic suites: arithmetic, kb, tools, images, docs (benchmarks synth SUITE --help)")
    return 0


def _synth(run: Run) -> int:
    from benchmarks.synthetic import write_jsonl

    args, out = run.args, Path(run.args.out)
    if args.suite == "arithmetic":
        from benchmarks.synthetic.arithmetic import make_arithmetic

        recs = make_arithmetic(args.n, seed=args.seed or 0, split=args.split, variant=args.variant)
        print(f"wrote {write_jsonl(recs, out)} ({len(recs)} problems)")
    elif args.suite == "kb":
        from benchmarks.synthetic.kb import make_kb, make_kb_questions

        kb = make_kb(seed=args.seed or 0)
        qs = make_kb_questions(kb, args.n, seed=args.seed or 0, split=args.split)
        write_jsonl(kb.corpus(), out / "corpus.jsonl")
        write_jsonl([q.to_dict() for q in qs], out / f"{args.split}.jsonl")
        print(f"wrote {out}/corpus.jsonl ({len(kb.corpus())} passages) and {out}/{args.split}.jsonl ({len(qs)})")
    elif args.suite == "tools":
        from benchmarks.synthetic.tools import make_tool_tasks

        tasks = make_tool_tasks(args.n, seed=args.seed or 0, split=args.split)
        print(f"wrote {write_jsonl([t.to_dict() for t in tasks], out)} ({len(tasks)} tasks)")
    elif args.suite == "images":
        from benchmarks.synthetic.images import make_image_suite

        suite = make_image_suite(args.n, seed=args.seed or 0, split=args.split, size=args.size)
        print(f"wrote {suite.save(out)} ({args.n} images, MMEB jsonl per meta-task)")
    else:
        from benchmarks.synthetic.docs import make_docs

        suite = make_docs(args.n, seed=args.seed or 0)
        write_jsonl(
            [{"docid": d.id, "title": d.title, "text": d.text} for d in suite.docs.values()], out / "docs.jsonl"
        )
        for name, pairs in (("train", suite.train), ("test", suite.test)):
            (out / f"{name}.tsv").write_text("".join(f"{q}\t{d}\n" for q, d in pairs), encoding="utf-8")
        print(f"wrote {out}/docs.jsonl, train.tsv, test.tsv ({len(suite.docs)} documents, NQ320k layout)")
    return 0


def _synth_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("suite", choices=("arithmetic", "kb", "tools", "images", "docs"), help="which suite")
    s.add_argument("--n", type=int, default=1000, help="number of items (documents for docs, images for images)")
    s.add_argument("--split", choices=("train", "test"), default="train", help="split")
    s.add_argument("--variant", choices=("calibration", "word"), default="calibration", help="arithmetic phrasing")
    s.add_argument("--size", type=int, default=56, help="image size in pixels (images)")
    s.add_argument("--out", type=Path, required=True, help="output file (arithmetic, tools) or folder (kb, images, "
                   "docs)")


def _check_synth(run: Run) -> None:
    from shared.cli import check_output_dir

    if run.args.n < 1:
        raise CLIError(f"--n must be >= 1, got {run.args.n}")
    out = Path(run.args.out)
    if run.args.suite in ("arithmetic", "tools"):  # a file: its folder must be writable
        if out.is_dir():
            raise CLIError(f"--out {out}: is a folder; {run.args.suite} writes one JSONL file")
        check_output_dir(out.parent)
    else:
        check_output_dir(out)


APP = App(
    prog="benchmarks", version=__version__,
    description="Datasets, tasks and evaluation for the workspace.",
    verbs=[
        Verb("eval", "evaluate a model on tasks (lm-eval's flags); writes results.json per task and summary.json",
             cmd_eval, config=lambda: EvalCommand, arguments=_eval_args, out_key="output_path", seed_key="seed",
             presets=_flag_overrides, check=_check_eval,
             description="Evaluate a model on tasks. The flags set the EvalCommand keys of the same name; a YAML "
                         "--config and key=value overrides work too (flags win over the file)."),
        Verb("tasks", "list the registered tasks", _tasks, out="none", seed=False, claim="none"),
        Verb("datasets", "list the bundled real data slices", _datasets, out="none", seed=False, claim="none"),
        Verb("synth", "export a synthetic suite to files", _synth, arguments=_synth_args, out="none",
             claim="none", check=_check_synth,
             description="Export a synthetic suite: --out is a file (arithmetic, tools) or a folder (kb, images, "
                         "docs)."),
    ],
)


def main(argv: list[str] | None = None) -> int:
    return APP.main(argv)


if __name__ == "__main__":
    sys.exit(main())
