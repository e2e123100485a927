"""QA answer scores: exact match, substring exact match and token F1 under SQuAD normalisation.

These follow the official SQuAD v1.1 evaluation script (lower-case, strip punctuation, drop the articles
a/an/the, collapse whitespace) and the HotpotQA rule for F1: when either the normalised prediction or the
normalised gold is one of "yes", "no", "noanswer" and the two differ, F1 is 0 (token overlap would otherwise
give partial credit to "no" vs "no answer"). Every score takes one gold string or a list of gold strings and
returns the maximum over the golds, as in SQuAD/Natural Questions/HotpotQA evaluation.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_SPECIAL_ANSWERS = ("yes", "no", "noanswer")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, remove punctuation, remove articles, collapse whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"normalize_answer expects a str, got {type(text).__name__}")
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _gold_list(golds: str | Sequence[str]) -> list[str]:
    """Accept one gold or a non-empty sequence of golds; reject anything else with a clear message."""
    if isinstance(golds, str):
        return [golds]
    if not isinstance(golds, Sequence) or len(golds) == 0:
        raise ValueError(f"golds must be a str or a non-empty list of str, got {golds!r}")
    for i, gold in enumerate(golds):
        if not isinstance(gold, str):
            raise TypeError(f"golds[{i}] must be a str, got {type(gold).__name__}")
    return list(golds)


def _check_pred(pred: str) -> None:
    if not isinstance(pred, str):
        raise TypeError(f"prediction must be a str, got {type(pred).__name__}")


def exact_match(pred: str, golds: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised gold, else 0.0."""
    _check_pred(pred)
    norm_pred = normalize_answer(pred)
    return float(any(norm_pred == normalize_answer(g) for g in _gold_list(golds)))


def sub_exact_match(pred: str, golds: str | Sequence[str]) -> float:
    """1.0 if any normalised gold occurs as a substring of the normalised prediction (Search-R1 "subem").

    An empty normalised gold never matches (it would be a substring of everything).
    """
    _check_pred(pred)
    norm_pred = normalize_answer(pred)
    for gold in _gold_list(golds):
        norm_gold = normalize_answer(gold)
        if norm_gold and norm_gold in norm_pred:
            return 1.0
    return 0.0


def _f1_single(pred: str, gold: str) -> float:
    norm_pred, norm_gold = normalize_answer(pred), normalize_answer(gold)
    # HotpotQA rule: yes/no/noanswer answers score only when they match exactly.
    if (norm_pred in _SPECIAL_ANSWERS or norm_gold in _SPECIAL_ANSWERS) and norm_pred != norm_gold:
        return 0.0
    pred_tokens, gold_tokens = norm_pred.split(), norm_gold.split()
    if not pred_tokens or not gold_tokens:
        # SQuAD v2 convention: two empty answers agree, one empty answer scores 0.
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(pred_tokens)
    recall = overlap / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(pred: str, golds: str | Sequence[str]) -> float:
    """Token-level F1 between prediction and gold (max over golds), with the HotpotQA yes/no rule."""
    _check_pred(pred)
    return max(_f1_single(pred, g) for g in _gold_list(golds))
