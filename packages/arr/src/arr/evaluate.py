"""Test-time measures: EM/F1 of the reasoner's answer under the full protocol, and the verifier's rejection probe.

`evaluate_protocol`: one greedy episode per question (DropGold with the evaluation seed, so every row sees the same
evidence draws), the reasoner's `<answer>` scored by EM and F1 against the gold answers; `mean_turns` counts reasoner
turns, `generated_tokens` every role's generated tokens per question (ARR spends about twice the tokens of the
reasoner alone). Extra measures: the verifier's own F1, invalid-reply and early-final counts, the final generator's
F1 when enabled, and the in-protocol rejection rates of the verifier's search turns split by whether the documents
held the hop answer.

`probe`: the rejection probe of `arr.evidence.probe_items`: the verifier alone, greedy, on fixed (with / without gold
passage) contexts laid out exactly as in an episode; a reply without `<selected_doc>` is a rejection.
`reject_gap = reject_rate_no_answer - reject_rate_with_answer` (hop answer; the definition of the rows). The same
rates by whether the documents hold the question's *final* answer (the release's gate) go to `final_answer_rates`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.rewards.qa import exact_match

from arr.protocol import VERIFIER, VERIFIER_STOP, parse_verifier_reply, prompt, verifier_information
from arr.rewards import gold_in, golds_of, outcome_f1
from arr.warmstart import hop_subject

ROW_METRICS = ("em", "f1", "verifier_reject_rate_no_answer", "verifier_reject_rate_with_answer", "reject_gap",
               "mean_turns", "generated_tokens")


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def evaluate_protocol(cfg: Any, generators: Mapping[str, Any], evidence: Any, records: Sequence[Mapping[str, Any]],
                      verifier: bool, seed: int | None = None) -> dict[str, Any]:
    """Mean test measures of greedy episodes (see the module docstring) and per-item F1 (`per_item_f1`)."""
    from arr.train import joint_rollout

    seed = cfg.eval.seed if seed is None else seed
    rollout = joint_rollout(cfg, generators, evidence, records, n=1, seed=seed, temperature=cfg.eval.temperature,
                            verifier=verifier, entropy=False)
    em, f1, vf1, final_f1, turns, tokens = [], [], [], [], [], []
    invalid_v = early = invalid_r = 0
    accepted: dict[bool, list[bool]] = {True: [], False: []}
    for ep in rollout.episodes:
        log, golds = ep.result, golds_of(ep.record)
        em.append(exact_match(log.answer, golds) if log.answer is not None else 0.0)
        f1.append(outcome_f1(log.answer, golds, "hotpot"))
        if verifier:
            vf1.append(outcome_f1(log.verifier_answer, golds, "hotpot"))
        if cfg.protocol.final_generator:
            final_f1.append(outcome_f1(log.final_answer, golds, "hotpot"))
        turns.append(log.turns)
        tokens.append(sum(t.num_policy_tokens for trajs in ep.trajectories.values() for t in trajs))
        invalid_v += log.invalid_verifier
        invalid_r += log.invalid_reasoner
        early += log.early_final
        for v in log.verdicts:
            if v["accepted"] is not None:
                accepted[v["hop_in_docs"]].append(v["accepted"])
    n = max(1, len(rollout.episodes))
    out: dict[str, Any] = {"em": _mean(em), "f1": _mean(f1), "mean_turns": _mean(turns),
                           "generated_tokens": _mean(tokens), "invalid_reasoner_per_q": invalid_r / n,
                           "answered": sum(ep.result.answer is not None for ep in rollout.episodes) / n,
                           "per_item_f1": f1}
    if verifier:
        rej = {k: _mean([not a for a in v]) for k, v in accepted.items()}
        out.update(verifier_f1=_mean(vf1), invalid_verifier_per_q=invalid_v / n, early_final_per_q=early / n,
                   rollout_reject_no_answer=rej[False], rollout_reject_with_answer=rej[True],
                   rollout_searches=len(accepted[True]) + len(accepted[False]))
    if final_f1:
        out["final_generator_f1"] = _mean(final_f1)
    return out


def _probe_program(items: Sequence[Mapping[str, Any]], style: str, tokens: int):
    """A one-turn verifier episode per probe item, laid out as in `arr.protocol.episode_program`."""
    from shared.rollout.driver import GenRequest

    def program(ep):
        item = ep.record
        ep.start(VERIFIER, prompt(VERIFIER, item, style))
        ep.observe(VERIFIER, verifier_information(hop_subject(item["query"]), item["query"], item["docs"]))
        comp = yield GenRequest(VERIFIER, tokens, stop=VERIFIER_STOP, temperature=0.0)
        return parse_verifier_reply(comp.text, len(item["docs"]), answered=False)

    return program


def probe(cfg: Any, verifier_generator: Any, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Reject rates of the verifier on probe items (see the module docstring); `per_hop` pairs with/without."""
    from shared.rollout.driver import MultiRoleDriver

    if not items:
        raise ValueError("probe: no items")
    program = _probe_program(items, cfg.protocol.prompt_style, cfg.protocol.verifier_tokens)
    run = MultiRoleDriver({VERIFIER: verifier_generator}).run(program, items, n=1, seed=0)
    rejected = [not ep.result.accepted for ep in run.episodes]
    invalid = [not ep.result.valid for ep in run.episodes]
    by_class: dict[str, list[bool]] = {"with": [], "without": []}
    by_final: dict[bool, list[bool]] = {True: [], False: []}
    pairs: dict[tuple, dict[str, bool]] = {}
    for item, rej in zip(items, rejected):
        by_class[item["class"]].append(rej)
        texts = " ".join(str(d.get("contents", "")) for d in item["docs"])
        by_final[gold_in(texts, item["golden_answers"])].append(rej)
        pairs.setdefault((item["record_id"], item["hop"]), {})[item["class"]] = rej
    no, with_ = _mean(by_class["without"]), _mean(by_class["with"])
    return {"verifier_reject_rate_no_answer": no, "verifier_reject_rate_with_answer": with_,
            "reject_gap": None if no is None or with_ is None else no - with_,
            "invalid_rate": _mean(invalid),
            "final_answer_rates": {"reject_no_final_answer": _mean(by_final[False]),
                                   "reject_with_final_answer": _mean(by_final[True]),
                                   "items_with_final_answer": len(by_final[True])},
            "per_hop": [[float(p["without"]), float(p["with"])] for p in pairs.values() if len(p) == 2]}
