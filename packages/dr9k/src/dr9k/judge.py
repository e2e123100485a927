"""The LLM judge of DeepResearch-R1: answer grading ([[CORRECT]] / [[INCORRECT]]) and question validity
([[VALID]] / [[INVALID]]), on `shared.rewards.judge.JudgeClient`, plus the deterministic CPU stand-ins served
behind the loopback endpoint.

Grading follows the release's unwired `qa_em_format.call_llm_judge`: exact match first (no request), else a strict
prompt comparing the predicted with the reference answer; the release's prompt has no question (`template:
release`, wording ours), `with_question` adds it; the prediction is cut to 500 characters; temperature 0;
retries with back-off on 429/5xx. Unlike the release (every failure silently "incorrect"), a failure or an
unreadable reply raises a one-line error naming the record by default (`on_failure`, `on_unparsed`).

CPU stand-ins (`stub_reply`), deterministic, read the prompt they are sent: a grading prompt is [[CORRECT]] when the
normalised reference occurs as whole words in a normalised prediction at most twice its length plus two words
(containment, e.g. "Paris, France" for "Paris"); a validity prompt is [[VALID]] when the question is a question
(ends with "?", at least four words) and does not contain the answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from shared.rewards.qa import normalize_answer

GRADE_TEMPLATES = {
    "release": ("You are a strict fact checker. Decide whether the predicted answer states the same facts as the "
                "reference answer.\nReference answer: {reference}\nPredicted answer: {prediction}\n"
                "Answer with [[CORRECT]] when the core facts agree, otherwise [[INCORRECT]]. Give only the verdict."),
    "with_question": ("You are a strict fact checker. Decide whether the predicted answer to the question states the "
                      "same facts as the reference answer.\nQuestion: {question}\nReference answer: {reference}\n"
                      "Predicted answer: {prediction}\nAnswer with [[CORRECT]] when the core facts agree, otherwise "
                      "[[INCORRECT]]. Give only the verdict."),
}
VALIDITY_TEMPLATE = ("You check questions of a search benchmark. Is the question below well formed, answerable by "
                     "searching, with exactly one short answer, and free of its answer?\nQuestion: {question}\n"
                     "Reference answer: {reference}\n"
                     "Answer with [[VALID]] or [[INVALID]]. Give only the verdict.")
VALIDITY_PATTERNS = ((r"\[\[\s*VALID\s*\]\]", "correct"), (r"\[\[\s*INVALID\s*\]\]", "incorrect"))
STUB_JUDGE = "dr9k-stub-judge"

_FIELD = {name: re.compile(rf"^{label}: (.*)$", re.MULTILINE) for name, label in
          (("question", "Question"), ("reference", "Reference answer"), ("prediction", "Predicted answer"))}


def contains_answer(prediction: str, reference: str) -> bool:
    """The stand-in's grading rule: the normalised reference is a whole-word part of a short normalised prediction."""
    ref, pred = normalize_answer(reference).split(), normalize_answer(prediction).split()
    if not ref or not pred or len(pred) > 2 * len(ref) + 2:
        return False
    return any(pred[i : i + len(ref)] == ref for i in range(len(pred) - len(ref) + 1))


def stub_reply(messages: Sequence[Mapping[str, Any]], params: Mapping[str, Any] | None = None) -> str:
    """The deterministic judge behind the loopback endpoint (module docstring)."""
    prompt = str(messages[-1]["content"])
    fields = {name: (m.group(1).strip() if (m := pattern.search(prompt)) else None) for name, pattern in _FIELD.items()}
    references = [r for r in (fields["reference"] or "").split("; ") if r]
    if "[[VALID]]" in prompt:
        question = fields["question"] or ""
        ok = (question.endswith("?") and len(question.split()) >= 4
              and not any(contains_answer_anywhere(question, r) for r in references))
        return "[[VALID]]" if ok else "[[INVALID]]"
    if fields["prediction"] is None or not references:
        return "I cannot read the answers."  # no verdict marker: the client reports it as unparsed
    correct = any(contains_answer(fields["prediction"], r) for r in references)
    return "[[CORRECT]]" if correct else "[[INCORRECT]]"


def contains_answer_anywhere(text: str, answer: str) -> bool:
    """True when the normalised answer occurs as whole words anywhere in the normalised text (the leak test)."""
    ans, words = normalize_answer(answer).split(), normalize_answer(text).split()
    return bool(ans) and any(words[i : i + len(ans)] == ans for i in range(len(words) - len(ans) + 1))


def grade_client(base_url: str, model: str, settings: Any) -> Any:
    """A `JudgeClient` grading answers with the configured template and failure policy."""
    from shared.rewards.judge import JudgeClient

    from dr9k.endpoints import client_kwargs

    return JudgeClient(base_url, model, template=GRADE_TEMPLATES[settings.template], on_failure=settings.on_failure,
                       on_unparsed=settings.on_unparsed, max_prediction_chars=settings.max_prediction_chars,
                       **client_kwargs(settings, "judge"))


def validity_client(base_url: str, model: str, settings: Any) -> Any:
    """A `JudgeClient` asking whether a synthesised question is valid ([[VALID]] / [[INVALID]])."""
    from shared.rewards.judge import JudgeClient

    from dr9k.endpoints import client_kwargs

    return JudgeClient(base_url, model, template=VALIDITY_TEMPLATE, verdict_patterns=VALIDITY_PATTERNS,
                       on_failure=settings.on_failure, on_unparsed=settings.on_unparsed,
                       **client_kwargs(settings, "judge"))


def grade(client: Any, items: Sequence[Mapping[str, Any]], workers: int = 4) -> list[Any]:
    """EM-first verdicts of `items` ({id, question, prediction, golds}); an item without a prediction (no answer)
    is incorrect without a request. Errors name the item's id."""
    from shared.rewards.judge import JudgeVerdict

    asked = [i for i, it in enumerate(items) if isinstance(it.get("prediction"), str) and it["prediction"].strip()]
    out: list[Any] = [JudgeVerdict("incorrect", None, "", source="no_answer")] * len(items)
    if asked:
        batch = client.judge_many([items[i] for i in asked], workers=workers)
        for i, verdict in zip(asked, batch.verdicts):
            out[i] = verdict
    return out
