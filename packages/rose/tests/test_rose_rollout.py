"""Tree rollouts: branch choice, prefix reuse, budget, accounting (scripted generator) and a real tiny model."""

import math
import random

import pytest
import torch
from rose.rollout import SamplerSettings, TreeSampler
from shared.generation import Completion


class ScriptedTokenizer:
    def decode(self, ids, skip_special_tokens=True):
        return " ".join(str(i) for i in ids)


class ScriptedGenerator:
    """Continues any prompt with tokens len(prompt), len(prompt)+1, ... up to the budget (5 at most).

    Token 12 is the only uncertain one (two candidates at 0.5 each); every other token has candidates 0.9 / 0.1.
    """

    def __init__(self):
        self.tokenizer = ScriptedTokenizer()
        self.calls = []

    def generate(self, prompts, params):
        self.calls.append(([list(p) for p in prompts], params))
        out = []
        for p in prompts:
            toks = [len(p) + j for j in range(min(5, params.max_new_tokens))]
            top = [[(t, math.log(0.5)), (t + 100, math.log(0.5))] if t == 12 else
                   [(t, math.log(0.9)), (t + 100, math.log(0.1))] for t in toks]
            comp = Completion(text=self.tokenizer.decode(toks), token_ids=toks, logprobs=[-0.1] * len(toks),
                              top_logprobs=top if params.top_logprobs else None, finish_reason="length")
            out.append([comp] * params.n)
        return out


def sampler(gen, **kw):
    settings = SamplerSettings(**{"mode": "tree", "epsilon": 0.0, "score": "entropy", "max_new_tokens": 5, **kw})
    return TreeSampler(gen, settings)


def test_branches_at_argmax_and_continues_from_the_prefix():
    gen = ScriptedGenerator()
    (tree,) = sampler(gen).sample([[1] * 10], n=4)
    assert [(r.parent, r.branch_pos) for r in tree.rollouts] == [(None, 0), (0, 2), (0, 1), (2, 2)]
    # round 1 branches at token 12 (position 2 of the root): the prompt carries the root's first two tokens
    prompts, params = gen.calls[1]
    assert prompts == [[1] * 10 + [10, 11]] and params.max_new_tokens == 3
    assert gen.calls[2][0] == [[1] * 10 + [10]]  # ties -> first candidate (root, position 1)
    assert tree[3].tokens[:2] == tree[2].tokens[:2] == [10, 11]
    assert all(len(r) == 5 for r in tree.rollouts)  # prefix counts against the 5-token budget
    assert tree.generated_tokens == 5 + 3 + 4 + 3 and tree.response_tokens == 20
    assert len({(r.parent, r.branch_pos) for r in tree.rollouts}) == 4


def test_budget_is_cut_per_row_in_a_shared_call():
    gen = ScriptedGenerator()
    trees = sampler(gen).sample([[1] * 10, [1] * 9], n=3)
    for tree in trees:
        assert all(len(r) <= 5 for r in tree.rollouts)
        for r in tree.rollouts[1:]:
            assert r.tokens[: r.branch_pos] == tree[r.parent].tokens[: r.branch_pos]
    assert all(len(call[0]) == 2 for call in gen.calls)  # one call per round serves both prompts


def test_epsilon_one_restarts_every_rollout_from_the_root():
    gen = ScriptedGenerator()
    (tree,) = sampler(gen, epsilon=1.0).sample([[1] * 10], n=3)
    assert all(r.parent is None for r in tree.rollouts)
    assert all(call[0] == [[1] * 10] for call in gen.calls)
    assert tree.generated_tokens == tree.response_tokens == 15


def test_epsilon_mixes_roots_and_branches():
    random.seed(3)
    trees = sampler(ScriptedGenerator(), epsilon=0.5).sample([[1] * 10] * 20, n=4)
    roots = sum(r.parent is None for t in trees for r in t.rollouts[1:])
    assert 15 <= roots <= 45  # about half of the 60 later rollouts


def test_independent_mode_samples_all_at_once():
    gen = ScriptedGenerator()
    (tree,) = sampler(gen, mode="independent").sample([[1] * 10], n=4)
    assert len(gen.calls) == 1 and gen.calls[0][1].n == 4
    assert len(tree) == 4 and all(r.parent is None for r in tree.rollouts)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="rose.mode"):
        sampler(ScriptedGenerator(), mode="forest")
    with pytest.raises(ValueError, match="rose.epsilon"):
        sampler(ScriptedGenerator(), epsilon=1.5)
    with pytest.raises(ValueError, match="needs the policy's input embeddings"):
        sampler(ScriptedGenerator(), score="semantic")
    with pytest.raises(ValueError, match="n >= 1"):
        sampler(ScriptedGenerator()).sample([[1]], n=0)


def test_real_tiny_model_tree_and_trajectories(rose_tiny):
    from shared.generation import HFGenerator

    model, tok = rose_tiny
    torch.manual_seed(0)
    random.seed(0)
    settings = SamplerSettings(mode="tree", epsilon=0.25, score="semantic", max_new_tokens=12)
    s = TreeSampler(HFGenerator(model, tok), settings, lambda: model.get_input_embeddings().weight)
    recs = [{"prompt": "Q: 12+3=?\nA: ", "answer": "15"}, {"prompt": "Q: 40-7=?\nA: ", "answer": "33"}]
    trajs = s.rollout_fn(recs, n=4, group_ids=[5, 6])
    assert len(trajs) == 8 and [t.group_id for t in trajs] == [5] * 4 + [6] * 4
    assert s.stats.groups == 2 and s.stats.rollouts == 8
    # the accounting recomputed from the trajectories: a branch generates only what follows its prefix
    branches = [t for t in trajs if t.metadata["rose_parent"] is not None]
    assert s.stats.branched == len(branches) > 0  # epsilon 0.25, seed 0: 6 of the 6 later rollouts
    assert s.stats.response_tokens == sum(len(t.response_ids) for t in trajs)
    assert s.stats.generated_tokens == s.stats.response_tokens - sum(t.metadata["rose_branch_pos"] for t in branches)
    assert s.stats.generated_tokens < s.stats.response_tokens
    by_node = {(t.group_id, t.metadata["rose_node"]): t for t in trajs}
    for t in trajs:
        assert len(t.response_ids) <= 12 and t.num_policy_tokens == len(t.response_ids)
        parent = t.metadata["rose_parent"]
        if parent is not None:
            pos = t.metadata["rose_branch_pos"]
            assert t.response_ids[:pos] == by_node[(t.group_id, parent)].response_ids[:pos]
            assert t.old_logprobs[:pos] == by_node[(t.group_id, parent)].old_logprobs[:pos]
