"""Training ARR: joint lock-step rollouts of both roles, rewards per role, GRPO updates on each role's own samples.

One step: `prompts_per_step` training questions x `generations` episodes of `arr.protocol.episode_program` on the
core's `MultiRoleDriver` (the reasoner's and the verifier's turns batched per role and round, entropies recorded);
`score_rollout` sets each role trajectory's outcome score (F1 + adversarial bonus) and the verifier's token-level
process reward; then each policy's `RLTrainer.step_on` updates on its own trajectories (other roles' text and the
documents are observations with loss mask 0 in them) with `arr.advantage.arr_advantage_fn` (A + r or 2A + r).
Trajectories are grouped by (question, role) (`Trajectory.group_key`), so with one shared policy the two roles are
still normalised apart. Schedules: `simultaneous` (the release: both policies update every step) or `alternate`
(the reasoner on even steps, the verifier on odd ones; the idle policy's step is an empty update so both stay at the
same step). The `reasoner_only` baseline is the same loop without the verifier (raw documents, F1 reward).
`MultiPolicyCheckpoint` saves every policy and the prompt stream under one step folder; a killed run resumes there.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from arr.advantage import arr_advantage_fn
from arr.evidence import Evidence
from arr.protocol import FINAL, REASONER, VERIFIER, ProtocolOptions, episode_program
from arr.rewards import EpisodeScores, golds_of, outcome_f1, score_episode

_RETRIEVERS: dict[int, Any] = {}


def build_evidence(cfg: Any, corpus: Sequence[Mapping[str, Any]], seed: int | None = None) -> Evidence:
    """Top-k evidence with the configured DropGold and de-duplication: from the search service at
    `evidence.search_url` (the paper's E5 index), else BM25 over the corpus (built once per corpus object)."""
    e = cfg.evidence
    if e.search_url:
        from shared.retrieval import SearchClient

        retriever = SearchClient(e.search_url)
    else:
        from shared.retrieval import Retriever

        key = id(corpus)
        if key not in _RETRIEVERS:
            _RETRIEVERS.clear()
            _RETRIEVERS[key] = (corpus, Retriever("bm25", list(corpus)))
        retriever = _RETRIEVERS[key][1]
    return Evidence(retriever, topk=cfg.protocol.topk, drop_gold=e.drop_gold, dedup=e.dedup,
                    seed=e.seed if seed is None else seed)


def protocol_options(cfg: Any, temperature: float, verifier: bool, entropy: bool = True) -> ProtocolOptions:
    p = cfg.protocol
    return ProtocolOptions(max_turns=p.max_turns, reasoner_tokens=p.reasoner_tokens, verifier_tokens=p.verifier_tokens,
                           final_tokens=p.final_tokens, temperature=temperature, prompt_style=p.prompt_style,
                           verifier=verifier, final_generator=p.final_generator, entropy=entropy)


def role_generators(generators: Mapping[str, Any], verifier: bool, final: bool) -> dict[str, Any]:
    """The driver's role -> generator map (the final generator uses the reasoner's weights, as the release)."""
    out = {REASONER: generators[REASONER]}
    if verifier:
        out[VERIFIER] = generators[VERIFIER]
    if final:
        out[FINAL] = generators[REASONER]
    return out


def joint_rollout(cfg: Any, generators: Mapping[str, Any], evidence: Evidence, records: Sequence[Mapping[str, Any]],
                  n: int, seed: int, temperature: float, verifier: bool, group_ids: Sequence[Any] | None = None,
                  entropy: bool = True) -> Any:
    from shared.rollout.driver import MultiRoleDriver

    opts = protocol_options(cfg, temperature, verifier, entropy)
    driver = MultiRoleDriver(role_generators(generators, verifier, cfg.protocol.final_generator))
    return driver.run(episode_program(evidence, opts), records, n=n, group_ids=group_ids, seed=seed)


def _by_episode(rollout: Any, role: str) -> dict[int, Any]:
    return {t.metadata["episode"]: t for t in rollout.trajectories.get(role, [])}


def score_rollout(cfg: Any, rollout: Any, tokenizer: Any, verifier: bool) -> list[EpisodeScores]:
    """Set every trajectory's reward (and the verifier's process rewards); returns each episode's terms."""
    reasoners, verifiers, finals = (_by_episode(rollout, r) for r in (REASONER, VERIFIER, FINAL))
    out = []
    for ep in rollout.episodes:
        log, golds = ep.result, golds_of(ep.record)
        r, v = reasoners.get(ep.index), verifiers.get(ep.index) if verifier else None
        if r is None or (verifier and v is None):
            missing = "reasoner" if r is None else "verifier"
            raise ValueError(f"episode {ep.index} (record {ep.record.get('id', '?')!r}) has no {missing} trajectory: "
                             f"the episode program must start both roles")
        s = score_episode(r, v, golds, tokenizer, cfg.reward, reasoner_answer=log.answer,
                          verifier_answer=log.verifier_answer if verifier else None)
        r.reward = s.reasoner_total if verifier else s.f1_reasoner
        if v is not None:
            v.reward = s.verifier_total
            v.token_rewards = list(s.token_rewards)
        if ep.index in finals:
            finals[ep.index].reward = outcome_f1(log.final_answer, golds, cfg.reward.f1) \
                if log.final_answer is not None else 0.0
        out.append(s)
    return out


def rollout_stats(rollout: Any, scores: Sequence[EpisodeScores]) -> dict[str, float]:
    """Means of the reward terms and protocol counters over a step's episodes."""
    n = max(1, len(scores))
    logs = [ep.result for ep in rollout.episodes]
    verdicts = [v for lg in logs for v in lg.verdicts if v["accepted"] is not None]
    stats = {"f1_reasoner": sum(s.f1_reasoner for s in scores) / n,
             "f1_verifier": sum(s.f1_verifier or 0.0 for s in scores) / n,
             "bonus_reasoner": sum(s.bonus_reasoner for s in scores) / n,
             "bonus_verifier": sum(s.bonus_verifier for s in scores) / n,
             "gold_seen": sum(s.gold_seen for s in scores) / n,
             "process_reward": sum(sum(s.token_rewards) for s in scores) / n,
             "turns": sum(lg.turns for lg in logs) / n, "answered": sum(lg.answer is not None for lg in logs) / n,
             "invalid_verifier": sum(lg.invalid_verifier for lg in logs) / n, "rounds": float(rollout.rounds)}
    for cls, key in (("reject_rollout_no_answer", False), ("reject_rollout_with_answer", True)):
        sel = [v for v in verdicts if v["hop_in_docs"] == key]
        stats[cls] = sum(not v["accepted"] for v in sel) / len(sel) if sel else None
    return stats


@dataclasses.dataclass
class Policies:
    """The trainers of a run: {"reasoner", "verifier"} (separate policies) or {"shared"}; `generators` maps roles."""

    trainers: dict[str, Any]
    tokenizer: Any

    @property
    def generators(self) -> dict[str, Any]:
        if "shared" in self.trainers:
            g = self.trainers["shared"].generator
            return {REASONER: g, VERIFIER: g}
        return {role: tr.generator for role, tr in self.trainers.items()}

    def trainer_of(self, role: str) -> str:
        if "shared" in self.trainers:
            return "shared"
        return REASONER if role in (REASONER, FINAL) else VERIFIER


def build_policies(cfg: Any, paths: Mapping[str, str | Path], out_dir: str | Path, verifier: bool) -> Policies:
    """One `RLTrainer` per policy from the given checkpoints (`{"reasoner", "verifier"}` or `{"shared"}`)."""
    from shared.modeling import load_model
    from shared.rl.trainer import RLTrainer

    names = ["shared"] if cfg.roles.policies == "shared" else ([REASONER, VERIFIER] if verifier else [REASONER])
    trainers, tok = {}, None
    for name in names:
        model, tok = load_model(str(paths[name]), kind="causal", dtype="float32", device="auto")
        rl = dataclasses.replace(cfg.rl, output_dir=str(Path(out_dir) / name), seed=cfg.seed, checkpoint_every=0,
                                 gen_batch_size=cfg.protocol.gen_batch_size)
        generator = None
        if rl.generator_backend != "hf":  # vLLM rollouts at paper scale; weights pushed after each update
            from shared.generation import make_generator
            from shared.rl.launch import check_launch

            check_launch(rl.generator_backend)
            generator = make_generator(rl.generator_backend, str(paths[name]), tok)
        trainers[name] = RLTrainer(rl, model, tok, [], lambda t, r: [], generator=generator,
                                   advantage_fn=arr_advantage_fn(cfg.advantage.form, cfg.advantage.eps))
    return Policies(trainers, tok)


def step_trajectories(cfg: Any, policies: Policies, rollout: Any, step: int, verifier: bool) -> dict[str, list]:
    """Each trainer's trajectories for this step under the schedule (an empty list = no update this step)."""
    out: dict[str, list] = {name: [] for name in policies.trainers}
    active = {REASONER, VERIFIER, FINAL}
    if cfg.train.schedule == "alternate" and verifier:
        active = {REASONER, FINAL} if step % 2 == 0 else {VERIFIER}
    for role, trajs in rollout.trajectories.items():
        if role not in active or (role == FINAL and not cfg.train.train_final_generator):
            continue
        # a role that never got a turn (e.g. no search, so no verifier turn) has nothing to learn from; an update
        # on rows without policy tokens would divide by zero tokens
        out[policies.trainer_of(role)].extend(t for t in trajs if t.num_policy_tokens > 0)
    return out


def rl_train(cfg: Any, policies: Policies, records: Sequence[Mapping[str, Any]], evidence: Evidence,
             out_dir: str | Path, verifier: bool, eval_fn: Callable[[int], dict] | None = None,
             progress: bool = True, log: Any = print) -> list[dict[str, Any]]:
    """`cfg.rl.steps` joint steps (resuming from the latest joint checkpoint in out_dir); returns the history of
    per-step stats (with `eval_fn(step)`'s values every `rl.eval_every` steps)."""
    from shared.rl.checkpoint import MultiPolicyCheckpoint
    from shared.rl.data import PromptStream
    from tqdm.auto import tqdm

    rl = cfg.rl
    stream = PromptStream(len(records), seed=cfg.seed)
    joint = MultiPolicyCheckpoint(out_dir, policies.trainers, every=cfg.train.checkpoint_every)
    history: list[dict[str, Any]] = []
    if joint.resume():
        stream.load_state_dict(joint.extra["stream"])
        history = list(joint.extra.get("history", []))
    lead = next(iter(policies.trainers.values()))
    bar = tqdm(total=rl.steps, initial=lead.step, desc="arr rl" if verifier else "reasoner_only rl",
               disable=not progress, dynamic_ncols=True)
    while lead.step < rl.steps:
        step = lead.step
        t0 = time.perf_counter()
        idx = stream.take(rl.prompts_per_step)
        recs = [records[i] for i in idx]
        gids = [f"s{step}-q{k}" for k in range(len(idx))]
        for tr in policies.trainers.values():
            tr.policy.eval()
        rollout = joint_rollout(cfg, policies.generators, evidence, recs, rl.generations,
                                seed=cfg.seed * 100_003 + step * 997, temperature=rl.temperature, verifier=verifier,
                                group_ids=gids)
        scores = score_rollout(cfg, rollout, policies.tokenizer, verifier)
        stats = rollout_stats(rollout, scores)
        stats["rollout_seconds"] = time.perf_counter() - t0
        parts = step_trajectories(cfg, policies, rollout, step, verifier)
        record: dict[str, Any] = {"step": step + 1, **stats}
        for name, tr in policies.trainers.items():
            out = tr.step_on(parts[name], {"rounds": stats["rounds"]}, save=False)
            record.update({f"{name}/{k}": v for k, v in out.items() if isinstance(v, int | float)})
        if eval_fn is not None and rl.eval_every and lead.step % rl.eval_every == 0:
            record.update({f"eval/{k}": v for k, v in eval_fn(lead.step).items()})
        record["step_seconds"] = time.perf_counter() - t0
        history.append(record)
        joint.maybe_save({"stream": stream.state_dict(), "history": history})
        bar.update(1)
        bar.set_postfix(f1=f"{stats['f1_reasoner']:.3f}", s=f"{record['step_seconds']:.1f}")
    bar.close()
    for tr in policies.trainers.values():
        tr.close()
    return history
