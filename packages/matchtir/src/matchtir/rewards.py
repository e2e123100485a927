"""Turn-level rewards of a rollout: parse each generated turn, match its calls, score its answer.

A trajectory's generated turns (the policy spans of `shared.rollout.Trajectory`) are decoded one by one. A turn
holding a complete `<answer>...</answer>` is an answer turn and earns the token-set F1 of its answer; any other
turn earns the mean reward of its `<tool_call>` blocks, where the rewards come from matching all calls of the
trajectory against the gold trace at once (`matching.call_rewards`); a malformed block (bad JSON, no name) is a
call without a match and earns the unmatched penalty; a turn without calls earns 0. `trajectory_metrics` gives
the test-time scores (solve F1 / rate / precision over exact call matches, answer F1, turns).
`make_reward_fn` plugs either scheme into `shared.rl.trainer.RLTrainer`: "outcome" puts the answer F1 on the
last token only (plain GRPO), "matching" writes the per-turn rewards (they land on each turn's last token; the
final answer turn's F1 is returned as the trajectory reward, which lands on that same last token).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from shared.rollout.envs import ActionError, parse_tool_calls
from shared.rollout.trajectory import Trajectory

from matchtir.matching import answer_f1, call_rewards, exact_call_matches, solve_scores

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
REWARD_SCHEMES = ("outcome", "matching")


@dataclass
class ParsedTurn:
    """One generated turn: its answer (answer turns) or its calls; malformed call blocks are counted."""

    text: str
    answer: str | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)
    malformed: int = 0

    @property
    def n_calls(self) -> int:
        return len(self.calls) + self.malformed


def parse_turn(text: str) -> ParsedTurn:
    """Classify a turn's text as an answer turn or a tool-call turn (the release's order: answer first)."""
    m = _ANSWER.search(text)
    if m:
        return ParsedTurn(text=text, answer=m.group(1).strip())
    turn = ParsedTurn(text=text)
    for call in parse_tool_calls(text):
        if isinstance(call, ActionError):
            turn.malformed += 1
        else:
            turn.calls.append(call)
    return turn


def turn_texts(traj: Trajectory, tokenizer: Any) -> list[str]:
    """Decoded text of each generated turn, in order."""
    ids = traj.response_ids
    return [tokenizer.decode(ids[s:e], skip_special_tokens=False) for s, e in traj.turn_spans]


def gold_calls(trace: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Gold trace entries `{name, parameters}` as `{name, arguments}` dicts."""
    return [{"name": c["name"], "arguments": dict(c.get("parameters", c.get("arguments", {})))} for c in trace]


def score_turns(
    turns: Sequence[ParsedTurn],
    gold_trace: Sequence[Mapping[str, Any]],
    gold_answer: str,
    mode: str = "hard",
    assignment: str = "hungarian",
    unmatched_penalty: float = 0.0,
    reg: float = 0.1,
) -> list[float]:
    """Reward of every turn: answer F1 for answer turns, mean call reward for call turns, else 0."""
    preds, owner = [], []
    for t, turn in enumerate(turns):
        if turn.answer is None:
            preds += turn.calls
            owner += [t] * len(turn.calls)
    rewards = call_rewards(preds, gold_calls(gold_trace), mode, assignment, unmatched_penalty, reg)
    sums = [0.0] * len(turns)
    for r, t in zip(rewards, owner):
        sums[t] += r
    out = []
    for t, turn in enumerate(turns):
        if turn.answer is not None:
            out.append(answer_f1(turn.answer, gold_answer))
        elif turn.n_calls:
            # malformed blocks are unmatched calls: they add the penalty and count in the mean
            out.append((sums[t] + turn.malformed * unmatched_penalty) / turn.n_calls)
        else:
            out.append(0.0)
    return out


def final_answer(turns: Sequence[ParsedTurn]) -> str | None:
    """The answer of the last answer turn, or None when the rollout never answered."""
    answers = [t.answer for t in turns if t.answer is not None]
    return answers[-1] if answers else None


def trajectory_metrics(turns: Sequence[ParsedTurn], gold_trace: Sequence[Mapping[str, Any]],
                       gold_answer: str) -> dict[str, float]:
    """solve_f1, solve_rate, precision (exact call matches, malformed blocks count as predictions), answer_f1
    (0 without an answer) and turns."""
    preds = [c for t in turns if t.answer is None for c in t.calls]
    n_pred = sum(t.n_calls for t in turns if t.answer is None)
    gold = gold_calls(gold_trace)
    scores = solve_scores(exact_call_matches(preds, gold), n_pred, len(gold))
    answer = final_answer(turns)
    scores["answer_f1"] = answer_f1(answer, gold_answer) if answer is not None else 0.0
    scores["turns"] = float(len(turns))
    return scores


@dataclass
class RewardSettings:
    scheme: Literal["outcome", "matching"] = "matching"
    mode: Literal["hard", "soft"] = "hard"  # hard (bipartite assignment) | soft (optimal transport)
    assignment: Literal["hungarian", "greedy"] = "hungarian"  # greedy: the release's
    unmatched_penalty: float = 0.0
    ot_reg: float = 0.1


def check_record(record: Mapping[str, Any], source: str = "record") -> None:
    """A training record needs `gold_trace` (list of {name, parameters}) and a string `answer`."""
    rid = record.get("id", "?")
    trace = record.get("gold_trace")
    if not isinstance(trace, list) or not all(isinstance(c, Mapping) and isinstance(c.get("name"), str)
                                              for c in trace):
        raise ValueError(f"{source} {rid!r}: field 'gold_trace' must be a list of {{name, parameters}} objects")
    if not isinstance(record.get("answer"), str):
        raise ValueError(f"{source} {rid!r}: field 'answer' must be a string")


def make_reward_fn(settings: RewardSettings, tokenizer: Any) -> Callable[[list[Trajectory], list], list[float]]:
    """reward_fn for RLTrainer. Both schemes store metrics in `traj.metadata["scores"]` for logging."""
    if settings.scheme not in REWARD_SCHEMES:
        raise ValueError(f"unknown reward scheme {settings.scheme!r}; known: {REWARD_SCHEMES}")

    def reward_fn(trajs: list[Trajectory], records: list[Mapping[str, Any]]) -> list[float]:
        finals = []
        for traj, rec in zip(trajs, records):
            check_record(rec)
            turns = [parse_turn(t) for t in turn_texts(traj, tokenizer)]
            traj.metadata["scores"] = trajectory_metrics(turns, rec["gold_trace"], rec["answer"])
            if settings.scheme == "outcome":
                traj.turn_rewards = [0.0] * len(traj.turn_spans)
                finals.append(traj.metadata["scores"]["answer_f1"])
            else:
                rewards = score_turns(turns, rec["gold_trace"], rec["answer"], settings.mode, settings.assignment,
                                      settings.unmatched_penalty, settings.ot_reg)
                final = 0.0
                if turns and turns[-1].answer is not None:
                    # the answer turn's F1 becomes the final reward: same last token, and the trainer's logged
                    # reward is then the answer F1 under both schemes
                    final, rewards[-1] = rewards[-1], 0.0
                traj.turn_rewards = rewards
                finals.append(final)
        return finals

    return reward_fn
