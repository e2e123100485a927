"""Synthetic arithmetic with worked solutions and `\\boxed{}` answers (the CPU calibration task).

Default format, from cpu-calibration.md ("first operand 2-digit, others 1-digit, 2-3 operands"):

    prompt   = "Q: 43+9-6=?\\nA: "
    solution = "43+9=52. 52-6=46. \\boxed{46}"

The `word` variant phrases the same expressions as short word problems with the same worked solution. Items are
deterministic by seed; train and test are disjoint because each expression is assigned to a split by a hash of
its text (so a test expression never appears in train, whatever the seeds). `solve` is the scripted oracle.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import asdict, dataclass, field

SPLITS = ("train", "test")
TEST_FRACTION = 0.2  # share of all expressions reserved for the test split
VARIANTS = ("calibration", "word")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b}

_NAMES = ("Sam", "Ana", "Li", "Omar", "Eva", "Ken", "Mia", "Raj")
_ITEMS = ("apples", "marbles", "coins", "stamps", "books", "shells")
_WORD_OPS = {"+": "gets {n} more", "-": "gives away {n}"}
_WORD_RE = re.compile(r"(gets (\d+) more|gives away (\d+))")


@dataclass
class ArithmeticRecord:
    """One problem: `prompt` + `solution` is the full training text; `answer` is the gold final number."""

    id: str
    question: str
    prompt: str
    solution: str
    answer: str
    operands: list[int] = field(default_factory=list)
    ops: list[str] = field(default_factory=list)
    split: str = "train"
    variant: str = "calibration"

    def to_dict(self) -> dict:
        return asdict(self)


def expression(operands: list[int], ops: list[str]) -> str:
    """`[43, 9, 6], ['+', '-']` -> `'43+9-6'`."""
    parts = [str(operands[0])]
    for op, x in zip(ops, operands[1:]):
        parts.append(f"{op}{x}")
    return "".join(parts)


def worked_solution(operands: list[int], ops: list[str]) -> tuple[str, int]:
    """Left-to-right worked chain `43+9=52. 52-6=46. \\boxed{46}` and the final value."""
    value = operands[0]
    steps = []
    for op, x in zip(ops, operands[1:]):
        new = _OPS[op](value, x)
        steps.append(f"{value}{op}{x}={new}.")
        value = new
    return " ".join(steps) + f" \\boxed{{{value}}}", value


def split_of(expr: str) -> str:
    """Deterministic split of an expression by hash, independent of seed and generation order."""
    bucket = int(hashlib.sha256(expr.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < TEST_FRACTION else "train"


def _word_question(operands: list[int], ops: list[str], rng: random.Random) -> str:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    actions = [_WORD_OPS[op].format(n=x) for op, x in zip(ops, operands[1:])]
    return f"{name} has {operands[0]} {item}. {name} {', then '.join(actions)}. How many {item} does {name} have now?"


def _check_args(n: int, operands: tuple[int, ...], ops: str, split: str, variant: str, digits: tuple[int, int]) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not operands or min(operands) < 2:
        raise ValueError(f"operands must be counts >= 2, got {operands}")
    bad = [op for op in ops if op not in _OPS]
    if not ops or bad:
        raise ValueError(f"ops must be a non-empty subset of '+-', got {ops!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if min(digits) < 1:
        raise ValueError(f"digit counts must be >= 1, got {digits}")


def make_arithmetic(
    n: int,
    seed: int = 0,
    operands: tuple[int, ...] = (2, 3),
    first_digits: int = 2,
    other_digits: int = 1,
    ops: str = "+-",
    split: str = "train",
    variant: str = "calibration",
    allow_negative: bool = False,
) -> list[ArithmeticRecord]:
    """Generate `n` distinct problems of one split.

    operands: allowed operand counts (drawn uniformly). first_digits/other_digits: digits of the first and of
    the remaining operands. allow_negative=False rejects expressions with a negative intermediate value.
    Raises ValueError when the settings cannot give `n` distinct expressions in the split.
    """
    _check_args(n, tuple(operands), ops, split, variant, (first_digits, other_digits))
    rng = random.Random(f"arithmetic|{seed}|{split}|{variant}")
    lo_first, hi_first = 10 ** (first_digits - 1), 10**first_digits - 1
    lo_other, hi_other = 10 ** (other_digits - 1), 10**other_digits - 1
    records: list[ArithmeticRecord] = []
    seen: set[str] = set()
    attempts, max_attempts = 0, 200 * max(n, 1) + 10_000
    while len(records) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"could only draw {len(records)} of {n} distinct {split} problems with operands={operands}, "
                f"digits=({first_digits},{other_digits}), ops={ops!r}: widen the settings or lower n"
            )
        k = rng.choice(list(operands))
        nums = [rng.randint(lo_first, hi_first)] + [rng.randint(lo_other, hi_other) for _ in range(k - 1)]
        chosen = [rng.choice(ops) for _ in range(k - 1)]
        expr = expression(nums, chosen)
        if expr in seen or split_of(expr) != split:
            continue
        if not allow_negative and _has_negative(nums, chosen):
            continue
        seen.add(expr)
        solution, value = worked_solution(nums, chosen)
        if variant == "calibration":
            question, prompt = expr, f"Q: {expr}=?\nA: "
        else:
            question = _word_question(nums, chosen, rng)
            prompt = f"Q: {question}\nA: "
        records.append(
            ArithmeticRecord(
                id=f"arith-{split}-{seed}-{len(records)}",
                question=question,
                prompt=prompt,
                solution=solution,
                answer=str(value),
                operands=nums,
                ops=chosen,
                split=split,
                variant=variant,
            )
        )
    return records


def _has_negative(nums: list[int], ops: list[str]) -> bool:
    value = nums[0]
    for op, x in zip(ops, nums[1:]):
        value = _OPS[op](value, x)
        if value < 0:
            return True
    return False


def parse_prompt(prompt: str) -> tuple[list[int], list[str]]:
    """Recover operands and operators from a calibration or word prompt; ValueError names the prompt."""
    body = prompt.removeprefix("Q: ").split("\n", 1)[0]
    m = re.fullmatch(r"(\d+)((?:[+-]\d+)+)=\?", body)
    if m:
        nums = [int(m.group(1))] + [int(x) for x in re.findall(r"[+-](\d+)", m.group(2))]
        return nums, re.findall(r"[+-]", m.group(2))
    m = re.match(r"\w+ has (\d+) ", body)
    actions = _WORD_RE.findall(body)
    if m and actions:
        nums, chosen = [int(m.group(1))], []
        for _, more, away in actions:
            nums.append(int(more or away))
            chosen.append("+" if more else "-")
        return nums, chosen
    raise ValueError(f"not an arithmetic prompt: {prompt!r}")


def solve(prompt: str) -> str:
    """Scripted oracle: the worked solution for a prompt of either variant."""
    nums, chosen = parse_prompt(prompt)
    return worked_solution(nums, chosen)[0]


def arithmetic_records(n: int, split: str, seed: int = 0) -> list[dict]:
    """`make_arithmetic(n, seed, split=split)` as dicts: the "arithmetic" record source that shared's warm start
    and `shared-rl` load through the `shared.record_sources` entry point (the core imports no benchmark)."""
    return [r.to_dict() for r in make_arithmetic(n, seed=seed, split=split)]
