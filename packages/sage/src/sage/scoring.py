"""Fine-grained stability-aware scoring of preference pairs (SAGE step 2).

DPO's per-pair gradient is scaled by w = sigmoid(-m), m the implicit-reward margin. SAGE keeps, for every candidate
pair, the margin's running mean and spread over its recent evaluations, scores

    S = sigmoid(-mu) * |mu| / (s + eps)

(high for confident errors: mu << 0, stable), drops unstable pairs (s > tau_s) and trivial pairs
(sigmoid(-mu) < w_min, i.e. already learnt, near-zero gradient), and trains each step on the top-B pairs by S.
The score's exact form is reconstructed from the paper's abstract (see the package README, fidelity notes).
Everything here is plain Python so the formulas are tested on hand-made numbers.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def sigmoid(x: float) -> float:
    """Numerically stable logistic function."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def dpo_margin(
    policy_chosen: float, policy_rejected: float, ref_chosen: float, ref_rejected: float, beta: float
) -> float:
    """DPO implicit-reward margin m = beta * [(pi_w - ref_w) - (pi_l - ref_l)] on sequence log-probs."""
    return beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))


def gradient_weight(margin: float) -> float:
    """Per-pair DPO gradient weight sigmoid(-m): d(-log sigmoid(m))/dm = -sigmoid(-m)."""
    return sigmoid(-margin)


SCORE_FORMS = ("margin", "weight")


def stability_score(mean: float, std: float, eps: float, form: str = "margin") -> float:
    """S = sigmoid(-mu) * |mu| / (s + eps) (form "margin", the spec's inferred score) or
    S = sigmoid(-mu) / (s + eps) (form "weight").

    For mu > 0 the "margin" form grows with mu up to mu = 1.28 (where d/dmu [mu sigmoid(-mu)] = 0), so before the
    trivial filter cuts in (sigmoid(-mu) < w_min, mu > 1.39 at w_min = 0.2) it ranks pairs the policy already gets
    right above pairs near the boundary. The "weight" form decreases monotonically in mu: confident errors first,
    learnt pairs last, the spread dividing both.
    """
    if eps <= 0 and std <= 0:
        raise ValueError("stability_score: eps must be > 0 when the spread can be 0")
    if form == "margin":
        return gradient_weight(mean) * abs(mean) / (std + eps)
    if form == "weight":
        return gradient_weight(mean) / (std + eps)
    raise ValueError(f"stability_score: form must be one of {SCORE_FORMS}, got {form!r}")


@dataclass(frozen=True)
class MarginStats:
    """Running statistics of one pair's margin over its last `window` evaluations."""

    mean: float
    std: float
    count: int


class MarginTracker:
    """Per-pair window of the most recent margins; population mean and standard deviation (ddof = 0)."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"MarginTracker: window must be >= 1, got {window}")
        self.window = window
        self._history: dict[str, deque[float]] = {}

    def update(self, pair_id: str, margin: float) -> None:
        if not math.isfinite(margin):
            raise ValueError(f"MarginTracker: non-finite margin {margin!r} for pair {pair_id}")
        self._history.setdefault(pair_id, deque(maxlen=self.window)).append(float(margin))

    def update_many(self, pair_ids: Sequence[str], margins: Sequence[float]) -> None:
        if len(pair_ids) != len(margins):
            raise ValueError(f"MarginTracker: {len(pair_ids)} ids but {len(margins)} margins")
        for pid, m in zip(pair_ids, margins):
            self.update(pid, m)

    def stats(self, pair_id: str) -> MarginStats:
        values = self._history.get(pair_id)
        if not values:
            return MarginStats(mean=0.0, std=0.0, count=0)
        n = len(values)
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / n
        return MarginStats(mean=mean, std=math.sqrt(var), count=n)

    def retain(self, pair_ids: Iterable[str]) -> None:
        """Forget every pair not in `pair_ids` (pairs that left the candidate pool at a refresh)."""
        keep = set(pair_ids)
        for pid in list(self._history):
            if pid not in keep:
                del self._history[pid]

    def __len__(self) -> int:
        return len(self._history)

    def state_dict(self) -> dict[str, list[float]]:
        """Plain copy of every pair's window, for checkpoints."""
        return {pid: list(values) for pid, values in self._history.items()}

    def load_state_dict(self, state: dict[str, list[float]]) -> None:
        self._history = {pid: deque(values, maxlen=self.window) for pid, values in state.items()}


@dataclass(frozen=True)
class ScoringSettings:
    """Knobs of the score and filters. `prior_std` stands in for the spread of pairs seen fewer than `min_obs`
    times (inferred: the abstract does not say how new pairs are scored)."""

    eps: float = 0.05
    unstable_std: float = 0.5
    trivial_weight: float = 0.2
    min_obs: int = 2
    prior_std: float = 0.25
    form: str = "margin"
    relative: bool = False  # margins and spreads in units of the candidates' RMS margin (see score_pairs)


@dataclass(frozen=True)
class PairScore:
    pair_id: str
    mean: float
    std: float
    count: int
    weight: float
    score: float
    unstable: bool
    trivial: bool
    tracked: bool = False  # spread measured over >= min_obs evaluations


def score_pair(pair_id: str, stats: MarginStats, settings: ScoringSettings) -> PairScore:
    """Score one pair from its margin statistics and flag it against both filters."""
    std = stats.std if stats.count >= settings.min_obs else settings.prior_std
    weight = gradient_weight(stats.mean)
    return PairScore(
        pair_id=pair_id,
        mean=stats.mean,
        std=std,
        count=stats.count,
        weight=weight,
        score=stability_score(stats.mean, std, settings.eps, settings.form),
        unstable=std > settings.unstable_std,
        trivial=weight < settings.trivial_weight,
        tracked=stats.count >= settings.min_obs,
    )


def margin_scale(stats: Sequence[MarginStats]) -> float:
    """Root mean square of the running margin means of the pairs evaluated at least once (0 when none is)."""
    means = [s.mean for s in stats if s.count > 0]
    return math.sqrt(sum(m * m for m in means) / len(means)) if means else 0.0


def score_pairs(tracker: MarginTracker, pair_ids: Sequence[str], settings: ScoringSettings) -> list[PairScore]:
    """Score and flag each pair. With `settings.relative`, every mean and spread is first divided by the
    candidates' RMS margin, so the thresholds (and `prior_std`) read in units of the run's typical margin rather
    than in absolute nats times beta: at toy scale margins stay far below the size where sigmoid(-mu) < 0.2."""
    stats = [tracker.stats(pid) for pid in pair_ids]
    if settings.relative:
        scale = margin_scale(stats)
        if scale > 0:
            stats = [MarginStats(st.mean / scale, st.std / scale, st.count) for st in stats]
    return [score_pair(pid, st, settings) for pid, st in zip(pair_ids, stats)]


@dataclass(frozen=True)
class Selection:
    """The pairs chosen for one step and what the filters did to the candidates."""

    pair_ids: list[str]
    n_candidates: int
    n_unstable: int
    n_trivial: int
    n_eligible: int
    n_filled: int
    mean_score: float
    n_tracked: int = 0  # candidates with at least min_obs margin evaluations (a measured spread, not the prior)
    chosen_margin: float = 0.0  # mean running margin mu of the chosen pairs (< 0: the step targets errors)

    @property
    def unstable_fraction(self) -> float:
        return self.n_unstable / self.n_candidates if self.n_candidates else 0.0

    @property
    def trivial_fraction(self) -> float:
        return self.n_trivial / self.n_candidates if self.n_candidates else 0.0


FILL_POLICIES = ("best_remaining", "none")


RANKS = ("score", "random")


def select_top(
    scores: Sequence[PairScore], batch_size: int, rng: random.Random, fill: str = "best_remaining",
    rank: str = "score",
) -> Selection:
    """Top-`batch_size` eligible pairs by score; ties broken at random (all scores are 0 before any update).

    `rank="random"` keeps the filters but takes the eligible pairs in random order (a diagnostic ablation that
    separates what the filters do from what the ranking does).

    A pair that is both unstable and trivial counts in both filter tallies. When fewer than `batch_size` pairs
    pass the filters, `fill="best_remaining"` tops the batch up with the best-scoring filtered pairs, unstable
    ones before trivial ones (a trivial pair costs compute for no gradient); `fill="none"` trains on fewer pairs.
    """
    if batch_size < 1:
        raise ValueError(f"select_top: batch_size must be >= 1, got {batch_size}")
    if fill not in FILL_POLICIES:
        raise ValueError(f"select_top: fill must be one of {FILL_POLICIES}, got {fill!r}")
    if rank not in RANKS:
        raise ValueError(f"select_top: rank must be one of {RANKS}, got {rank!r}")
    order = list(scores)
    rng.shuffle(order)  # random tie-break; sort below is stable
    if rank == "score":
        order.sort(key=lambda p: p.score, reverse=True)
    eligible = [p for p in order if not p.unstable and not p.trivial]
    chosen = eligible[:batch_size]
    n_filled = 0
    if len(chosen) < batch_size and fill == "best_remaining":
        rest = [p for p in order if p.unstable or p.trivial]
        rest.sort(key=lambda p: p.trivial)  # stable: keeps score order within each group
        extra = rest[: batch_size - len(chosen)]
        n_filled = len(extra)
        chosen = chosen + extra
    return Selection(
        pair_ids=[p.pair_id for p in chosen],
        n_candidates=len(order),
        n_unstable=sum(p.unstable for p in order),
        n_trivial=sum(p.trivial for p in order),
        n_eligible=len(eligible),
        n_filled=n_filled,
        mean_score=sum(p.score for p in chosen) / len(chosen) if chosen else 0.0,
        n_tracked=sum(p.tracked for p in order),
        chosen_margin=sum(p.mean for p in chosen) / len(chosen) if chosen else 0.0,
    )


def weight_stats(margins: Sequence[float], trivial_weight: float) -> dict[str, float]:
    """Statistics of the DPO gradient weights sigmoid(-m) of one trained batch.

    `trivial_fraction` is the share of trained pairs whose weight is below `trivial_weight` (compute spent on pairs that barely move the policy).
    """
    if not margins:
        raise ValueError("weight_stats: empty batch")
    w = [gradient_weight(m) for m in margins]
    n = len(w)
    mean = sum(w) / n
    std = math.sqrt(sum((x - mean) ** 2 for x in w) / n)
    return {
        "weight_mean": mean,
        "weight_std": std,
        "weight_min": min(w),
        "weight_max": max(w),
        "trivial_fraction": sum(x < trivial_weight for x in w) / n,
        "margin_mean": sum(margins) / n,
    }
