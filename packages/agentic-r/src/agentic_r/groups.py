"""Training groups from labelled candidates: one positive plus sampled negatives per search turn.

Agentic-R sorts a turn's candidates by (global utility desc, local utility desc); the turn is skipped when the best
candidate has u_glob = 0 or u_loc < 0.6; the positives are the candidates tied with the best on both keys (at most
3 kept, in retriever rank order), the negatives are all the others (at least 15 needed, 15 sampled).

Only candidates with u_loc >= the local threshold can ever be positive, and the negatives are "all the others"
whatever their global utility, so global utility needs computing only for those candidates (`needs_global`): the
groups are exactly the ones the full labelling gives, at a fraction of the agent continuations.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_LOCAL = 0.6
MAX_POSITIVES = 3
NUM_NEGATIVES = 15


@dataclass
class Candidate:
    """One retrieved passage of a search turn with its utilities; u_glob None = not computed (counts as 0)."""

    doc_id: str
    u_loc: float
    u_glob: float | None = None
    rank: int = 0  # position in the retriever's top-k, breaks ties


@dataclass
class Group:
    query: str
    positives: list[str]
    negatives: list[str]
    meta: dict = field(default_factory=dict)


def needs_global(u_loc: float, min_local: float = MIN_LOCAL) -> bool:
    """Whether a candidate's global utility can change the group (see module docstring)."""
    return u_loc >= min_local


def sort_candidates(candidates: Sequence[Candidate]) -> list[Candidate]:
    """By u_glob desc, then u_loc desc, then retriever rank asc."""
    return sorted(candidates, key=lambda c: (-(c.u_glob or 0.0), -c.u_loc, c.rank))


def build_group(
    query: str,
    candidates: Sequence[Candidate],
    rng: random.Random,
    min_local: float = MIN_LOCAL,
    max_positives: int = MAX_POSITIVES,
    num_negatives: int = NUM_NEGATIVES,
) -> tuple[Group | None, str]:
    """(group, "ok") or (None, reason) with reason one of "empty", "no_global", "low_local", "few_negatives"."""
    if not candidates:
        return None, "empty"
    ordered = sort_candidates(candidates)
    best = ordered[0]
    if (best.u_glob or 0.0) <= 0.0:
        return None, "no_global"
    if best.u_loc < min_local:
        return None, "low_local"
    tied = [c for c in ordered if (c.u_glob or 0.0) == (best.u_glob or 0.0) and c.u_loc == best.u_loc]
    rest = [c for c in ordered if c not in tied]
    if len(rest) < num_negatives:
        return None, "few_negatives"
    positives = [c.doc_id for c in sorted(tied, key=lambda c: c.rank)[:max_positives]]
    negatives = [c.doc_id for c in rng.sample(rest, num_negatives)]
    meta = {"best_u_loc": best.u_loc, "best_u_glob": best.u_glob, "tied": len(tied)}
    return Group(query, positives, negatives, meta), "ok"
