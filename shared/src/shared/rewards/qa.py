"""QA answer scores: exact match, substring exact match and token F1 under SQuAD normalisation.

These follow the official SQuAD v1.1 evaluation script (lower-case, strip punctuation, drop the articles
a/an/the, collapse whitespace) and the HotpotQA rule for F1: when either the normalised prediction or the
normalised gold is one of "yes", "no", "noanswer" and the two differ, F1 is 0 (token overlap would otherwise
give partial credit to "no" vs "no answer"). Every score takes one gold string or a list of gold strings and
returns the maximum over the golds, as in SQuAD/Natural Questions/HotpotQA evaluation.

F1 is computed from integer token counts: `f1_counts` gives (overlap, n_pred, n_gold) and `f1_from_counts` the
value 2·overlap/(n_pred + n_gold) in one division, so an F1 that is exactly 1/5 is the double nearest 0.2 (the
textbook 2PR/(P+R) gives 0.19999999999999998 for 1 predicted token, 9 gold tokens, 1 shared, and ⌊5·F1⌋ bins it
as 0). `f1_bin` bins with integer arithmetic only.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from fractions import Fraction

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


def _counts_single(pred: str, gold: str) -> tuple[int, int, int]:
    norm_pred, norm_gold = normalize_answer(pred), normalize_answer(gold)
    pred_tokens, gold_tokens = norm_pred.split(), norm_gold.split()
    # HotpotQA rule: yes/no/noanswer answers score only when they match exactly (overlap forced to 0).
    if (norm_pred in _SPECIAL_ANSWERS or norm_gold in _SPECIAL_ANSWERS) and norm_pred != norm_gold:
        return 0, len(pred_tokens), len(gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    return sum(common.values()), len(pred_tokens), len(gold_tokens)


def _exact_f1(counts: tuple[int, int, int]) -> Fraction:
    overlap, n_pred, n_gold = counts
    if n_pred + n_gold == 0:
        return Fraction(1)  # SQuAD v2 convention: two empty answers agree (one empty answer scores 0)
    return Fraction(2 * overlap, n_pred + n_gold)


def f1_counts(pred: str, golds: str | Sequence[str]) -> tuple[int, int, int]:
    """(overlap, n_pred, n_gold) of normalised tokens against the gold with the highest F1 (the first on ties).

    overlap counts shared tokens with multiplicity; under the HotpotQA yes/no rule it is 0."""
    _check_pred(pred)
    best: tuple[int, int, int] | None = None
    for gold in _gold_list(golds):
        counts = _counts_single(pred, gold)
        if best is None or _exact_f1(counts) > _exact_f1(best):
            best = counts
    assert best is not None  # _gold_list refuses an empty list
    return best


def _check_counts(overlap: int, n_pred: int, n_gold: int) -> None:
    if not all(isinstance(x, int) and x >= 0 for x in (overlap, n_pred, n_gold)):
        raise ValueError(f"F1 counts must be integers >= 0, got {(overlap, n_pred, n_gold)}")
    if overlap > min(n_pred, n_gold):
        raise ValueError(f"overlap {overlap} exceeds n_pred {n_pred} or n_gold {n_gold}")


def f1_from_counts(overlap: int, n_pred: int, n_gold: int) -> float:
    """Token F1 = 2·overlap / (n_pred + n_gold), the correctly rounded value of the exact fraction (1.0 when both
    answers are empty)."""
    _check_counts(overlap, n_pred, n_gold)
    return float(_exact_f1((overlap, n_pred, n_gold)))


def f1_bin(overlap: int, n_pred: int, n_gold: int, bins: int = 5) -> int:
    """⌊bins · F1⌋ from the counts in integer arithmetic (F1 = 1 lands in bin `bins`)."""
    _check_counts(overlap, n_pred, n_gold)
    if not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be an integer >= 1, got {bins!r}")
    f1 = _exact_f1((overlap, n_pred, n_gold))
    return (bins * f1.numerator) // f1.denominator


def f1_score(pred: str, golds: str | Sequence[str]) -> float:
    """Token-level F1 between prediction and gold (max over golds), with the HotpotQA yes/no rule."""
    return f1_from_counts(*f1_counts(pred, golds))
