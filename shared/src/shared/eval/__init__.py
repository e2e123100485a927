"""Evaluation helpers: retrieval measures, QA/math dataset scores, embedding Precision@1, results.json I/O."""

from shared.eval.embeddings import hits_at_1, mean_by_group, mmeb_scores, precision_at_1
from shared.eval.qa import math_accuracy, qa_metrics
from shared.eval.results import (
    ResultsError,
    git_state,
    package_versions,
    read_results,
    seed_mean,
    sha256_of,
    validate_results,
    write_results,
)
from shared.eval.retrieval import retrieval_metrics, trec_order

__all__ = [
    "retrieval_metrics",
    "trec_order",
    "qa_metrics",
    "math_accuracy",
    "precision_at_1",
    "hits_at_1",
    "mean_by_group",
    "mmeb_scores",
    "write_results",
    "read_results",
    "validate_results",
    "sha256_of",
    "seed_mean",
    "git_state",
    "package_versions",
    "ResultsError",
]
