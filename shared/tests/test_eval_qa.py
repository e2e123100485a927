"""Dataset-level QA/math scores and embedding Precision@1 with hand-computed values."""

import numpy as np
import pytest
from shared.eval import hits_at_1, math_accuracy, mean_by_group, precision_at_1, qa_metrics


def test_qa_metrics_hand_computed():
    preds = ["Paris", "the cat sat", "in Paris, France"]
    golds = [["paris", "Paris city"], "a cat", "Lyon"]
    m = qa_metrics(preds, golds)
    # EM: 1, 0, 0; F1: 1, 2/3 (P=1/2, R=1), 0; sub-EM: 1, 1 ("cat" in "cat sat"), 0
    assert m == pytest.approx({"em": 1 / 3, "f1": (1 + 2 / 3) / 3, "sub_em": 2 / 3})


def test_math_accuracy():
    preds = [r"so \boxed{46}", r"\boxed{0.5}", "#### 1,000", "no answer"]
    golds = ["46", "1/2", "1000", "3"]
    assert math_accuracy(preds, golds) == pytest.approx(3 / 4)


def test_dataset_bad_inputs():
    with pytest.raises(ValueError, match="2 predictions but 1 gold"):
        qa_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty list"):
        math_accuracy([], [])
    with pytest.raises(ValueError, match=r"example 1: golds\[0\] must be a str"):
        qa_metrics(["a", "b"], ["a", [3]])


def test_precision_at_1_shared_pool():
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    cands = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.9]])
    # cosine: q0 best c0 (gold 0) hit; q1 best c1 (gold 1) hit; q2 best c2 (0.9986) vs gold c0 (0.7071) miss
    assert hits_at_1(queries, cands, [0, 1, 0]).tolist() == [True, True, False]
    assert precision_at_1(queries, cands, [0, 1, 0]) == pytest.approx(2 / 3)
    # raw dot product: q2 scores c0 = 2.0, c2 = 1.9 -> now a hit
    assert precision_at_1(queries, cands, [0, 1, 0], cosine=False) == pytest.approx(1.0)


def test_precision_at_1_per_query_candidates_and_ties():
    queries = np.array([[1.0, 0.0], [1.0, 0.0]])
    cands = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [2.0, 0.0]]])
    # query 1: both candidates have cosine 1 -> a tie, counted as a miss
    assert hits_at_1(queries, cands, [0, 0]).tolist() == [True, False]


def test_mean_by_group():
    out = mean_by_group(["a", "a", "b"], [1.0, 0.0, 1.0])
    assert out == {"a": 0.5, "b": 1.0, "overall": 0.75}


def test_embedding_bad_inputs():
    with pytest.raises(ValueError, match="out of range"):
        precision_at_1(np.ones((1, 2)), np.ones((2, 2)), [2])
    with pytest.raises(ValueError, match="cand_emb must be"):
        precision_at_1(np.ones((1, 2)), np.ones((2, 3)), [0])
    with pytest.raises(ValueError, match="2 group labels but 1"):
        mean_by_group(["a", "b"], [1.0])
