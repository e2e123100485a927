"""retrieval_metrics on a toy run whose values are computed by hand (trec_eval conventions)."""

import math

import pytest
from shared.eval import retrieval_metrics, trec_order

# q1: graded qrels; run order d1, d3, d2, d4, d5 -> relevant at ranks 1 (grade 2), 3 (grade 1), 5 (grade 1)
# q2: d2 relevant; b and a tie at 0.5 -> trec_eval breaks ties by doc id descending: order c, b, a (a at rank 3)
# q3: judged but nothing relevant -> dropped by default
# q4: relevant doc but absent from the run -> scores 0 by default
# q5: in the run, not in the qrels -> ignored
QRELS = {
    "q1": {"d1": 2, "d2": 1, "d5": 1, "d3": 0},
    "q2": {"a": 1},
    "q3": {"x": 0},
    "q4": {"y": 1},
}
RUN = {
    "q1": {"d1": 0.9, "d3": 0.8, "d2": 0.7, "d4": 0.6, "d5": 0.5},
    "q2": {"b": 0.5, "a": 0.5, "c": 0.9},
    "q3": {"x": 1.0},
    "q5": {"z": 1.0},
}
# q1 nDCG@3: DCG = 2/log2(2) + 0/log2(3) + 1/log2(4) = 2.5;
#            IDCG = 2/log2(2) + 1/log2(3) + 1/log2(4) = 2 + 0.63093 + 0.5 = 3.13093 -> 0.798484
Q1_NDCG3 = 2.5 / (2 + 1 / math.log2(3) + 0.5)
# q2 nDCG@3: gain 1 at rank 3 -> 1/log2(4) = 0.5, ideal 1 -> 0.5


def test_trec_order_breaks_ties_by_docid_descending():
    assert trec_order(RUN["q2"]) == ["c", "b", "a"]


def test_hand_computed_means():
    m = retrieval_metrics(RUN, QRELS, ks=(1, 3, 5))
    # mean over q1, q2, q4 (q3 has no relevant doc, q5 has no qrels)
    assert m["recall@1"] == pytest.approx((1 / 3 + 0 + 0) / 3)  # 1/9
    assert m["recall@3"] == pytest.approx((2 / 3 + 1 + 0) / 3)  # 5/9
    assert m["recall@5"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["mrr@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 3 + 0) / 3)  # 4/9
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert m["ndcg@3"] == pytest.approx((Q1_NDCG3 + 0.5 + 0) / 3)
    assert m["p@3"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert m["hit@1"] == pytest.approx(1 / 3)
    # q1 AP: precisions at relevant ranks 1, 3, 5 are 1, 2/3, 3/5 -> mean 0.75556; q2 AP = 1/3
    assert m["map"] == pytest.approx(((1 + 2 / 3 + 3 / 5) / 3 + 1 / 3 + 0) / 3)


def test_missing_and_no_relevant_policies():
    skip_missing = retrieval_metrics(RUN, QRELS, ks=(3,), missing="skip")
    assert skip_missing["mrr@3"] == pytest.approx((1 + 1 / 3) / 2)
    keep_empty = retrieval_metrics(RUN, QRELS, ks=(3,), no_relevant="zero")
    assert keep_empty["mrr@3"] == pytest.approx((1 + 1 / 3) / 4)


def test_relevance_level_and_per_query():
    # with level 2 only d1 counts as relevant in q1; q2 and q4 have no relevant doc any more
    out = retrieval_metrics(RUN, QRELS, ks=(1, 5), relevance_level=2, per_query=True)
    assert list(out["per_query"]) == ["q1"]
    assert out["mean"]["recall@1"] == 1.0
    # nDCG still uses the grades as gains: ranks 1 (2), 3 (1), 5 (1) vs ideal 2, 1, 1
    dcg = 2 + 1 / math.log2(4) + 1 / math.log2(6)
    idcg = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert out["mean"]["ndcg@5"] == pytest.approx(dcg / idcg)


def test_ranked_list_input():
    m = retrieval_metrics({"q2": ["c", "a", "b"]}, {"q2": {"a": 1}}, ks=(1, 2))
    assert m["mrr@1"] == 0.0 and m["mrr@2"] == 0.5 and m["recall@2"] == 1.0


def test_bad_inputs_name_the_record():
    with pytest.raises(ValueError, match=r"qrels\['q1'\]\['d1'\]: grade must be an int"):
        retrieval_metrics(RUN, {"q1": {"d1": "yes"}})
    with pytest.raises(ValueError, match=r"run\['q1'\]\['d1'\]: score must be a finite number"):
        retrieval_metrics({"q1": {"d1": float("nan")}}, QRELS)
    with pytest.raises(ValueError, match="ks must be positive"):
        retrieval_metrics(RUN, QRELS, ks=(0,))
    with pytest.raises(ValueError, match="non-empty mapping"):
        retrieval_metrics(RUN, {})
    with pytest.raises(ValueError, match="repeats a document"):
        retrieval_metrics({"q2": ["a", "a"]}, QRELS)
