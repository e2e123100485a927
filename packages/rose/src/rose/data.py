"""Prompts, answers and rewards for rose: the synthetic arithmetic suite, the bundled math slices, or a JSONL file.

Records are dicts with `id`, `prompt` and `answer`. The warm-start data can mix two correct solution styles per
problem: the calibration chain `43+9=52. 52-6=46. \\boxed{46}` and a verbose one that restates the result before
the box, `43+9=52. 52-6=46. So 43+9-6=46. \\boxed{46}`. Both earn reward 1, so a policy that learned both has
correct answers of different lengths for the same prompt -- what ROSE's length-aware penalty acts on (with the
plain calibration format all correct answers to a prompt have one length and the penalty has nothing to do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.data import DataError, load_bundled
from benchmarks.data.io import iter_jsonl, require
from benchmarks.synthetic.arithmetic import make_arithmetic
from shared.rewards import extract_boxed, math_reward

EVAL_SETS = ("arithmetic", "math500", "gsm8k", "aime24")
VERBOSE_MARK = " So "


def verbose_solution(question: str, solution: str, answer: str) -> str:
    """Insert the restatement `So <question>=<answer>.` before the final box of a worked solution."""
    box = solution.rfind("\\boxed{")
    if box < 0:
        raise ValueError(f"solution without \\boxed{{}}: {solution!r}")
    return f"{solution[:box].rstrip()}{VERBOSE_MARK}{question}={answer}. {solution[box:]}"


def _pick(rec_id: str, seed: int, fraction: float) -> bool:
    """Deterministic per-record coin with P(True) = fraction."""
    h = int(hashlib.sha256(f"{seed}|{rec_id}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return h < fraction


def sft_records(n: int, seed: int = 0, verbose_fraction: float = 0.0) -> list[dict[str, str]]:
    """Warm-start records {id, prompt, completion}: a `verbose_fraction` share uses the verbose solution."""
    if not 0.0 <= verbose_fraction <= 1.0:
        raise ValueError(f"verbose_fraction must be in [0, 1], got {verbose_fraction}")
    out = []
    for r in make_arithmetic(n, seed=seed, split="train"):
        sol = r.solution
        if _pick(r.id, seed, verbose_fraction):
            sol = verbose_solution(r.question, r.solution, r.answer)
        out.append({"id": r.id, "prompt": r.prompt, "completion": sol})
    return out


def arithmetic_records(n: int, split: str, seed: int) -> list[dict[str, str]]:
    """{id, prompt, answer} arithmetic problems of one split (train and test never share an expression)."""
    return [{"id": r.id, "prompt": r.prompt, "answer": r.answer} for r in make_arithmetic(n, seed=seed, split=split)]


def bundled_records(name: str, n: int = 0) -> list[dict[str, str]]:
    """A bundled math slice (MATH-500, GSM8K, AIME24) in the `Q: ...\\nA: ` prompt format; n = 0 keeps all."""
    if name not in EVAL_SETS[1:]:
        raise ValueError(f"unknown math slice {name!r}; bundled: {', '.join(EVAL_SETS[1:])}")
    recs = load_bundled(name)
    recs = recs[:n] if n else recs
    return [{"id": r.id, "prompt": f"Q: {r.problem}\nA: ", "answer": str(r.answer)} for r in recs]


def jsonl_records(path: str | Path) -> list[dict[str, str]]:
    """Records from a JSONL file with string fields `prompt` and `answer` (`id` optional); errors name line+field."""
    out = []
    for line, obj in iter_jsonl(path):
        prompt = require(obj, "prompt", path, line, str)
        if not prompt:
            raise DataError(path, "empty prompt", line=line, field="prompt")
        answer = require(obj, "answer", path, line, (str, int, float))
        out.append({"id": str(obj.get("id", f"line-{line}")), "prompt": prompt, "answer": str(answer)})
    if not out:
        raise DataError(path, "no records")
    return out


def load_records(source: str, n: int, split: str, seed: int) -> list[dict[str, str]]:
    """`arithmetic` (synthetic split), a bundled math slice name, or a path to a JSONL file."""
    if source == "arithmetic":
        return arithmetic_records(n, split, seed)
    if source in EVAL_SETS:
        return bundled_records(source, n)
    if source.endswith(".jsonl"):
        recs = jsonl_records(source)
        return recs[:n] if n else recs
    raise ValueError(f"unknown data source {source!r}: use one of {', '.join(EVAL_SETS)} or a .jsonl path")


def reward_fn(trajs: Sequence[Any], records: Sequence[Mapping[str, Any]]) -> list[float]:
    """The trainer's reward: 1 when the last \\boxed{} of the rollout equals the record's answer, else 0."""
    return [math_reward(t.text, str(r["answer"])) for t, r in zip(trajs, records)]


def final_answer(text: str) -> str | None:
    """The rollout's last \\boxed{} content (None when it has none)."""
    return extract_boxed(text)


def is_verbose(text: str) -> bool:
    """Does the response restate the result before the box (the verbose style)?"""
    return VERBOSE_MARK in text
