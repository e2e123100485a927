"""JudgeClient against shared.serving's loopback ChatServer: retries, timeouts, outages, parsing, EM-first judging,
batches, the on-disk cache and the failure policy. Nothing leaves 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from shared.rewards import JudgeClient, JudgeError, judged_correct, parse_score, parse_verdict
from shared.rewards.judge import JudgeParseError
from shared.serving import ChatServer, Delay, RawReply, ReplyError, ScriptedReplies


def ScriptedServer(script, default=None) -> ChatServer:  # noqa: N802 (the tests' old name for a scripted server)
    return ChatServer(ScriptedReplies(script, default))


def _client(url: str, **kw) -> JudgeClient:
    kw.setdefault("backoff_s", 0.01)
    return JudgeClient(url, model="judge-model", **kw)


def test_normal_reply_is_parsed_and_request_is_chat_completions():
    with ScriptedServer(["The capital matches.\nVerdict: correct"]) as server:
        verdict = _client(server.url + "/v1").judge("Capital of France?", "Paris", "Paris")
    assert verdict.verdict == "correct" and verdict.reward == 1.0
    assert server.requests[0].path == "/v1/chat/completions"
    body = server.chat_requests[0]
    assert body["model"] == "judge-model" and "Candidate answer: Paris" in body["messages"][0]["content"]


def test_500_then_success_is_retried():
    with ScriptedServer([ReplyError(500), ReplyError(503), "Verdict: incorrect"]) as server:
        judge = _client(server.url, max_retries=3)
        verdict = judge.judge("q", "a", "b")
    assert verdict.verdict == "incorrect" and verdict.reward == 0.0
    assert server.count == 3
    assert judge.stats() == {"calls": 1, "http_requests": 3, "retries": 2, "incorrect": 1}


def test_429_is_retried_honouring_retry_after_but_400_is_not():
    sleeps: list[float] = []
    with ScriptedServer([ReplyError(429, retry_after=2), "yes"]) as server:
        assert _client(server.url, sleep=sleeps.append, max_backoff_s=8).judge("q", "a", "a").verdict == "correct"
    assert sleeps == [2.0]  # Retry-After, not the 0.01 s back-off
    with ScriptedServer([ReplyError(400), "yes"]) as server:
        with pytest.raises(JudgeError, match=r"refused the request \(HTTP 400"):
            _client(server.url).judge("q", "a", "a")
        assert server.count == 1


def test_backoff_doubles_and_is_capped():
    sleeps: list[float] = []
    with ScriptedServer([ReplyError(502)] * 4 + ["yes"]) as server:
        _client(server.url, backoff_s=0.5, max_backoff_s=1.5, max_retries=4, sleep=sleeps.append).judge("q", "a", "b")
    assert sleeps == [0.5, 1.0, 1.5, 1.5]
    assert server.count == 5


def test_timeout_raises_judge_error_naming_endpoint():
    with ScriptedServer([Delay(1.0), Delay(1.0)]) as server:
        start = time.monotonic()
        with pytest.raises(JudgeError, match=rf"{server.url}/v1/chat/completions failed after 2 attempt"):
            _client(server.url, timeout_s=0.2, max_retries=1).judge("q", "a", "b")
        assert time.monotonic() - start < 1.5


def test_unparseable_reply_gives_unparsed_or_raises():
    with ScriptedServer(["I am not sure.", "I am not sure."]) as server:
        judge = _client(server.url)
        verdict = judge.judge("q", "a", "b")
        assert verdict.verdict == "unparsed" and verdict.score is None and verdict.reward == 0.0
        assert judge.stats()["unparsed"] == 1
        with pytest.raises(JudgeParseError, match="no readable verdict"):
            _client(server.url, on_unparsed="raise").judge("q", "a", "b")


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens on it once the socket is closed


def test_server_down_raises_after_retries_or_counts_failure():
    port = _dead_port()
    with pytest.raises(JudgeError, match=rf"127.0.0.1:{port}/v1/chat/completions failed after 3 attempt"):
        _client(f"http://127.0.0.1:{port}", max_retries=2).judge("q", "a", "b")
    judge = _client(f"http://127.0.0.1:{port}", max_retries=1, on_failure="count_incorrect")
    verdict = judge.judge("q", "a", "b")
    assert verdict.verdict == "failed" and verdict.reward == 0.0 and verdict.source == "failure"
    assert "failed after 2 attempt" in verdict.error
    assert judge.stats() == {"calls": 1, "http_requests": 2, "retries": 1, "failures": 1, "failed": 1}


def test_parse_verdict_forms():
    assert parse_verdict('reasoning... {"verdict": "correct", "score": 0.8}').score == 0.8
    assert parse_verdict('{"correct": false}').verdict == "incorrect"
    assert parse_verdict("Verdict: correct\nVerdict: **incorrect**").verdict == "incorrect"
    assert parse_verdict("No.").verdict == "incorrect"
    assert parse_verdict('{"score": 7}').verdict == "unparsed"  # score outside [0, 1] without a scale
    # release judge markers; the last marker wins; [[INCORRECT]] never reads as [[CORRECT]]
    assert parse_verdict("[[CORRECT]]").verdict == "correct"
    assert parse_verdict("The answer differs. [[INCORRECT]]").verdict == "incorrect"
    assert parse_verdict("first [[correct]] then on reflection [[ INCORRECT ]]").verdict == "incorrect"
    assert parse_verdict("[[MAYBE]]").verdict == "unparsed"
    # a package's own markers
    assert parse_verdict("GRADE: A", patterns=[(r"GRADE:\s*A", "correct")]).verdict == "correct"


def test_parse_score_by_hand():
    assert parse_score("Score: 7/10") == pytest.approx(0.7)
    assert parse_score("I'd give it 3 out of 5.") == pytest.approx(0.6)
    assert parse_score('{"score": 7, "scale": 10}') == pytest.approx(0.7)
    assert parse_score('{"score": 7}') is None and parse_score('{"score": 7}', scale=10) == pytest.approx(0.7)
    assert parse_score("Score: 8", scale=10) == pytest.approx(0.8) and parse_score("Score: 8") is None
    assert parse_score("Score: 12/10") is None  # out of range
    assert parse_score("great") is None
    assert parse_score("on 3/4 of the days it rained") is None  # an unlabelled fraction inside prose is no score
    assert parse_score("Score: 2/10 ... revised score: 9/10") == pytest.approx(0.9)
    verdict = parse_verdict("Score: 7/10")
    assert verdict.verdict == "correct" and verdict.reward == pytest.approx(0.7)
    assert parse_verdict('{"score": 7, "scale": 10}').reward == pytest.approx(0.7)
    assert parse_verdict("Score: 3/10").verdict == "incorrect"
    assert parse_verdict("great").verdict == "unparsed"


def test_bad_client_settings():
    with pytest.raises(ValueError, match="must start with http"):
        JudgeClient("localhost:8000", model="m")
    with pytest.raises(ValueError, match="on_failure must be"):
        JudgeClient("http://127.0.0.1:1", model="m", on_failure="ignore")
    with pytest.raises(ValueError, match="use 'correct' or 'incorrect'"):
        JudgeClient("http://127.0.0.1:1", model="m", verdict_patterns=[("X", "maybe")])


def test_malformed_response_bodies_raise():
    with ScriptedServer([RawReply(b"<html>oops</html>"), RawReply(b'{"choices": []}')]) as server:
        with pytest.raises(JudgeError, match="returned non-JSON body"):
            _client(server.url).judge("q", "a", "b")
        with pytest.raises(JudgeError, match=r"returned no choices\[0\]\.message\.content"):
            _client(server.url).judge("q", "a", "b")


def test_em_first_sends_no_request_and_judge_decides_the_rest():
    with ScriptedServer(["[[CORRECT]]", "[[INCORRECT]]", "no marker here"]) as server:
        judge = _client(server.url)
        hit = judged_correct("The Eiffel Tower!", ["eiffel tower"], judge)
        assert hit.correct and hit.source == "exact_match" and server.count == 0
        assert judged_correct("Paris, France", "Paris", judge, question="Capital?").reward == 1.0
        assert judged_correct("Lyon", "Paris", judge).reward == 0.0
        assert judged_correct("Nice", "Paris", judge).verdict == "unparsed"
    assert server.count == 3
    assert judge.stats()["exact_match"] == 1 and judge.stats()["unparsed"] == 1


def test_per_call_sampling_fields_and_prediction_cut():
    with ScriptedServer(["[[CORRECT]] trailing", "yes"]) as server:
        judge = _client(server.url, max_prediction_chars=5, stop=["\n\n"])
        judge.judge("q", "0123456789", "b", temperature=0.7, max_tokens=5, seed=3)
        judge.judge("q", "x", "b")
    first, second = server.chat_requests
    assert (first["temperature"], first["max_tokens"], first["seed"], first["stop"]) == (0.7, 5, 3, ["\n\n"])
    assert "Candidate answer: 01234\n" in first["messages"][0]["content"]  # cut to 5 characters
    assert (second["temperature"], second["max_tokens"]) == (0.0, 256) and "seed" not in second


def test_judge_many_bounded_pool_order_dedup_and_counts():
    active, peak, lock = [0], [0], threading.Lock()

    def reply(messages, params):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        text = messages[0]["content"]
        return "[[CORRECT]]" if "Candidate answer: good" in text else "[[INCORRECT]]"

    items = [{"question": f"q{i}", "prediction": "good" if i % 2 else "bad", "golds": ["gold"]} for i in range(8)]
    items.append({"question": "q0", "prediction": "bad", "golds": ["gold"]})  # same prompt as item 0: asked once
    items.append({"question": "q9", "prediction": "Gold.", "golds": ["gold"]})  # exact match: no request
    with ChatServer(reply) as server:
        batch = _client(server.url).judge_many(items, workers=3)
    assert [v.verdict for v in batch.verdicts] == ["incorrect", "correct"] * 4 + ["incorrect", "correct"]
    assert batch.verdicts[-1].source == "exact_match"
    assert server.count == 8 and peak[0] <= 3 and peak[0] >= 2
    assert batch.counts == {"calls": 8, "http_requests": 8, "correct": 4, "incorrect": 4, "exact_match": 1}
    assert batch.accuracy == pytest.approx(5 / 10)
    with pytest.raises(ValueError, match="item 0 has no field 'golds'"):
        _client(server.url).judge_many([{"prediction": "x"}])


def test_judge_many_failure_policy():
    port = _dead_port()
    items = [{"question": "q", "prediction": "a", "golds": ["b"]}, {"question": "q", "prediction": "b", "golds": "b"}]
    batch = _client(f"http://127.0.0.1:{port}", max_retries=0, on_failure="count_incorrect").judge_many(items)
    assert [v.verdict for v in batch.verdicts] == ["failed", "correct"]
    assert batch.counts["failed"] == 1 and batch.counts["exact_match"] == 1
    with pytest.raises(JudgeError, match="failed after 1 attempt"):
        _client(f"http://127.0.0.1:{port}", max_retries=0).judge_many(items)


def test_disk_cache_is_keyed_by_endpoint_model_and_prompt(tmp_path):
    with ScriptedServer([], default="[[CORRECT]]") as server:
        judge = _client(server.url, cache_dir=str(tmp_path / "cache"))
        judge.judge("q", "a", "b")
        again = _client(server.url, cache_dir=str(tmp_path / "cache"))  # a new process would see the same files
        assert again.judge("q", "a", "b").verdict == "correct"
        assert server.count == 1 and again.stats()["cache_hits"] == 1
        again.judge("q", "other prediction", "b")  # another prompt
        JudgeClient(server.url, model="other-model", cache_dir=str(tmp_path / "cache")).judge("q", "a", "b")
        again.judge("q", "a", "b", temperature=0.5)  # other sampling fields are another request
    assert server.count == 4
