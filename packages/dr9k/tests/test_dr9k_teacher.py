"""The scripted KB teacher answers every hand-KB level through the real chat client and BM25 search; a dead teacher
endpoint is an error naming its URL; SFT examples put loss on the teacher's turns only (never on an
<information> block or the prompt)."""

import socket

import pytest
from dr9k.config import LevelSettings
from dr9k.levels import build_levels
from dr9k.search import make_env_factory
from dr9k.teacher import fact, parse_docs, run_teacher, stub_teacher, transcript_example
from shared.retrieval import Retriever
from shared.serving import ChatClient, ChatError, ChatServer
from shared.stages import DropStats


def _rows(kb, seed_of):
    seeds = [seed_of(kb, "Ce Lo", ("born_in", "located_in")), seed_of(kb, "Bo Ka", ("works_for", "founded_in")),
             seed_of(kb, "Ce Lo", ("mentor", "born_in", "located_in"))]
    return build_levels(seeds, ["L1", "L2", "L3"], LevelSettings(), kb, DropStats())


def test_scripted_teacher_solves_every_level_through_the_endpoint(kb, seed_of):
    rows = _rows(kb, seed_of)
    env_factory = make_env_factory(Retriever("bm25", kb.corpus()), topk=3)
    with ChatServer(stub_teacher(rows)) as server:
        episodes = run_teacher(ChatClient(server.url, "teacher"), rows, env_factory, "short", 6, 2, {})
        requests = server.count
    for row, ep in zip(rows, episodes):
        assert ep["finish"] == "done" and ep["answer"] == row["golden_answers"][0], (row["question"], ep["transcript"])
        assert ep["num_turns"] == row["depth"] + 1  # one search per hop or description, then the answer
    assert requests == sum(r["depth"] + 1 for r in rows)  # every turn went over HTTP
    first = episodes[1]["turns"][0]  # Ce Lo's L2: the description is searched first
    assert first["text"].endswith("<search>the person who works for Yu Corp and whose mentor is Ala Mi</search>")
    assert "Ce Lo" in [t for t, _ in parse_docs(first["observation"])]
    # the thoughts restate the evidence just read: L1 Ce Lo born_in -> located_in, L2 the described person first
    thoughts = [[t["text"].split("</think>")[0].removeprefix("<think>") for t in ep["turns"]] for ep in episodes]
    assert thoughts[0] == ["hop 1: born_in", fact("Ce Lo", "born_in", "Paville"), fact("Paville", "located_in", "Raland")]
    assert thoughts[1][1] == fact("Ce Lo", "works_for", "Yu Corp") + " " + fact("Ce Lo", "mentor", "Ala Mi")
    assert thoughts[1][2:] == thoughts[0][1:]  # then the same hops as L1 from the found person


def test_dead_teacher_endpoint_names_the_url(kb, seed_of):
    rows = _rows(kb, seed_of)[:1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ChatClient(f"http://127.0.0.1:{port}", "teacher", max_retries=1, backoff_s=0.0)
    env_factory = make_env_factory(Retriever("bm25", kb.corpus()), topk=3)
    with pytest.raises(ChatError, match=f"127.0.0.1:{port}/v1/chat/completions failed after 2 attempt"):
        run_teacher(client, rows, env_factory, "short", 6, 1, {})


def test_sft_example_masks_prompt_and_observations(kb, seed_of):
    from shared.modeling.tiny import build_tokenizer

    rows = _rows(kb, seed_of)
    env_factory = make_env_factory(Retriever("bm25", kb.corpus()), topk=3)
    with ChatServer(stub_teacher(rows)) as server:
        [ep] = run_teacher(ChatClient(server.url, "teacher"), rows[2:3], env_factory, "short", 6, 1, {})
    tok = build_tokenizer([d["contents"] for d in kb.corpus()] + [t["text"] for t in ep["turns"]], kind="bpe",
                          vocab_size=400)
    prompt = "Question: " + rows[2]["question"] + "\n"
    ex = transcript_example(tok, prompt, ep["turns"])
    n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
    n_obs = sum(len(tok(t["observation"], add_special_tokens=False)["input_ids"]) for t in ep["turns"] if t["observation"])
    n_turns = sum(len(tok(t["text"], add_special_tokens=False)["input_ids"]) for t in ep["turns"])
    assert ex["completion_mask"].count(0) == n_prompt + n_obs and sum(ex["completion_mask"]) == n_turns
    info = {tok.convert_tokens_to_ids("<information>"), tok.convert_tokens_to_ids("</information>")}
    assert all(m == 0 for i, m in zip(ex["input_ids"], ex["completion_mask"]) if i in info)
    assert sum(i in info for i in ex["input_ids"]) == 2 * sum(bool(t["observation"]) for t in ep["turns"])
