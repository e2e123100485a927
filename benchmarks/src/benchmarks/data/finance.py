"""Table+text numeric QA: loaders (TAT-QA, FinQA), their programs, prompts and scale-aware scoring.

- `load_tatqa` / `load_finqa`: one `TableQARecord` per question.
- `run_program(program, table)`: FinQA's DSL (`subtract(5829, 5735), divide(#0, 5735)`; ops add, subtract,
  multiply, divide, exp, greater, table_max/min/sum/average; `#k` = result of step k; `const_100`, `const_m1`;
  `5%` = 0.05). A bad program raises `ProgramError` naming the step.
- `eval_derivation(text)`: a TAT-QA `derivation` such as `(1,496-1,323)/1,323` (thousands separators, `[ ]` as
  brackets, `$` dropped, `15%` = 15/100, a bare bracketed number `(71)` = -71 as in accounts) through the AST-safe
  `tool_library.calculate`; never `eval`.
- `tatqa_prompt(record)`: the table linearised (`a | b | c` rows) with the paragraphs and the question.
- `tatqa_golds(record)` / `tatqa_score(prediction, record)`: scale-aware numeric scoring. The gold is in the table's
  units (`scale` thousand/million/billion/percent); a prediction matches within the relative tolerance when it gives
  the number in those units or as the absolute amount (a scale word in the prediction is applied: "12.6 million").
  Multi-span answers (lists) are scored by set F1 over the predicted spans, or skipped (None) by option.
- `check_table(record)`: a ragged table (rows of different lengths) is a `DataError` naming the record.
"""

from __future__ import annotations

import re
from pathlib import Path

from benchmarks.data.errors import DataError
from benchmarks.data.io import iter_json_array, require
from benchmarks.data.records import TableQARecord


def load_tatqa(path: str | Path) -> list[TableQARecord]:
    """TAT-QA json: `[{table: {uid, table}, paragraphs: [{uid, order, text}], questions: [...]}]`, one record per
    question with its table and the context's paragraphs in order."""
    out = []
    for i, ctx in iter_json_array(path):
        table = require(ctx, "table", path, i, dict)
        grid = require(table, "table", path, i, list)
        paras = sorted(require(ctx, "paragraphs", path, i, list), key=lambda p: p.get("order", 0))
        texts = [str(p.get("text", "")) for p in paras]
        for q in require(ctx, "questions", path, i, list):
            if "question" not in q or "answer" not in q:
                raise DataError(path, "each question needs 'question' and 'answer'", line=i, field="questions")
            out.append(
                TableQARecord(
                    id=str(q.get("uid", f"tatqa-{i}-{len(out)}")), question=q["question"], answer=q["answer"],
                    table=grid, paragraphs=texts, answer_type=str(q.get("answer_type", "")),
                    scale=str(q.get("scale", "")), metadata={"derivation": q.get("derivation", "")},
                )
            )  # fmt: skip
    return out


def load_finqa(path: str | Path) -> list[TableQARecord]:
    """FinQA json: `[{id, pre_text, post_text, table, qa: {question, program, exe_ans, answer}}]`; the gold
    answer is the executed value `exe_ans`."""
    out = []
    for i, obj in iter_json_array(path):
        qa = require(obj, "qa", path, i, dict)
        for field in ("question", "exe_ans"):
            if field not in qa:
                raise DataError(path, "missing", line=i, field=f"qa.{field}")
        out.append(
            TableQARecord(
                id=str(require(obj, "id", path, i)), question=qa["question"], answer=qa["exe_ans"],
                table=require(obj, "table", path, i, list),
                paragraphs=list(obj.get("pre_text", [])) + list(obj.get("post_text", [])),
                answer_type="number", program=str(qa.get("program", "")),
                metadata={"answer_text": qa.get("answer", "")},
            )
        )  # fmt: skip
    return out


# ---- FinQA programs ---------------------------------------------------------------------------------------------
class ProgramError(ValueError):
    """A FinQA program that cannot be executed; the message names the step and the problem."""


_STEP = re.compile(r"\s*([a-z_]+)\(([^()]*)\)\s*(?:,|$)")
_BINARY = {
    "add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
    "divide": lambda a, b: a / b, "exp": lambda a, b: a**b, "greater": lambda a, b: "yes" if a > b else "no",
}  # fmt: skip
_TABLE = {"table_max": max, "table_min": min, "table_sum": sum, "table_average": lambda v: sum(v) / len(v)}


def _number(text: str) -> float | None:
    """A number as FinQA writes it: `1,234`, `5%` (= 0.05), `$3`, `(12)` is not read here."""
    s = text.strip().replace(",", "").replace("$", "")
    percent = s.endswith("%")
    try:
        value = float(s.rstrip("%"))
    except ValueError:
        return None
    return value / 100 if percent else value


def _argument(arg: str, results: list, step: int) -> float:
    arg = arg.strip()
    if arg.startswith("#"):
        try:
            k = int(arg[1:])
        except ValueError:
            raise ProgramError(f"step {step}: bad reference {arg!r}") from None
        if not 0 <= k < len(results):
            raise ProgramError(f"step {step}: reference {arg} points at no earlier step ({len(results)} done)")
        if isinstance(results[k], str):
            raise ProgramError(f"step {step}: reference {arg} is the yes/no result of a comparison")
        return results[k]
    if arg.startswith("const_"):
        name = arg[len("const_"):]
        value = _number("-" + name[1:] if name.startswith("m") else name)
        if value is None:
            raise ProgramError(f"step {step}: unknown constant {arg!r}")
        return value
    value = _number(arg)
    if value is None:
        raise ProgramError(f"step {step}: argument {arg!r} is not a number, a #k reference or a constant")
    return value


def _row_values(table: list[list[str]] | None, label: str, step: int) -> list[float]:
    if not table:
        raise ProgramError(f"step {step}: table operation without a table")
    for row in table:
        if row and " ".join(str(row[0]).split()).lower() == " ".join(label.split()).lower():
            values = [v for v in (_number(str(c).replace("(", "-").replace(")", "")) for c in row[1:]) if v is not None]
            if not values:
                raise ProgramError(f"step {step}: row {label!r} holds no numbers")
            return values
    raise ProgramError(f"step {step}: the table has no row {label!r}")


def run_program(program: str, table: list[list[str]] | None = None) -> float | str:
    """The value of a FinQA DSL program (the last step's result: a number, or "yes"/"no" for `greater`)."""
    text = program.strip()
    if text.endswith("EOF"):
        text = text[:-3].rstrip(" ,")
    steps = list(_STEP.finditer(text))
    if not steps or "".join(m.group(0) for m in steps).replace(" ", "") != text.replace(" ", ""):
        raise ProgramError(f"cannot parse program {program!r}: expected op(arg, arg), op(arg, arg), ...")
    results: list[float | str] = []
    for i, m in enumerate(steps):
        op, args = m.group(1), [a for a in m.group(2).split(",")]
        if op in _BINARY:
            if len(args) != 2:
                raise ProgramError(f"step {i}: {op} takes 2 arguments, got {len(args)}")
            a, b = (_argument(x, results, i) for x in args)
            try:
                results.append(_BINARY[op](a, b))
            except ZeroDivisionError:
                raise ProgramError(f"step {i}: division by zero") from None
        elif op in _TABLE:
            results.append(_TABLE[op](_row_values(table, args[0], i)))
        else:
            raise ProgramError(f"step {i}: unknown op {op}")
    return results[-1]


# ---- TAT-QA derivations, prompts and scoring ---------------------------------------------------------------------
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_ACCOUNTING = re.compile(r"\(\s*(\d+(?:\.\d+)?)\s*\)")  # "(71)": a bare number in brackets is a negative


def eval_derivation(text: str) -> float:
    """The value of a TAT-QA arithmetic derivation, by the AST-safe calculator (ValueError when refused)."""
    from benchmarks.synthetic.tool_library import calculate

    cleaned = _THOUSANDS.sub("", str(text)).replace("[", "(").replace("]", ")").replace("$", "")
    cleaned = _PERCENT.sub(r"(\1/100)", _ACCOUNTING.sub(r"(-\1)", cleaned))
    return float(calculate(cleaned))


SCALES = {"": 1.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "percent": 1.0}
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_SCALE_WORD = re.compile(r"\b(thousand|million|billion)s?\b", re.IGNORECASE)


def check_table(record: TableQARecord) -> None:
    """A table must be a non-empty list of rows of equal length; DataError names the record otherwise."""
    table = record.table
    if not isinstance(table, list) or not table or not all(isinstance(r, list) for r in table):
        raise DataError(f"record {record.id}", "table must be a non-empty list of rows", field="table")
    widths = sorted({len(r) for r in table})
    if len(widths) > 1:
        raise DataError(f"record {record.id}", f"ragged table: rows of lengths {widths}", field="table")


def linearize_table(table: list[list[str]]) -> str:
    """One line per row, cells joined by ` | ` (inner whitespace collapsed)."""
    return "\n".join(" | ".join(" ".join(str(c).split()) for c in row) for row in table)


def tatqa_prompt(record: TableQARecord, max_chars: int = 0, with_paragraphs: bool = True) -> str:
    """`Table:` + rows, `Text:` + paragraphs (optional), then `Q: question\nA: `; the context is cut to `max_chars`
    (0 = no cut) from the end, so the question always survives."""
    check_table(record)
    context = "Table:\n" + linearize_table(record.table)
    if with_paragraphs and record.paragraphs:
        context += "\nText:\n" + "\n".join(p.strip() for p in record.paragraphs)
    if max_chars and len(context) > max_chars:
        context = context[:max_chars]
    return f"{context}\nQ: {record.question}\nA: "


def tatqa_golds(record: TableQARecord) -> list[float]:
    """The accepted numbers of a numeric answer: in the table's units, and as the absolute amount when a scale
    word applies (DataError for an unknown scale or a non-numeric answer)."""
    from shared.rewards.numeric import parse_number

    if record.scale not in SCALES:
        raise DataError(f"record {record.id}", f"unknown scale {record.scale!r}; known: {sorted(SCALES)}",
                        field="scale")
    value = parse_number(record.answer if not isinstance(record.answer, str) else record.answer.strip())
    if value is None:
        raise DataError(f"record {record.id}", f"answer {record.answer!r} is not a number", field="answer")
    golds = [value]
    if SCALES[record.scale] != 1.0:
        golds.append(value * SCALES[record.scale])
    return golds


def prediction_number(text: str) -> float | None:
    """The number a reply gives: the last `\\boxed{}` (else the last number), times a scale word written after it."""
    from shared.rewards.numeric import last_number, parse_number

    boxes = _BOXED.findall(text or "")
    span = boxes[-1] if boxes else (text or "")
    scale = _SCALE_WORD.search(span)
    number = last_number(_SCALE_WORD.sub("", span))
    value = parse_number(number) if number is not None else None
    if value is None:
        return None
    return value * SCALES[scale.group(1).lower()] if scale else value


def _span_f1(prediction: str, golds: list) -> float:
    from shared.rewards.qa import normalize_answer

    boxes = _BOXED.findall(prediction or "")
    text = boxes[-1] if boxes else (prediction or "")
    pred = {normalize_answer(p) for p in re.split(r"[;\n]|,\s", text) if normalize_answer(p)}
    gold = {normalize_answer(str(g)) for g in golds if normalize_answer(str(g))}
    hits = len(pred & gold)
    return 0.0 if not hits else 2 * hits / (len(pred) + len(gold))


def tatqa_score(prediction: str, record: TableQARecord, rel_tol: float = 1e-2,
                multi_span: str = "skip") -> float | None:
    """1.0 / 0.0 for a numeric answer (see `tatqa_golds`); a list answer gives set F1 (`multi_span="f1"`) or None
    (`"skip"`: the caller counts it as skipped)."""
    if multi_span not in ("skip", "f1"):
        raise ValueError(f"multi_span must be 'skip' or 'f1', got {multi_span!r}")
    if isinstance(record.answer, list):
        if len(record.answer) == 1 and not isinstance(record.answer[0], list):
            record = TableQARecord(**{**record.__dict__, "answer": record.answer[0]})
        else:
            return None if multi_span == "skip" else _span_f1(prediction, record.answer)
    value = prediction_number(prediction)
    if value is None:
        return 0.0
    return 1.0 if any(abs(value - g) <= max(rel_tol * abs(g), 1e-6) for g in tatqa_golds(record)) else 0.0
