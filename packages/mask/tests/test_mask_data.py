"""Data: the (entity, chain) split leaves no test hop in training (counted), dev is never trained on, question
files are checked record by record."""

import json

import pytest
from mask.config import DataSettings
from mask.data import check_record, load_split, overlap, synthetic_splits


def test_entity_chain_split_has_no_test_hop_in_training():
    d = DataSettings(n_people=120, n_companies=20, n_cities=15, n_countries=6, n_dev=10, n_test=40)
    s = synthetic_splits(d)
    assert len(s["test"]) == 40 and len(s["dev"]) == 10 and s["train"]
    assert all(q["hops"] in (2, 3) for q in (*s["train"], *s["dev"], *s["test"]))
    assert overlap(s["train"] + s["dev"] + s["sft"], s["test"]) == {"questions": 0, "hops": 0}
    dev = {q["question"] for q in s["dev"]}
    assert not dev & {q["question"] for q in s["sft"] + s["train"]}
    assert {q["hops"] for q in s["sft"]} == {1, 2, 3}


def test_too_few_test_questions_is_an_error():
    with pytest.raises(ValueError, match="lower data.n_test or grow the KB"):
        synthetic_splits(DataSettings(n_people=60, n_companies=15, n_cities=12, n_countries=5, n_dev=5, n_test=5000))
    with pytest.raises(ValueError, match="leaves none for training"):
        synthetic_splits(DataSettings(n_people=60, n_companies=15, n_cities=12, n_countries=5, n_dev=5000))


def test_overlap_counts_shared_questions():
    a = [{"question": "Q1?"}, {"question": "Q2?"}]
    assert overlap(a, [{"question": "Q2?"}]) == {"questions": 1}


def test_question_files(tmp_path):
    f = tmp_path / "q.jsonl"
    f.write_text(json.dumps({"id": "a", "question": "Who?", "golden_answers": ["X"]}) + "\n")
    d = DataSettings(train_file=str(f), dev_file=str(f), test_file=str(f))
    assert load_split(d, "test") == [{"id": "a", "question": "Who?", "golden_answers": ["X"]}]
    with pytest.raises(ValueError, match="data.dev_file is empty"):
        load_split(DataSettings(test_file=str(f)), "dev")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "b", "question": "Who?", "golden_answers": []}) + "\n")
    with pytest.raises(ValueError, match=f"{bad}:1: field 'golden_answers'"):
        load_split(DataSettings(test_file=str(bad), train_file=str(bad), dev_file=str(bad)), "test")


@pytest.mark.parametrize("record, field", [({"question": "Q"}, "golden_answers"),
                                           ({"question": "Q", "golden_answers": "X"}, "golden_answers"),
                                           ({"golden_answers": ["X"]}, "question")])
def test_check_record(record, field):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        check_record(record, "eval record")
