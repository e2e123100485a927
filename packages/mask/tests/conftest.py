"""Fixtures of the mask tests: one torch thread, a char tokenizer with the roles' tags, a small KB with its BM25
retriever, and a scripted generator that plays replies through the real driver (token ids and all)."""

from __future__ import annotations

import pytest
import torch
from shared.generation import Completion

torch.set_num_threads(1)


class ScriptedGenerator:
    """A `shared.generation` Generator whose replies come from `reply(prompt_text) -> text` (or, given a list, the
    next reply in call order). Token ids are the tokenizer's ids of the reply, cut to max_new_tokens."""

    def __init__(self, tokenizer, reply):
        self.tokenizer = tokenizer
        self.by_prompt = callable(reply)
        self.reply = reply if self.by_prompt else iter(reply).__next__
        self.prompts: list[str] = []

    def generate(self, prompts, params):
        out = []
        for ids in prompts:
            text = self.tokenizer.decode(ids)
            self.prompts.append(text)
            reply = self.reply(text) if self.by_prompt else self.reply()
            tok = self.tokenizer(reply, add_special_tokens=False)["input_ids"][: params.max_new_tokens]
            text_out = self.tokenizer.decode(tok)
            # a reply ending at one of the request's stop strings stopped there; any other reply ended with eos
            reason = "stop" if any(text_out.endswith(s) for s in params.stop) else "eos"
            out.append([Completion(text=text_out, token_ids=tok, logprobs=[0.0] * len(tok), finish_reason=reason)])
        return out


@pytest.fixture(scope="session")
def char_tok():
    from shared.modeling.tiny import EXTRA_TAGS, TAGS, build_tokenizer

    return build_tokenizer(kind="char", extra_tags=[*TAGS, *EXTRA_TAGS])


@pytest.fixture(scope="session")
def scripted():
    return ScriptedGenerator


@pytest.fixture(scope="session")
def small_kb():
    """A default-size KB (60 people ...), 2-3-hop training questions and a BM25 retrieve(query) on its corpus."""
    from benchmarks.synthetic.kb import make_kb, make_kb_questions
    from mask.data import make_retrieve
    from shared.retrieval import Retriever

    kb = make_kb(seed=0)
    questions = [q.to_dict() for q in make_kb_questions(kb, 24, seed=0, hops=(1, 2, 3), split="train")]
    retriever = Retriever("bm25", kb.corpus())
    return {"kb": kb, "questions": questions, "retriever": retriever, "retrieve": make_retrieve(retriever, 5)}


@pytest.fixture()
def cfg():
    from mask.config import MaskConfig

    c = MaskConfig()
    c.prompt.style = "short"
    return c
