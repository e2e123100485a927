"""Metric use in the benchmarks: trec_eval conventions on a toy graded qrels (hand-computed), Cranfield's grade
mapping feeding nDCG, and MMEB P@1 aggregation (per dataset, then meta-task; overall over datasets)."""

import math

import numpy as np
import pytest
from benchmarks.data.records import MMEBItem
from benchmarks.evaluate import evaluate_mmeb
from shared.eval import retrieval_metrics


def test_toy_graded_qrels_by_hand():
    qrels = {"q1": {"d1": 2, "d2": 1, "d9": 0}, "q2": {"d5": 1}}
    run = {"q1": {"d2": 0.9, "d3": 0.8, "d1": 0.7}, "q2": {"d4": 1.0, "d5": 0.5}}
    m = retrieval_metrics(run, qrels, ks=(1, 3))
    # q1: gains [1, 0, 2] -> DCG = 1/log2(2) + 2/log2(4) = 2; ideal [2, 1] -> 2 + 1/log2(3)
    ndcg_q1 = 2 / (2 + 1 / math.log2(3))
    # q2: relevant at rank 2 -> DCG = 1/log2(3); ideal 1
    ndcg_q2 = 1 / math.log2(3)
    assert m["ndcg@3"] == pytest.approx((ndcg_q1 + ndcg_q2) / 2, abs=1e-4)
    assert m["recall@1"] == pytest.approx((1 / 2 + 0) / 2)
    assert m["recall@3"] == pytest.approx(1.0)
    assert m["mrr@3"] == pytest.approx((1 + 1 / 2) / 2)


def test_ties_break_by_docid_descending_and_missing_queries_score_zero():
    qrels = {"q1": {"a": 1}, "q2": {"x": 1}}
    run = {"q1": {"a": 1.0, "b": 1.0}}  # tie: 'b' > 'a' as strings, so 'b' ranks first
    m = retrieval_metrics(run, qrels, ks=(1,))
    assert m["recall@1"] == 0.0  # q1 misses at rank 1 (tie order), q2 is absent from the run and counts 0
    assert m["mrr@1"] == 0.0


def test_cranfield_grades_feed_ndcg():
    from benchmarks.data import load_bundled

    cran = load_bundled("cranfield")
    grades = {g for q in cran.qrels.values() for g in q.values()}
    assert grades <= {0, 1, 2, 3, 4} and 4 in grades
    q = "1"
    ideal = sorted(cran.qrels[q], key=lambda d: -cran.qrels[q][d])
    assert retrieval_metrics({q: ideal}, {q: cran.qrels[q]}, ks=(10,))["ndcg@10"] == pytest.approx(1.0)


def test_mmeb_p_at_1_by_dataset_then_meta_task_hand_values():
    def item(i, task, dataset):
        return MMEBItem(f"i{i}", task, dataset, "q", None, ["a", "b"], [None, None])

    # vqa: OK-VQA 1 of 2, DocVQA 1 of 1; classification: N24News 1 of 3
    items = [item(0, "vqa", "OK-VQA"), item(1, "vqa", "OK-VQA"), item(2, "vqa", "DocVQA")]
    items += [item(3, "classification", "N24News"), item(4, "classification", "N24News")]
    items += [item(5, "classification", "N24News")]
    right = {"i0", "i2", "i5"}
    out = evaluate_mmeb(
        items,
        lambda it: np.array([1.0, 0.0]) if it.id in right else np.array([0.0, 1.0]),
        lambda it: np.eye(2),
    )
    # MMEB: P@1 per dataset, a meta-task is the mean of its datasets, the overall score the mean over datasets
    assert out.metrics == pytest.approx({
        "p@1/OK-VQA": 0.5, "p@1/DocVQA": 1.0, "p@1/N24News": 1 / 3,
        "p@1_vqa": 0.75, "p@1_classification": 1 / 3, "p@1": (0.5 + 1.0 + 1 / 3) / 3,
    })  # fmt: skip
    # what the previous aggregation gave: per-query vqa 2/3, overall over meta-tasks (2/3 + 1/3) / 2 = 0.5
    assert out.metrics["p@1_vqa"] != pytest.approx(2 / 3) and out.metrics["p@1"] != pytest.approx(0.5)
