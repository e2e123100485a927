"""Tests for the generative-retrieval document suite: NQ320k layout, held-out test facts, new docs, oracle."""

import re

import pytest
from benchmarks.synthetic.docs import _QUERIES, make_docs, solve


def test_layout_and_counts():
    suite = make_docs(50, seed=0, train_queries=3)
    assert len(suite.docs) == 50 and len(suite.train) == 150 and len(suite.test) == 50
    doc = suite.docs["D00000"]
    assert doc.title in doc.text and doc.contents.startswith(f'"{doc.title}"\n')


def _fact_of(query):
    for fact, phrasings in _QUERIES.items():
        for p in phrasings:
            if re.fullmatch(re.escape(p).replace(r"\{s\}", ".+"), query):
                return fact
    raise AssertionError(query)


def test_test_queries_ask_a_fact_no_train_query_asks():
    suite = make_docs(80, seed=1, train_queries=4)
    train_facts = {}
    for q, d in suite.train:
        train_facts.setdefault(d, set()).add(_fact_of(q))
    assert all(len(f) == 4 for f in train_facts.values())
    for q, d in suite.test:
        assert _fact_of(q) not in train_facts[d]
    assert {d for _, d in suite.test} == set(suite.docs)


def test_oracle_maps_every_query_to_its_document():
    suite = make_docs(120, seed=2)
    pairs = suite.train + suite.test
    assert sum(solve(q, suite.docs) == d for q, d in pairs) == len(pairs)


def test_new_documents_split_off_with_their_queries():
    suite = make_docs(40, seed=0, n_new=10)
    old, new = suite.split(), suite.split(new=True)
    assert len(old.docs) == 30 and len(new.docs) == 10
    assert not set(old.docs) & set(new.docs)
    assert all(d in new.docs for _, d in new.test) and len(new.test) == 10


def test_deterministic_and_errors():
    assert make_docs(20, seed=5).train == make_docs(20, seed=5).train
    assert make_docs(20, seed=5).train != make_docs(20, seed=6).train
    with pytest.raises(ValueError, match="train_queries"):
        make_docs(10, train_queries=5)
    with pytest.raises(ValueError, match="names no document"):
        solve("what is the capital of France", make_docs(5).docs)
