"""The rewards of the RL stages by name (a recipe's `reward` list), and how a stage adds them up.

A reward scores the records of the kinds it names (`RewardSpec.kinds`); a stage's reward is the sum of its named
rewards that apply to each record's kind (the recipe check makes sure every source is scored by at least one).
- `numeric`: the last `\\boxed{}` within a relative tolerance of the gold (`shared.rewards.numeric.numeric_match`,
  rel 1e-2; integers are then exact); no box -> 0.
- `choice`: the letter the box (or else the reply) commits to (`choice_match`; two letters -> 0).
- `program`: the box holds a FinQA program (`subtract(52, 6)`) or an arithmetic expression, executed by
  `benchmarks.data.finance.run_program` / the AST-safe `calculate`, then compared like `numeric`.
- `tool_use` (agentic, inferred weights): `valid_weight` if some call of the episode was well formed (known tool,
  arguments fit its schema; a `<python>` block counts), `executed_weight` if some call ran without error,
  `correct_weight` if the final answer is right: 0.1 + 0.1 + 1.0 by default, each term paid once per episode however
  many calls qualify.
- `rubric`: a rubric judge's score in [0, 1] through `shared.rewards.judge.JudgeClient`; the CPU stand-in is the
  deterministic rubric `rubric_points` (7 points for the right boxed answer, 3 when every worked step `a+b=c.` is
  right and chained) served on the core's loopback `ChatServer`, so the real client, template and parser run.
- `rm`: a reward model's score (`shared.rewards.rm.RewardModel`), trained at the start of the stage.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.rewards.math import extract_boxed
from shared.rewards.numeric import choice_match, numeric_match, parse_number

RUBRIC_TEMPLATE = (
    "Grade the candidate's solution to an arithmetic question on a 10-point rubric: 7 points for the correct final "
    "answer in \\boxed{{}}, 3 points when every worked step 'a+b=c.' is right and starts from the previous result.\n"
    "Question: {question}\nReference answer: {reference}\nCandidate solution:\n<<<{prediction}>>>\n"
    "Reply with one line 'Score: n/10'."
)
_STEP = re.compile(r"(-?\d+)([+-])(\d+)=(-?\d+)\.")


@dataclass
class RewardContext:
    rel_tol: float = 1e-2
    agent: Any = None  # recipe.AgentSettings of an agentic stage
    schemas: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # tool name -> schema
    judge: Any = None  # JudgeClient
    judge_workers: int = 4
    rm: Any = None  # RewardModel
    counters: Counter = field(default_factory=Counter)


@dataclass(frozen=True)
class RewardSpec:
    fn: Callable[[Sequence[Any], Sequence[Mapping[str, Any]], RewardContext], list[float]]
    kinds: tuple[str, ...]
    trainers: tuple[str, ...]


def final_text(traj: Any) -> str:
    """The policy's last turn: everything after the last tool response (the whole text for one turn)."""
    text = traj.text if hasattr(traj, "text") else str(traj)
    cut = text.rfind("</tool_response>")
    return text[cut + len("</tool_response>"):] if cut >= 0 else text


def boxed_answer(text: str) -> str | None:
    return extract_boxed(text)


def _numeric(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], ctx: RewardContext) -> list[float]:
    out = []
    for t, r in zip(trajs, records):
        box = boxed_answer(final_text(t))
        out.append(0.0 if box is None else numeric_match(box, r["answer"], rel_tol=ctx.rel_tol))
    return out


def _choice(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], ctx: RewardContext) -> list[float]:
    out = []
    for t, r in zip(trajs, records):
        text = final_text(t)
        box = boxed_answer(text)
        out.append(choice_match(box if box is not None else text, r["answer"]))
    return out


def program_value(text: str) -> float | None:
    """The number a boxed program or expression gives (None when it does not run)."""
    from benchmarks.data.finance import ProgramError, run_program
    from benchmarks.synthetic.tool_library import calculate

    box = boxed_answer(text)
    if box is None:
        return None
    plain = parse_number(box)
    if plain is not None:
        return plain
    try:
        value = run_program(box) if re.match(r"\s*[a-z_]+\(", box) else calculate(box)
    except (ProgramError, ValueError):
        return None
    return float(value) if isinstance(value, int | float) else None


def _program(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], ctx: RewardContext) -> list[float]:
    out = []
    for t, r in zip(trajs, records):
        value = program_value(final_text(t))
        out.append(0.0 if value is None else numeric_match(value, r["answer"], rel_tol=ctx.rel_tol))
    return out


def tool_terms(calls: Sequence[Mapping[str, Any]], schemas: Mapping[str, Mapping[str, Any]]) -> tuple[bool, bool]:
    """(some call was valid, some call executed) over an episode's calls as `ToolEnv` records them."""
    from shared.rollout.tool_schema import arguments_valid

    valid = executed = False
    for call in calls:
        name = call.get("name")
        if name == "python":
            valid = True
        elif name in schemas and arguments_valid(schemas[name], call.get("arguments")):
            valid = True
        executed = executed or call.get("status") == "ok"
    return valid, executed


def episode_calls(traj: Any) -> list[dict[str, Any]]:
    """Every call of an AgentLoop trajectory (each ToolEnv step's info), malformed ones included."""
    calls: list[dict[str, Any]] = []
    for info in (getattr(traj, "metadata", None) or {}).get("infos", []):
        if "calls" in info and "status" not in info:
            calls.extend(info["calls"])
        elif "status" in info:  # a <python> step
            calls.append({"name": "python", "status": "ok" if info["status"] == "ok" else "error"})
    return calls


def _tool_use(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], ctx: RewardContext) -> list[float]:
    a = ctx.agent
    correct = _numeric(trajs, records, ctx)
    out = []
    for t, c in zip(trajs, correct):
        valid, executed = tool_terms(episode_calls(t), ctx.schemas)
        ctx.counters["episodes"] += 1
        ctx.counters["valid_call"] += valid
        ctx.counters["executed_call"] += executed
        out.append(a.valid_weight * valid + a.executed_weight * executed + a.correct_weight * c)
    return out


def rubric_points(prediction: str, reference: str) -> int:
    """The stand-in rubric: 7 for a right boxed answer, 3 when there is at least one worked step, every step is
    right and each starts from the previous step's result."""
    points = 0
    box = boxed_answer(prediction)
    if box is not None and numeric_match(box, reference, rel_tol=0.0) == 1.0:
        points += 7
    steps = _STEP.findall(prediction)
    ok = bool(steps)
    for i, (a, op, b, c) in enumerate(steps):
        value = int(a) + int(b) if op == "+" else int(a) - int(b)
        ok = ok and value == int(c) and (i == 0 or int(a) == int(steps[i - 1][3]))
    return points + (3 if ok else 0)


def rubric_reply(messages: list[dict[str, Any]], params: Mapping[str, Any]) -> list[str]:
    """The stand-in judge behind the loopback ChatServer: reads the rubric prompt, answers `Score: n/10`."""
    text = str(messages[-1]["content"])
    ref = re.search(r"Reference answer: (.*)\n", text)
    cand = re.search(r"<<<(.*)>>>", text, re.DOTALL)
    if not ref or not cand:
        return ["I cannot grade this."] * int(params.get("n", 1))
    return [f"Score: {rubric_points(cand.group(1), ref.group(1).strip())}/10"] * int(params.get("n", 1))


def _rubric(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], ctx: RewardContext) -> list[float]:
    items = [{"question": r["prompt"], "prediction": final_text(t), "golds": [str(r["answer"])]}
             for t, r in zip(trajs, records)]
    batch = ctx.judge.judge_many(items, workers=ctx.judge_workers, em_first=False)
    for k, v in batch.counts.items():
        ctx.counters[f"judge_{k}"] += v
    return [float(v.score) if v.score is not None else 0.0 for v in batch.verdicts]


def _rm(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]], ctx: RewardContext) -> list[float]:
    return ctx.rm.score([r["prompt"] for r in records], [final_text(t) for t in trajs])


REWARDS: dict[str, RewardSpec] = {
    "numeric": RewardSpec(_numeric, ("numeric", "general", "file"), ("grpo", "general_rl")),
    "choice": RewardSpec(_choice, ("choice",), ("grpo",)),
    "program": RewardSpec(_program, ("numeric", "general", "file"), ("grpo",)),
    "tool_use": RewardSpec(_tool_use, ("tool", "file"), ("agentic_grpo",)),
    "rubric": RewardSpec(_rubric, ("general", "numeric", "file"), ("general_rl",)),
    "rm": RewardSpec(_rm, ("general", "numeric", "choice", "file"), ("general_rl",)),
}


def make_reward_fn(names: Sequence[str], ctx: RewardContext) -> Callable[[list, list], list[float]]:
    """RLTrainer reward_fn: per trajectory, the sum of the named rewards that score its record's kind."""
    unknown = [n for n in names if n not in REWARDS]
    if unknown:
        raise ValueError(f"unknown rewards {unknown}; known: {sorted(REWARDS)}")

    def reward_fn(trajs: list, records: list) -> list[float]:
        totals = [0.0] * len(trajs)
        for name in names:
            spec = REWARDS[name]
            idx = [i for i, r in enumerate(records) if r.get("kind", "file") in spec.kinds]
            if not idx:
                continue
            values = spec.fn([trajs[i] for i in idx], [records[i] for i in idx], ctx)
            for i, v in zip(idx, values):
                totals[i] += float(v)
        return totals

    return reward_fn


def preference_pairs(records: Sequence[Mapping[str, Any]], seed: int = 0) -> list[dict[str, str]]:
    """(prompt, chosen = the worked solution, rejected = the same with a wrong last step and answer) per record."""
    import random

    rng = random.Random(f"huijin-pairs|{seed}")
    out = []
    for r in records:
        steps = _STEP.findall(r["completion"])
        if not steps:
            continue
        a, op, b, c = steps[-1]
        wrong = int(c) + rng.choice([-1, 1]) * rng.randint(1, 9)
        head = r["completion"][: r["completion"].rfind(f"{a}{op}{b}={c}.")]
        out.append({"prompt": r["prompt"], "chosen": r["completion"],
                    "rejected": f"{head}{a}{op}{b}={wrong}. \\boxed{{{wrong}}}"})
    return out
