"""DocID schemes for generative retrieval: atomic, naive string and semantic (hierarchical k-means).

A docID is a tuple of small integers ("symbols"). Each symbol is emitted by the model as one dedicated vocabulary
token (`<id_0>`, `<id_1>`, ... for string/semantic IDs, `<doc_0>`, ... for atomic IDs), so the same scheme works
for a tiny char/BPE tokenizer and for a hub T5 sentencepiece vocabulary: the tokens are added at training time.
The semantic scheme follows DSI: recursively cluster document embeddings into k groups until a group holds at most
c documents, the docID being the path of cluster indices plus the position inside the leaf. New documents are
routed down the stored centroid tree and take the next free position of the leaf they land in (DSI++-style).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCHEMES = ("atomic", "naive", "semantic")


def kmeans(x: np.ndarray, k: int, seed: int, iters: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding; returns (centroids k x d, labels n). Deterministic for a seed."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"kmeans: {n} points cannot form {k} clusters")
    rng = np.random.default_rng(seed)
    centroids = np.empty((k, x.shape[1]), dtype=np.float64)
    centroids[0] = x[rng.integers(n)]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for j in range(1, k):
        total = d2.sum()
        # all remaining points coincide with chosen centroids: pick uniformly so the loop still terminates
        idx = rng.integers(n) if total <= 0 else rng.choice(n, p=d2 / total)
        centroids[j] = x[idx]
        d2 = np.minimum(d2, ((x - centroids[j]) ** 2).sum(1))
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iters):
        dist = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
        new_labels = dist.argmin(1)
        for j in range(k):
            members = x[new_labels == j]
            if len(members):
                centroids[j] = members.mean(0)
        if np.array_equal(new_labels, labels):
            break
        labels = new_labels
    return centroids, labels


@dataclass
class DocIdScheme:
    """Maps document ids to docID symbol tuples and back, and extends itself to new documents."""

    kind: str
    ids: dict[str, tuple[int, ...]] = field(default_factory=dict)
    k: int = 10
    c: int = 10
    # semantic only: prefix (as a list) -> centroids of its children; leaf prefixes have no entry
    tree: dict[tuple[int, ...], np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SCHEMES:
            raise ValueError(f"unknown docID scheme {self.kind!r}; choose one of {SCHEMES}")

    @property
    def by_docid(self) -> dict[tuple[int, ...], str]:
        return {v: k for k, v in self.ids.items()}

    def symbol_tokens(self) -> list[str]:
        """Vocabulary tokens the model needs to spell every assigned docID (symbol i -> token i)."""
        size = 1 + max((max(d) for d in self.ids.values()), default=0)
        prefix = "<doc_" if self.kind == "atomic" else "<id_"
        return [f"{prefix}{i}>" for i in range(size)]

    def add(self, doc_ids: list[str], embeddings: np.ndarray | None = None) -> dict[str, tuple[int, ...]]:
        """Assign docIDs to new documents (after the initial build); ids must be new."""
        clash = [d for d in doc_ids if d in self.ids]
        if clash:
            raise ValueError(f"documents already have docIDs: {clash[:5]}")
        new: dict[str, tuple[int, ...]] = {}
        if self.kind == "atomic":
            start = len(self.ids)
            new = {d: (start + i,) for i, d in enumerate(doc_ids)}
        elif self.kind == "naive":
            start = len(self.ids)
            new = {d: tuple(int(ch) for ch in str(start + i)) for i, d in enumerate(doc_ids)}
        else:
            if embeddings is None or len(embeddings) != len(doc_ids):
                raise ValueError("semantic docIDs need one embedding per new document")
            used = set(self.ids.values())
            for d, e in zip(doc_ids, np.asarray(embeddings, dtype=np.float64)):
                prefix: tuple[int, ...] = ()
                while prefix in self.tree:
                    cents = self.tree[prefix]
                    prefix = prefix + (int(((cents - e) ** 2).sum(1).argmin()),)
                pos = 0
                while prefix + (pos,) in used:
                    pos += 1
                new[d] = prefix + (pos,)
                used.add(new[d])
        self.ids.update(new)
        return new

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "k": self.k,
            "c": self.c,
            "ids": {d: list(v) for d, v in self.ids.items()},
            "tree": [[list(p), c.tolist()] for p, c in self.tree.items()],
        }

    @classmethod
    def from_dict(cls, data: dict) -> DocIdScheme:
        return cls(
            kind=data["kind"],
            k=int(data["k"]),
            c=int(data["c"]),
            ids={d: tuple(v) for d, v in data["ids"].items()},
            tree={tuple(p): np.asarray(c, dtype=np.float64) for p, c in data["tree"]},
        )


def atomic_ids(doc_ids: list[str]) -> DocIdScheme:
    """One symbol (hence one token) per document."""
    scheme = DocIdScheme("atomic")
    scheme.add(doc_ids)
    return scheme


def naive_ids(doc_ids: list[str]) -> DocIdScheme:
    """The document's ordinal written in decimal digits, one symbol per digit (variable length)."""
    scheme = DocIdScheme("naive")
    scheme.add(doc_ids)
    return scheme


def semantic_ids(doc_ids: list[str], embeddings: np.ndarray, k: int = 10, c: int = 10, seed: int = 0) -> DocIdScheme:
    """Hierarchical k-means docIDs (DSI): cluster path + position in the leaf; unique by construction."""
    if len(doc_ids) != len(embeddings):
        raise ValueError(f"semantic_ids: {len(doc_ids)} documents but {len(embeddings)} embeddings")
    if k < 2 or c < 1:
        raise ValueError(f"semantic_ids: need k >= 2 and c >= 1, got k={k}, c={c}")
    x = np.asarray(embeddings, dtype=np.float64)
    scheme = DocIdScheme("semantic", k=k, c=c)

    def split(members: np.ndarray, prefix: tuple[int, ...], depth: int) -> None:
        if len(members) <= c:
            for pos, m in enumerate(members):
                scheme.ids[doc_ids[m]] = prefix + (pos,)
            return
        cents, labels = kmeans(x[members], k, seed=seed + depth)
        if len(np.unique(labels)) == 1:
            # identical embeddings cannot be separated by k-means: split them by order so recursion ends
            labels = np.arange(len(members)) % k
            cents = np.stack([x[members[labels == j]].mean(0) for j in range(k)])
        scheme.tree[prefix] = cents
        for j in range(k):
            sub = members[labels == j]
            if len(sub):
                split(sub, prefix + (j,), depth + 1)

    split(np.arange(len(doc_ids)), (), 0)
    return scheme
