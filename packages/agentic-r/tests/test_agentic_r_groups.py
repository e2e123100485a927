"""Golden tests for training-group construction: sorting, thresholds, ties, at most 3 positives, 15 negatives."""

import random

from agentic_r.groups import Candidate, build_group, needs_global, sort_candidates


def _cands(spec):
    return [Candidate(f"d{i}", u_loc, u_glob, rank=i) for i, (u_loc, u_glob) in enumerate(spec)]


def test_sort_by_global_then_local_then_rank():
    c = _cands([(0.9, 0.0), (0.7, 1.0), (0.8, 1.0), (0.8, 1.0), (1.0, None)])
    assert [x.doc_id for x in sort_candidates(c)] == ["d2", "d3", "d1", "d4", "d0"]


def test_group_positives_are_ties_with_the_best_at_most_three():
    # five candidates tie on (1, 0.9); 16 others
    spec = [(0.9, 1.0)] * 5 + [(0.95, 0.0)] + [(0.5, 1.0)] * 2 + [(0.2, None)] * 13
    group, reason = build_group("q", _cands(spec), random.Random(0))
    assert reason == "ok"
    assert group.positives == ["d0", "d1", "d2"]  # ties kept in rank order, capped at 3
    assert len(group.negatives) == 15
    # negatives come from the 16 non-tied candidates: never a tied one
    assert not set(group.negatives) & {f"d{i}" for i in range(5)}
    assert group.meta == {"best_u_loc": 0.9, "best_u_glob": 1.0, "tied": 5}


def test_local_tie_break_makes_single_positive():
    spec = [(0.8, 1.0), (0.9, 1.0)] + [(0.1, 0.0)] * 15
    group, reason = build_group("q", _cands(spec), random.Random(0))
    assert reason == "ok" and group.positives == ["d1"]
    assert len(group.negatives) == 15 and len(set(group.negatives)) == 15
    assert set(group.negatives) <= {"d0"} | {f"d{i}" for i in range(2, 17)}


def test_skip_when_best_has_no_global_utility():
    spec = [(1.0, 0.0)] * 3 + [(0.9, None)] * 17
    assert build_group("q", _cands(spec), random.Random(0)) == (None, "no_global")


def test_skip_when_best_local_below_threshold():
    # the best by global utility has u_loc 0.59 < 0.6: skipped even though others have high u_loc
    spec = [(0.59, 1.0), (0.95, 0.0)] + [(0.1, 0.0)] * 18
    assert build_group("q", _cands(spec), random.Random(0)) == (None, "low_local")


def test_threshold_is_inclusive_at_point_six():
    spec = [(0.6, 1.0)] + [(0.1, 0.0)] * 15
    group, reason = build_group("q", _cands(spec), random.Random(0))
    assert reason == "ok" and group.positives == ["d0"]
    assert sorted(group.negatives, key=lambda d: int(d[1:])) == [f"d{i}" for i in range(1, 16)]


def test_too_few_negatives():
    spec = [(1.0, 1.0)] + [(0.1, 0.0)] * 14  # 14 negatives < 15
    assert build_group("q", _cands(spec), random.Random(0)) == (None, "few_negatives")
    spec = [(1.0, 1.0)] * 6 + [(0.1, 0.0)] * 14  # 20 candidates but 6 tied: still 14 negatives
    assert build_group("q", _cands(spec), random.Random(0)) == (None, "few_negatives")
    assert build_group("q", [], random.Random(0)) == (None, "empty")


def test_needs_global_only_at_or_above_threshold():
    assert needs_global(0.6) and needs_global(1.0)
    assert not needs_global(0.59)
