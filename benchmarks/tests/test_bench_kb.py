"""Tests for the synthetic knowledge base: corpus layout, hop structure, determinism, splits and the oracle."""

import pytest
from benchmarks.synthetic.kb import (
    CLAUSES,
    LARGE_KB,
    KnowledgeBase,
    entity_description,
    hop_pairs,
    make_kb,
    make_kb_questions,
    make_kb_suite,
    matching_entities,
    question_pool,
    shared_hops,
    solve,
)


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


def _hand_kb() -> KnowledgeBase:
    """Three people, two companies with identical facts, two cities in one country."""
    facts = {
        ("Ann", "born_in"): "Pville", ("Ann", "works_for"): "X Corp", ("Ann", "mentor"): "Bob",
        ("Bob", "born_in"): "Pville", ("Bob", "works_for"): "Y Corp", ("Bob", "mentor"): "Ann",
        ("Cid", "born_in"): "Qville", ("Cid", "works_for"): "X Corp", ("Cid", "mentor"): "Ann",
        ("X Corp", "headquartered_in"): "Pville", ("X Corp", "founded_in"): "1900",
        ("Y Corp", "headquartered_in"): "Pville", ("Y Corp", "founded_in"): "1900",
        ("Pville", "located_in"): "Aland", ("Qville", "located_in"): "Aland",
        ("Aland", "language"): "Veltic", ("Bland", "language"): "Veltic",
    }  # fmt: skip
    entities = {"person": ["Ann", "Bob", "Cid"], "company": ["X Corp", "Y Corp"], "city": ["Pville", "Qville"],
                "country": ["Aland", "Bland"]}  # fmt: skip
    return KnowledgeBase(entities=entities, facts=facts)


def test_entity_description_golden_and_unique():
    kb = _hand_kb()
    # the first relation pair in RELATIONS order that only Ann has (Bob works elsewhere, Cid was born elsewhere)
    assert entity_description(kb, "Ann") == "the person who was born in Pville and who works for X Corp"
    assert entity_description(kb, "Ann", exclude=("born_in",)) == "the person who works for X Corp and whose mentor is Bob"
    assert entity_description(kb, "Ann", exclude=("born_in", "works_for"), k=1) == "the person whose mentor is Bob"
    assert entity_description(kb, "Bob", k=1) == "the person who works for Y Corp"  # born in Pville like Ann
    assert entity_description(kb, "Cid", k=1) == "the person who was born in Qville"
    # X Corp and Y Corp share every fact, Pville and Qville their country: no description tells them apart
    assert entity_description(kb, "X Corp") is None and entity_description(kb, "Pville", k=1) is None
    assert entity_description(kb, "Cid", exclude=("born_in", "works_for", "mentor")) is None
    with pytest.raises(ValueError, match="k >= 1"):
        entity_description(kb, "Ann", k=0)


def test_entity_description_of_a_generated_kb_names_exactly_one_entity():
    kb = make_kb(seed=0)
    found = 0
    for person in kb.entities["person"]:
        # without the mentor only (born_in, works_for) is left: unique for most of the 60 people, not for all
        text = entity_description(kb, person, exclude=("mentor",))
        facts = [(rel, kb.facts[(person, rel)]) for rel in ("born_in", "works_for")]
        if text is None:
            assert len(matching_entities(kb, "person", facts)) > 1
            continue
        found += 1
        assert text == "the person " + " and ".join(CLAUSES[rel].format(o=obj) for rel, obj in facts)
        assert matching_entities(kb, "person", facts) == [person]
    assert 0 < found < 60  # both branches are exercised (35 unique at seed 0)


def test_entity_chain_split_leaves_no_test_hop_in_training():
    kb = make_kb(**LARGE_KB)
    n_train = len(question_pool(kb, "train", split_by="entity_chain"))
    train = make_kb_questions(kb, n_train, split="train", split_by="entity_chain")  # every training question
    test = make_kb_questions(kb, 512, split="test", split_by="entity_chain")
    assert len(test) == 512 and {q.hops for q in test} == {1, 2, 3}
    assert len(hop_pairs(test)) > 300  # distinct test hops (387 at seed 0)
    assert shared_hops(train, test) == 0  # no (sub-question, gold passage) of a test question is trained on
    # test subjects still occur in training questions (about their other relations): names are not unseen
    starts = {q.supporting_passage_ids[0] for q in test}
    assert len(starts & {p for q in train for p in q.supporting_passage_ids}) > 0.5 * len(starts)
    # the start-entity split does share hops: the overlap this split removes
    by_entity = make_kb_questions(kb, 512, split="test")
    assert shared_hops(make_kb_questions(kb, 1500, split="train"), by_entity) > 100


def test_entity_chain_split_is_deterministic_and_checked():
    kb = make_kb(seed=1)
    a = make_kb_questions(kb, 40, seed=1, split="test", split_by="entity_chain")
    assert [q.to_dict() for q in a] == [q.to_dict() for q in make_kb_questions(kb, 40, seed=1, split="test",
                                                                                split_by="entity_chain")]
    with pytest.raises(ValueError, match="split_by"):
        make_kb_questions(kb, 4, split_by="chain")
    with pytest.raises(ValueError, match="LARGE_KB"):
        make_kb_questions(kb, 5000, split="test", split_by="entity_chain")
