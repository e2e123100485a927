"""Search-R1 rollouts against the shared search service: the KB reader agent, continuations, bad agents."""

from collections import Counter

import pytest
import torch
from agentic_r.agents import KBReaderAgent, ServiceSearch, parse_kb_question, play, read_answer
from agentic_r.judge import LexicalJudge, LLMListwiseJudge
from agentic_r.labels import ReaderSubAnswers, label_global, label_local, mine_candidates, write_sub_answers
from benchmarks.synthetic.kb import make_kb, make_kb_questions
from shared.retrieval import Retriever, SearchClient, SearchServer


@pytest.fixture(scope="module")
def kb_setup():
    kb = make_kb(seed=3)
    corpus = kb.corpus()
    questions = [q.to_dict() for q in make_kb_questions(kb, 12, seed=3, split="train")]
    server = SearchServer(Retriever("bm25", corpus)).start()
    yield kb, corpus, questions, SearchClient(server.url)
    server.stop()


class NeverSearches:
    name = "never-searches"

    def next_turns(self, items):
        return ["<think>I know it.</think><answer>Paris</answer>" for _ in items]


def test_read_answer_strict_then_loose():
    obs = 'Doc 1(Title: "Bo Ka") Bo Ka was born in Xville.\nDoc 2(Title: "Al Li") Al Li was born in Yville.'
    assert read_answer(obs, "born_in", "Al Li") == "Yville"  # strict: the sentence about the subject
    assert read_answer(obs, "born_in", "Zed Zo") == "Xville"  # loose: first sentence of the relation
    assert read_answer(obs, "works_for", "Al Li") is None


def test_parse_question_prefers_most_specific_template():
    chain, start = parse_kb_question("Where was the mentor of Bo Ka born?")
    assert chain == ("mentor", "born_in") and start == "Bo Ka"
    assert parse_kb_question("What is the capital of France?") is None


def test_reader_rollouts_record_every_search_turn(kb_setup):
    kb, corpus, questions, client = kb_setup
    search = ServiceSearch(client, with_question=False)
    rollouts = play(KBReaderAgent(), questions, search, topk=3)
    for r, q in zip(rollouts, questions):
        assert r["finish"] == "answer"
        assert r["num_searches"] == len(r["turns"]) >= q["hops"]
        assert r["text"].count("<information>Doc 1(Title: ") == len(r["turns"])
        for t in r["turns"]:
            assert t["prefix"].endswith(f"<search>{t['query']}</search>") and len(t["doc_ids"]) == 3
    # BM25 over exact entity names finds every hop: the reader answers every question
    assert sum(r["em"] for r in rollouts) == len(questions)
    assert search.requests <= 3 * 2 + 1  # lock-step batches, not one request per search


def test_agent_that_never_searches_yields_no_data_but_a_count(kb_setup):
    _, corpus, questions, client = kb_setup
    rollouts = play(NeverSearches(), questions[:4], ServiceSearch(client), topk=3)
    assert all(r["turns"] == [] and r["answer"] == "Paris" for r in rollouts)
    stats = Counter()
    assert mine_candidates(rollouts, ServiceSearch(client), 20, stats) == []
    assert stats["no_search"] == 4


def test_labels_local_global_with_missing_passage_and_garbage_judge(kb_setup):
    kb, corpus, questions, client = kb_setup
    search = ServiceSearch(client, with_question=False)
    rollouts = play(KBReaderAgent(), questions[:3], search, topk=3)
    stats = Counter()
    cands = mine_candidates(rollouts, ServiceSearch(client, with_question=True), 20, stats)
    cands[0]["doc_ids"][5] = "no-such-passage"
    subs = write_sub_answers(rollouts, ReaderSubAnswers(), stats)
    by_id = {d["id"]: d["contents"] for d in corpus}
    local = label_local(cands, subs, by_id, LexicalJudge(), stats)
    assert stats["missing_passage"] == 1 and len(local[0]["doc_ids"]) == 19
    dropped = Counter()
    assert label_local(cands, subs, by_id, LLMListwiseJudge(lambda p: "no idea"), dropped) == []
    assert dropped["judge_parse_failure"] == len(cands)
    labelled = label_global(local, {r["id"]: r for r in rollouts}, by_id, KBReaderAgent(), search, 0.6, stats=stats)
    first = labelled[0]
    gold = questions[0]["sub_questions"][0]["passage_id"]
    assert first["u_glob"][first["doc_ids"].index(gold)] == 1.0  # the gold passage leads to the right answer
    assert all(g is None for g, u in zip(first["u_glob"], first["u_loc"]) if u < 0.6)


def test_generator_agent_runs_search_r1_prompts(kb_setup):
    from agentic_r.agents import GeneratorAgent
    from shared.generation import HFGenerator
    from shared.modeling.tiny import build_tokenizer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _, _, questions, client = kb_setup
    tokenizer = build_tokenizer(kind="char")
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=2, intermediate_size=64, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id)  # fmt: skip
    agent = GeneratorAgent(HFGenerator(Qwen2ForCausalLM(config), tokenizer), name="tiny-random-lm", max_new_tokens=16)
    rollouts = play(agent, questions[:2], ServiceSearch(client), topk=3, max_turns=2)
    # a random model writes no <search> or <answer> tag: the episode ends, recorded, without crashing
    assert [r["finish"] for r in rollouts] == ["no_action", "no_action"]
    assert all(r["turns"] == [] and r["em"] == 0.0 for r in rollouts)
