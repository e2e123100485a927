"""ARR's reward terms as pure functions, and their assembly on one episode's reasoner and verifier transcripts.

Terms (hand values in tests/test_arr_rewards.py):
- outcome: token F1 of a role's answer (`<answer>` of the reasoner, `<final_answer>` of the verifier) against the
  gold answers; `f1="hotpot"` is the shared `f1_score` (SQuAD normalisation, HotpotQA yes/no rule, exact from integer
  counts), `f1="release"` the release's `f1_check` (no yes/no rule, the float formula 2PR/(P+R)).
- adversarial bonus: b = min(floor(bins * F1), bins - 1) per role, Δ = b_reasoner - b_verifier; Δ > 0 adds Δ·w_out to
  the reasoner, Δ < 0 adds |Δ|·w_out to the verifier; only when both roles answered. With `exact_bins` the floor is
  taken as int(bins·F1 + 1e-9), so an F1 of exactly 1/5 lands in bin 1 even as the float 0.19999999999999998.
- process reward (the verifier, token level): zero unless the gold answer is in an `<information>` block the
  verifier saw. Otherwise each `<verify>` / `<response>` span gets clarity = exp(-mean entropy of its content tokens)
  × m (m = +1 if the span holds the gold, -1 if the preceding information held it but the span does not, else 0),
  on every content token; impact = the trend score of the reasoner's mean entropy over its last three `<think>`
  blocks, / 5; r_ver,t = F1_reasoner × clarity_t × impact × w_ver.
- presence flags: `per_span` (default, the spec's wording: the last information block before the span, and the
  span itself) or `sticky` (the release: once an earlier information block held the gold, later spans count it as
  in the documents; once an earlier span of a tag held it, later spans of that tag count as holding it).
- impact patterns: `release` (the release's branch order: every non-flat pattern of three blocks other than a
  strict decrease scores 1) or `intended` (peak 4 and valley 1.5 reachable; plateaus count as monotone).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.rewards.qa import f1_score, normalize_answer

PATTERN_SCORES = {"monotonic_decreasing": 5.0, "increase_then_decrease": 4.0, "flat": 2.0,
                  "decrease_then_increase": 1.5, "monotonic_increasing": 1.0}
ENTROPY_HELP = ("arr's process reward needs per-token entropies: generate both roles with entropy=True "
                "(GenRequest(..., entropy=True) / SamplingParams(entropy=True)) on a backend that returns them")


def release_f1(pred: str, golds: str | Sequence[str]) -> float:
    """The release's F1: SQuAD normalisation, no yes/no rule, the float formula 2PR/(P+R), max over golds."""
    golds = [golds] if isinstance(golds, str) else list(golds)
    pred_tokens = normalize_answer(pred).split()
    best = 0.0
    for gold in golds:
        gold_tokens = normalize_answer(gold).split()
        if not pred_tokens or not gold_tokens:
            f1 = float(pred_tokens == gold_tokens)
        else:
            same = sum(min(pred_tokens.count(w), gold_tokens.count(w)) for w in set(pred_tokens) & set(gold_tokens))
            if same == 0:
                f1 = 0.0
            else:
                p, r = same / len(pred_tokens), same / len(gold_tokens)
                f1 = 2 * p * r / (p + r)
        best = max(best, f1)
    return best


def outcome_f1(pred: str | None, golds: Sequence[str], mode: str = "hotpot") -> float:
    """F1 of an answer (0 when the role gave none)."""
    if pred is None:
        return 0.0
    if mode == "hotpot":
        return f1_score(pred, list(golds))
    if mode == "release":
        return release_f1(pred, list(golds))
    raise ValueError(f"unknown reward.f1 {mode!r}; known: hotpot, release")


def score_bin(f1: float, bins: int = 5, exact: bool = True) -> int:
    """min(floor(bins * F1), bins - 1); `exact` adds 1e-9 before the floor so k/bins lands in bin k."""
    raw = bins * f1 + (1e-9 if exact else 0.0)
    return min(int(raw), bins - 1)


def adversarial_bonus(f1_reasoner: float | None, f1_verifier: float | None, w_out: float = 1.0, bins: int = 5,
                      exact: bool = True) -> tuple[float, float]:
    """(bonus of the reasoner, bonus of the verifier); (0, 0) unless both roles answered (F1 not None)."""
    if f1_reasoner is None or f1_verifier is None:
        return 0.0, 0.0
    delta = score_bin(f1_reasoner, bins, exact) - score_bin(f1_verifier, bins, exact)
    if delta > 0:
        return delta * w_out, 0.0
    if delta < 0:
        return 0.0, -delta * w_out
    return 0.0, 0.0


def gold_in(text: str, golds: Sequence[str]) -> bool:
    """The release's containment test: a normalised gold answer occurs in the normalised text (empty golds never)."""
    norm = normalize_answer(text)
    return any(g and g in norm for g in (normalize_answer(x) for x in golds))


def clarity(entropies: Sequence[float]) -> float:
    """exp(-mean entropy) of a span's content tokens; 0 for an empty span (the release's convention)."""
    if len(entropies) == 0:
        return 0.0
    return math.exp(-sum(float(e) for e in entropies) / len(entropies))


def presence_multipliers(blocks: Sequence[tuple[str, str]], golds: Sequence[str], mode: str = "per_span",
                         tags: Sequence[str] = ("verify", "response")) -> list[int]:
    """m for each span of `tags` in `blocks` (the verifier transcript's `(tag, content)` blocks in order, information
    blocks included): +1 span holds the gold, -1 the preceding information held it but the span does not, 0 else."""
    if mode not in ("per_span", "sticky"):
        raise ValueError(f"unknown reward.presence {mode!r}; known: per_span, sticky")
    out: list[int] = []
    in_docs = False  # the gold in the last information block (sticky: in any block so far)
    held: dict[str, bool] = {t: False for t in tags}  # sticky: an earlier span of the tag held the gold
    for tag, content in blocks:
        if tag == "information":
            found = gold_in(content, golds)
            in_docs = (in_docs or found) if mode == "sticky" else found
        elif tag in tags:
            in_span = gold_in(content, golds) or (mode == "sticky" and held[tag])
            held[tag] = in_span
            out.append(1 if in_span else (-1 if in_docs else 0))
    return out


def _increasing(x: float, y: float, t: float) -> bool:
    return x < y - t


def _decreasing(x: float, y: float, t: float) -> bool:
    return x > y + t


def entropy_trend(means: Sequence[float], patterns: str = "release", threshold: float = 0.1) -> str:
    """The pattern of the last three block means (fewer: two compare once, one or none is flat)."""
    if patterns not in ("release", "intended"):
        raise ValueError(f"unknown reward.impact_patterns {patterns!r}; known: release, intended")
    xs = [float(m) for m in means]
    if len(xs) <= 1:
        return "flat"
    if len(xs) == 2:
        a, b = xs
        if _increasing(a, b, threshold):
            return "monotonic_increasing"
        if _decreasing(a, b, threshold):
            return "monotonic_decreasing"
        return "flat"
    a, b, c = xs[-3:]
    ab_inc, ab_dec = _increasing(a, b, threshold), _decreasing(a, b, threshold)
    bc_inc, bc_dec = _increasing(b, c, threshold), _decreasing(b, c, threshold)
    ab_eq, bc_eq = not (ab_inc or ab_dec), not (bc_inc or bc_dec)
    if ab_eq and bc_eq:
        return "flat"
    if patterns == "release":
        # the release tests "not both decreasing" first, so everything but a strict decrease lands here
        if not (ab_dec and bc_dec):
            return "monotonic_increasing"
        return "monotonic_decreasing"
    if ab_inc and bc_dec:
        return "increase_then_decrease"
    if ab_dec and bc_inc:
        return "decrease_then_increase"
    if not (ab_inc or bc_inc):  # decreasing with at most one plateau
        return "monotonic_decreasing"
    return "monotonic_increasing"  # increasing with at most one plateau


def impact(think_means: Sequence[float], patterns: str = "release", threshold: float = 0.1) -> float:
    """Pattern score / 5 of the reasoner's `<think>` entropy means (no block: flat, 0.4)."""
    return PATTERN_SCORES[entropy_trend(think_means, patterns, threshold)] / 5.0


# ---- assembly on transcripts ------------------------------------------------------------------------------------
_ANSWER = {"reasoner": "answer", "verifier": "final_answer"}


def extract_answer(text: str, role: str) -> str | None:
    """The last `<answer>` (reasoner) or `<final_answer>` (verifier) content of a role's own text, stripped."""
    tag = _ANSWER[role]
    found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.DOTALL)
    return found[-1].strip() if found else None


@dataclass
class Span:
    """A tag's content tokens in a trajectory's response: [start, end), its text, and whether the role wrote it."""

    tag: str
    start: int
    end: int
    text: str
    generated: bool


@dataclass
class EpisodeScores:
    """Every term of one episode (both roles), for rewards and logs."""

    f1_reasoner: float
    f1_verifier: float | None
    bonus_reasoner: float = 0.0
    bonus_verifier: float = 0.0
    gold_seen: bool = False
    impact: float = 0.0
    multipliers: list[int] = field(default_factory=list)
    clarities: list[float] = field(default_factory=list)
    token_rewards: list[float] = field(default_factory=list)  # r_ver,t over the verifier's response ids

    @property
    def reasoner_total(self) -> float:
        return self.f1_reasoner + self.bonus_reasoner

    @property
    def verifier_total(self) -> float:
        return (self.f1_verifier or 0.0) + self.bonus_verifier


def trajectory_spans(traj: Any, tokenizer: Any, tags: Sequence[str]) -> list[Span]:
    """Complete tag blocks of a trajectory's response with their token ranges (`shared.rollout.spans`); a span is
    `generated` when every token of it has loss mask 1 (the role wrote it), so text another role or the environment
    put into the transcript never counts as the role's own span."""
    from shared.rollout.spans import tag_token_spans

    out = []
    for s in tag_token_spans(traj, tokenizer, tags, content_only=True):
        lo, hi = s.start, max(s.end, s.start)
        generated = hi > lo and all(traj.loss_mask[i] == 1 for i in range(lo, hi))
        out.append(Span(s.tag, lo, hi, s.text, generated))
    return out


def span_entropies(traj: Any, span: Span) -> list[float]:
    if traj.entropies is None:
        raise ValueError(ENTROPY_HELP)
    return [float(x) for x in traj.entropies[span.start:span.end]]


def score_episode(reasoner: Any, verifier: Any | None, golds: Sequence[str], tokenizer: Any,
                  settings: Any, reasoner_answer: str | None = None,
                  verifier_answer: str | None = None) -> EpisodeScores:
    """All reward terms of one episode from the two role trajectories (`verifier` None: the reasoner alone).

    `settings` is a `RewardSettings`. Answers default to the last `<answer>` / `<final_answer>` the role generated.
    Raises ValueError when a needed entropy column is missing (see ENTROPY_HELP)."""
    golds = list(golds)
    if not golds:
        raise ValueError("score_episode: no gold answers")
    s = settings
    if reasoner_answer is None:
        reasoner_answer = extract_answer(_own_text(reasoner, tokenizer), "reasoner")
    f1_r = outcome_f1(reasoner_answer, golds, s.f1)
    if verifier is None:
        return EpisodeScores(f1_reasoner=f1_r, f1_verifier=None)
    if verifier_answer is None:
        verifier_answer = extract_answer(_own_text(verifier, tokenizer), "verifier")
    f1_v = outcome_f1(verifier_answer, golds, s.f1) if verifier_answer is not None else None
    bonus_r, bonus_v = adversarial_bonus(f1_r if reasoner_answer is not None else None, f1_v, s.w_out, s.bins,
                                         s.exact_bins)
    out = EpisodeScores(f1_reasoner=f1_r, f1_verifier=f1_v, bonus_reasoner=bonus_r, bonus_verifier=bonus_v,
                        token_rewards=[0.0] * len(verifier.response_ids))
    if verifier.entropies is None and any(verifier.loss_mask):
        raise ValueError(ENTROPY_HELP)
    # the release computes the process term only when both roles answered
    if reasoner_answer is None or verifier_answer is None or s.w_ver == 0:
        return out
    spans = trajectory_spans(verifier, tokenizer, ("information", "verify", "response"))
    docs = [sp for sp in spans if sp.tag == "information" and not sp.generated]
    out.gold_seen = any(gold_in(sp.text, golds) for sp in docs)
    if not out.gold_seen:
        return out
    own = [sp for sp in spans if sp.tag != "information" and sp.generated]
    blocks = [(sp.tag, sp.text) for sp in spans if (sp.tag == "information" and not sp.generated) or sp in own]
    out.multipliers = presence_multipliers(blocks, golds, s.presence)
    if reasoner.entropies is None and any(reasoner.loss_mask):
        raise ValueError(ENTROPY_HELP)
    thinks = [sp for sp in trajectory_spans(reasoner, tokenizer, ("think",)) if sp.generated]
    means = [sum(e) / len(e) for e in (span_entropies(reasoner, sp) for sp in thinks) if e]
    out.impact = impact(means, s.impact_patterns, s.impact_threshold)
    for sp, m in zip(own, out.multipliers):
        c = clarity(span_entropies(verifier, sp)) * m
        out.clarities.append(c)
        value = f1_r * c * out.impact * s.w_ver
        for t in range(sp.start, sp.end):
            out.token_rewards[t] = value
    return out


def _own_text(traj: Any, tokenizer: Any) -> str:
    """The text a role generated itself (mask-1 runs joined), so answers quoted in observations never count."""
    from shared.rollout.spans import segments

    return "".join(seg.text for seg in segments(traj, tokenizer) if seg.kind == "policy")


def golds_of(record: Mapping[str, Any]) -> list[str]:
    """The record's gold answers (validated by `arr.data.check_record`)."""
    return [str(g) for g in record["golden_answers"]]
