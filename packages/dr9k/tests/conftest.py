"""dr9k tests run one torch thread per process (a shared 2-core box runs two threads far slower), and share a
hand-built four-person knowledge base whose descriptions, leaks and answers are worked out by hand below."""

import pytest
import torch

torch.set_num_threads(1)


def hand_kb():
    """Four people, two companies, two cities, one country. A and D share (works_for X Corp, mentor Bo Ka), so that
    pair of facts describes neither; C is the only person born in Pa-ville who works for Yu Corp."""
    from benchmarks.synthetic.kb import RELATIONS, KnowledgeBase

    people = ["Ala Mi", "Bo Ka", "Ce Lo", "Du Ne"]
    entities = {"person": people, "company": ["Xo Corp", "Yu Corp"], "city": ["Paville", "Quville"],
                "country": ["Raland"]}
    facts = {
        ("Ala Mi", "born_in"): "Paville", ("Ala Mi", "works_for"): "Xo Corp", ("Ala Mi", "mentor"): "Bo Ka",
        ("Bo Ka", "born_in"): "Quville", ("Bo Ka", "works_for"): "Xo Corp", ("Bo Ka", "mentor"): "Ce Lo",
        ("Ce Lo", "born_in"): "Paville", ("Ce Lo", "works_for"): "Yu Corp", ("Ce Lo", "mentor"): "Ala Mi",
        ("Du Ne", "born_in"): "Paville", ("Du Ne", "works_for"): "Xo Corp", ("Du Ne", "mentor"): "Bo Ka",
        ("Xo Corp", "headquartered_in"): "Quville", ("Xo Corp", "founded_in"): "1900",
        ("Yu Corp", "headquartered_in"): "Paville", ("Yu Corp", "founded_in"): "1950",
        ("Paville", "located_in"): "Raland", ("Quville", "located_in"): "Raland", ("Raland", "language"): "Veltic",
    }
    kb = KnowledgeBase(entities=entities, facts=facts)
    order = [e for kind in ("person", "company", "city", "country") for e in entities[kind]]
    for i, e in enumerate(order):
        kb.passages[e] = " ".join(RELATIONS[rel][2].format(s=e, o=o, o_of=e) for (s, rel), o in facts.items() if s == e)
        kb.passage_ids[e] = f"hand-{i}"
    return kb


def kb_seed(kb, start, relations):
    """A seed record of the KB question that walks `relations` from `start`."""
    from benchmarks.synthetic.kb import RELATIONS, TEMPLATES

    subs, node = [], start
    for rel in relations:
        obj = kb.facts[(node, rel)]
        subs.append({"question": RELATIONS[rel][3].format(s=node), "answer": obj, "passage_id": kb.passage_ids[node]})
        node = obj
    return {"id": f"hand:{start}|{'>'.join(relations)}", "question": TEMPLATES[tuple(relations)].format(s=start),
            "golden_answers": [node], "source": "kb", "split": "test", "hops": len(relations), "support": [],
            "kb": {"start": start, "relations": list(relations)}, "sub_questions": subs, "parent_ids": []}


@pytest.fixture
def kb():
    return hand_kb()


@pytest.fixture
def seed_of():
    return kb_seed
