"""Tests for the synthetic knowledge base: corpus layout, hop structure, determinism, splits and the oracle."""

import pytest
from benchmarks.synthetic.kb import make_kb, make_kb_questions, make_kb_suite, solve


def test_corpus_layout_and_passages():
    kb = make_kb(seed=0)
    corpus = kb.corpus()
    assert len(corpus) == 60 + 15 + 12 + 5
    assert len({d["id"] for d in corpus}) == len(corpus)
    doc = corpus[0]
    title = kb.entities["person"][0]
    assert doc["contents"].startswith(f'"{title}"\n')
    assert f"{title} works for {kb.facts[(title, 'works_for')]}." in doc["contents"]


def test_hops_subquestions_and_support():
    suite = make_kb_suite(n_train=60, n_test=30, seed=1)
    ids = {d["id"]: d["contents"] for d in suite["corpus"]}
    for q in suite["train"] + suite["test"]:
        assert q.hops == len(q.sub_questions) == len(q.supporting_passage_ids) == len(q.relations)
        assert q.sub_questions[-1].answer == q.answer
        for sub in q.sub_questions:
            assert sub.answer in ids[sub.passage_id]  # the supporting passage states the hop's answer
    assert {q.hops for q in suite["train"]} == {1, 2, 3}


def test_deterministic_and_disjoint():
    a = [q.to_dict() for q in make_kb_suite(seed=2)["train"]]
    b = [q.to_dict() for q in make_kb_suite(seed=2)["train"]]
    assert a == b
    suite = make_kb_suite(seed=2)
    train_subjects = {q.sub_questions[0].question for q in suite["train"]}
    starts_train = {q.supporting_passage_ids[0] for q in suite["train"]}
    starts_test = {q.supporting_passage_ids[0] for q in suite["test"]}
    assert not starts_train & starts_test
    assert train_subjects
    assert make_kb(seed=3).passages != make_kb(seed=2).passages


def test_oracle_answers_everything_from_the_corpus():
    suite = make_kb_suite(n_train=200, n_test=50, seed=0)
    questions = suite["train"] + suite["test"]
    correct = sum(solve(q.question, suite["corpus"]) == q.answer for q in questions)
    assert correct == len(questions)


def test_flashrag_record_and_errors():
    kb = make_kb(seed=0)
    q = make_kb_questions(kb, 1, hops=(2,))[0]
    assert q.to_flashrag() == {"id": q.id, "question": q.question, "golden_answers": [q.answer]}
    with pytest.raises(ValueError, match="distinct"):
        make_kb_questions(kb, 10_000)
    with pytest.raises(ValueError, match="template"):
        solve("What is love?", kb.corpus())
    with pytest.raises(ValueError, match="at least 2"):
        make_kb(n_countries=1)
