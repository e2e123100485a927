"""MMEB's aggregation (shared.eval.mmeb_scores): P@1 per dataset, meta-task = mean of its datasets, overall = mean
over datasets; hand-computed values that a per-query or per-meta-task average would miss."""

import pytest
from shared.eval import mmeb_scores


def test_mmeb_scores_average_datasets_not_queries_or_meta_tasks():
    # vqa/A: hit, miss -> 0.5; vqa/B: hit -> 1.0; classification/C: miss, miss, hit -> 1/3
    datasets = ["A", "A", "B", "C", "C", "C"]
    metas = ["vqa", "vqa", "vqa", "classification", "classification", "classification"]
    hits = [1, 0, 1, 0, 0, 1]
    out = mmeb_scores(datasets, metas, hits)
    assert out["datasets"] == pytest.approx({"A": 0.5, "B": 1.0, "C": 1 / 3})
    assert out["meta_tasks"] == pytest.approx({"vqa": 0.75, "classification": 1 / 3})
    # overall over datasets (0.5 + 1 + 1/3) / 3 = 0.611; per query it would be 0.5, over meta-tasks 0.542
    assert out["overall"] == pytest.approx(11 / 18)


def test_mmeb_scores_bad_input():
    with pytest.raises(ValueError, match="under two meta-tasks"):
        mmeb_scores(["A", "A"], ["vqa", "retrieval"], [1, 0])
    with pytest.raises(ValueError, match="2 dataset names, 1 meta-tasks and 2 hits"):
        mmeb_scores(["A", "B"], ["vqa"], [1, 0])
    with pytest.raises(ValueError, match="at least one query"):
        mmeb_scores([], [], [])
