"""Golden values of the branching scores on hand-made top-k distributions."""

import math

import pytest
import torch
from rose.scores import (
    branch_score,
    normalize_rows,
    scores_from_top_logprobs,
    semantic_concentration,
    semantic_dispersion,
    truncated_entropy,
)

E1, E2 = [1.0, 0.0], [0.0, 1.0]


def t(x):
    return torch.tensor(x, dtype=torch.float64)


def test_identical_candidates_have_no_semantic_spread():
    p, e = t([0.5, 0.5]), t([E1, E1])
    assert truncated_entropy(p).item() == pytest.approx(math.log(2))
    assert semantic_concentration(p, e).item() == pytest.approx(0.5)  # ||e||^2 - (0.25 + 0.25)
    assert semantic_dispersion(p, e).item() == pytest.approx(0.0)
    assert branch_score(p, e, "semantic").item() == pytest.approx(0.0)
    assert branch_score(p, e, "cosine").item() == pytest.approx(0.0)
    assert branch_score(p, e, "entropy").item() == pytest.approx(math.log(2))
    assert branch_score(p, e, "authors").item() == pytest.approx(-0.5 * math.log(2))


def test_orthogonal_candidates_score_their_entropy():
    p, e = t([0.5, 0.5]), t([E1, E2])
    assert semantic_concentration(p, e).item() == pytest.approx(0.0)
    assert semantic_dispersion(p, e).item() == pytest.approx(1.0)
    assert branch_score(p, e).item() == pytest.approx(math.log(2))
    assert branch_score(p, e, "authors").item() == pytest.approx(0.0)


def test_mixed_three_candidates_by_hand():
    # cos(1,2)=0, cos(1,3)=1, cos(2,3)=0: F = 2*0.5*0.2 = 0.2; pair mass 1 - 0.38 = 0.62
    p, e = t([0.5, 0.3, 0.2]), t([E1, E2, E1])
    h = -(0.5 * math.log(0.5) + 0.3 * math.log(0.3) + 0.2 * math.log(0.2))
    assert semantic_concentration(p, e).item() == pytest.approx(0.2)
    assert semantic_dispersion(p, e).item() == pytest.approx(21 / 31)
    assert branch_score(p, e).item() == pytest.approx(h * 21 / 31)
    assert branch_score(p, e, "authors").item() == pytest.approx(-0.2 * h)


def test_truncated_mass_still_gives_zero_spread_for_identical_candidates():
    # top-k holding 0.8 of the mass: pair mass is 0.64 - 0.32, not 1 - 0.32
    p, e = t([0.4, 0.4]), t([E1, E1])
    assert semantic_dispersion(p, e).item() == pytest.approx(0.0)
    assert truncated_entropy(p).item() == pytest.approx(-0.8 * math.log(0.4))


def test_single_candidate_scores_zero():
    p, e = t([1.0]), t([E1])
    assert branch_score(p, e).item() == 0.0
    assert branch_score(p, e, "cosine").item() == 0.0


def test_batched_positions_and_normalisation():
    emb = torch.tensor([[2.0, 0.0], [0.0, 3.0], [5.0, 0.0]])
    assert torch.allclose(normalize_rows(emb)[2], torch.tensor([1.0, 0.0]))
    half = math.log(0.5)
    scores = scores_from_top_logprobs([[(0, half), (1, half)], [(0, half), (2, half)], [(1, 0.0)]], emb)
    assert scores == pytest.approx([math.log(2), 0.0, 0.0], abs=1e-6)
    assert scores_from_top_logprobs([], emb) == []


def test_bad_inputs_are_named():
    p, e = t([0.5, 0.5]), t([E1, E2])
    with pytest.raises(ValueError, match="unknown branching score"):
        branch_score(p, e, "banana")
    with pytest.raises(ValueError, match="non-negative"):
        truncated_entropy(t([-0.1, 0.5]))
    with pytest.raises(ValueError, match="feature dim"):
        semantic_concentration(p, t([E1]))
