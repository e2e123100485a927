"""Synthetic tool-use tasks: JSON-schema tools, executable tools, gold call traces, single and multi-turn.

Three kinds of task over the calculator, lookup-table and unit-conversion tools of `tool_library`:
`single` (one call), `multi_call` (one user turn needing 2-3 dependent calls) and `multi_turn` (a second turn that
refers to the first turn's result). Each turn stores its gold calls `{name, arguments}` and gold answer, computed
by executing the tools. `solve` is a scripted oracle that parses the user turns, calls the tools and reproduces
every gold trace and answer. `trace_f1` is the call-matching score 2*matched / (#pred + #gold).
Deterministic by seed; train and test are split by a hash of the task text, so they never share a task.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass

from benchmarks.synthetic.tool_library import CITIES, FUNCTIONS, SCHEMAS

KINDS = ("single", "multi_call", "multi_turn")
_UNIT_PAIRS = (("km", "mi"), ("mi", "km"), ("kg", "lb"), ("lb", "kg"), ("C", "F"), ("F", "C"))


@dataclass
class ToolCall:
    name: str
    arguments: dict

    def key(self) -> str:
        return json.dumps([self.name, self.arguments], sort_keys=True)


@dataclass
class Turn:
    user: str
    calls: list[ToolCall]
    answer: str


@dataclass
class ToolTask:
    id: str
    kind: str
    tools: list[str]
    turns: list[Turn]
    split: str = "train"

    @property
    def answer(self) -> str:
        return self.turns[-1].answer

    def gold_trace(self) -> list[dict]:
        """All gold calls in order, FTRL-style `[{name, parameters}]`."""
        return [{"name": c.name, "parameters": c.arguments} for t in self.turns for c in t.calls]

    def to_dict(self) -> dict:
        return asdict(self)


def tool_schemas(names: list[str] | None = None) -> list[dict]:
    """OpenAI-style `[{"type": "function", "function": {name, description, parameters}}]`."""
    names = list(SCHEMAS) if names is None else names
    unknown = [n for n in names if n not in SCHEMAS]
    if unknown:
        raise KeyError(f"unknown tools {unknown}; available: {sorted(SCHEMAS)}")
    return [{"type": "function", "function": {"name": n, **SCHEMAS[n]}} for n in names]


def tool_source(name: str) -> str:
    """Self-contained source of one tool, for `shared.sandbox.call_function(source, name, kwargs)`."""
    if name not in FUNCTIONS:
        raise KeyError(f"unknown tool {name!r}; available: {sorted(FUNCTIONS)}")
    return inspect.getsource(FUNCTIONS[name])


def execute(call: ToolCall | dict) -> float | int:
    """Run one call of our own trusted tools in-process; ValueError names the tool and the bad arguments."""
    name, args = (call.name, call.arguments) if isinstance(call, ToolCall) else (call["name"], call["arguments"])
    if name not in FUNCTIONS:
        raise ValueError(f"unknown tool {name!r}")
    try:
        return FUNCTIONS[name](**args)
    except TypeError as e:
        raise ValueError(f"bad arguments for {name}: {args} ({e})") from e


def fmt(x: float | int) -> str:
    """Answers as text: integers without a decimal point, other numbers rounded to 2 decimals."""
    x = round(float(x), 2)
    return str(int(x)) if x.is_integer() else f"{x:.2f}".rstrip("0")


def _num(x: float | int) -> float | int:
    x = round(float(x), 2)
    return int(x) if x.is_integer() else x


class _Runner:
    """Records calls while computing an answer, so the trace and the answer come from the same execution."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    def __call__(self, name: str, **arguments) -> float | int:
        call = ToolCall(name, {k: _num(v) if isinstance(v, (int, float)) else v for k, v in arguments.items()})
        self.calls.append(call)
        return execute(call)


# templates: (regex over the user text, text format, function(run, prev, *groups) -> value)
_TURN_RULES: list[tuple[str, Callable]] = [
    (r"What is the population of (\w+)\?", lambda r, prev, c: r("lookup_population", city=c)),
    (r"What is the temperature in (\w+) in Celsius\?", lambda r, prev, c: r("get_temperature", city=c)),
    (r"Convert ([\d.]+) (\w+) to (\w+)\.", lambda r, prev, v, a, b: r("convert_units", value=float(v), from_unit=a, to_unit=b)),
    (r"What is (\d+) times (\d+)\?", lambda r, prev, a, b: r("multiply", a=int(a), b=int(b))),
    (
        r"What is the combined population of (\w+) and (\w+)\?",
        lambda r, prev, a, b: r("add", a=r("lookup_population", city=a), b=r("lookup_population", city=b)),
    ),
    (
        r"How many more people live in (\w+) than in (\w+)\?",
        lambda r, prev, a, b: r("subtract", a=r("lookup_population", city=a), b=r("lookup_population", city=b)),
    ),
    (
        r"What is the temperature in (\w+) in Fahrenheit\?",
        lambda r, prev, c: r("convert_units", value=r("get_temperature", city=c), from_unit="C", to_unit="F"),
    ),
    (r"Add the population of (\w+) to that\.", lambda r, prev, c: r("add", a=prev, b=r("lookup_population", city=c))),
    (r"Convert it to Fahrenheit\.", lambda r, prev: r("convert_units", value=prev, from_unit="C", to_unit="F")),
    (r"Now subtract (\d+)\.", lambda r, prev, d: r("subtract", a=prev, b=int(d))),
    (r"Multiply that by (\d+)\.", lambda r, prev, d: r("multiply", a=prev, b=int(d))),
]  # fmt: skip


def _run_turn(user: str, prev: float | None) -> Turn:
    for pattern, rule in _TURN_RULES:
        m = re.fullmatch(pattern, user)
        if m:
            runner = _Runner()
            value = rule(runner, prev, *m.groups())
            return Turn(user=user, calls=runner.calls, answer=fmt(value))
    raise ValueError(f"user turn matches no task template: {user!r}")


def solve(task_or_turns: ToolTask | list[str]) -> list[Turn]:
    """Scripted oracle: parse each user turn, call the tools, return the turns with calls and answers."""
    users = [t.user for t in task_or_turns.turns] if isinstance(task_or_turns, ToolTask) else task_or_turns
    turns, prev = [], None
    for user in users:
        turn = _run_turn(user, prev)
        prev = _num(float(turn.answer))
        turns.append(turn)
    return turns


def _draw(kind: str, rng: random.Random) -> tuple[list[str], list[Callable]]:
    """Sample one task: its user turns and, per turn, a gold builder `(run, prev) -> value` over sampled values.

    The gold trace is built from the sampled values directly, never by parsing the text, so the oracle test
    (which does parse the text) checks the two against each other.
    """
    c1, c2 = rng.sample(CITIES, 2)
    a, b = rng.choice(_UNIT_PAIRS)
    v, x, y, d, k = rng.randint(1, 200), rng.randint(2, 99), rng.randint(2, 99), rng.randint(1, 99), rng.randint(2, 9)
    pop = lambda r, c: r("lookup_population", city=c)  # noqa: E731
    temp = lambda r, c: r("get_temperature", city=c)  # noqa: E731
    options = {
        "single": [
            ([f"What is the population of {c1}?"], [lambda r, p: pop(r, c1)]),
            ([f"What is the temperature in {c1} in Celsius?"], [lambda r, p: temp(r, c1)]),
            ([f"Convert {v} {a} to {b}."], [lambda r, p: r("convert_units", value=v, from_unit=a, to_unit=b)]),
            ([f"What is {x} times {y}?"], [lambda r, p: r("multiply", a=x, b=y)]),
        ],
        "multi_call": [
            ([f"What is the combined population of {c1} and {c2}?"], [lambda r, p: r("add", a=pop(r, c1), b=pop(r, c2))]),
            ([f"How many more people live in {c1} than in {c2}?"], [lambda r, p: r("subtract", a=pop(r, c1), b=pop(r, c2))]),
            (
                [f"What is the temperature in {c1} in Fahrenheit?"],
                [lambda r, p: r("convert_units", value=temp(r, c1), from_unit="C", to_unit="F")],
            ),
        ],
        "multi_turn": [
            (
                [f"What is the population of {c1}?", f"Add the population of {c2} to that."],
                [lambda r, p: pop(r, c1), lambda r, p: r("add", a=p, b=pop(r, c2))],
            ),
            (
                [f"What is the temperature in {c1} in Celsius?", "Convert it to Fahrenheit."],
                [lambda r, p: temp(r, c1), lambda r, p: r("convert_units", value=p, from_unit="C", to_unit="F")],
            ),
            (
                [f"What is {x % 30 + 2} times {y % 30 + 2}?", f"Now subtract {d}."],
                [lambda r, p: r("multiply", a=x % 30 + 2, b=y % 30 + 2), lambda r, p: r("subtract", a=p, b=d)],
            ),
            (
                [f"What is the population of {c1}?", f"Multiply that by {k}."],
                [lambda r, p: pop(r, c1), lambda r, p: r("multiply", a=p, b=k)],
            ),
        ],
    }  # fmt: skip
    return rng.choice(options[kind])


def _gold_turns(users: list[str], builders: list[Callable]) -> list[Turn]:
    turns, prev = [], None
    for user, build in zip(users, builders):
        runner = _Runner()
        value = build(runner, prev)
        turns.append(Turn(user=user, calls=runner.calls, answer=fmt(value)))
        prev = _num(value)
    return turns


def split_of(text: str, test_fraction: float = 0.2) -> str:
    bucket = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def make_tool_tasks(n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS, split: str = "train") -> list[ToolTask]:
    """`n` distinct tasks of the given kinds (cycled in order), with gold traces from executing the tools."""
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = random.Random(f"tools|{seed}|{split}")
    tasks: list[ToolTask] = []
    seen: set[str] = set()
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 500 * (n + 10):
            raise ValueError(f"could only draw {len(tasks)} of {n} distinct {split} tasks of kinds {kinds}")
        kind = kinds[len(tasks) % len(kinds)]
        users, builders = _draw(kind, rng)
        text = " || ".join(users)
        if text in seen or split_of(text) != split:
            continue
        seen.add(text)
        turns = _gold_turns(users, builders)
        names = sorted({c.name for t in turns for c in t.calls})
        tasks.append(ToolTask(id=f"tool-{split}-{seed}-{len(tasks)}", kind=kind, tools=names, turns=turns, split=split))
    return tasks


def trace_f1(pred: list[ToolCall | dict], gold: list[ToolCall | dict]) -> dict[str, float]:
    """Call matching as a multiset of (name, arguments): precision, recall and F1 = 2*m / (#pred + #gold)."""

    def keys(calls: list) -> Counter:
        out = Counter()
        for c in calls:
            if isinstance(c, ToolCall):
                out[c.key()] += 1
            else:
                args = c.get("arguments", c.get("parameters", {}))
                out[ToolCall(c["name"], args).key()] += 1
        return out

    p, g = keys(pred), keys(gold)
    matched = sum((p & g).values())
    n_pred, n_gold = sum(p.values()), sum(g.values())
    return {
        "precision": matched / n_pred if n_pred else 0.0,
        "recall": matched / n_gold if n_gold else 0.0,
        "f1": 2 * matched / (n_pred + n_gold) if n_pred + n_gold else 1.0,
    }


__all__ = [
    "KINDS",
    "ToolCall",
    "Turn",
    "ToolTask",
    "tool_schemas",
    "tool_source",
    "execute",
    "fmt",
    "solve",
    "make_tool_tasks",
    "trace_f1",
]
