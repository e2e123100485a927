"""A seeded synthetic finance suite: company tables, a filings corpus, a glossary, three tasks and their oracle.

Made for the staged domain-training recipe (huijin) at CPU scale, where the calibration model (Qwen2 h128/L2,
character tokenizer) learns the arithmetic of `benchmarks.synthetic.arithmetic` and nothing much harder:

- **Companies** (`Company`): a name ("Kalo Corp") and a year table (2016-2023) of small metrics (revenue, cost of
  sales, operating expenses, headcount: 2-digit values moving by 1-digit steps) and large ones (total assets,
  total liabilities, cash reserves, inventory: 3-digit values moving by 10-299).
- **Filings** (`filings(split)`): one annual-report document per company and year, rendered from the table
  ("Kalo Corp annual report 2019. Revenue rose by 9 to 52. ..."); the CPT corpus of the train companies and the
  held-out perplexity corpus of the test companies.
- **Glossary** (`GLOSSARY`, 48 terms): definitions in three phrasings for CPT (`glossary_texts`), a fourth phrasing
  held out for the cloze.
- **fin_numeric** (`numeric(split)`): the calibration core in finance wording. "Kalo Corp's revenue was 43 in
  2018, rose by 9 in 2019 and fell by 6 in 2020. What was its revenue in 2020?" -> `43+9=52. 52-6=46. \\boxed{46}`:
  first operand 2-digit, the others 1-digit, 2-3 operands, read off the company's table.
- **fin_tool** (`tool(split)`): the same questions over the large metrics (3-digit operands the tiny model cannot
  add in its head); the gold trace calls `add`/`subtract` once per step (`<tool_call>{"name": "subtract",
  "arguments": {"a": 437, "b": 289}}</tool_call>`), then answers `\\boxed{148}`.
- **fin_choice** (`choice(split, n)`): glossary multiple choice (A-D, "which term means ..."), with the cloze
  context ("Revenue minus cost of sales is called") and the four option terms for likelihood scoring.

Splits are disjoint twice over: companies are split by a hash of their name (test 10%, dev 12%, train 78%), so no
test question's company has a filing in the training corpus, and every question's expression ("43+9-6") is split by
`fin_split`, which keeps the calibration arithmetic's own test expressions (`arithmetic.split_of`) for test and
draws dev from the rest by a second hash. A question is kept only where both agree. Glossary terms are split by a
hash too (test 25%, dev 15%); every definition is in the CPT glossary by design (CPT is meant to inject that
knowledge), but no multiple-choice item of a test term is ever a training item. `overlap` counts shared keys.
The oracle (`solve_numeric`, `solve_tool`, `solve_choice`) answers every item from its text alone.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from benchmarks.synthetic.arithmetic import split_of, worked_solution

SPLITS = ("train", "dev", "test")
YEARS = tuple(range(2016, 2024))
SMALL_METRICS = ("revenue", "cost of sales", "operating expenses", "headcount")  # fin_numeric: 10..99, steps 1..9
LARGE_METRICS = ("total assets", "total liabilities", "cash reserves", "inventory")  # fin_tool: 100..999, steps 10..299
COMPANY_TEST, COMPANY_DEV = 0.10, 0.12
EXPR_DEV = 0.125  # share of the non-test expressions that go to dev (10% of all)
TERM_TEST, TERM_DEV = 0.25, 0.15
TOOL_NAMES = ("add", "subtract", "calculate", "table_lookup", "search_filings", "python")
LETTERS = "ABCD"

_SYLLABLES = ("ka", "lo", "mi", "ra", "to", "ve", "zu", "ne", "so", "pi", "da", "re", "ho", "lu", "be", "fa", "ti",
              "no", "sa", "ku", "me", "ri", "po", "la")  # fmt: skip
_SUFFIXES = ("Corp", "Group", "Capital", "Ltd", "Inc", "Trust")

GLOSSARY: tuple[tuple[str, str], ...] = (
    ("gross profit", "revenue minus cost of sales"),
    ("net income", "profit left after all expenses, interest and taxes"),
    ("operating income", "gross profit minus operating expenses"),
    ("EBITDA", "earnings before interest, taxes, depreciation and amortisation"),
    ("revenue", "income from selling goods and services"),
    ("cost of sales", "the direct cost of the goods a company sells"),
    ("operating expenses", "costs of running the business that are not cost of sales"),
    ("gross margin", "gross profit divided by revenue"),
    ("net margin", "net income divided by revenue"),
    ("current ratio", "current assets divided by current liabilities"),
    ("quick ratio", "liquid current assets divided by current liabilities"),
    ("debt to equity ratio", "total debt divided by shareholder equity"),
    ("shareholder equity", "total assets minus total liabilities"),
    ("working capital", "current assets minus current liabilities"),
    ("free cash flow", "operating cash flow minus capital expenditure"),
    ("capital expenditure", "money spent on long term physical assets"),
    ("dividend", "a share of profit paid out to shareholders"),
    ("dividend yield", "the annual dividend per share divided by the share price"),
    ("earnings per share", "net income divided by the number of shares"),
    ("price to earnings ratio", "the share price divided by earnings per share"),
    ("market capitalisation", "the share price times the number of shares"),
    ("return on equity", "net income divided by shareholder equity"),
    ("return on assets", "net income divided by total assets"),
    ("depreciation", "spreading the cost of a physical asset over its useful life"),
    ("amortisation", "spreading the cost of an intangible asset over time"),
    ("accounts receivable", "money that customers owe the company"),
    ("accounts payable", "money that the company owes its suppliers"),
    ("inventory", "goods a company holds for sale"),
    ("liquidity", "how easily assets can be turned into cash"),
    ("solvency", "the ability to meet long term obligations"),
    ("leverage", "the use of borrowed money to pay for assets"),
    ("goodwill", "the price paid above the fair value of the net assets bought"),
    ("impairment", "a write down of the carrying value of an asset"),
    ("accrual", "revenue or expense recorded before cash changes hands"),
    ("deferred revenue", "cash received for goods not yet delivered"),
    ("retained earnings", "profits kept in the business instead of paid out"),
    ("cash flow statement", "a report of the cash coming in and going out"),
    ("balance sheet", "a report of assets, liabilities and equity on one date"),
    ("income statement", "a report of revenue and expenses over a period"),
    ("audit", "an independent check of the financial statements"),
    ("fiscal year", "the twelve month period a company reports on"),
    ("interest coverage ratio", "operating income divided by interest expense"),
    ("asset turnover", "revenue divided by total assets"),
    ("bond", "a loan to a company that pays interest to the lender"),
    ("equity financing", "raising money by selling shares"),
    ("share buyback", "a company buying back its own shares"),
    ("hedging", "reducing risk by taking an offsetting position"),
    ("collateral", "an asset pledged to secure a loan"),
)
GLOSSARY_TEMPLATES = ("{Term} is {definition}.", "In finance, {term} means {definition}.",
                      "Analysts define {term} as {definition}.")
CLOZE_TEMPLATE = "{Definition} is called"  # held out of the CPT glossary; candidates are " {term}."


def _bucket(text: str, salt: str = "") -> float:
    return int(hashlib.sha256(f"{salt}{text}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def company_split(name: str) -> str:
    """Split of a company by a hash of its name: test 10%, dev 12%, train 78%."""
    b = _bucket(name, "company|")
    return "test" if b < COMPANY_TEST else "dev" if b < COMPANY_TEST + COMPANY_DEV else "train"


def fin_split(expr: str) -> str:
    """Split of an expression: the calibration arithmetic's test expressions are test; the rest are dev (12.5%) or
    train by a second hash, so no test expression is ever trained on, in either wording."""
    if split_of(expr) == "test":
        return "test"
    return "dev" if _bucket(expr, "dev|") < EXPR_DEV else "train"


def term_split(term: str) -> str:
    b = _bucket(term, "term|")
    return "test" if b < TERM_TEST else "dev" if b < TERM_TEST + TERM_DEV else "train"


@dataclass
class Company:
    name: str
    split: str
    table: dict[str, dict[int, int]] = field(default_factory=dict)  # metric -> year -> value

    def grid(self) -> list[list[str]]:
        """The table as rows of cells: header `metric | 2016 | ...`, one row per metric (for `table_lookup`)."""
        return [["metric", *map(str, YEARS)]] + [[m, *(str(self.table[m][y]) for y in YEARS)] for m in self.table]


def _walk(rng: random.Random, lo: int, hi: int, step_lo: int, step_hi: int) -> list[int]:
    """A value per year in [lo, hi], each year moving up or down by a step in [step_lo, step_hi]."""
    values = [rng.randint(lo + step_hi // 2, hi - step_hi // 2)]
    while len(values) < len(YEARS):
        step = rng.randint(step_lo, step_hi)
        options = [v for v in (values[-1] + step, values[-1] - step) if lo <= v <= hi]
        if not options:
            step = step_lo
            options = [v for v in (values[-1] + step, values[-1] - step) if lo <= v <= hi]
        values.append(rng.choice(options))
    return values


def make_companies(n: int, seed: int = 0) -> list[Company]:
    """`n` companies with distinct names and seeded tables."""
    rng = random.Random(f"finance|{seed}")
    names: list[str] = []
    taken: set[str] = set()
    while len(names) < n:
        base = "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 3))))
        name = f"{_cap(base)} {rng.choice(_SUFFIXES)}"
        if base not in taken:
            taken.add(base)
            names.append(name)
    companies = []
    for name in names:
        table = {m: dict(zip(YEARS, _walk(rng, 10, 99, 1, 9))) for m in SMALL_METRICS}
        table |= {m: dict(zip(YEARS, _walk(rng, 100, 999, 10, 299))) for m in LARGE_METRICS}
        companies.append(Company(name, company_split(name), table))
    return companies


def _verb(metric: str, past: bool = True) -> str:
    return "were" if metric.endswith(("expenses", "assets", "liabilities", "reserves")) else "was"


def question_text(company: str, metric: str, years: Sequence[int], values: Sequence[int]) -> str:
    """The word problem of a window of a company's table: the first value and the later changes, asking the last."""
    changes = [f"{'rose' if b > a else 'fell'} by {abs(b - a)} in {y}" for a, b, y in zip(values, values[1:], years[1:])]
    verb = _verb(metric)
    told = f"{company}'s {metric} {verb} {values[0]} in {years[0]}, " if len(changes) > 1 else \
        f"{company}'s {metric} {verb} {values[0]} in {years[0]} and "
    body = told + (", ".join(changes[:-1]) + " and " + changes[-1] if len(changes) > 1 else changes[0])
    return f"{body}. What {verb} its {metric} in {years[-1]}?"


_QUESTION = re.compile(r"^(?P<company>.+?)'s (?P<metric>[a-z ]+?) (?:was|were) (?P<first>\d+) in (?P<year>\d{4})"
                       r"(?P<rest>.*)\. What (?:was|were) its")
_CHANGE = re.compile(r"(rose|fell) by (\d+) in \d{4}")


def parse_question(question: str) -> tuple[list[int], list[str]]:
    """Operands and operators of a fin_numeric / fin_tool question (ValueError names the text otherwise)."""
    line = re.search(r"(?:^|\n)Q: ([^\n]*)", question)
    m = _QUESTION.search(line.group(1) if line else question)
    changes = _CHANGE.findall(m.group("rest")) if m else []
    if not m or not changes:
        raise ValueError(f"not a finance arithmetic question: {question!r}")
    return [int(m.group("first"))] + [int(d) for _, d in changes], ["+" if w == "rose" else "-" for w, _ in changes]


def expression_of(operands: Sequence[int], ops: Sequence[str]) -> str:
    return str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:]))


def call_text(name: str, arguments: Mapping[str, Any]) -> str:
    """One tool call as the policy writes it (compact JSON: fewer characters for a char-level model)."""
    return "<tool_call>" + json.dumps({"name": name, "arguments": dict(arguments)}, separators=(",", ":")) + \
        "</tool_call>"


def tool_trace(operands: Sequence[int], ops: Sequence[str]) -> list[dict[str, Any]]:
    """One add/subtract call per step of the chain, each on the previous result: [{name, arguments, result}]."""
    value, calls = operands[0], []
    for op, x in zip(ops, operands[1:]):
        name = "add" if op == "+" else "subtract"
        result = value + x if op == "+" else value - x
        calls.append({"name": name, "arguments": {"a": value, "b": x}, "result": result})
        value = result
    return calls


def tool_prompt(question: str) -> str:
    return f"Tools: {', '.join(TOOL_NAMES)}.\nQ: {question}\nA: "


@dataclass
class FinanceSuite:
    seed: int
    companies: list[Company]
    glossary: tuple[tuple[str, str], ...] = GLOSSARY

    def company(self, name: str) -> Company:
        for c in self.companies:
            if c.name == name:
                return c
        raise KeyError(f"no company {name!r} in the finance suite")

    def filings(self, split: str) -> list[dict[str, Any]]:
        """Annual-report documents `{id, contents, company, year}` of the split's companies."""
        _check_split(split)
        docs = []
        for c in self.companies:
            if c.split != split:
                continue
            for i, year in enumerate(YEARS):
                lines = [f"{c.name} annual report {year}."]
                for metric, values in c.table.items():
                    v = values[year]
                    if i == 0:
                        lines.append(f"{_cap(metric)} {_verb(metric)} {v}.")
                    else:
                        d = v - values[year - 1]
                        lines.append(f"{_cap(metric)} {'rose' if d > 0 else 'fell'} by {abs(d)} to {v}.")
                slug = c.name.lower().replace(" ", "-")
                docs.append({"id": f"filing-{slug}-{year}", "contents": " ".join(lines), "company": c.name,
                             "year": year})
        return docs

    def glossary_texts(self) -> list[str]:
        """Every definition in the three CPT phrasings (the cloze phrasing is not among them)."""
        return [t.format(Term=_cap(term), term=term, definition=d) for term, d in self.glossary
                for t in GLOSSARY_TEMPLATES]

    def _windows(self, metrics: Sequence[str], split: str) -> Iterable[tuple[Company, str, list[int], list[int]]]:
        for c in self.companies:
            if c.split != split:
                continue
            for metric in metrics:
                for k in (2, 3):
                    for start in range(len(YEARS) - k + 1):
                        years = list(YEARS[start: start + k])
                        yield c, metric, years, [c.table[metric][y] for y in years]

    def _items(self, kind: str, split: str, n: int | None) -> list[dict[str, Any]]:
        _check_split(split)
        metrics = SMALL_METRICS if kind == "numeric" else LARGE_METRICS
        items = []
        for c, metric, years, values in self._windows(metrics, split):
            ops = ["+" if b > a else "-" for a, b in zip(values, values[1:])]
            operands = [values[0]] + [abs(b - a) for a, b in zip(values, values[1:])]
            expr = expression_of(operands, ops)
            if fin_split(expr) != split:
                continue
            question = question_text(c.name, metric, years, values)
            item = {"id": "", "question": question, "answer": str(values[-1]), "operands": operands, "ops": ops,
                    "expression": expr, "company": c.name, "metric": metric, "years": years, "split": split}
            if kind == "numeric":
                item.update(prompt=f"Q: {question}\nA: ", solution=worked_solution(operands, ops)[0])
            else:
                item.update(prompt=tool_prompt(question), trace=tool_trace(operands, ops))
            items.append(item)
        random.Random(f"finance-{kind}|{self.seed}|{split}").shuffle(items)
        if n is not None and n > len(items):
            raise ValueError(f"the finance suite has {len(items)} {kind} items in split {split!r}, fewer than the "
                             f"{n} asked for: raise n_companies")
        for i, item in enumerate(items):
            item["id"] = f"fin-{kind}-{split}-{self.seed}-{i}"
        return items[:n] if n is not None else items

    def numeric(self, split: str, n: int | None = None) -> list[dict[str, Any]]:
        """fin_numeric items {id, question, prompt, solution, answer, operands, ops, expression, company, ...}."""
        return self._items("numeric", split, n)

    def tool(self, split: str, n: int | None = None) -> list[dict[str, Any]]:
        """fin_tool items {id, question, prompt, trace [{name, arguments, result}], answer, ...}."""
        return self._items("tool", split, n)

    def choice(self, split: str, n: int) -> list[dict[str, Any]]:
        """`n` distinct multiple-choice items on the split's terms {id, prompt, solution, answer (letter),
        options (terms), gold_index, term, context (the cloze), split}."""
        _check_split(split)
        terms = [t for t in self.glossary if term_split(t[0]) == split]
        names = [t for t, _ in self.glossary]
        rng = random.Random(f"finance-choice|{self.seed}|{split}")
        items, seen = [], set()
        attempts = 0
        while len(items) < n:
            attempts += 1
            if attempts > 50 * n + 1000:
                raise ValueError(f"could only draw {len(items)} of {n} distinct {split} choice items")
            term, definition = rng.choice(terms)
            options = [term, *rng.sample([x for x in names if x != term], 3)]
            rng.shuffle(options)
            key = (term, tuple(options))
            if key in seen:
                continue
            seen.add(key)
            gold = options.index(term)
            lines = "\n".join(f"{LETTERS[i]}) {o}" for i, o in enumerate(options))
            items.append({"id": f"fin-choice-{split}-{self.seed}-{len(items)}", "term": term,
                          "prompt": f"Q: Which term means {definition}?\n{lines}\nA: ",
                          "solution": f"\\boxed{{{LETTERS[gold]}}}", "answer": LETTERS[gold], "options": options,
                          "gold_index": gold, "context": CLOZE_TEMPLATE.format(Definition=_cap(definition)),
                          "split": split})
        return items


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


@lru_cache(maxsize=4)
def make_finance_suite(seed: int = 0, n_companies: int = 600) -> FinanceSuite:
    """The suite for a seed (cached: every caller of one process shares it)."""
    if n_companies < 10:
        raise ValueError(f"n_companies must be >= 10, got {n_companies}")
    return FinanceSuite(seed, make_companies(n_companies, seed))


# ---- the oracle ------------------------------------------------------------------------------------------------
def solve_numeric(prompt: str) -> str:
    """The worked solution of a fin_numeric prompt."""
    return worked_solution(*parse_question(prompt))[0]


def solve_tool(prompt: str) -> list[dict[str, Any]]:
    """The gold call trace of a fin_tool prompt."""
    return tool_trace(*parse_question(prompt))


def solve_choice(prompt: str, glossary: Sequence[tuple[str, str]] = GLOSSARY) -> str:
    """The letter of the option that the glossary defines as the asked definition."""
    m = re.search(r"Which term means (.+)\?\n", prompt)
    if not m:
        raise ValueError(f"not a glossary choice prompt: {prompt!r}")
    term = dict((d, t) for t, d in glossary).get(m.group(1))
    options = dict(re.findall(r"^([A-D])\) (.+)$", prompt, re.MULTILINE))
    found = [letter for letter, option in options.items() if option == term]
    if len(found) != 1:
        raise ValueError(f"no single option matches the definition in {prompt!r}")
    return found[0]


def overlap(a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]], key: str) -> int:
    """How many items of `a` share their `key` value with some item of `b` (the disjointness checks expect 0)."""
    seen = {json.dumps(x[key], sort_keys=True) for x in b}
    return sum(json.dumps(x[key], sort_keys=True) in seen for x in a)
