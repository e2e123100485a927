"""`JudgeClient.judge_many` names the failing item (its "id", else its index) in the one-line error, for an endpoint
that fails and for an unreadable reply under on_unparsed="raise"."""

import socket

import pytest
from shared.rewards import JudgeClient, JudgeError
from shared.rewards.judge import JudgeParseError
from shared.serving import ChatServer, ScriptedReplies


def test_failure_names_the_item():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = JudgeClient(f"http://127.0.0.1:{port}", model="m", max_retries=0)
    with pytest.raises(JudgeError, match=r"^item 'rec-9': chat endpoint"):
        judge.judge_many([{"id": "rec-9", "prediction": "a", "golds": ["b"]}])
    with pytest.raises(JudgeError, match=r"^item 1: chat endpoint"):
        judge.judge_many([{"prediction": "b", "golds": ["b"]}, {"prediction": "a", "golds": ["b"]}])
    with ChatServer(ScriptedReplies([], default="maybe")) as server:
        strict = JudgeClient(server.url, model="m", on_unparsed="raise")
        with pytest.raises(JudgeParseError, match=r"^item 'q2': judge endpoint .* no readable verdict"):
            strict.judge_many([{"id": "q2", "prediction": "a", "golds": ["b"]}])
