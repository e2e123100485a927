"""Quality filters of synthesised questions (inferred from the paper's description), applied in this order:

1. `leak`: a gold answer occurs as whole words in the question (SQuAD-normalised);
2. `not_short`: the answer has more than `max_answer_words` words;
3. `not_unique`: the answer is a list ("A and B", "A, B") rather than one entity;
4. `duplicate`: the normalised question was already kept (first one wins);
5. `invalid`: the validity check says no: `rule` (a question of at least four words ending in "?"), or `judge`
   (the judge endpoint's [[VALID]] / [[INVALID]] verdict); `none` skips it.
Every drop is counted per level in the stage's stats ("<level>:<reason>").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from shared.rewards.qa import normalize_answer
from shared.stages import DropStats

from dr9k.judge import contains_answer_anywhere

_LIST = re.compile(r",|\band\b|;", re.IGNORECASE)


def drop_reason(row: Mapping[str, Any], max_answer_words: int) -> str | None:
    """The first rule-based reason (1-3 above) to drop a row, or None."""
    golds = [str(g) for g in row["golden_answers"]]
    if any(contains_answer_anywhere(row["question"], g) for g in golds):
        return "leak"
    if len(golds[0].split()) > max_answer_words:
        return "not_short"
    if _LIST.search(golds[0]):
        return "not_unique"
    return None


def rule_valid(row: Mapping[str, Any]) -> bool:
    question = row["question"].strip()
    return question.endswith("?") and len(question.split()) >= 4


def apply_filters(rows: Sequence[Mapping[str, Any]], settings: Any, stats: DropStats,
                  judge_valid: Callable[[list[Mapping[str, Any]]], list[bool]] | None = None) -> list[dict]:
    """The rows that pass every filter (module docstring), in order; `judge_valid(rows) -> [bool]` is the
    validity judge (needed when `settings.validity == "judge"`)."""
    kept, seen = [], set()
    for row in rows:
        reason = drop_reason(row, settings.max_answer_words)
        key = normalize_answer(row["question"])
        if reason is None and settings.dedup and key in seen:
            reason = "duplicate"
        if reason is not None:
            stats.drop(f"{row['level']}:{reason}")
            continue
        seen.add(key)
        kept.append(dict(row))
    if settings.validity == "rule":
        valid = [rule_valid(r) for r in kept]
    elif settings.validity == "judge":
        if judge_valid is None:
            raise ValueError("filters.validity=judge needs the judge endpoint")
        valid = judge_valid(kept) if kept else []
        if len(valid) != len(kept):
            raise ValueError(f"validity judge answered {len(valid)} verdicts for {len(kept)} questions")
    else:
        valid = [True] * len(kept)
    out = []
    for row, ok in zip(kept, valid):
        if ok:
            out.append(row)
            stats.count(f"kept_{row['level']}")
        else:
            stats.drop(f"{row['level']}:invalid")
    stats.keep(len(out))
    return out
