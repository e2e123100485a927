"""Golden tests for DOME's pure parts: docID schemes, trie, closed-form updates, hybrid-label loss."""

import math

import numpy as np
import pytest
import torch
from dome.closed_form import null_space_basis, null_space_update, plain_update
from dome.docids import DocIdScheme, atomic_ids, naive_ids, semantic_ids
from dome.losses import hybrid_label_loss, soft_targets
from dome.trie import DocIdTrie


def test_semantic_ids_unique_and_bounded():
    rng = np.random.default_rng(0)
    # three tight blobs plus duplicates: k-means must still give every document its own docID
    emb = np.concatenate([rng.normal(c, 0.05, size=(40, 8)) for c in (-2.0, 0.0, 2.0)] + [np.ones((15, 8))])
    ids = [f"d{i}" for i in range(len(emb))]
    scheme = semantic_ids(ids, emb, k=4, c=5, seed=0)
    docids = list(scheme.ids.values())
    assert len(set(docids)) == len(ids) == len(docids)
    assert all(max(d[:-1], default=0) < 4 and d[-1] < 5 for d in docids)
    # no docID is a prefix of another one (leaves only)
    s = set(docids)
    assert not any(d[:j] in s for d in docids for j in range(1, len(d)))


def test_semantic_ids_new_docs_route_to_nearest_leaf():
    rng = np.random.default_rng(1)
    emb = np.concatenate([rng.normal(c, 0.05, size=(12, 4)) for c in (-3.0, 3.0)])
    scheme = semantic_ids([f"d{i}" for i in range(24)], emb, k=2, c=4)
    new = scheme.add(["n0"], emb[:1] + 0.01)
    assert new["n0"][0] == scheme.ids["d0"][0]
    assert len(set(scheme.ids.values())) == 25
    again = DocIdScheme.from_dict(scheme.to_dict())
    assert again.ids == scheme.ids
    with pytest.raises(ValueError, match="already have docIDs"):
        scheme.add(["d3"], emb[:1])


def test_atomic_and_naive_ids():
    a = atomic_ids(["x", "y", "z"])
    assert a.ids == {"x": (0,), "y": (1,), "z": (2,)}
    assert a.symbol_tokens() == ["<doc_0>", "<doc_1>", "<doc_2>"]
    n = naive_ids([f"d{i}" for i in range(12)])
    assert n.ids["d3"] == (3,) and n.ids["d11"] == (1, 1)
    assert n.symbol_tokens() == [f"<id_{i}>" for i in range(10)]


def test_trie_validity_and_eos_for_complete_ids():
    eos = 1
    trie = DocIdTrie([[5, 6], [5, 6, 7], [8]], eos_id=eos)
    assert trie.allowed([]) == [5, 8]
    assert trie.allowed([5]) == [6]
    assert trie.allowed([5, 6]) == [eos, 7]  # "56" is complete and also a prefix of "567"
    assert trie.allowed([8]) == [eos]
    assert trie.allowed([9]) == []
    assert trie.contains([5, 6]) and not trie.contains([5])
    fn = trie.prefix_allowed_tokens_fn(decoder_start_id=0)
    assert fn(0, torch.tensor([0, 5, 6])) == [eos, 7]
    assert fn(0, torch.tensor([0, 8, eos])) == [eos]
    with pytest.raises(ValueError, match="EOS"):
        trie.add([3, eos])


def test_plain_update_golden_2x2():
    # W = 0, one key e1, C0 = I, λ = 1: ΔW = r e1ᵀ (I + e1 e1ᵀ)⁻¹ = [r/2, 0]
    w = torch.zeros(1, 2, dtype=torch.float64)
    k = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    v = torch.tensor([[3.0]], dtype=torch.float64)
    dw = plain_update(w, k, v, torch.eye(2, dtype=torch.float64), lam=1.0)
    assert torch.allclose(dw, torch.tensor([[1.5, 0.0]], dtype=torch.float64))


def _random_layer_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    d_in, d_out = 32, 12
    w = torch.randn(d_out, d_in, generator=g, dtype=torch.float64)
    basis = torch.linalg.qr(torch.randn(d_in, d_in, generator=g, dtype=torch.float64))[0]
    k0 = basis[:, :16] @ torch.randn(16, 200, generator=g, dtype=torch.float64)  # old keys span 16 dims
    k1 = torch.randn(d_in, 5, generator=g, dtype=torch.float64)
    v1 = torch.randn(d_out, 5, generator=g, dtype=torch.float64)
    return w, k0, k1, v1


def test_null_space_update_maps_keys_and_preserves_old_subspace():
    w, k0, k1, v1 = _random_layer_problem()
    cov = k0 @ k0.T / k0.shape[1]
    q = null_space_basis(cov, energy=1e-8)
    assert q.shape == (32, 16)
    dw = null_space_update(w, k1, v1, q, alpha=1e-10)
    assert torch.allclose((w + dw) @ k1, v1, atol=1e-6)
    assert torch.allclose(dw @ k0, torch.zeros(12, 200, dtype=torch.float64), atol=1e-8)
    # earlier edited keys also enter the solve and are kept as they were (up to the ridge)
    kp = k1[:, :2]
    dw2 = null_space_update(w + dw, k1[:, 2:] + 0.3, v1[:, 2:], q, prev_keys=kp, alpha=1e-10)
    assert torch.allclose((w + dw + dw2) @ kp, v1[:, :2], atol=1e-5)


def test_plain_update_maps_keys_and_solves_normal_equations():
    w, k0, k1, v1 = _random_layer_problem()
    cov = k0 @ k0.T / k0.shape[1] + 1e-9 * torch.eye(32, dtype=torch.float64)
    dw = plain_update(w, k1, v1, cov, lam=1e-6)
    assert torch.allclose((w + dw) @ k1, v1, atol=1e-3)
    # at a large λ the update trades the new keys against the old ones: ΔW (λ C0 + K1 K1ᵀ) = R K1ᵀ
    dw = plain_update(w, k1, v1, cov, lam=0.5)
    resid = v1 - w @ k1
    assert torch.allclose(dw @ (0.5 * cov + k1 @ k1.T), resid @ k1.T, atol=1e-8)


def test_closed_form_shape_errors():
    w = torch.zeros(3, 4)
    with pytest.raises(ValueError, match="keys have dim"):
        plain_update(w, torch.zeros(5, 2), torch.zeros(3, 2), torch.eye(5), 1.0)
    with pytest.raises(ValueError, match="targets shape"):
        null_space_update(w, torch.zeros(4, 2), torch.zeros(2, 2), torch.eye(4))


def test_hybrid_loss_hand_example():
    logits = torch.zeros(1, 1, 3)  # p = (1/3, 1/3, 1/3)
    labels = torch.tensor([[0]])
    base = torch.tensor([[[math.log(2.0), 0.0, 0.0]]])  # unedited p0 = (1/2, 1/4, 1/4)
    soft = soft_targets(base, labels, torch.ones(3, dtype=torch.bool), temperature=1.0, hard_weight=0.5)
    assert torch.allclose(soft, torch.tensor([[[0.75, 0.125, 0.125]]]))
    delta = torch.tensor([[3.0, 4.0]])
    out = hybrid_label_loss(logits, labels, soft, delta, lam=1.5, mu=0.01)
    hard = math.log(3.0)
    kl = 0.75 * math.log(2.25) + 0.25 * math.log(0.375)
    assert out["hard"].item() == pytest.approx(hard, abs=1e-6)
    assert out["soft"].item() == pytest.approx(1.5 * (2 / 3) * kl, abs=1e-6)  # λ = λ0 (1 − p_label)
    assert out["norm"].item() == pytest.approx(0.25, abs=1e-6)
    assert out["loss"].item() == pytest.approx(hard + kl + 0.25, abs=1e-6)


def test_soft_targets_respect_allowed_tokens():
    base = torch.tensor([[[5.0, 0.0, 0.0, 0.0]]])
    allowed = torch.tensor([False, True, True, False])
    soft = soft_targets(base, torch.tensor([[1]]), allowed, hard_weight=0.0)
    assert torch.allclose(soft, torch.tensor([[[0.0, 0.5, 0.5, 0.0]]]))
