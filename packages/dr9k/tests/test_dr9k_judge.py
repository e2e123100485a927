"""The judge through the real chat client against loopback servers: exact match first (no request), the
[[CORRECT]] / [[INCORRECT]] verdicts, an unreadable reply and a dead endpoint as one-line errors naming the record
or the URL, one retry after a 500, the 500-character prediction cut; and the deterministic stand-ins' rules."""

import socket

import pytest
from dr9k.config import JudgeSettings
from dr9k.judge import GRADE_TEMPLATES, contains_answer, grade, grade_client, stub_reply, validity_client
from shared.rewards.judge import JudgeError, JudgeParseError
from shared.serving import ChatServer, ReplyError, ScriptedReplies


def _settings(**kw):
    return JudgeSettings(kind="endpoint", base_url="unused", max_retries=kw.pop("max_retries", 2), backoff_s=0.0, **kw)


def _item(pred, gold="Paris", i=0):
    return {"id": f"q{i}", "question": "Capital of France?", "prediction": pred, "golds": [gold]}


def test_exact_match_asks_nothing_and_verdicts_are_read():
    with ChatServer(ScriptedReplies(["[[CORRECT]]", "[[INCORRECT]]"])) as server:
        client = grade_client(server.url, "stub", _settings())
        # one worker: the scripted replies go out in request order, so the two judged items must ask in item order
        verdicts = grade(client, [_item("the Paris"), _item("City of Light", i=1), _item("Lyon", i=2), _item("", i=3)],
                         workers=1)
        assert [v.correct for v in verdicts] == [True, True, False, False]
        assert [v.source for v in verdicts] == ["exact_match", "judge", "judge", "no_answer"]
        assert server.count == 2  # the EM hit and the empty answer cost no request
        prompt = server.chat_requests[0]["messages"][0]["content"]
        assert "Question:" not in prompt and "Reference answer: Paris" in prompt  # the release's prompt: no question
        assert server.chat_requests[0]["temperature"] == 0.0


def test_unparsed_reply_raises_naming_the_record_or_counts():
    with ChatServer(ScriptedReplies([], default="I think so")) as server:
        with pytest.raises(JudgeParseError, match="item 'q7'.*no readable verdict"):
            grade(grade_client(server.url, "stub", _settings()), [_item("Lyon", i=7)])
        lenient = grade_client(server.url, "stub", _settings(on_unparsed="verdict"))
        [v] = grade(lenient, [_item("Lyon", i=8)])
        assert v.verdict == "unparsed" and v.reward == 0.0 and lenient.stats()["unparsed"] == 1


def test_retry_after_500_and_prediction_cut_to_500_chars():
    with ChatServer(ScriptedReplies([ReplyError(500), "[[INCORRECT]]"])) as server:
        client = grade_client(server.url, "stub", _settings())
        [v] = grade(client, [_item("x" * 600)])
        assert v.verdict == "incorrect" and client.stats()["retries"] == 1 and server.count == 2
        prompt = server.chat_requests[-1]["messages"][0]["content"]
        assert "x" * 500 in prompt and "x" * 501 not in prompt


def test_dead_endpoint_is_an_error_naming_the_url_or_counted_incorrect():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(JudgeError, match=f"item 'q0'.*127.0.0.1:{port}.*failed after 2 attempt"):
        grade(grade_client(url, "stub", _settings(max_retries=1)), [_item("Lyon")])
    client = grade_client(url, "stub", _settings(max_retries=0, on_failure="count_incorrect"))
    [v] = grade(client, [_item("Lyon")])
    assert v.verdict == "failed" and not v.correct and client.stats()["failed"] == 1


def test_stub_judge_rules():
    def ask(pred, ref, template="release"):
        text = GRADE_TEMPLATES[template].format(question="Q?", reference=ref, prediction=pred)
        return stub_reply([{"role": "user", "content": text}])

    assert ask("Paris, France", "Paris") == "[[CORRECT]]"
    assert ask("Lyon", "Paris") == "[[INCORRECT]]"
    assert ask("a very long list of many cities including Paris", "Paris") == "[[INCORRECT]]"  # too long to count
    assert ask("Paris", "Paris", "with_question") == "[[CORRECT]]"
    assert contains_answer("New York City", "new york") and not contains_answer("Newark", "New York")
    assert stub_reply([{"role": "user", "content": "hello"}]).startswith("I cannot")  # no verdict: unparsed


def test_validity_judge_through_the_endpoint():
    with ChatServer(stub_reply) as server:
        client = validity_client(server.url, "stub", _settings())
        items = [{"id": "a", "question": "In which country was Ala Mi born?", "prediction": "-", "golds": ["Raland"]},
                 {"id": "b", "question": "Is Raland where Ala Mi was born?", "prediction": "-", "golds": ["Raland"]},
                 {"id": "c", "question": "Ala Mi birthplace", "prediction": "-", "golds": ["Raland"]}]
        batch = client.judge_many(items, em_first=False)
        assert [v.correct for v in batch.verdicts] == [True, False, False]  # leak; not a question
