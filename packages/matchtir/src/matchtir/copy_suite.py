"""The copy suite: tool tasks a tiny policy can learn, because every argument value appears verbatim in the request.

The synthetic tool suite of `benchmarks.synthetic.tools` chains calls (an argument is a number read from an earlier
tool response), which a 0.5M-parameter policy never learned to copy, so every RL row stayed at ~3% solve F1. Here a
request asks for 1-3 independent things over four tools of the same library (`lookup_population(city)`,
`get_temperature(city)`, `add(a, b)`, `multiply(a, b)`), e.g.

    "Find: population of Avalon; 12 plus 7; temperature in Dunmore."
    -> lookup_population(city="Avalon"), add(a=12, b=7), get_temperature(city="Dunmore")
    -> answer "52000, 19, 21" (the tool results in request order)

The calls are independent, so they can be made one per turn or all in one turn (parallel calls; every gold call
carries `step: 0`, which `train.gold_turns` uses to group a parallel turn). The answer needs the tool results copied
from the tool responses. Deterministic by seed; train and test are split by a hash of the request text.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from benchmarks.synthetic.tool_library import CITIES, FUNCTIONS
from benchmarks.synthetic.tools import fmt, split_of, tool_schemas

COPY_TOOLS = ["lookup_population", "get_temperature", "add", "multiply"]
ASKS = ("population", "temperature", "plus", "times")


def _ask(kind: str, rng: random.Random, max_number: int) -> tuple[str, dict]:
    """One request phrase and its gold call (numbers drawn from 2..max_number)."""
    if kind == "population":
        city = rng.choice(CITIES)
        return f"population of {city}", {"name": "lookup_population", "parameters": {"city": city}}
    if kind == "temperature":
        city = rng.choice(CITIES)
        return f"temperature in {city}", {"name": "get_temperature", "parameters": {"city": city}}
    a, b = rng.randint(2, max_number), rng.randint(2, max_number)
    name = "add" if kind == "plus" else "multiply"
    return f"{a} {kind} {b}", {"name": name, "parameters": {"a": a, "b": b}}


def copy_samples(n: int, seed: int = 0, split: str = "train", calls: Sequence[int] = (1, 2, 3),
                 max_number: int = 99) -> list[dict]:
    """`n` distinct FTRL-style samples with 1-3 independent calls each (the counts in `calls` cycled in order);
    the numbers of `add` / `multiply` are drawn from 2..max_number (9: one token each under the digit-split BPE)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not calls or any(not isinstance(k, int) or not 1 <= k <= 3 for k in calls):
        raise ValueError(f"calls must be a non-empty list of call counts in 1..3, got {list(calls)}")
    if max_number < 2:
        raise ValueError(f"max_number must be >= 2, got {max_number}")
    rng = random.Random(f"copy|{seed}|{split}")
    tools = tool_schemas(COPY_TOOLS)
    out: list[dict] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * (n + 10):
            raise ValueError(f"could only draw {len(out)} of {n} distinct {split} copy tasks")
        k = calls[len(out) % len(calls)]
        phrases, trace = zip(*(_ask(rng.choice(ASKS), rng, max_number) for _ in range(k)))
        request = "Find: " + "; ".join(phrases) + "."
        if request in seen or split_of(request) != split:
            continue
        seen.add(request)
        results = [FUNCTIONS[c["name"]](**c["parameters"]) for c in trace]
        out.append({
            "id": f"copy-{split}-{seed}-{len(out)}",
            "kind": f"calls{k}",
            "tools": tools,
            "messages": [{"role": "user", "content": request}],
            "gold_trace": [{**c, "step": 0} for c in trace],
            "answer": ", ".join(fmt(r) for r in results),
        })
    return out
