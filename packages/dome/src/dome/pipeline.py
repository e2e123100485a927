"""Building a generative retriever for a collection, its training examples, and retrieval evaluation.

Shared by `dome train`, `dome eval`, `dome edit` and `dome replicate`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dome.config import DomeConfig
from dome.data import Document, Query, index_text
from dome.docids import DocIdScheme, atomic_ids, naive_ids, semantic_ids
from dome.gr import Example, GenerativeRetriever


def embed_documents(docs: list[Document], encoder: str | None) -> np.ndarray:
    """Dense embeddings for semantic docIDs (the offline all-MiniLM-L6-v2 unless a model path is given)."""
    from shared.retrieval import TextEncoder

    enc = TextEncoder(encoder, max_length=128, device="cpu")
    return enc.encode_passages([d.text for d in docs])


def make_scheme(cfg: DomeConfig, docs: list[Document], embeddings: np.ndarray | None) -> DocIdScheme:
    ids = [d.id for d in docs]
    if cfg.docids.scheme == "atomic":
        return atomic_ids(ids)
    if cfg.docids.scheme == "naive":
        return naive_ids(ids)
    if cfg.docids.scheme == "semantic":
        if embeddings is None:
            raise ValueError("semantic docIDs need document embeddings")
        return semantic_ids(ids, embeddings, k=cfg.docids.k, c=cfg.docids.c, seed=cfg.seed)
    raise ValueError(f"docids.scheme must be atomic, naive or semantic, got {cfg.docids.scheme!r}")


def symbol_reserve(cfg: DomeConfig, scheme: DocIdScheme, total_docs: int) -> list[str]:
    """DocID tokens to add to the vocabulary: enough for the collection and for documents added later."""
    if scheme.kind == "atomic":
        size = max(total_docs, len(scheme.symbol_tokens()))
        return [f"<doc_{i}>" for i in range(size)]
    size = max(len(scheme.symbol_tokens()), 10, cfg.docids.k, 2 * cfg.docids.c)
    return [f"<id_{i}>" for i in range(size)]


def build_retriever(
    cfg: DomeConfig, docs: list[Document], scheme: DocIdScheme, workdir: str | Path, total_docs: int | None = None
) -> GenerativeRetriever:
    """A fresh GR model: a tiny random T5 (tokenizer trained on the documents) or `model.path`, with docID tokens."""
    from shared.modeling import load_model
    from shared.modeling.tiny import build_tokenizer, tiny_t5

    symbols = symbol_reserve(cfg, scheme, total_docs or len(docs))
    m = cfg.model
    if m.path is None:
        tok = build_tokenizer([d.text for d in docs], kind=m.tokenizer, vocab_size=m.vocab_size)
        tok.add_tokens(symbols, special_tokens=True)
        path = tiny_t5(
            Path(workdir) / "init", tokenizer=tok, d_model=m.d_model, d_ff=m.d_ff, layers=m.layers, heads=m.heads,
            seed=cfg.seed,
        )
        model, tok = load_model(str(path), kind="seq2seq", dtype="float32", device="cpu")
    else:
        model, tok = load_model(m.path, kind="seq2seq", dtype="float32", device="auto")
        tok.add_tokens(symbols, special_tokens=True)
        model.resize_token_embeddings(len(tok))
    return GenerativeRetriever(model, tok, scheme, m.max_input_tokens, source=m.path or "tiny T5")


def examples_for(
    gr: GenerativeRetriever, docs: list[Document], queries: list[Query], index_words: int
) -> tuple[list[Example], list[Example]]:
    """(indexing examples doc text -> docID, retrieval examples query -> docID)."""
    ids = gr.scheme.ids
    index = [Example(index_text(d, index_words), ids[d.id]) for d in docs]
    retrieval = [Example(q.text, ids[q.doc_id]) for q in queries]
    return index, retrieval


def mix(index: list[Example], retrieval: list[Example], index_weight: float) -> list[Example]:
    """One pool where indexing examples make up about `index_weight` of draws (by repetition)."""
    if not index:
        return list(retrieval)
    if not 0 <= index_weight < 1:
        raise ValueError(f"train.index_weight must be in [0, 1), got {index_weight}")
    reps = max(1, round(index_weight / (1 - index_weight) * len(retrieval) / len(index))) if index_weight else 0
    return index * reps + list(retrieval)


def evaluate(gr: GenerativeRetriever, queries: list[Query], beams: int = 10, batch_size: int = 64) -> dict:
    """Recall@1/10 and MRR@10 of constrained beam search (one relevant document per query)."""
    from shared.eval import retrieval_metrics

    if not queries:
        raise ValueError("evaluate: no queries")
    torch.manual_seed(0)
    ranked = gr.retrieve([q.text for q in queries], k=beams, batch_size=batch_size)
    run = {q.qid: [doc for doc, _ in hits] for q, hits in zip(queries, ranked)}
    qrels = {q.qid: {q.doc_id: 1} for q in queries}
    m = retrieval_metrics(run, qrels, ks=(1, 10))
    return {"recall@1": m["recall@1"], "recall@10": m["recall@10"], "mrr@10": m["mrr@10"]}
