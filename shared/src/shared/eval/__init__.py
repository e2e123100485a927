"""Evaluation helpers: retrieval measures, QA/math dataset scores, embedding Precision@1, results.json I/O, and
seed/item statistics (paired seed differences, curve spread, paired bootstrap CI)."""

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
from shared.eval.stats import curve_spread, paired_bootstrap_ci, paired_differences

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
    "paired_differences",
    "curve_spread",
    "paired_bootstrap_ci",
    "git_state",
    "package_versions",
    "ResultsError",
]
