"""Tree rollouts over a `shared.generation` Generator, and independent sampling with the same accounting.

Tree mode builds n rollouts per prompt in n rounds, all prompts of a batch together in one generate call per round:
round 0 samples a root rollout; in later rounds each prompt, with probability epsilon, samples a fresh root
rollout, otherwise it branches at the argmax of the branching score over its tree's unused points and continues
from prompt + prefix token ids (the prefix is not regenerated). The prefix counts against the response budget:
a branch at position p may add at most max_new_tokens - p tokens (one decoding call runs to the batch's largest
budget; each row is cut to its own). Independent mode samples n rollouts per prompt in one call (GRPO's rollouts).

Both return trees (independent samples are a forest of roots) and convert them to the trainer's Trajectories with
the tree metadata the advantage step needs. `RolloutStats` counts generated tokens, the tokens the responses hold
(what independent sampling of the same responses would have generated) and distinct final answers per group.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from shared.generation import SamplingParams
from shared.rewards import extract_boxed
from shared.rollout.agent_loop import encode_prompt
from shared.rollout.trajectory import Trajectory

from rose.advantages import distinct_answers
from rose.scores import SCORE_KINDS, scores_from_top_logprobs
from rose.tree import RolloutTree

MODES = ("tree", "independent")


@dataclass
class SamplerSettings:
    """How rollouts are drawn (filled from the `rose` and `rl` config sections)."""

    mode: str = "tree"
    epsilon: float = 0.5
    top_k: int = 20
    score: str = "semantic"
    max_new_tokens: int = 48
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"rose.mode must be one of {MODES}, got {self.mode!r}")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"rose.epsilon must be in [0, 1], got {self.epsilon}")
        if self.score not in SCORE_KINDS:
            raise ValueError(f"rose.score must be one of {SCORE_KINDS}, got {self.score!r}")
        if self.top_k < 1:
            raise ValueError(f"rose.top_k must be >= 1, got {self.top_k}")


@dataclass
class RolloutStats:
    """Running totals over sampled groups."""

    groups: int = 0
    rollouts: int = 0
    generated_tokens: int = 0
    response_tokens: int = 0
    distinct_answers: int = 0
    branched: int = 0

    def add_tree(self, tree: RolloutTree, answers: Sequence[str | None]) -> None:
        self.groups += 1
        self.rollouts += len(tree)
        self.generated_tokens += tree.generated_tokens
        self.response_tokens += tree.response_tokens
        self.distinct_answers += distinct_answers(answers)
        self.branched += sum(r.parent is not None for r in tree.rollouts)

    def as_dict(self) -> dict[str, float]:
        return {"rose/groups": self.groups, "rose/generated_tokens": self.generated_tokens,
                "rose/response_tokens": self.response_tokens, "rose/distinct_answers": self.distinct_answers,
                "rose/branched": self.branched, "rose/rollouts": self.rollouts}


@dataclass
class _Request:
    tree_index: int
    parent: int | None = None
    pos: int = 0
    prompt: list[int] = field(default_factory=list)


class TreeSampler:
    """Samples rollout groups with a Generator; `embeddings()` gives the policy's input embedding table [V, d]."""

    def __init__(self, generator: Any, settings: SamplerSettings,
                 embeddings: Callable[[], torch.Tensor] | None = None) -> None:
        settings.validate()
        if settings.mode == "tree" and embeddings is None and settings.score != "entropy":
            raise ValueError(f"score {settings.score!r} needs the policy's input embeddings")
        self.generator = generator
        self.settings = settings
        self.embeddings = embeddings
        self.stats = RolloutStats()

    def _params(self, max_new: int, n: int = 1, top_logprobs: int = 0) -> SamplingParams:
        s = self.settings
        return SamplingParams(max_new_tokens=max_new, temperature=s.temperature, top_p=s.top_p, n=n,
                              stop=tuple(s.stop), logprobs=True, top_logprobs=top_logprobs)

    def _decode(self, ids: list[int]) -> str:
        return self.generator.tokenizer.decode(ids, skip_special_tokens=True)

    def sample(self, prompts: Sequence[Sequence[int]], n: int) -> list[RolloutTree]:
        """n rollouts for each prompt (token ids), as one tree per prompt."""
        if n < 1:
            raise ValueError(f"need n >= 1 rollouts per prompt, got {n}")
        prompts = [list(p) for p in prompts]
        if self.settings.mode == "independent":
            return self._independent(prompts, n)
        return self._tree(prompts, n)

    def _independent(self, prompts: list[list[int]], n: int) -> list[RolloutTree]:
        outs = self.generator.generate(prompts, self._params(self.settings.max_new_tokens, n=n))
        trees = []
        for comps in outs:
            tree = RolloutTree()
            for c in comps:
                tree.add_root(c.token_ids, c.logprobs, None, c.text, c.finish_reason)
            trees.append(tree)
        return trees

    def _tree(self, prompts: list[list[int]], n: int) -> list[RolloutTree]:
        s = self.settings
        table = self.embeddings() if self.embeddings is not None else None
        trees = [RolloutTree() for _ in prompts]
        for round_ in range(n):
            requests = []
            for i, tree in enumerate(trees):
                choice = None
                if round_ > 0 and random.random() >= s.epsilon:
                    choice = tree.best_branch()
                if choice is None:
                    requests.append(_Request(i, None, 0, prompts[i]))
                else:
                    parent, pos = choice
                    requests.append(_Request(i, parent, pos, prompts[i] + tree[parent].tokens[:pos]))
            budget = max(s.max_new_tokens - r.pos for r in requests)
            outs = self.generator.generate([r.prompt for r in requests], self._params(budget, top_logprobs=s.top_k))
            for req, comps in zip(requests, outs):
                self._add(trees[req.tree_index], req, comps[0], table)
        return trees

    def _add(self, tree: RolloutTree, req: _Request, comp: Any, table: torch.Tensor | None) -> None:
        s = self.settings
        keep = s.max_new_tokens - req.pos
        ids = list(comp.token_ids[:keep])
        lps = list(comp.logprobs[:keep]) if comp.logprobs is not None else None
        top = list(comp.top_logprobs[:keep]) if comp.top_logprobs is not None else []
        finish = comp.finish_reason if len(comp.token_ids) <= keep else "length"
        scores = scores_from_top_logprobs(top, table, s.score)
        if not ids:  # a zero-token completion cannot happen with max_new >= 1; guard the tree's invariant anyway
            raise RuntimeError("generator returned an empty completion")
        if req.parent is None:
            text = comp.text if finish == comp.finish_reason else self._decode(ids)
            tree.add_root(ids, lps, scores, text, finish)
        else:
            full = tree[req.parent].tokens[:req.pos] + ids
            tree.add_branch(req.parent, req.pos, ids, lps, scores, self._decode(full), finish)

    # ---- trainer hook ----------------------------------------------------------------------------------------
    def to_trajectories(self, trees: Sequence[RolloutTree], prompts: Sequence[Sequence[int]],
                        group_ids: Sequence[Any]) -> list[Trajectory]:
        """One Trajectory per rollout (prefix tokens included and trained, with the parent's sampling logprobs)."""
        out = []
        for i, (tree, prompt, gid) in enumerate(zip(trees, prompts, group_ids)):
            for k, r in enumerate(tree.rollouts):
                t = Trajectory(prompt_ids=list(prompt), group_id=gid, text=r.text, finish_reason=r.finish_reason)
                t.append(r.tokens, policy=True, logprobs=r.logprobs)
                t.metadata = {"record_index": i, "sample": k, **tree.metadata(k)}
                out.append(t)
        return out

    def rollout_fn(self, records: Sequence[Mapping[str, Any]], n: int, group_ids: Sequence[Any]) -> list[Trajectory]:
        """The shared trainer's `rollout_fn`: sample, count, and return trajectories."""
        prompts = [encode_prompt(self.generator.tokenizer, r) for r in records]
        trees = self.sample(prompts, n)
        for tree in trees:
            self.stats.add_tree(tree, [extract_boxed(r.text) for r in tree.rollouts])
        return self.to_trajectories(trees, prompts, group_ids)
