"""Math answer rewards: pull the final answer out of a completion and compare it with the gold.

Extraction: the last ``\\boxed{...}`` (or ``\\fbox{...}``) with nested braces, else the GSM8K ``#### n`` line.
Comparison (`math_equal`): first a plain-number check (thousands commas, ``$``, trailing ``.0``, simple
fractions ``1/2`` and ``\\frac{1}{2}`` are compared exactly as rationals), then math-verify's symbolic check
for everything else (expressions, intervals, sets). math-verify guards itself with ``signal.alarm``, which only
works in the main thread; in worker threads we call it without its timeout, so answers that could make sympy
hang (power towers, huge exponents or factorials, over 200 characters) are judged unequal without a symbolic
check unless they match as strings. That timeout is wall-clock: the first parse builds math-verify's grammar and
can overrun it on a loaded machine, so `parse_math` retries a timed-out parse once with a long budget instead of
reading a valid answer as unparsable. Bold wrappers (``\\textbf{...}``, ``\\mathbf{...}``, as in
``\\boxed{\\textbf{12}}``) are removed from both answers before comparing: math-verify reads ``\\textbf`` as text,
so ``\\textbf{x+1}`` and ``1,234`` in bold would otherwise never equal ``x+1`` and ``1234``.
"""

from __future__ import annotations

import logging
import re
import threading
from fractions import Fraction

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_GSM8K = re.compile(r"####\s*([^\n]*)")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_LATEX_FRAC = re.compile(r"^([+-]?)\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}$")
_MATH_VERIFY_TIMEOUT_S = 5
PARSE_TIMEOUTS_S = (_MATH_VERIFY_TIMEOUT_S, 60)  # a timed-out parse is retried once with the long budget
log = logging.getLogger(__name__)
_MAX_SYMBOLIC_CHARS = 200
# answers sympy could spend minutes or gigabytes on: power towers, 4+ digit exponents, big factorials
_COSTLY = re.compile(
    r"\^\s*\{[^{}]*\^|\^\s*\w+\s*\^|\^\s*\^|\^\s*\{?\s*\d{4,}|\*\*\s*\(?\s*\d{4,}|\d{4,}\s*!|\*\*[^*]*\*\*"
)
_SCI_EXPONENT = re.compile(r"[eE]([+-]?\d+)$")
_BOLD = re.compile(r"\\(?:textbf|mathbf)\s*\{")


def _read_braced(text: str, start: int) -> str | None:
    """Return the content of the brace group opening at text[start] == '{', or None when unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``/``\\fbox{...}`` in text (nested braces kept), or None.

    Also accepts the brace-less form ``\\boxed 5`` (content up to the next whitespace or ``$``), which some
    MATH solutions use. An unbalanced last box gives None rather than a truncated answer.
    """
    if not isinstance(text, str):
        raise TypeError(f"extract_boxed expects a str, got {type(text).__name__}")
    best = -1
    command = ""
    for cmd in _BOX_COMMANDS:
        pos = text.rfind(cmd)
        if pos > best:
            best, command = pos, cmd
    if best < 0:
        return None
    rest = best + len(command)
    if rest < len(text) and text[rest] == "{":
        content = _read_braced(text, rest)
        return None if content is None else content.strip()
    if text.startswith(" ", rest):
        match = re.match(r"\s+([^\s$]+)", text[rest:])
        return match.group(1) if match else None
    return None


def _unbold(text: str) -> str:
    """`text` with every ``\\textbf{X}`` / ``\\mathbf{X}`` replaced by X (nested braces kept; unbalanced: unchanged)."""
    while (match := _BOLD.search(text)) is not None:
        content = _read_braced(text, match.end() - 1)
        if content is None:
            return text
        text = text[: match.start()] + content + text[match.end() + len(content) + 1 :]
    return text


def extract_gsm8k_answer(text: str) -> str | None:
    """The answer after the last ``####`` marker (GSM8K gold format), commas removed, or None."""
    if not isinstance(text, str):
        raise TypeError(f"extract_gsm8k_answer expects a str, got {type(text).__name__}")
    matches = _GSM8K.findall(text)
    if not matches:
        return None
    answer = matches[-1].strip().replace(",", "").rstrip(".").strip()
    return answer or None


def _as_number(text: str) -> Fraction | None:
    """Parse a plain number (int, decimal, a/b, \\frac{a}{b}, 1,234, $5, 50%) as an exact rational."""
    s = text.strip().strip("$").strip()
    s = s.replace("\\$", "").replace("\\!", "").replace("\\,", "").replace(" ", "")
    if s.startswith("\\text{") and s.endswith("}"):
        s = s[len("\\text{") : -1]
    percent = s.endswith("%") or s.endswith("\\%")
    if percent:
        s = s[:-2] if s.endswith("\\%") else s[:-1]
    frac = _LATEX_FRAC.match(s)
    if frac:
        s = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}"
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    s = s.rstrip(".")
    exponent = _SCI_EXPONENT.search(s)
    if exponent and abs(int(exponent.group(1))) > 400:
        return None  # Fraction would build a huge integer
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None
    return value / 100 if percent else value


def parse_math(text: str) -> list:
    """math-verify's `parse` of `text`: [parsed, original] on success, [original] or [] otherwise.

    In the main thread a timeout is retried with the next budget of PARSE_TIMEOUTS_S (only one that overruns every
    budget gives []); off the main thread signal.alarm is unavailable and parse runs without a timeout. A parser
    error on garbage gives []."""
    import math_verify
    from math_verify.errors import TimeoutException

    in_main = threading.current_thread() is threading.main_thread()
    budgets: tuple[int | None, ...] = PARSE_TIMEOUTS_S if in_main else (None,)
    for budget in budgets:
        try:
            return math_verify.parse(text, parsing_timeout=budget, raise_on_error=True)
        except TimeoutException:
            log.warning("math-verify timed out after %s s parsing %r%s", budget, text,
                        "; retrying with a longer budget" if budget != budgets[-1] else "")
        except Exception:  # math-verify raises assorted parser errors on garbage: nothing parsed
            return []
    return []


def _verify_symbolic(pred: str, gold: str) -> bool:
    """math-verify comparison of two answer strings (each wrapped in \\boxed{} so it is taken whole)."""
    from math_verify import verify

    if any(len(a) > _MAX_SYMBOLIC_CHARS or _COSTLY.search(a) for a in (pred, gold)):
        return False  # off the main thread there is no timeout, so refuse what could hang
    in_main = threading.current_thread() is threading.main_thread()
    timeout = _MATH_VERIFY_TIMEOUT_S if in_main else None
    gold_parsed = parse_math(f"\\boxed{{{gold}}}")
    pred_parsed = parse_math(f"\\boxed{{{pred}}}")
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=timeout))


def _answer_of(text: str) -> str | None:
    """Reduce a gold or prediction to its answer: boxed content, else GSM8K ``####``, else the text itself."""
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    gsm = extract_gsm8k_answer(text)
    if gsm is not None:
        return gsm
    stripped = text.strip()
    return stripped or None


def math_equal(pred: str, gold: str) -> bool:
    """True when the answer in pred equals the answer in gold.

    Both sides may be bare answers ("0.5"), boxed answers ("\\boxed{1/2}") or GSM8K solutions ("... #### 72");
    each is first reduced to its answer. Plain numbers are compared exactly; otherwise math-verify decides.
    """
    for name, value in (("pred", pred), ("gold", gold)):
        if not isinstance(value, str):
            raise TypeError(f"math_equal: {name} must be a str, got {type(value).__name__}")
    pred_answer, gold_answer = _answer_of(pred), _answer_of(gold)
    if pred_answer is None or gold_answer is None:
        return False
    pred_answer, gold_answer = _unbold(pred_answer).strip(), _unbold(gold_answer).strip()
    if not pred_answer or not gold_answer:
        return False
    pred_num, gold_num = _as_number(pred_answer), _as_number(gold_answer)
    if pred_num is not None and gold_num is not None:
        return pred_num == gold_num
    if pred_answer == gold_answer:
        return True
    return _verify_symbolic(pred_answer, gold_answer)


def math_reward(text: str, gold: str) -> float:
    """1.0 when the completion's final answer (last \\boxed{}, else ``#### n``) equals gold, else 0.0.

    A completion with neither a box nor a ``####`` line scores 0.0: the answer must be marked explicitly.
    """
    if not isinstance(text, str):
        raise TypeError(f"math_reward: text must be a str, got {type(text).__name__}")
    answer = extract_boxed(text)
    if answer is None:
        answer = extract_gsm8k_answer(text)
    if answer is None:
        return 0.0
    return 1.0 if math_equal(answer, gold) else 0.0
