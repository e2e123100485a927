"""The trainable tiny search agent: token layout of oracle traces, reward, and that SFT + GRPO run and learn."""

from collections import Counter

import pytest
import torch
from agentic_r.agents import ServiceSearch, play
from agentic_r.tiny_agent import (
    TINY_PROMPT,
    TinyAgentSettings,
    TinyLLMAgent,
    build_tiny_agent,
    em_reward,
    encode_transcript,
    oracle_examples,
    oracle_turns,
    rl_train,
    sft,
    sft_example,
)
from shared.retrieval import Retriever
from shared.rollout.trajectory import Trajectory

DOCS = [
    {"id": "p1", "contents": '"Bo Ka"\nBo Ka was born in Lille. Bo Ka works for Zo Corp.'},
    {"id": "p2", "contents": '"Mi Ra"\nMi Ra was born in Tove. Mi Ra works for Ne Corp.'},
    {"id": "c1", "contents": '"Lille"\nLille is a city in Kaland.'},
    {"id": "c2", "contents": '"Tove"\nTove is a city in Saland.'},
]
QUESTIONS = [
    {"id": "q1", "question": "In which country was Bo Ka born?", "golden_answers": ["Kaland"],
     "sub_questions": [{"question": "Where was Bo Ka born?", "passage_id": "p1"},
                       {"question": "In which country is Lille?", "passage_id": "c1"}]},
    {"id": "q2", "question": "In which country was Mi Ra born?", "golden_answers": ["Saland"],
     "sub_questions": [{"question": "Where was Mi Ra born?", "passage_id": "p2"},
                       {"question": "In which country is Tove?", "passage_id": "c2"}]},
]  # fmt: skip


@pytest.fixture(scope="module")
def search():
    return ServiceSearch(Retriever("bm25", DOCS), with_question=False)


@pytest.fixture(scope="module")
def agent_model(tmp_path_factory):
    texts = [d["contents"] for d in DOCS] + [TINY_PROMPT.format(question=q["question"]) for q in QUESTIONS]
    settings = TinyAgentSettings(hidden=32, layers=1, heads=2, ffn=64, vocab_size=300, max_positions=256)
    return build_tiny_agent(texts, settings, tmp_path_factory.mktemp("tiny"), seed=0)


def test_oracle_trace_layout_masks_observations(search, agent_model):
    _, tok = agent_model
    turns, readable = oracle_turns(QUESTIONS[0], search.for_question(QUESTIONS[0]["question"]), topk=1)
    assert readable
    assert [t for t, _ in turns] == ["<search>Where was Bo Ka born?</search>", "<search>In which country is Lille?"
                                     "</search>", "<answer>Kaland</answer>"]  # fmt: skip
    assert turns[0][1] == "\n\n<information>Doc 1(Title: \"Bo Ka\") Bo Ka was born in Lille. Bo Ka works for Zo " \
        "Corp.</information>\n\n"
    ids, mask = sft_example(tok, QUESTIONS[0]["question"], turns)
    assert len(ids) == len(mask) and ids[-1] == tok.eos_token_id and mask[-1] == 1
    trained = tok.decode([i for i, m in zip(ids, mask) if m], skip_special_tokens=True)
    assert trained == "".join(t for t, _ in turns)  # only the agent's turns (and eos) carry loss
    transcript = "".join(t + o for t, o in turns[:2])
    # the pipeline's text transcripts re-encode to exactly the SFT ids (same split at observations)
    assert encode_transcript(tok, QUESTIONS[0]["question"], transcript) == ids[: len(ids) - len(
        tok("<answer>Kaland</answer>", add_special_tokens=False)["input_ids"]) - 1]


def test_unreadable_oracle_trace_is_dropped_and_counted(search, agent_model):
    _, tok = agent_model
    wrong = {**QUESTIONS[0], "sub_questions": [{"question": "Where was Bo Ka born?", "passage_id": "c2"}]}
    stats = Counter()
    assert len(oracle_examples(tok, [wrong, QUESTIONS[1]], search, 1, stats)) == 1
    assert stats == Counter({"oracle_unreadable": 1, "oracle_traces": 1})
    with pytest.raises(ValueError, match="no oracle trace"):
        sft(agent_model[0], tok, [], TinyAgentSettings(), seed=0, progress=False)


def test_em_reward_reads_the_final_answer():
    done, silent = Trajectory(prompt_ids=[1]), Trajectory(prompt_ids=[1])
    done.metadata = {"answer": "kaland "}
    assert em_reward([done, silent], QUESTIONS[:1] * 2) == [1.0, 0.0]


def test_sft_learns_the_oracle_traces_and_grpo_runs(search, agent_model, tmp_path):
    model, tok = agent_model
    settings = TinyAgentSettings(hidden=32, layers=1, heads=2, ffn=64, sft_steps=80, sft_lr=1e-2, sft_batch=2,
                                 sft_warmup=5, rl_steps=2, prompts_per_step=2, generations=2, max_positions=256)
    examples = oracle_examples(tok, QUESTIONS, search, 1, Counter())
    losses = sft(model, tok, examples, settings, seed=0, progress=False)
    assert losses[-1] < 0.2 * losses[0]
    agent = TinyLLMAgent(model, tok, "tiny")
    rollouts = play(agent, QUESTIONS, search, topk=1, max_searches=3)
    assert [r["em"] for r in rollouts] == [1.0, 1.0]  # memorised the two traces, searching through the retriever
    assert [t["query"] for t in rollouts[0]["turns"]] == ["Where was Bo Ka born?", "In which country is Lille?"]
    before = [p.detach().clone() for p in model.parameters()]
    history = rl_train(model, tok, QUESTIONS, search, settings, 1, tmp_path / "rl", seed=0, progress=False)
    assert len(history) == 2 and all(0.0 <= h["reward"] <= 1.0 for h in history)
    assert (tmp_path / "rl").exists()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())) or all(
        h["reward_std"] == 0.0 for h in history)  # GRPO moves the weights unless every group had equal rewards
