"""Golden test for the InfoNCE loss on a 2-query x 3-passage example (tau = 0.01), and the batch layout."""

import math

import pytest
import torch
from agentic_r.loss import batch_layout, info_nce


def test_info_nce_two_by_three_golden():
    # q1 = (1, 0), q2 = (0, 1); group 1 = (pos, neg, neg) for q1, group 2 = (pos, neg, neg) for q2.
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.02, 0.0], [0.01, 0.0], [0.0, 0.01], [0.0, 0.03], [0.01, 0.01], [0.02, 0.0]])
    # logits = q.p / 0.01: q1 -> [2, 1, 0, 0, 1, 2] (target 0), q2 -> [0, 0, 1, 3, 1, 0] (target 3)
    e = math.e
    loss1 = math.log(2 * e**2 + 2 * e + 2) - 2
    loss2 = math.log(3 + 2 * e + e**3) - 3
    expected = (loss1 + loss2) / 2
    got = info_nce(q, p, torch.tensor([0, 3]), tau=0.01)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # each query against its own group only (no in-batch negatives): q1 -> [2, 1, 0], q2 -> [3, 1, 0]
    own = (math.log(e**2 + e + 1) - 2 + math.log(e**3 + e + 1) - 3) / 2
    alone = [info_nce(q[i : i + 1], p[3 * i : 3 * i + 3], torch.tensor([0]), tau=0.01) for i in (0, 1)]
    assert float(sum(alone) / 2) == pytest.approx(own, rel=1e-5)
    assert float(got) - float(sum(alone) / 2) == pytest.approx(expected - own, rel=1e-4)  # the other group's share


def test_batch_layout_deduplicates_shared_passages():
    doc_ids, targets = batch_layout([("a", ["b", "c"]), ("c", ["a", "d"])])
    assert doc_ids == ["a", "b", "c", "d"]
    assert targets == [0, 2]  # q2's positive "c" is one column, not a second copy that would be its negative


def test_info_nce_shape_errors():
    with pytest.raises(ValueError, match="targets must have shape"):
        info_nce(torch.zeros(2, 3), torch.zeros(4, 3), torch.tensor([0]))
    with pytest.raises(ValueError, match="expected query"):
        info_nce(torch.zeros(2, 3), torch.zeros(4, 2), torch.tensor([0, 1]))
