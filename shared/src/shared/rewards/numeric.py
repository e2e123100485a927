"""Numeric answers within a tolerance, and multiple-choice letters, as 0/1 rewards.

`parse_number` reads one number written the way reports and models write them: thousands separators (``1,234``),
a percent sign, a unicode minus (U+2212) or an accounting negative ``(12)``, a currency sign, a sign, decimals and
an exponent. The whole string must be that number (after stripping spaces, currency and a final full stop): text
with words around a number is not guessed at; use `last_number` (or extract ``\\boxed{}`` first) for free text.

`numeric_match` compares with ``|pred - gold| <= max(rel_tol * |gold|, abs_tol)``: the tolerance is relative to the
gold, not symmetric, so a reward does not depend on how far off a wrong prediction is. Scale words ("million") are
not read: scale-aware table QA scoring (TAT-QA) is benchmark-specific and lives with the benchmark.

`choice_match` finds the letter a reply commits to; a reply naming two different letters is ambiguous and scores 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

Percent = Literal["number", "fraction", "either"]
_MINUSES = "\u2212\u2012\u2013\u2014\ufe63\uff0d"  # unicode minus and dashes models write for a minus
_CURRENCY = "$€£¥₹"
_NUMBER = re.compile(
    r"""^(?P<sign>[+-]?)
        (?P<int>\d{1,3}(?:,\d{3})+|\d*)        # 1,234,567 or 1234567 or empty (".5")
        (?P<frac>\.\d*)?
        (?P<exp>[eE][+-]?\d+)?$""",
    re.VERBOSE,
)
_ANY_NUMBER = re.compile(r"\(?[-+\u2212]?[$€£¥₹]?\d[\d,]*(?:\.\d+)?(?:[eE][+-]?\d+)?%?\)?")


def parse_number(text: str | float | int, percent: Literal["number", "fraction"] = "number") -> float | None:
    """The number `text` writes, or None. A trailing % gives the number itself (``percent="number"``: "12.5%" ->
    12.5) or its fraction (``"fraction"``: 0.125). Booleans and non-finite floats are not numbers."""
    if isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text) if math.isfinite(text) else None
    if not isinstance(text, str):
        return None
    s = text.strip().rstrip(".").strip()
    for ch in _MINUSES:
        s = s.replace(ch, "-")
    negative = False
    if s.startswith("(") and s.endswith(")"):  # accounting negative: (12) = -12
        s, negative = s[1:-1].strip(), True
    is_percent = s.endswith("%")
    if is_percent:
        s = s[:-1].strip()
    sign = ""
    if s[:1] in "+-" and s[:1]:
        sign, s = s[0], s[1:].strip()
    s = s.lstrip(_CURRENCY).strip()
    if s.startswith(("-", "+")) and not sign:  # "$-5"
        sign, s = s[0], s[1:]
    m = _NUMBER.match(sign + s)
    if m is None or not (m.group("int") or (m.group("frac") or "").strip(".")):
        return None
    if negative and m.group("sign"):  # "(-12)" is not an accounting number
        return None
    value = float((m.group("sign") + m.group("int").replace(",", "") + (m.group("frac") or "") +
                   (m.group("exp") or "")) or "nan")
    if not math.isfinite(value):
        return None
    if negative:
        value = -value
    if is_percent and percent == "fraction":
        value /= 100.0
    return value


def last_number(text: str) -> str | None:
    """The last number-looking span of free text (for replies like "so the total is $1,234."), or None."""
    spans = _ANY_NUMBER.findall(text or "")
    return spans[-1].rstrip(",") if spans else None


def numeric_match(pred: str | float | int, gold: str | float | int, rel_tol: float = 1e-2, abs_tol: float = 1e-6,
                  percent: Percent = "number") -> float:
    """1.0 when `pred` is within the tolerance of `gold`, else 0.0 (unparsable pred: 0.0, never an exception).

    ``percent``: how a % in the prediction reads: "number" ("12.5%" = 12.5), "fraction" (= 0.125) or "either"
    (matches if one reading does). A gold that is not a number raises ValueError: that is bad data, not a miss."""
    if rel_tol < 0 or abs_tol < 0:
        raise ValueError(f"numeric_match needs rel_tol >= 0 and abs_tol >= 0, got {rel_tol}, {abs_tol}")
    if percent not in ("number", "fraction", "either"):
        raise ValueError(f"numeric_match percent must be 'number', 'fraction' or 'either', got {percent!r}")
    gold_value = parse_number(gold)
    if gold_value is None:
        raise ValueError(f"numeric_match: gold {gold!r} is not a number")
    readings = ("number", "fraction") if percent == "either" else (percent,)
    limit = max(rel_tol * abs(gold_value), abs_tol)
    for reading in readings:
        value = parse_number(pred, percent=reading)  # type: ignore[arg-type]
        if value is not None and abs(value - gold_value) <= limit:
            return 1.0
    return 0.0


_ANSWER_PHRASE = re.compile(r"(?:answer|option|choice)\s*(?:is|would be|:)?\s*[:\-]?\s*", re.IGNORECASE)
_MARKED = r"\(\s*({L})\s*\)|(?:^|\n)\s*({L})\s*[).:](?=\s|$)"


def _letters_in(region: str, letters: str, any_case: bool) -> set[str]:
    flags = re.IGNORECASE if any_case else 0
    found = re.findall(rf"(?<![A-Za-z0-9])\(?([{letters}])\)?(?![A-Za-z0-9])", region, flags)
    return {x.upper() for x in found}


def choice_letter(text: str, letters: Sequence[str] | str = "ABCD") -> str | None:
    """The one letter `text` commits to, or None (no letter, or two different letters: ambiguous).

    Read in order, the first rule that finds a letter decides: the sentence after the last "answer is" / "option" /
    "choice"; a reply that is only a letter ("b", "(B)", "B."); letters marked as options ("(B)", a line starting
    "B)"); standalone capital letters ("A or B" -> ambiguous)."""
    allowed = "".join(sorted({x.upper() for x in letters}))
    if not allowed or any(len(x) != 1 or not x.isalpha() for x in allowed):
        raise ValueError(f"choice letters must be single letters, got {letters!r}")
    text = text or ""
    rules = []
    phrases = list(_ANSWER_PHRASE.finditer(text))
    if phrases:
        tail = re.split(r"[.\n;]", text[phrases[-1].end():], maxsplit=1)[0]
        rules.append(_letters_in(tail, allowed, any_case=len(tail.strip()) <= 3))
    bare = text.strip().strip(".:!").strip()
    if re.fullmatch(r"\(?\s*[A-Za-z]\s*\)?", bare):
        rules.append(_letters_in(bare, allowed, any_case=True))
    marked = re.compile(_MARKED.format(L=f"[{allowed}]"))
    rules.append({(a or b).upper() for a, b in marked.findall(text)})
    rules.append(_letters_in(text, allowed, any_case=False))
    for found in rules:
        if found:
            return found.pop() if len(found) == 1 else None
    return None


def choice_match(text: str, gold: str, letters: Sequence[str] | str = "ABCD") -> float:
    """1.0 when `text` commits to the gold letter alone, else 0.0. A gold outside `letters` raises ValueError."""
    allowed = {x.upper() for x in letters}
    if not isinstance(gold, str) or gold.strip().upper() not in allowed:
        raise ValueError(f"choice_match: gold {gold!r} is not one of {', '.join(sorted(allowed))}")
    return 1.0 if choice_letter(text, letters) == gold.strip().upper() else 0.0
