"""The evaluation runner: a model on a task -> metrics, per-example predictions, and results.json.

Generative tasks (qa, math) run through `shared.generation` (greedy, the task's stop strings) and are scored by
`shared.eval` (qa_metrics, math_accuracy); retrieval tasks run a `shared.retrieval.Retriever` (a dense encoder
loaded with its saved settings, or BM25 with bm25s' or pyserini's parameters) and are scored by
`shared.eval.retrieval_metrics`; MMEB tasks take query/candidate
embedding functions and report Precision@1 per dataset, per meta-task and overall as MMEB aggregates it
(`shared.eval.mmeb_scores`).
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
    num_fewshot: int = 0  # solved examples before each prompt (benchmarks.prompting)
    apply_chat_template: bool = False  # the prompt as one user turn of the tokenizer's chat template
    dtype: str = "auto"


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
    task: Task, generator, limit: int | None = None, max_new_tokens: int | None = None,
    prepare: Callable[[list], list[str]] | None = None,
) -> EvalOutput:
    """Greedy generation on the task's prompts with any `shared.generation.Generator`; `prepare(examples)` may
    turn the examples into other prompts (few-shot, chat template: `benchmarks.prompting`)."""
    from shared.generation import SamplingParams

    examples = load_examples(task, limit)
    if not examples:
        raise ValueError(f"task {task.name} has no examples (limit={limit})")
    params = SamplingParams(max_new_tokens=max_new_tokens or task.max_new_tokens, temperature=0.0, stop=task.stop)
    outputs = generator.generate(prepare(examples) if prepare else [e.prompt for e in examples], params)
    texts = [out[0].text for out in outputs]
    metrics = score_generative(task, texts, [e.golds for e in examples])
    preds = [
        {"id": e.id, "prediction": extract_answer(task, t), "completion": t, "golds": e.golds}
        for e, t in zip(examples, texts)
    ]
    return EvalOutput(metrics, preds)


def retrieval_backend(model: str, docs: list[dict]):
    """The backend `benchmarks eval` ranks with: "bm25" (k1 1.5, b 0.75, bm25s' defaults), "bm25:pyserini" (k1 0.9,
    b 0.4, Anserini/pyserini's defaults), or an encoder. A local folder loads with the pooling, prefixes,
    normalisation and length saved beside it (`TextEncoder.load` reads text_encoder.json; a plain model folder gets
    the defaults); anything else is a hub id with default settings."""
    from shared.retrieval import BM25Index, TextEncoder

    if model == "bm25" or model.startswith("bm25:"):
        preset = model.partition(":")[2] or "bm25s"
        return BM25Index.preset([d["contents"] for d in docs], [d["id"] for d in docs], preset)
    if Path(model).is_dir():
        return TextEncoder.load(model)
    return TextEncoder(model)


def evaluate_retrieval(task: Task, model: str, limit: int | None = None, topk: int = 100) -> EvalOutput:
    """Rank the task's corpus for each query with `model` (see `retrieval_backend`) and score the run."""
    from shared.eval import retrieval_metrics
    from shared.retrieval import Retriever

    rs = load_retrieval_set(task, limit)
    docs = [{"id": d.id, "contents": d.contents} for d in rs.corpus.values()]
    retriever = Retriever(retrieval_backend(model, docs), docs)
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
    """Precision@1 as MMEB reports it (candidate 0 is the positive): per dataset (`p@1/<dataset>`), per meta-task the
    mean over its datasets (`p@1_<meta>`), and `p@1` the mean over all datasets (`shared.eval.mmeb_scores`).

    embed_query(item) -> (d,) vector; embed_candidates(item) -> (n_candidates, d) matrix.
    """
    from shared.eval import hits_at_1, mmeb_scores

    hits = []
    for it in items:
        q = np.asarray(embed_query(it), dtype=np.float32)[None, :]
        c = np.asarray(embed_candidates(it), dtype=np.float32)[None, :, :]
        hits.append(float(hits_at_1(q, c, [0])[0]))
    scores = mmeb_scores([it.dataset for it in items], [it.meta_task for it in items], hits)
    metrics = {f"p@1/{name}": v for name, v in scores["datasets"].items()}
    metrics |= {f"p@1_{meta}": v for meta, v in scores["meta_tasks"].items()}
    metrics["p@1"] = scores["overall"]
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


def run_eval(cfg: EvalConfig, task: Task, out_dir: str | Path, generator=None,
             progress: bool = True) -> tuple[EvalOutput, Path]:
    """Load the model named in `cfg` (or use `generator`, loaded once for several tasks), evaluate with a progress
    bar, write the outputs; returns (output, results.json path)."""
    started, t0 = dt.datetime.now(dt.UTC), time.perf_counter()
    limit = cfg.limit or None
    if task.kind == "retrieval":
        output = evaluate_retrieval(task, cfg.model, limit)
    elif task.kind in ("qa", "math"):
        from benchmarks.prompting import ProgressGenerator, chat_prompts, fewshot_prompts

        if generator is None:
            generator = load_generator(cfg)
        if cfg.backend == "hf":
            import torch

            torch.manual_seed(cfg.seed)

        def prepare(examples: list) -> list[str]:
            pool = load_examples(task) if cfg.num_fewshot else examples
            prompts = fewshot_prompts(task, examples, pool, cfg.num_fewshot, cfg.seed)
            return chat_prompts(prompts, generator.tokenizer) if cfg.apply_chat_template else prompts

        bar = ProgressGenerator(generator, cfg.batch_size, task.name, enabled=progress)
        output = evaluate_generative(task, bar, limit, cfg.max_new_tokens or None, prepare)
    else:
        raise ValueError(
            f"task {task.name} ({task.kind}) needs query/candidate embedding functions: call "
            "benchmarks.evaluate.evaluate_mmeb(items, embed_query, embed_candidates) from the method package"
        )
    path = write_eval_outputs(out_dir, cfg, task, output, started, time.perf_counter() - t0)
    return output, path


def load_generator(cfg: EvalConfig):
    """The generation backend of `cfg` (hf: the model through shared.modeling; vllm: a vLLM engine)."""
    from shared.generation import make_generator

    if cfg.backend == "hf":
        return make_generator("hf", cfg.model, batch_size=cfg.batch_size, dtype=cfg.dtype)
    return make_generator(cfg.backend, cfg.model)
