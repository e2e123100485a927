"""LLM-as-judge on any OpenAI-compatible endpoint: verdict and score parsing, EM-first judging, batches, failures.

`JudgeClient` is a `shared.serving.ChatClient` (retries, back-off, per-call sampling fields, optional on-disk cache
keyed by (endpoint, model, messages, sampling fields)) that asks a grading question and parses the reply:

- `parse_verdict(raw, patterns, scale)` reads, in order: the verdict markers in `patterns` (regex -> verdict; the
  last marker in the reply wins; `[[CORRECT]]` / `[[INCORRECT]]` built in); a JSON object with "verdict" /
  "correct" / "score" (a score outside [0, 1] only counts with a scale: `{"score": 7, "scale": 10}`, or
  `scale=10`); a score line (`Score: 7/10`, `7 out of 10`, `Score: 7` with `scale`); a `Verdict: correct|incorrect`
  line (last one wins); a reply that is only a yes/no word. Anything else is "unparsed" (score None).
- `parse_score(raw, scale)`: a rubric score normalised to [0, 1], or None.
- `judged_correct(prediction, golds, judge)`: exact match (SQuAD normalisation) first, with no request; the judge
  only for the rest.
- `JudgeClient.judge_many(items, workers)`: EM-first judging of a batch on a bounded thread pool, in order, with
  identical prompts asked once; returns the verdicts and the counters of that batch.
- Failure policy, explicit: `on_failure="raise"` (default) raises `JudgeError` when the endpoint fails after its
  retries; `"count_incorrect"` returns a "failed" verdict (reward 0) and counts it under `failed`. Unparsed replies
  are verdict "unparsed" (reward 0, counted) or, with `on_unparsed="raise"`, a `JudgeParseError`. `stats()` holds
  every counter (calls, http_requests, retries, failures, cache_hits, exact_match, correct, incorrect, unparsed,
  failed) for the results file: no failure is ever a silent "incorrect".
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from shared.serving import ChatClient, ChatError

DEFAULT_TEMPLATE = (
    "You are grading an answer to a question.\n"
    "Question: {question}\nReference answer: {reference}\nCandidate answer: {prediction}\n"
    "Is the candidate answer correct, i.e. does it mean the same as the reference? "
    "Reply with one short sentence of reasoning, then a final line 'Verdict: correct' or 'Verdict: incorrect'."
)
# Regex -> verdict. [[INCORRECT]] does not contain "[[CORRECT", so the two never overlap.
DEFAULT_VERDICT_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\[\[\s*CORRECT\s*\]\]", "correct"),
    (r"\[\[\s*INCORRECT\s*\]\]", "incorrect"),
)
Verdict = Literal["correct", "incorrect", "unparsed", "failed"]
_POSITIVE = {"correct", "yes", "true", "pass", "right", "1"}
_NEGATIVE = {"incorrect", "no", "false", "fail", "wrong", "0"}
_VERDICT_LINE = re.compile(r"verdict\s*[:=]\s*\**\s*([a-z]+)", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_NUM = r"(-?\d+(?:\.\d+)?)"
_SCORE_FRACTION = re.compile(rf"(?:(?:score|rating|grade)\s*[:=]?\s*\**\s*)?{_NUM}\s*(?:/|out of)\s*{_NUM}",
                             re.IGNORECASE)
_SCORE_LABEL = re.compile(rf"(?:score|rating|grade)\s*[:=]\s*\**\s*{_NUM}(?!\s*(?:/|out of|\d))", re.IGNORECASE)

JudgeError = ChatError  # the endpoint failed (network, status, malformed body); kept under the judge's name


class JudgeParseError(JudgeError):
    """The judge replied, but no verdict could be read from the reply."""


@dataclass(frozen=True)
class JudgeVerdict:
    """A judgement: verdict "correct" | "incorrect" | "unparsed" | "failed", score in [0, 1] or None, the raw
    reply, where it came from ("judge", "exact_match", "failure") and, for failures, the error."""

    verdict: Verdict
    score: float | None
    raw: str
    source: str = "judge"
    error: str | None = None

    @property
    def reward(self) -> float:
        """correct -> 1.0; incorrect, unparsed or failed -> 0.0; a parsed score when one was given."""
        if self.score is not None:
            return self.score
        return 1.0 if self.verdict == "correct" else 0.0

    @property
    def correct(self) -> bool:
        return self.verdict == "correct"


def _word_verdict(word: str) -> str | None:
    word = word.strip().strip(".!*\"'").lower()
    if word in _POSITIVE:
        return "correct"
    if word in _NEGATIVE:
        return "incorrect"
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _from_json(obj: dict[str, Any], raw: str, scale: float | None, threshold: float) -> JudgeVerdict | None:
    score = _number(obj.get("score"))
    if score is not None:
        top = _number(obj.get("scale", obj.get("max", obj.get("out_of")))) or scale
        if top is not None and top > 0 and 0 <= score <= top:
            score = score / top
        elif not 0.0 <= score <= 1.0 or top is not None:
            return None
    verdict: str | None = None
    if isinstance(obj.get("verdict"), str):
        verdict = _word_verdict(obj["verdict"])
    elif isinstance(obj.get("correct"), bool):
        verdict = "correct" if obj["correct"] else "incorrect"
    if verdict is None and score is not None:
        verdict = "correct" if score >= threshold else "incorrect"
    if verdict is None:
        return None
    return JudgeVerdict(verdict, score, raw)  # type: ignore[arg-type]


def parse_score(raw: str, scale: float | None = None) -> float | None:
    """A rubric score in [0, 1]: "Score: 7/10" or "7 out of 10" (the stated denominator), JSON {"score": 7,
    "scale": 10}, or "Score: 7" / {"score": 7} over `scale`. The last score in the reply wins; out of range: None."""
    for candidate in reversed(_JSON_OBJECT.findall(raw)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and _number(obj.get("score")) is not None:
            parsed = _from_json({"score": obj["score"], **{k: obj[k] for k in ("scale", "max", "out_of") if k in obj}},
                                raw, scale, 0.5)
            if parsed is not None:
                return parsed.score
    found: list[tuple[int, float | None]] = []
    for m in _SCORE_FRACTION.finditer(raw):
        labelled = m.group(0).lower().startswith(("score", "rating", "grade")) or "out of" in m.group(0).lower()
        if labelled or m.group(0).strip() == raw.strip():
            value, top = float(m.group(1)), float(m.group(2))
            found.append((m.end(), value / top if top > 0 and 0 <= value <= top else None))
    if scale:
        for m in _SCORE_LABEL.finditer(raw):
            value = float(m.group(1))
            found.append((m.end(), value / scale if 0 <= value <= scale else None))
    return max(found, key=lambda t: t[0])[1] if found else None


def parse_verdict(raw: str, patterns: Sequence[tuple[str, str]] = DEFAULT_VERDICT_PATTERNS,
                  scale: float | None = None, threshold: float = 0.5) -> JudgeVerdict:
    """Read a verdict from a judge reply (order in the module docstring); verdict "unparsed" when nothing fits.
    Scores at or above `threshold` (after normalisation to [0, 1]) count as correct."""
    best: tuple[int, str] | None = None
    for pattern, verdict in patterns:
        for m in re.finditer(pattern, raw, re.IGNORECASE):
            if best is None or m.end() > best[0]:
                best = (m.end(), verdict)
    if best is not None:
        return JudgeVerdict(best[1], None, raw)  # type: ignore[arg-type]
    for candidate in reversed(_JSON_OBJECT.findall(raw)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            parsed = _from_json(obj, raw, scale, threshold)
            if parsed is not None:
                return parsed
    score = parse_score(raw, scale)
    if score is not None:
        return JudgeVerdict("correct" if score >= threshold else "incorrect", score, raw)
    lines = _VERDICT_LINE.findall(raw)
    if lines:
        word = _word_verdict(lines[-1])
        if word is not None:
            return JudgeVerdict(word, None, raw)  # type: ignore[arg-type]
    word = _word_verdict(raw)
    if word is not None:
        return JudgeVerdict(word, None, raw)  # type: ignore[arg-type]
    return JudgeVerdict("unparsed", None, raw)


def _reference(golds: str | Sequence[str]) -> str:
    return golds if isinstance(golds, str) else "; ".join(str(g) for g in golds)


class JudgeClient(ChatClient):
    """A chat client that grades answers; see the module docstring for parsing, caching and the failure policy."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 30.0,
                 max_retries: int = 3, backoff_s: float = 0.5, max_backoff_s: float = 8.0, temperature: float = 0.0,
                 max_tokens: int = 256, template: str = DEFAULT_TEMPLATE,
                 on_unparsed: Literal["verdict", "raise"] = "verdict",
                 on_failure: Literal["raise", "count_incorrect"] = "raise",
                 verdict_patterns: Sequence[tuple[str, str]] = DEFAULT_VERDICT_PATTERNS,
                 score_scale: float | None = None, threshold: float = 0.5, max_prediction_chars: int | None = None,
                 stop: Sequence[str] | None = None, cache_dir: str | None = None, **client: Any) -> None:
        super().__init__(base_url, model, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries,
                         backoff_s=backoff_s, max_backoff_s=max_backoff_s, temperature=temperature,
                         max_tokens=max_tokens, cache_dir=cache_dir, **client)
        if on_unparsed not in ("verdict", "raise"):
            raise ValueError(f"on_unparsed must be 'verdict' or 'raise', got {on_unparsed!r}")
        if on_failure not in ("raise", "count_incorrect"):
            raise ValueError(f"on_failure must be 'raise' or 'count_incorrect', got {on_failure!r}")
        for pattern, verdict in verdict_patterns:
            re.compile(pattern)
            if verdict not in ("correct", "incorrect"):
                raise ValueError(f"verdict pattern {pattern!r} maps to {verdict!r}; use 'correct' or 'incorrect'")
        self.template, self.on_unparsed, self.on_failure = template, on_unparsed, on_failure
        self.verdict_patterns = tuple(verdict_patterns)
        self.score_scale, self.threshold = score_scale, threshold
        self.max_prediction_chars, self.stop = max_prediction_chars, stop

    def prompt(self, question: str, prediction: str, reference: str | Sequence[str]) -> str:
        if self.max_prediction_chars is not None:
            prediction = prediction[: self.max_prediction_chars]
        return self.template.format(question=question, prediction=prediction, reference=_reference(reference))

    def judge(self, question: str, prediction: str, reference: str | Sequence[str], **sampling: Any) -> JudgeVerdict:
        """Ask the judge whether `prediction` answers `question` like `reference` (one gold or several, joined with
        "; "); `sampling` (temperature, max_tokens, stop, seed) overrides the client's fields for this call."""
        sampling.setdefault("stop", self.stop)
        try:
            raw = self.complete([{"role": "user", "content": self.prompt(question, prediction, reference)}],
                                **sampling)
        except ChatError as err:
            if self.on_failure == "raise":
                raise
            self.count("failed")
            return JudgeVerdict("failed", None, "", source="failure", error=str(err))
        verdict = parse_verdict(raw, self.verdict_patterns, self.score_scale, self.threshold)
        self.count(verdict.verdict)
        if verdict.verdict == "unparsed" and self.on_unparsed == "raise":
            raise JudgeParseError(f"judge endpoint {self.endpoint} gave no readable verdict: {raw[:300]!r}")
        return verdict

    def judge_many(self, items: Sequence[Mapping[str, Any]], workers: int = 4, em_first: bool = True,
                   **sampling: Any) -> JudgeBatch:
        """Judge `items` ({"question", "prediction", "golds"}) on at most `workers` threads; verdicts come back in
        item order; identical prompts are asked once. Raises on the first failure under on_failure="raise" (and, with
        on_unparsed="raise", on an unreadable reply), naming the item by its "id" field or its index."""
        if workers < 1:
            raise ValueError(f"judge_many needs workers >= 1, got {workers}")
        for i, item in enumerate(items):
            for name in ("prediction", "golds"):
                if name not in item:
                    raise ValueError(f"judge_many: item {i} has no field {name!r}")
        before = Counter(self.stats())
        verdicts: list[JudgeVerdict | None] = [None] * len(items)
        pending: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            golds = [item["golds"]] if isinstance(item["golds"], str) else list(item["golds"])
            if em_first and _exact(item["prediction"], golds):
                self.count("exact_match")
                verdicts[i] = _EM_VERDICT
                continue
            prompt = self.prompt(str(item.get("question", "")), str(item["prediction"]), golds)
            pending.setdefault(prompt, []).append(i)
        if pending:
            first = {prompt: idx[0] for prompt, idx in pending.items()}
            with ThreadPoolExecutor(max_workers=min(workers, len(first))) as pool:
                futures = {prompt: pool.submit(self.judge, str(items[i].get("question", "")),
                                               str(items[i]["prediction"]), items[i]["golds"], **sampling)
                           for prompt, i in first.items()}
                for prompt, future in futures.items():
                    try:
                        verdict = future.result()
                    except JudgeError as err:  # name the item (its "id" when it has one) in the one-line error
                        i = first[prompt]
                        raise type(err)(f"item {items[i].get('id', i)!r}: {err}") from None
                    for i in pending[prompt]:
                        verdicts[i] = verdict
        after = Counter(self.stats())
        after.subtract(before)
        return JudgeBatch([v for v in verdicts if v is not None], {k: v for k, v in after.items() if v})


@dataclass
class JudgeBatch:
    """Verdicts of a `judge_many` call in item order, and that call's counters."""

    verdicts: list[JudgeVerdict]
    counts: dict[str, int]

    @property
    def accuracy(self) -> float:
        return sum(v.correct for v in self.verdicts) / len(self.verdicts) if self.verdicts else 0.0


_EM_VERDICT = JudgeVerdict("correct", None, "", source="exact_match")


def _exact(prediction: Any, golds: Sequence[str]) -> bool:
    from shared.rewards.qa import exact_match

    return isinstance(prediction, str) and exact_match(prediction, list(golds)) == 1.0


def judged_correct(prediction: str, golds: str | Sequence[str], judge: JudgeClient, question: str = "",
                   **sampling: Any) -> JudgeVerdict:
    """Exact match first (no request; counted under `exact_match`), then the judge. `.correct` / `.reward` give
    the outcome, `.source` says which path decided."""
    gold_list = [golds] if isinstance(golds, str) else list(golds)
    if not gold_list:
        raise ValueError("judged_correct needs at least one gold answer")
    if _exact(prediction, gold_list):
        judge.count("exact_match")
        return _EM_VERDICT
    return judge.judge(question, prediction, gold_list, **sampling)
