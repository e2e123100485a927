"""A document collection with queries for generative retrieval, in the NQ320k layout.

Each document profiles one invented person (birthplace, employer, mentor, hobby, age), built from the synthetic
knowledge base of `kb`. Every document has train queries (pseudo-queries about some of its facts) and a test query
about a fact none of its train queries asks about, so test queries are new questions about indexed documents, as in
NQ320k. `n_new` documents can be held back as "new" documents (with their own train and test queries) for
incremental indexing / editing experiments. `solve` is a scripted oracle that maps a query to its document by
reading the document titles. Deterministic by seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from benchmarks.data.records import Document, GenRetrievalSplit
from benchmarks.synthetic.kb import make_kb

_HOBBIES = ("chess", "sailing", "pottery", "archery", "painting", "cycling", "gardening", "violin", "astronomy")
# (fact, query phrasings); the first phrasing of each fact is used in train, all of them may be asked
_QUERIES: dict[str, tuple[str, ...]] = {
    "born_in": ("where was {s} born", "birthplace of {s}"),
    "works_for": ("which company employs {s}", "employer of {s}"),
    "mentor": ("who mentored {s}", "mentor of {s}"),
    "hobby": ("what hobby does {s} enjoy", "favourite pastime of {s}"),
    "age": ("how old is {s}", "age of {s}"),
}


@dataclass
class DocsSuite:
    """Documents, (query, docid) pairs per split, and which documents are held back as new."""

    docs: dict[str, Document]
    train: list[tuple[str, str]]
    test: list[tuple[str, str]]
    new_doc_ids: list[str] = field(default_factory=list)

    def split(self, new: bool = False) -> GenRetrievalSplit:
        """The old (initially indexed) or the new documents with their queries."""
        keep = set(self.new_doc_ids) if new else set(self.docs) - set(self.new_doc_ids)
        return GenRetrievalSplit(
            docs={d: self.docs[d] for d in self.docs if d in keep},
            train=[p for p in self.train if p[1] in keep],
            test=[p for p in self.test if p[1] in keep],
        )


def make_docs(n_docs: int = 200, seed: int = 0, train_queries: int = 3, n_new: int = 0) -> DocsSuite:
    """`n_docs` documents with `train_queries` (1-4) train queries and one test query each."""
    if not 1 <= train_queries <= len(_QUERIES) - 1:
        raise ValueError(f"train_queries must be 1..{len(_QUERIES) - 1}, got {train_queries}")
    if not 0 <= n_new < n_docs:
        raise ValueError(f"n_new must be in [0, n_docs), got {n_new} with n_docs={n_docs}")
    kb = make_kb(n_people=n_docs, n_companies=max(2, n_docs // 8), n_cities=max(2, n_docs // 10), seed=seed)
    rng = random.Random(f"docs|{seed}")
    docs: dict[str, Document] = {}
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    facts_order = list(_QUERIES)
    for i, person in enumerate(kb.entities["person"]):
        did = f"D{i:05d}"
        hobby, age = rng.choice(_HOBBIES), rng.randint(21, 90)
        text = (
            f"{person} is a {age}-year-old resident. {person} was born in {kb.facts[(person, 'born_in')]}. "
            f"{person} works for {kb.facts[(person, 'works_for')]} and was mentored by {kb.facts[(person, 'mentor')]}. "
            f"In spare time {person} enjoys {hobby}."
        )
        docs[did] = Document(id=did, title=person, text=text)
        facts = facts_order[:]
        rng.shuffle(facts)
        test_fact, train_facts = facts[0], facts[1 : 1 + train_queries]
        for fact in train_facts:
            train.append((_QUERIES[fact][0].format(s=person), did))
        test.append((rng.choice(_QUERIES[test_fact]).format(s=person), did))
    new_ids = sorted(rng.sample(sorted(docs), n_new)) if n_new else []
    return DocsSuite(docs=docs, train=train, test=test, new_doc_ids=new_ids)


def solve(query: str, docs: dict[str, Document]) -> str:
    """Scripted oracle: the document whose title (the person) the query names."""
    for phrasings in _QUERIES.values():
        for p in phrasings:
            m = re.fullmatch(re.escape(p).replace(r"\{s\}", "(.+)"), query)
            if m:
                hits = [d.id for d in docs.values() if d.title == m.group(1)]
                if len(hits) == 1:
                    return hits[0]
    raise ValueError(f"query names no document: {query!r}")
