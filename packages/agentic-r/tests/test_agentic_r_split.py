"""The held-out questions share no (sub-question, gold passage) pair with training, and recall on unseen pairs."""

import dataclasses

import pytest
from agentic_r.data import KBSettings, agent_train_questions, build_kb_data, training_pairs, unseen_subqueries
from agentic_r.replicate import quick_overrides
from benchmarks.synthetic.kb import hop_pairs

QUICK_KB = {o.split("=")[0].removeprefix("data."): int(o.split("=")[1]) for o in quick_overrides()
            if o.startswith("data.")}


@pytest.mark.parametrize("sizes", [{}, QUICK_KB], ids=["full", "quick"])
def test_no_held_out_hop_is_a_training_hop(sizes):
    settings = dataclasses.replace(KBSettings(), **sizes, n_agent_train=300)
    data = build_kb_data(settings, seed=0)
    train = data["train"] + agent_train_questions(settings, 0, data["train"])
    test = hop_pairs(data["test"])
    assert len(data["test"]) == settings.n_test and len(test) > 0.5 * settings.n_test  # distinct held-out hops
    assert len(test & hop_pairs(train)) == 0
    # the start-entity split of earlier versions shared later hops with training (28-32% of sub-queries)
    old = dataclasses.replace(settings, split_by="entity")
    before = build_kb_data(old, seed=0)
    shared = hop_pairs(before["test"]) & hop_pairs(before["train"] + agent_train_questions(old, 0, before["train"]))
    assert len(shared) > 0.1 * len(hop_pairs(before["test"]))


def test_unseen_subqueries_leave_out_training_hops_and_group_positives():
    train = [{"id": "t", "sub_questions": [{"question": "Where was A born?", "passage_id": "p1"}]}]
    groups = [{"query": "Who is the mentor of C? [SEP] Who is the mentor of C?", "positives": ["p3", "p4"]},
              {"query": "Where was D born?", "positives": ["p5"]}]  # a bare query (no [SEP]) counts as is
    seen = training_pairs(train, groups)
    assert seen == {("Where was A born?", "p1"), ("Who is the mentor of C?", "p3"), ("Who is the mentor of C?", "p4"),
                    ("Where was D born?", "p5")}
    test = [{"id": "q1", "sub_questions": [{"question": "Where was A born?", "passage_id": "p1"},  # a training hop
                                           {"question": "Where was A born?", "passage_id": "p2"}]},  # other passage
            {"id": "q2", "sub_questions": [{"question": "Who is the mentor of C?", "passage_id": "p4"},  # positive
                                           {"question": "Where was D born?", "passage_id": "p6"}]}]
    assert unseen_subqueries(test, seen) == ["q1#1", "q2#1"]
