"""shared.rollout.text_loop: lock-step text episodes against SearchEnv, and an endpoint teacher through the real
chat client on a loopback ChatServer."""

from __future__ import annotations

import re

import pytest
from shared.generation import SamplingParams
from shared.generation.openai_chat import OpenAIChatGenerator
from shared.rollout.envs import SearchEnv
from shared.rollout.text_loop import chat_agent, generator_agent, play
from shared.serving import ChatClient, ChatServer

DOCS = {
    "born": {"id": "d1", "contents": "Ada Lin\nAda Lin was born in Xville."},
    "country": {"id": "d2", "contents": "Xville\nXville is in Norland."},
}


class DictRetriever:
    """Keyword retriever: the first doc whose key occurs in the query; counts calls."""

    def __init__(self):
        self.calls = 0

    def retrieve(self, queries, topk=3):
        self.calls += 1
        return [[doc for key, doc in DOCS.items() if key in q][:topk] for q in queries]


def oracle(question: str, transcript: str) -> str:
    """Scripted two-hop teacher: search where born, then the country, then answer."""
    found = re.findall(r"Doc 1\(Title: [^)]*\) (.*?)\.?\n?</information>", transcript)
    if not found:
        return f"<think>start</think><search>where was {question} born</search> ignored tail"
    if len(found) == 1:
        city = found[0].split()[-1]
        return f"<search>country of {city}</search>"
    return f"<answer>{found[-1].split()[-1]}</answer>"


def test_play_runs_lock_step_episodes_to_their_answers():
    retriever = DictRetriever()
    rounds = []

    def agent(episodes):
        rounds.append(len(episodes))
        return [oracle(e.record["question"], e.transcript) for e in episodes]

    seen = []
    records = [{"id": "a", "question": "Ada Lin"}, {"id": "b", "question": "Ada Lin"}]
    eps = play(agent, lambda r: SearchEnv(retriever, topk=1, answer_reward=lambda a, r: float(a == "Norland")),
               records, max_turns=5, before_step=lambda pairs: seen.append([a.kind for _, a in pairs]))
    assert rounds == [2, 2, 2]  # both episodes advance together, one agent call per round
    assert seen == [["search", "search"]] * 2 + [["answer", "answer"]]
    ep = eps[0]
    assert ep.finish == "done" and ep.answer == "Norland" and ep.reward == 1.0
    assert [t["action"] for t in ep.turns] == ["search", "search", "answer"]
    assert ep.turns[0]["text"].endswith("</search>")  # the text after the action's closing tag is dropped
    assert "ignored tail" not in ep.transcript
    assert ep.turns[0]["info"]["doc_ids"] == ["d1"] and "<information>" in ep.turns[0]["observation"]
    assert ep.turns[1]["prefix"].endswith("<search>country of Xville</search>")
    assert ep.to_dict()["num_turns"] == 3 and ep.to_dict()["id"] == "a"
    assert retriever.calls == 4


def test_finish_reasons_and_correction():
    records = [{"id": i, "question": "q"} for i in range(3)]
    replies = {0: "no tags at all", 1: "<tool_call>x</tool_call>", 2: "<search>nothing</search>"}
    agent = lambda eps: [replies[e.record["id"]] for e in eps]  # noqa: E731
    env = lambda r: SearchEnv(DictRetriever(), topk=1)  # noqa: E731
    eps = play(agent, env, records, max_turns=2)
    assert [e.finish for e in eps] == ["no_action", "no_action", "max_turns"]  # tool_call is not a SearchEnv tag
    assert len(eps[2].turns) == 2

    class Strict(SearchEnv):
        def step(self, action):
            if action.content == "bad":
                from shared.rollout.envs import ActionError

                raise ActionError("bad query")
            return super().step(action)

    bad = lambda eps: ["<search>bad</search>" if not e.turns else "<answer>x</answer>" for e in eps]  # noqa: E731
    stopped = play(bad, lambda r: Strict(DictRetriever()), records[:1])
    assert stopped[0].finish == "invalid_action" and stopped[0].turns[0]["info"]["error"] == "bad query"
    fixed = play(bad, lambda r: Strict(DictRetriever()), records[:1], correction="\nUse a real query.\n")
    assert fixed[0].finish == "done" and fixed[0].answer == "x"
    assert "Use a real query." in fixed[0].transcript


def test_environment_can_name_its_ending():
    """A search budget as an environment wrapper: the loop reports the wrapper's finish reason."""

    class Budget(SearchEnv):
        def step(self, action):
            if action.kind == "search" and len(self.queries) >= 1:
                from shared.rollout.envs import StepResult

                return StepResult("", True, 0.0, {"finish": "search_budget"})
            return super().step(action)

    eps = play(lambda eps: ["<search>born</search>"] * len(eps), lambda r: Budget(DictRetriever()), [{"id": 0}])
    assert eps[0].finish == "search_budget" and eps[0].answer is None and len(eps[0].turns) == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="max_turns >= 1"):
        play(lambda e: [], lambda r: SearchEnv(DictRetriever()), [{}], max_turns=0)
    with pytest.raises(ValueError, match="returned 0 turn"):
        play(lambda e: [], lambda r: SearchEnv(DictRetriever()), [{"id": 1}])
    with pytest.raises(ValueError, match="2 start transcripts for 1 records"):
        play(lambda e: [], lambda r: SearchEnv(DictRetriever()), [{}], starts=["", ""])


def _teacher_reply(messages, params):
    """The endpoint teacher: the same oracle, reading the episode from the chat messages."""
    question = messages[-1]["content"] if len(messages) == 1 else messages[0]["content"]
    transcript = "".join(m["content"] for m in messages[1:])
    return oracle(question, transcript)


def test_endpoint_teacher_through_chat_agent_and_real_http():
    records = [{"id": i, "question": "Ada Lin"} for i in range(4)]
    with ChatServer(_teacher_reply) as server:
        client = ChatClient(server.url, "teacher")
        agent = chat_agent(client, lambda r: r["question"], workers=3, stop=["</search>", "</answer>"])
        eps = play(agent, lambda r: SearchEnv(DictRetriever(), topk=1), records, max_turns=4)
        assert server.count == 12  # 4 episodes x 3 turns
        sent = server.chat_requests[-1]
    assert all(e.finish == "done" and e.answer == "Norland" for e in eps)
    assert sent["stop"] == ["</search>", "</answer>"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user", "assistant", "user"]
    assert eps[0].turns[0]["text"] == "<think>start</think><search>where was Ada Lin born</search>"


def test_generator_agent_over_the_openai_adapter():
    """The same teacher as a Generator: prompt + transcript as one user message."""
    def reply(messages, params):
        question, _, transcript = messages[-1]["content"].partition("\n")
        return oracle(question, transcript)

    with ChatServer(reply) as server:
        gen = OpenAIChatGenerator(server.url, model="teacher")
        params = SamplingParams(max_new_tokens=64, temperature=0.0, stop=("</search>", "</answer>"))
        agent = generator_agent(gen, lambda r: r["question"] + "\n", params)
        eps = play(agent, lambda r: SearchEnv(DictRetriever(), topk=1), [{"id": 0, "question": "Ada Lin"}])
    assert eps[0].answer == "Norland" and len(eps[0].turns) == 3
