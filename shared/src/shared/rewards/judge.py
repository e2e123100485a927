"""LLM-as-judge client for any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, SGLang, OpenAI).

Transport is stdlib urllib (no extra dependency). Failure policy:
- connection errors, timeouts, HTTP 5xx and 429 are retried up to ``max_retries`` times with exponential
  back-off (``backoff_s * 2**attempt``, capped at ``max_backoff_s``; a numeric Retry-After on 429 is honoured
  within that cap);
- any other 4xx is not retried; every final failure raises `JudgeError` naming the endpoint, the status and
  an excerpt of the body.
Verdict parsing (`parse_verdict`) reads, in order: a JSON object with "verdict"/"correct"/"score"; a
``Verdict: correct|incorrect`` line (last one wins); a reply that is only a yes/no word. Anything else is an
'unparsed' verdict (score None) or, with ``on_unparsed="raise"``, a `JudgeParseError`.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Literal

DEFAULT_TEMPLATE = (
    "You are grading an answer to a question.\n"
    "Question: {question}\nReference answer: {reference}\nCandidate answer: {prediction}\n"
    "Is the candidate answer correct, i.e. does it mean the same as the reference? "
    "Reply with one short sentence of reasoning, then a final line 'Verdict: correct' or 'Verdict: incorrect'."
)
_POSITIVE = {"correct", "yes", "true", "pass", "right", "1"}
_NEGATIVE = {"incorrect", "no", "false", "fail", "wrong", "0"}
_VERDICT_LINE = re.compile(r"verdict\s*[:=]\s*\**\s*([a-z]+)", re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)


class JudgeError(RuntimeError):
    """The judge endpoint could not produce a usable reply (network, HTTP status, malformed response)."""


class JudgeParseError(JudgeError):
    """The judge replied, but no verdict could be read from the reply."""


@dataclass(frozen=True)
class JudgeVerdict:
    """A parsed judgement: verdict "correct" | "incorrect" | "unparsed", score in [0, 1] or None, raw reply."""

    verdict: Literal["correct", "incorrect", "unparsed"]
    score: float | None
    raw: str

    @property
    def reward(self) -> float:
        """Reward convention: correct -> 1.0, incorrect or unparsed -> 0.0 (or the score when one was given)."""
        if self.score is not None:
            return self.score
        return 1.0 if self.verdict == "correct" else 0.0


def _word_verdict(word: str) -> str | None:
    word = word.strip().strip(".!*\"'").lower()
    if word in _POSITIVE:
        return "correct"
    if word in _NEGATIVE:
        return "incorrect"
    return None


def _from_json(obj: dict[str, Any], raw: str) -> JudgeVerdict | None:
    score: float | None = None
    if isinstance(obj.get("score"), int | float) and not isinstance(obj.get("score"), bool):
        score = float(obj["score"])
        if not 0.0 <= score <= 1.0:
            return None
    verdict: str | None = None
    if isinstance(obj.get("verdict"), str):
        verdict = _word_verdict(obj["verdict"])
    elif isinstance(obj.get("correct"), bool):
        verdict = "correct" if obj["correct"] else "incorrect"
    if verdict is None and score is not None:
        verdict = "correct" if score >= 0.5 else "incorrect"
    if verdict is None:
        return None
    return JudgeVerdict(verdict, score, raw)  # type: ignore[arg-type]


def parse_verdict(raw: str) -> JudgeVerdict:
    """Read a verdict from a judge reply; returns verdict "unparsed" when nothing recognisable is found."""
    for candidate in reversed(_JSON_OBJECT.findall(raw)):
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            parsed = _from_json(obj, raw)
            if parsed is not None:
                return parsed
    lines = _VERDICT_LINE.findall(raw)
    if lines:
        word = _word_verdict(lines[-1])
        if word is not None:
            return JudgeVerdict(word, None, raw)  # type: ignore[arg-type]
    word = _word_verdict(raw)
    if word is not None:
        return JudgeVerdict(word, None, raw)  # type: ignore[arg-type]
    return JudgeVerdict("unparsed", None, raw)


class JudgeClient:
    """Chat-completions client with retries; `judge()` asks a grading question and parses the verdict.

    base_url is the server root or its ``/v1`` (``http://127.0.0.1:8000`` or ``.../v1``); the client posts to
    ``{base}/v1/chat/completions``.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        temperature: float = 0.0,
        max_tokens: int = 256,
        template: str = DEFAULT_TEMPLATE,
        on_unparsed: Literal["verdict", "raise"] = "verdict",
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"JudgeClient base_url must start with http:// or https://, got {base_url!r}")
        if on_unparsed not in ("verdict", "raise"):
            raise ValueError(f"on_unparsed must be 'verdict' or 'raise', got {on_unparsed!r}")
        if max_retries < 0 or timeout_s <= 0:
            raise ValueError("JudgeClient needs max_retries >= 0 and timeout_s > 0")
        root = base_url.rstrip("/")
        root = root[: -len("/v1")] if root.endswith("/v1") else root
        self.endpoint = f"{root}/v1/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.template = template
        self.on_unparsed = on_unparsed

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_problem = ""
        for attempt in range(self.max_retries + 1):
            delay = min(self.backoff_s * (2**attempt), self.max_backoff_s)
            request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    text = response.read().decode("utf-8", errors="replace")
            except urllib.error.HTTPError as err:
                excerpt = err.read().decode("utf-8", errors="replace")[:300]
                last_problem = f"HTTP {err.code}: {excerpt}"
                if err.code != 429 and err.code < 500:
                    raise JudgeError(f"judge endpoint {self.endpoint} refused the request ({last_problem})") from err
                retry_after = err.headers.get("Retry-After") if err.headers else None
                if err.code == 429 and retry_after and retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), self.max_backoff_s)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                reason = getattr(err, "reason", err)
                last_problem = f"{type(reason).__name__}: {reason}"
            else:
                try:
                    return json.loads(text)
                except json.JSONDecodeError as err:
                    raise JudgeError(f"judge endpoint {self.endpoint} returned non-JSON body: {text[:300]!r}") from err
            if attempt < self.max_retries:
                time.sleep(delay)
        raise JudgeError(
            f"judge endpoint {self.endpoint} failed after {self.max_retries + 1} attempt(s): {last_problem}"
        )

    def complete(self, messages: list[dict[str, str]]) -> str:
        """Send chat messages and return the assistant message content."""
        if not messages:
            raise ValueError("JudgeClient.complete needs at least one message")
        data = self._post(
            {
                "model": self.model,
                "messages": messages,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        )
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise JudgeError(
                f"judge endpoint {self.endpoint} returned no choices[0].message.content: {str(data)[:300]}"
            ) from err
        if not isinstance(content, str):
            raise JudgeError(f"judge endpoint {self.endpoint} returned non-text content: {content!r:.300}")
        return content

    def judge(self, question: str, prediction: str, reference: str) -> JudgeVerdict:
        """Ask the judge whether prediction answers question like reference does; parse its verdict."""
        prompt = self.template.format(question=question, prediction=prediction, reference=reference)
        raw = self.complete([{"role": "user", "content": prompt}])
        verdict = parse_verdict(raw)
        if verdict.verdict == "unparsed" and self.on_unparsed == "raise":
            raise JudgeParseError(f"judge endpoint {self.endpoint} gave no readable verdict: {raw[:300]!r}")
        return verdict
