"""Closed-form key-value updates of a linear layer (MEMIT and its null-space-projected AlphaEdit variant).

A linear layer maps keys k (columns of K, d_in x n) to values W k (d_out). To make it map new keys K1 to targets
V1 while preserving what it does on old keys K0:
- plain (MEMIT): ΔW = R K1ᵀ (λ C0 + K1 K1ᵀ)⁻¹ with R = V1 − W K1 and C0 the old keys' second moment;
- null-space (AlphaEdit): restrict the update to the approximate null space of C0 (basis Q, P = Q Qᵀ), so
  ΔW k0 = 0 for every old key k0 in the preserved subspace:
  ΔW = R K̃1ᵀ (K̃1 K̃1ᵀ + K̃p K̃pᵀ + α I)⁻¹ Qᵀ with K̃ = Qᵀ K, Kp the keys of earlier edits (kept as they were).
Both are computed in float64 for stability; the null space is spanned by the eigenvectors of C0 with the smallest
eigenvalues that together hold at most a given share of its trace (the old keys' energy).
"""

from __future__ import annotations

import torch


def null_space_basis(cov: torch.Tensor, energy: float = 1e-3) -> torch.Tensor:
    """Orthonormal basis (d x m) of the directions that carry almost none of the old keys' energy.

    The eigenvectors of `cov` (d x d, PSD) are taken from the smallest eigenvalue up while their eigenvalues sum to
    at most `energy` times the trace, so old keys keep at least 1 − `energy` of their energy outside the basis.
    """
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"null_space_basis: covariance must be square, got shape {tuple(cov.shape)}")
    evals, evecs = torch.linalg.eigh(cov.double())
    evals = evals.clamp_min(0.0)
    total = float(evals.sum())
    if total <= 0:
        return evecs
    keep = torch.cumsum(evals, 0) <= energy * total
    return evecs[:, keep]


def plain_update(
    weight: torch.Tensor, keys: torch.Tensor, targets: torch.Tensor, cov: torch.Tensor, lam: float, ridge: float = 0.0
) -> torch.Tensor:
    """MEMIT closed form: ΔW = (V1 − W K1) K1ᵀ (λ C0 + K1 K1ᵀ + ridge·I)⁻¹. W (o, i), K1 (i, n), V1 (o, n), C0 (i, i).

    The ridge keeps the solve defined when C0 comes from fewer keys than the layer has inputs.
    """
    _check(weight, keys, targets)
    w, k, v = weight.double(), keys.double(), targets.double()
    resid = v - w @ k
    a = lam * cov.double() + k @ k.T + ridge * torch.eye(k.shape[0], dtype=torch.float64)
    # solve from the right: ΔW A = R K1ᵀ  <=>  A ΔWᵀ = K1 Rᵀ (A symmetric)
    return torch.linalg.solve(a, k @ resid.T).T.to(weight.dtype)


def null_space_update(
    weight: torch.Tensor,
    keys: torch.Tensor,
    targets: torch.Tensor,
    basis: torch.Tensor,
    prev_keys: torch.Tensor | None = None,
    alpha: float = 1e-4,
) -> torch.Tensor:
    """AlphaEdit closed form in the null-space basis Q (i, m): the update is zero on the orthogonal complement of Q."""
    _check(weight, keys, targets)
    if basis.shape[0] != keys.shape[0]:
        raise ValueError(f"null_space_update: basis has {basis.shape[0]} rows, keys have {keys.shape[0]}")
    q = basis.double()
    w, k, v = weight.double(), keys.double(), targets.double()
    resid = v - w @ k
    kt = q.T @ k
    a = kt @ kt.T + alpha * torch.eye(q.shape[1], dtype=torch.float64)
    if prev_keys is not None and prev_keys.numel():
        kp = q.T @ prev_keys.double()
        a = a + kp @ kp.T
    coef = torch.linalg.solve(a, kt @ resid.T).T  # (o, m)
    return (coef @ q.T).to(weight.dtype)


def _check(weight: torch.Tensor, keys: torch.Tensor, targets: torch.Tensor) -> None:
    if weight.ndim != 2 or keys.ndim != 2 or targets.ndim != 2:
        raise ValueError("closed-form update: weight, keys and targets must be 2-D")
    if keys.shape[0] != weight.shape[1]:
        raise ValueError(f"closed-form update: keys have dim {keys.shape[0]}, layer input is {weight.shape[1]}")
    if targets.shape != (weight.shape[0], keys.shape[1]):
        raise ValueError(
            f"closed-form update: targets shape {tuple(targets.shape)} != ({weight.shape[0]}, {keys.shape[1]})"
        )
