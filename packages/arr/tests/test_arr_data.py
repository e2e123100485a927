"""Records, splits and evidence: bad input named by file, record and field; test hops disjoint from training;
DropGold by hand; probe items; the oracle transcripts the warm start trains on."""

import json

import pytest
from arr.config import DataSettings
from arr.data import check_record, load_records, overlap, synthetic
from arr.evidence import Evidence, drop_coin, probe_items
from arr.warmstart import best_sentence, hop_subject, oracle_reasoner, oracle_verifier
from benchmarks.data.errors import DataError
from shared.retrieval import Retriever

SMALL = DataSettings(n_people=40, n_companies=8, n_cities=8, n_countries=4, train_questions=40, dev_questions=8,
                     test_questions=16)


@pytest.fixture(scope="module")
def small():
    return synthetic(SMALL)


def test_record_without_answers_names_file_line_and_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "a", "question": "q?", "golden_answers": ["x"]}) + "\n"
                    + json.dumps({"id": "b", "question": "q?"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'golden_answers'"):
        load_records(path)
    with pytest.raises(DataError, match="golden_answers"):
        check_record({"question": "q?", "golden_answers": []})
    with pytest.raises(DataError, match="sub_questions"):
        check_record({"question": "q?", "golden_answers": ["x"]}, need_hops=True)
    with pytest.raises(DataError, match="sub_questions"):
        check_record({"question": "q?", "golden_answers": ["x"], "sub_questions": [{"question": "q"}]})


def test_splits_share_no_hop_and_no_question(small):
    assert {k: len(v) for k, v in small.items() if isinstance(v, list) and k != "corpus"} == \
        {"train": 40, "dev": 8, "test": 16}
    assert overlap(small["test"], small["train"], small["dev"]) == {"questions": 0, "hops": 0}
    assert overlap(small["train"], small["train"])["hops"] > 0  # the count can see overlap


def test_dropgold_by_hand(small):
    retriever = Retriever("bm25", small["corpus"])
    rec = small["test"][0]
    query = rec["sub_questions"][0]["question"]
    gold = set(rec["supporting_passage_ids"])
    base = [h["id"] for h in retriever.retrieve([query], topk=3)[0]]
    plain, dropped = Evidence(retriever, 3, drop_gold=0.0, dedup=False).search(rec, query)
    assert [d["id"] for d in plain] == base and not dropped  # p = 0: the base retriever's top-3
    for turn in range(5):
        docs, dropped = Evidence(retriever, 3, drop_gold=1.0, dedup=False).search(rec, query, turn=turn)
        assert dropped and len(docs) == 3 and not gold & {d["id"] for d in docs}  # p = 1: never a gold passage
    ev = Evidence(retriever, 3, drop_gold=0.5, seed=4, dedup=False)
    draws = [ev.search(rec, query, sample=s, turn=t)[1] for s in range(4) for t in range(5)]
    assert draws == [ev.search(rec, query, sample=s, turn=t)[1] for s in range(4) for t in range(5)]  # same key
    assert 0 < sum(draws) < len(draws)
    assert drop_coin(0.5, 4, rec["id"], 0, 0) == draws[0]


def test_dedup_brings_new_documents(small):
    retriever = Retriever("bm25", small["corpus"])
    rec = small["test"][0]
    ev = Evidence(retriever, 3, drop_gold=0.0, dedup=True)
    seen: set[str] = set()
    first, _ = ev.search(rec, "q born", seen)
    second, _ = ev.search(rec, "q born", seen)
    assert not {d["id"] for d in first} & {d["id"] for d in second} and len(seen) == 6


def test_probe_items_pair_each_hop(small):
    ev = Evidence(Retriever("bm25", small["corpus"]), 3)
    items = probe_items(small["test"], ev, 6, seed=0)
    assert len(items) == 12 and [i["class"] for i in items[:2]] == ["with", "without"]
    for w, wo in zip(items[::2], items[1::2]):
        gold = next(s["passage_id"] for s in small["test"] if s["id"] == w["record_id"]
                    for s in [s["sub_questions"][w["hop"]]])
        assert gold in {d["id"] for d in w["docs"]} and gold not in {d["id"] for d in wo["docs"]}
        assert len(w["docs"]) == len(wo["docs"]) == 3 and w["query"] == wo["query"]
    with pytest.raises(ValueError, match="sub_questions"):
        probe_items([{"id": "x", "question": "q", "golden_answers": ["a"]}], ev, 1)


def test_oracle_replies():
    rec = {"question": "In which country was Kara Nelo born?", "golden_answers": ["Toraland"],
           "sub_questions": [{"question": "Where was Kara Nelo born?", "answer": "Lomiville"},
                             {"question": "In which country is Lomiville?", "answer": "Toraland"}]}
    reply = oracle_reasoner({rec["question"]: rec})
    ctx = "Question: In which country was Kara Nelo born?\n"
    assert reply(ctx) == "<think>Kara Nelo</think><search>Where was Kara Nelo born?</search>"
    miss = ctx + "<think>Kara Nelo</think><search>Where was Kara Nelo born?</search><information>none</information>"
    assert reply(miss) == "<verify>no</verify><think>Kara Nelo</think><search>Where was Kara Nelo born?</search>"
    hit = miss + "<verify>no</verify><search>Where was Kara Nelo born?</search><information>in Lomiville" \
                 "</information>"
    assert reply(hit) == "<verify>yes</verify><think>Lomiville</think><search>In which country is Lomiville?</search>"
    done = hit + "<search>In which country is Lomiville?</search><information>Toraland.</information>"
    assert reply(done) == "<verify>yes</verify><think>Toraland</think><answer>Toraland</answer>"
    assert hop_subject("In which country is Lomiville?") == "Lomiville"
    assert best_sentence('"K"\nK was born in L. K works for M Corp.', "Which company does K work for?") == \
        "K works for M Corp."
    verifier = oracle_verifier(1.0, 0)
    info = '<information>Reasoning: K\nQuery: Where was K born?\nDoc 1(Title: "K") K was born in L. K works for M.' \
           '\nDoc 2(Title: "Z") Z.</information>'
    assert verifier(info) == "<verify>K was born in L.</verify><selected_doc>Doc 1</selected_doc>" \
                             "<response>K was born in L.</response>"
    assert "<selected_doc>" not in oracle_verifier(0.0, 0)(info)
    assert oracle_verifier(0.5, 0)(info + "\n<answer>L</answer>\n") == "<verify>L</verify><final_answer>L" \
                                                                          "</final_answer>"
