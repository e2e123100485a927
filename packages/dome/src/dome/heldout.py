"""Pseudo-queries with held-out evaluation spans that share no word n-gram with anything the model is trained on.

The bundled corpora have few real queries (50 HotpotQA questions, 112 Cranfield queries, none for most passages),
so queries are word spans of the documents (DSI's "inferred queries"). Spans drawn freely from a document repeat
its training inputs: in the previous protocol 52% of new-document test spans sat verbatim inside an edit span or
the indexing text, so recall measured recall of memorised strings. Here every document is carved first:

1. held-out windows (test, then dev) of `query_words_min..max` words are placed at random after the indexing
   prefix (`index_words` words, the indexing example's input), never overlapping each other;
2. training spans (the retrieval examples, also the editors' pseudo-queries) are drawn only from the words outside
   the windows, with one RNG stream per document, so the first k of m spans are the same for any m >= k;
3. a window becomes a query only if none of its word n-grams (lower-cased, edge punctuation stripped; n =
   `heldout_ngram`, 3 by default) occurs in any training input of any document (all training spans and indexing
   texts, plus `trained_texts` such as an edited model's earlier inputs); the others are dropped and counted.

Old and new documents go through the same steps with the same window count, so they are scored on the same
footing. A document too short for its windows gets fewer (test windows first); the counts are returned.
"""

from __future__ import annotations

import json
import random
import string
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dome.config import DataConfig
from dome.data import Document, DocumentError, Query, index_text, read_jsonl


@dataclass
class QuerySplit:
    """Training queries, held-out test and dev queries, and what happened to the held-out windows."""

    train: list[Query]
    test: list[Query]
    dev: list[Query]
    counts: dict[str, int] = field(default_factory=dict)


def words_of(text: str) -> list[str]:
    """Lower-cased words with edge punctuation stripped (the n-gram check's view of a text)."""
    return [w for w in (t.strip(string.punctuation).lower() for t in text.split()) if w]


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of a text; a text shorter than n words is one (shorter) gram."""
    w = words_of(text)
    if len(w) < n:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def ngram_overlap(queries: Iterable[str], training: Iterable[str], n: int) -> int:
    """How many queries share at least one word n-gram with any training text (0 means held out)."""
    banned = set().union(*(ngrams(t, n) for t in training))
    return sum(1 for q in queries if ngrams(q, n) & banned)


def _windows(n_words: int, start: int, lengths: list[int], rng: random.Random) -> list[tuple[int, int]]:
    """Non-overlapping (begin, end) windows of the given lengths at random places in [start, n_words)."""
    room = n_words - start
    free = room - sum(lengths)
    # stars and bars: k windows and `free` loose words in a random order give uniformly random gaps
    k = len(lengths)
    slots = sorted(rng.sample(range(free + k), k))
    order = list(range(k))
    rng.shuffle(order)  # test windows do not always come first in the text
    out: list[tuple[int, int]] = [(0, 0)] * k
    pos, used = start, 0
    for rank, slot in enumerate(slots):
        pos += slot - rank - used  # loose words before this window
        used = slot - rank
        length = lengths[order[rank]]
        out[order[rank]] = (pos, pos + length)
        pos += length
    return out


def _segments(n_words: int, windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The maximal runs of words outside the windows."""
    segs, pos = [], 0
    for b, e in sorted(windows):
        if b > pos:
            segs.append((pos, b))
        pos = e
    if pos < n_words:
        segs.append((pos, n_words))
    return segs


def _train_span(words: list[str], segs: list[tuple[int, int]], rng: random.Random, lo: int, hi: int) -> str:
    """A contiguous span of lo..hi words inside one segment (shorter when no segment is long enough)."""
    n = min(rng.randint(lo, hi), max(e - b for b, e in segs))
    starts = [(b, e - n + 1) for b, e in segs if e - b >= n]
    pick = rng.randrange(sum(e - b for b, e in starts))
    for b, e in starts:
        if pick < e - b:
            return " ".join(words[b + pick : b + pick + n])
        pick -= e - b


def make_queries(
    docs: list[Document],
    cfg: DataConfig,
    seed: int,
    train_counts: Mapping[str, int] | None = None,
    dev_per_doc: int | Mapping[str, int] = 0,
    trained_texts: Iterable[str] = (),
) -> QuerySplit:
    """Training spans, and held-out test (`cfg.test_queries` per document) and dev windows, n-gram disjoint from
    every training input. `train_counts` = training spans per document id (default `cfg.train_queries`)."""
    lo, hi, n = cfg.query_words_min, cfg.query_words_max, cfg.heldout_ngram
    if not 1 <= lo <= hi or n < 1:
        raise ValueError(f"data: need 1 <= query_words_min <= query_words_max, heldout_ngram >= 1; got {lo}, {hi}, {n}")
    keys = ("test_wanted", "test_no_room", "test_overlap", "dev_wanted", "dev_no_room", "dev_overlap")
    counts = dict.fromkeys(keys, 0)
    train: list[Query] = []
    held: list[tuple[str, Query]] = []
    regions: list[str] = []  # every document's text outside its windows: what training spans may be drawn from
    for d in docs:
        words = d.text.split()
        rng = random.Random(f"{seed}-heldout-{d.id}")
        n_dev = dev_per_doc if isinstance(dev_per_doc, int) else dev_per_doc.get(d.id, 0)
        kinds = ["test"] * cfg.test_queries + ["dev"] * n_dev
        lengths = [rng.randint(lo, hi) for _ in kinds]
        start = min(cfg.index_words, len(words))
        keep = 0 if start else min(lo, len(words))  # without an indexing prefix, leave words to train on
        while lengths and sum(lengths) > len(words) - start - keep:  # too short: fewer windows, dev ones first
            counts[f"{kinds.pop()}_no_room"] += 1
            lengths.pop()
        for kind in ("test", "dev"):
            counts[f"{kind}_wanted"] += (cfg.test_queries if kind == "test" else n_dev)
        windows = _windows(len(words), start, lengths, rng)
        segs = _segments(len(words), windows)
        regions += [" ".join(words[b:e]) for b, e in segs]
        rng_train = random.Random(f"{seed}-train-{d.id}")
        m = cfg.train_queries if train_counts is None else train_counts.get(d.id, cfg.train_queries)
        train += [Query(f"{d.id}#t{i}", _train_span(words, segs, rng_train, lo, hi), d.id) for i in range(m)]
        seen = {"test": 0, "dev": 0}
        for kind, (b, e) in zip(kinds, windows):
            tag = "e" if kind == "test" else "d"
            held.append((kind, Query(f"{d.id}#{tag}{seen[kind]}", " ".join(words[b:e]), d.id)))
            seen[kind] += 1
    # the ban covers every word run training spans could come from, not only the spans drawn: a document with 20
    # training spans and one with 6 then keep the same windows (the same footing for new and old documents)
    training = regions + [index_text(d, cfg.index_words) for d in docs] + list(trained_texts)
    banned = set().union(*(ngrams(t, n) for t in training))
    out = {"test": [], "dev": []}
    for kind, q in held:
        if ngrams(q.text, n) & banned:
            counts[f"{kind}_overlap"] += 1
        else:
            out[kind].append(q)
    counts["test_kept"], counts["dev_kept"] = len(out["test"]), len(out["dev"])
    return QuerySplit(train, out["test"], out["dev"], counts)


def write_queries(path: str | Path, split: QuerySplit, kinds: Mapping[str, str] | None = None) -> Path:
    """queries.jsonl: one {"qid", "doc_id", "text", "split"} per query (train, test, dev), written atomically;
    `kinds` adds a "kind" field (e.g. old/new) per document id."""
    path = Path(path)
    rows = [(name, q) for name in ("train", "test", "dev") for q in getattr(split, name)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(
        "".join(
            json.dumps({**asdict(q), "split": name, **({"kind": kinds[q.doc_id]} if kinds else {})}) + "\n"
            for name, q in rows
        ),
        encoding="utf-8",
    )
    tmp.replace(path)
    return path


def read_queries(path: str | Path) -> QuerySplit:
    """The queries stored beside a model (`write_queries`); bad records name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DocumentError(f"{path}: no stored queries (models saved by dome < 0.4 lack queries.jsonl; retrain)")
    out = {"train": [], "test": [], "dev": []}
    for n, rec in read_jsonl(path, ("qid", "doc_id", "text", "split")):
        if rec["split"] not in out:
            raise DocumentError(f"{path}: line {n}: field 'split' must be train, test or dev, got {rec['split']!r}")
        out[rec["split"]].append(Query(str(rec["qid"]), str(rec["text"]), str(rec["doc_id"])))
    return QuerySplit(out["train"], out["test"], out["dev"])
