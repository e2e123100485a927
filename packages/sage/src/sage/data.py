"""Problem pools for sage: the synthetic arithmetic suite, the bundled math slices, or a user's JSONL file.

Every problem must carry a verifiable final answer, since pairs are labelled by checking answers. A record without
one is an error naming the file, line and field (`data.on_unverifiable: error`), or is dropped with a counted
warning (`skip`). The bundled slices (GSM8K, MATH-500, AIME24) only have test records, so the first `n_train`
records form the training pool and the next `n_test` the held-out problems.
"""

from __future__ import annotations

import json
import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.eval import sha256_of
from shared.rewards.math import parse_math

from sage.config import DataConfig
from sage.pairs import Problem

log = logging.getLogger(__name__)

_PLAIN_NUMBER = re.compile(r"^[+-]?(\d[\d,]*)(\.\d+)?(/\d+)?$")
QUESTION_FIELDS = ("question", "problem", "prompt")
# math-verify parses any letters as symbols ("unknown" -> u*n*k*...), so plain-word answers are screened first:
# non-answers (N/A, unknown), and runs of 3+ letters outside LaTeX commands that are not a function name
# (2 letters can be a product of variables, "ab")
_NON_ANSWERS = {"n/a", "na", "nan", "null", "none", "unknown", "tbd", "?", "-", "--"}
_BARE_WORD = re.compile(r"[A-Za-z]{3,}")
_MATH_WORDS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "sqrt", "inf", "infty",
               "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "mod", "gcd", "lcm", "min", "max", "deg"}


class DataError(ValueError):
    """A problem record that cannot be used: names the file, line and field."""


@dataclass(frozen=True)
class ProblemSet:
    """Train pool and held-out problems plus a description for results.json (`name`, `sha256`)."""

    train: list[Problem]
    test: list[Problem]
    info: dict[str, Any]


def gold_answer(raw: Any) -> str | None:
    """The final answer inside a gold field: GSM8K `#### n`, a `\\boxed{}`, or the bare value; None if empty."""
    from shared.rewards import extract_boxed, extract_gsm8k_answer

    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int | float):
        return str(raw)
    if not isinstance(raw, str):
        return None
    for extract in (extract_gsm8k_answer, extract_boxed):
        found = extract(raw)
        if found:
            return found.strip()
    text = raw.strip()
    return text or None


def _strip_latex_words(text: str) -> str:
    """Drop LaTeX commands and their text arguments (\\text{Evelyn}, \\mathrm{cm}): words there are deliberate."""
    text = re.sub(r"\\(?:text|mathrm|textbf|mbox|operatorname|begin|end)\s*\{[^{}]*\}", " ", text)
    return re.sub(r"\\[A-Za-z]+", " ", text)


def is_verifiable(answer: str) -> bool:
    """True when the answer is a plain number or something math-verify can parse."""
    if _PLAIN_NUMBER.match(answer.replace(" ", "")):
        return True
    if answer.strip().lower() in _NON_ANSWERS:
        return False
    if any(w.lower() not in _MATH_WORDS for w in _BARE_WORD.findall(_strip_latex_words(answer))):
        return False
    # math-verify returns [parsed, original] when it parses the answer (timeouts retried by shared.rewards)
    return len(parse_math(f"\\boxed{{{answer}}}")) >= 2


def record_to_problem(record: Any, where: str, template: str, default_id: str) -> Problem:
    """One JSON record -> Problem; DataError names `where` (file:line) and the offending field."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: record must be a JSON object, got {type(record).__name__}")
    field = next((f for f in QUESTION_FIELDS if f in record), None)
    if field is None or not isinstance(record[field], str) or not record[field].strip():
        raise DataError(f"{where}: field 'question' (or 'problem'/'prompt') is missing or empty")
    if "answer" not in record:
        raise DataError(f"{where}: field 'answer' is missing, so the problem cannot be verified")
    answer = gold_answer(record["answer"])
    if answer is None or not is_verifiable(answer):
        raise DataError(f"{where}: field 'answer' ({record['answer']!r}) holds no verifiable final answer")
    question = record[field].strip()
    prompt = question if field == "prompt" else template.format(question=question)
    problem_id = str(record.get("id", record.get("unique_id", default_id)))
    return Problem(problem_id=problem_id, prompt=prompt, answer=answer)


def problems_from_records(
    records: Iterable[tuple[str, Any]], template: str, on_unverifiable: str, name: str
) -> list[Problem]:
    """Validate (where, record) items; `on_unverifiable` = "error" raises, "skip" drops and logs the count."""
    if on_unverifiable not in ("error", "skip"):
        raise ValueError(f"on_unverifiable must be 'error' or 'skip', got {on_unverifiable!r}")
    problems: list[Problem] = []
    skipped: list[str] = []
    for i, (where, record) in enumerate(records):
        try:
            problems.append(record_to_problem(record, where, template, f"{name}-{i}"))
        except DataError as err:
            if on_unverifiable == "error":
                raise
            skipped.append(str(err))
    if skipped:
        log.warning("%s: skipped %d unverifiable records, first: %s", name, len(skipped), skipped[0])
    return problems


def read_jsonl(path: str | Path) -> list[tuple[str, Any]]:
    """(file:line, parsed record) for each non-blank line; malformed JSON is a DataError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"problem file not found: {path}")
    out: list[tuple[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                out.append((where, json.loads(line)))
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: malformed JSON ({err.msg})") from err
    return out


def arithmetic_problems(n: int, seed: int, split: str) -> list[Problem]:
    """Problems of the calibration arithmetic suite (first operand 2-digit, others 1-digit, 2-3 operands)."""
    from benchmarks.synthetic.arithmetic import make_arithmetic

    return [Problem(r.id, r.prompt, r.answer) for r in make_arithmetic(n, seed=seed, split=split)]


def _split(problems: list[Problem], cfg: DataConfig, name: str) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """(pool, dev, test) in file order: the first n_train records, the next n_dev, then n_test."""
    need = cfg.n_train + cfg.n_dev + cfg.n_test
    if len(problems) < need:
        raise DataError(
            f"{name}: {len(problems)} usable problems, but data.n_train + data.n_dev + data.n_test = {need}; lower them"
        )
    dev_end = cfg.n_train + cfg.n_dev
    return problems[: cfg.n_train], problems[cfg.n_train : dev_end], problems[dev_end:need]


def _held_out_arithmetic(cfg: DataConfig) -> tuple[list[Problem], list[Problem]]:
    """(dev, test) of the arithmetic suite. Without a dev split the test set is the generator's first n_test
    problems (as before); with one, n_dev + n_test problems are drawn and shuffled before splitting, because the
    generator's draws are not exchangeable (2-operand test expressions run out after the first few hundred), so a
    dev set taken after the test set would have another mix of problems."""
    if cfg.n_dev <= 0:
        return [], arithmetic_problems(cfg.n_test, cfg.data_seed, "test")
    held = arithmetic_problems(cfg.n_dev + cfg.n_test, cfg.data_seed, "test")
    random.Random(f"held-out|{cfg.data_seed}").shuffle(held)
    return held[: cfg.n_dev], held[cfg.n_dev :]


def _check_split_settings(cfg: DataConfig) -> None:
    if cfg.n_dev < 0:
        raise DataError(f"data.n_dev must be >= 0, got {cfg.n_dev}")
    if cfg.eval_split not in ("test", "dev"):
        raise DataError(f"data.eval_split must be 'test' or 'dev', got {cfg.eval_split!r}")
    if cfg.eval_split == "dev" and cfg.n_dev <= 0:
        raise DataError("data.eval_split=dev needs a dev split: set data.n_dev > 0")


def _evaluated(train: list[Problem], dev: list[Problem], test: list[Problem], cfg: DataConfig,
               info: dict[str, Any]) -> ProblemSet:
    """The ProblemSet whose `test` is the split the run is evaluated on (dev while tuning settings)."""
    if cfg.eval_split == "dev":
        return ProblemSet(train, dev, info | {"name": info["name"] + ":dev"})
    return ProblemSet(train, test, info)


def load_problem_set(cfg: DataConfig) -> ProblemSet:
    """Build the train pool and the evaluated held-out problems (test, or dev with data.eval_split=dev)."""
    _check_split_settings(cfg)
    if cfg.source == "arithmetic":
        train = arithmetic_problems(cfg.n_train, cfg.data_seed, "train")
        dev, test = _held_out_arithmetic(cfg)
        text = "\n".join(f"{p.prompt}\t{p.answer}" for p in train + dev + test).encode("utf-8")
        dev_part = f",dev={cfg.n_dev}" if cfg.n_dev else ""
        info = {"name": f"synthetic-arithmetic(seed={cfg.data_seed},train={cfg.n_train}{dev_part},test={cfg.n_test})",
                "sha256": sha256_of(text)}
        return _evaluated(train, dev, test, cfg, info)
    if cfg.source == "jsonl":
        if not cfg.path:
            raise DataError("data.source=jsonl needs data.path (a JSONL file with question and answer fields)")
        path = Path(cfg.path)
        records = read_jsonl(path)
    else:
        path = Path(cfg.path) if cfg.path else bundled_path(cfg.source)
        records = benchmark_records(cfg.source, path)
    problems = problems_from_records(records, cfg.prompt_template, cfg.on_unverifiable, cfg.source)
    train, dev, test = _split(problems, cfg, str(path))
    return _evaluated(train, dev, test, cfg, {"name": f"{cfg.source}:{path.name}", "sha256": sha256_of([path])})


def load_eval_problems(cfg: DataConfig, n: int) -> ProblemSet:
    """Up to `n` held-out problems of cfg.source (all of them when the slice is smaller, e.g. AIME24's 15)."""
    if cfg.source == "arithmetic":
        test = arithmetic_problems(n, cfg.data_seed, "test")
        text = "\n".join(f"{p.prompt}\t{p.answer}" for p in test).encode("utf-8")
        return ProblemSet([], test, {"name": f"synthetic-arithmetic-test(seed={cfg.data_seed},n={n})",
                                     "sha256": sha256_of(text)})
    path = Path(cfg.path) if cfg.path else (None if cfg.source == "jsonl" else bundled_path(cfg.source))
    if path is None:
        raise DataError("data.source=jsonl needs data.path (a JSONL file with question and answer fields)")
    records = read_jsonl(path) if cfg.source == "jsonl" else benchmark_records(cfg.source, path)
    problems = problems_from_records(records, cfg.prompt_template, cfg.on_unverifiable, cfg.source)
    if not problems:
        raise DataError(f"{path}: no usable problem")
    return ProblemSet([], problems[:n], {"name": f"{cfg.source}:{path.name}", "sha256": sha256_of([path])})


BUNDLED_FILES = {"gsm8k": "math/gsm8k/test.jsonl", "math500": "math/math500/test.jsonl",
                 "aime24": "math/aime24/test.jsonl"}


def bundled_path(source: str) -> Path:
    """File of a bundled math slice, as shipped inside the benchmarks package."""
    from benchmarks.data.bundled import bundled_path as locate

    if source not in BUNDLED_FILES:
        raise DataError(f"no bundled math slice {source!r}; choose one of {sorted(BUNDLED_FILES)}")
    return locate(BUNDLED_FILES[source])


def benchmark_records(source: str, path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Records of a GSM8K / MATH-500 / AIME file read by the benchmarks loaders, as (where, record) items."""
    from benchmarks.data.math import load_aime, load_gsm8k, load_math500

    loaders = {"gsm8k": load_gsm8k, "math500": load_math500, "aime24": load_aime}
    if source not in loaders:
        raise DataError(f"no loader for source {source!r}; choose one of {sorted(loaders)}")
    return [(f"{path} record {i + 1} (id {r.id})", {"id": r.id, "question": r.problem, "answer": r.answer})
            for i, r in enumerate(loaders[source](path))]
