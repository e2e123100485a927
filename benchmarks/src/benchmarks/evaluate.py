"""The evaluation runner: a model on a task -> metrics, per-example predictions, and results.json.

Generative tasks (qa, math) run through `shared.generation` (greedy, the task's stop strings) and are scored by
`shared.eval` (qa_metrics, math_accuracy); retrieval tasks run a `shared.retrieval.Retriever` (a dense encoder
from a path, or "bm25") and are scored by `shared.eval.retrieval_metrics`; MMEB tasks take query/candidate
embedding functions and report Precision@1 per meta-task with `shared.eval.precision_at_1`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from benchmarks import __version__
from benchmarks.data.records import MMEBItem
from benchmarks.tasks import Task, extract_answer, load_examples, load_retrieval_set


@dataclass
class EvalOutput:
    metrics: dict[str, float]
    predictions: list[dict] = field(default_factory=list)


@dataclass
class EvalConfig:
    """The resolved settings of one `benchmarks eval` run (written as config.yaml beside results.json)."""

    task: str
    task_version: str
    model: str
    backend: str = "hf"
    limit: int = 0
    batch_size: int = 16
    seed: int = 0
    max_new_tokens: int = 0


def score_generative(task: Task, completions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """Task metrics of completion texts against gold answers (shared.eval does the scoring)."""
    from shared.eval import math_accuracy, qa_metrics

    preds = [extract_answer(task, c) for c in completions]
    if task.scoring:
        return {"accuracy": score_items(task.scoring, preds, golds)}
    if task.kind == "math":
        return {"accuracy": math_accuracy(preds, [g[0] for g in golds])}
    return qa_metrics(preds, [list(g) for g in golds])


def score_items(scoring: str, predictions: Sequence[str], golds: Sequence[Sequence[str]], rel_tol: float = 1e-2
                ) -> float:
    """Mean score of a task's own `scoring`: "choice" (the gold letter alone) or "numeric" (the reply's number, a
    scale word applied, within `rel_tol` of any gold number)."""
    if not predictions:
        raise ValueError("no predictions to score")
    if scoring == "choice":
        from shared.rewards.numeric import choice_match

        return float(np.mean([choice_match(p, g[0]) for p, g in zip(predictions, golds)]))
    if scoring == "numeric":
        from benchmarks.data.finance import prediction_number

        hits = []
        for p, g in zip(predictions, golds):
            value = prediction_number(p)
            hits.append(value is not None and any(abs(value - float(x)) <= max(rel_tol * abs(float(x)), 1e-6)
                                                  for x in g))
        return float(np.mean(hits))
    raise ValueError(f"unknown scoring {scoring!r}; known: choice, numeric")


def evaluate_generative(
    task: Task, generator, limit: int | None = None, max_new_tokens: int | None = None
) -> EvalOutput:
    """Greedy generation on the task's prompts with any `shared.generation.Generator`."""
    from shared.generation import SamplingParams

    examples = load_examples(task, limit)
    if not examples:
        raise ValueError(f"task {task.name} has no examples (limit={limit})")
    params = SamplingParams(max_new_tokens=max_new_tokens or task.max_new_tokens, temperature=0.0, stop=task.stop)
    outputs = generator.generate([e.prompt for e in examples], params)
    texts = [out[0].text for out in outputs]
    metrics = score_generative(task, texts, [e.golds for e in examples])
    preds = [
        {"id": e.id, "prediction": extract_answer(task, t), "completion": t, "golds": e.golds}
        for e, t in zip(examples, texts)
    ]
    return EvalOutput(metrics, preds)


def evaluate_retrieval(task: Task, model: str, limit: int | None = None, topk: int = 100) -> EvalOutput:
    """Rank the task's corpus for each query with `model` ("bm25" or an encoder path) and score the run."""
    from shared.eval import retrieval_metrics
    from shared.retrieval import Retriever, TextEncoder

    rs = load_retrieval_set(task, limit)
    docs = [{"id": d.id, "contents": d.contents} for d in rs.corpus.values()]
    backend = "bm25" if model == "bm25" else TextEncoder(model)
    retriever = Retriever(backend, docs)
    qids = list(rs.queries)
    hits = retriever.retrieve([rs.queries[q] for q in qids], topk=min(topk, len(docs)))
    run = {q: {h["id"]: float(h["score"]) for h in hs} for q, hs in zip(qids, hits)}
    scores = retrieval_metrics(run, rs.qrels, ks=(1, 5, 10, 20, 100))
    preds = [{"id": q, "ranking": [h["id"] for h in hs[:10]]} for q, hs in zip(qids, hits)]
    return EvalOutput({m: float(scores[m]) for m in task.metrics}, preds)


def evaluate_mmeb(
    items: Sequence[MMEBItem],
    embed_query: Callable[[MMEBItem], np.ndarray],
    embed_candidates: Callable[[MMEBItem], np.ndarray],
) -> EvalOutput:
    """Precision@1 per meta-task (candidate 0 is the positive) and their unweighted mean as `p@1`.

    embed_query(item) -> (d,) vector; embed_candidates(item) -> (n_candidates, d) matrix.
    """
    from shared.eval import hits_at_1, mean_by_group

    groups, hits = [], []
    for it in items:
        q = np.asarray(embed_query(it), dtype=np.float32)[None, :]
        c = np.asarray(embed_candidates(it), dtype=np.float32)[None, :, :]
        hits.append(float(hits_at_1(q, c, [0])[0]))
        groups.append(it.meta_task)
    per = mean_by_group(groups, hits)
    metrics = {f"p@1_{g}": v for g, v in per.items() if g != "overall"}
    metrics["p@1"] = per["overall"]
    return EvalOutput(metrics, [{"id": it.id, "hit": h} for it, h in zip(items, hits)])


def write_eval_outputs(
    out_dir: str | Path, cfg: EvalConfig, task: Task, output: EvalOutput, started: dt.datetime, seconds: float
) -> Path:
    """config.yaml, predictions.jsonl and results.json (package contract) in `out_dir`."""
    from shared.config import save_config
    from shared.eval import sha256_of, write_results

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out)
    tmp = out / "predictions.jsonl.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        for p in output.predictions:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    os.replace(tmp, out / "predictions.jsonl")
    data_hash = sha256_of(
        json.dumps([asdict(task)], sort_keys=True).encode() + (out / "predictions.jsonl").read_bytes()
    )
    rows = [{"method": Path(cfg.model).name or cfg.model, "metrics": output.metrics}]
    return write_results(
        out, package="benchmarks", version=__version__, experiment=f"eval:{task.name}@v{task.version}", rows=rows,
        config=asdict(cfg), seed=cfg.seed, quick=bool(cfg.limit), data={"name": task.dataset, "sha256": data_hash},
        started=started, seconds=seconds,
    )  # fmt: skip


def run_eval(cfg: EvalConfig, task: Task, out_dir: str | Path) -> tuple[EvalOutput, Path]:
    """Load the model named in `cfg`, evaluate, write the outputs; returns (output, results.json path)."""
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    limit = cfg.limit or None
    if task.kind == "retrieval":
        output = evaluate_retrieval(task, cfg.model, limit)
    elif task.kind in ("qa", "math"):
        from shared.generation import make_generator

        if cfg.backend == "hf":
            import torch

            torch.manual_seed(cfg.seed)
            generator = make_generator("hf", cfg.model, batch_size=cfg.batch_size)
        else:
            generator = make_generator(cfg.backend, cfg.model)
        output = evaluate_generative(task, generator, limit, cfg.max_new_tokens or None)
    else:
        raise ValueError(
            f"task {task.name} ({task.kind}) needs query/candidate embedding functions: call "
            "benchmarks.evaluate.evaluate_mmeb(items, embed_query, embed_candidates) from the method package"
        )
    path = write_eval_outputs(out_dir, cfg, task, output, started, time.perf_counter() - t0)
    return output, path
