"""Bookkeeping of one prompt's rollout tree: who branched from whom, where, and which prefixes rollouts share.

A rollout is a full response (token ids). A root rollout was sampled from the prompt alone; a branched rollout
copies its parent's first `branch_pos` tokens (its prefix, not regenerated) and continues with its own sampled
tokens. Token t of a rollout therefore "belongs" to the rollout that generated it (`origin`), and two rollouts share
a prefix exactly as far as their tokens have the same origins (`common_prefix`).

Branch points: every branched rollout d creates the branch point "the prefix of length branch_pos(d)". A rollout b
passes through it when common_prefix(b, d) >= branch_pos(d); K_b is {0} plus the positions of the branch points b
passes through (the spec's "own, ancestors' and descendants'" branch positions, read as the points on b's path:
a descendant that branched off a sibling segment does not lie on b's path, so it is left out -- inferred).

Candidates for a new branch: (r, t) with branch_pos(r) < t < len(r), i.e. only positions whose prefix ends in a token
r generated itself. Branching at an earlier position of r would re-create a prefix of an ancestor, so this rule,
together with the set of used points, means no prefix is ever branched from twice (the release can; inferred).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class TreeError(ValueError):
    """A branch request that breaks the tree's rules (unknown parent, bad position, repeated branch point)."""


@dataclass
class Rollout:
    """One rollout of the tree. `scores[t]` is the branching score of position t (len == len(tokens))."""

    tokens: list[int]
    parent: int | None = None
    branch_pos: int = 0
    logprobs: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    text: str = ""
    finish_reason: str = ""

    @property
    def prefix_len(self) -> int:
        """Tokens copied from the parent (counted against the response budget, not generated)."""
        return self.branch_pos

    @property
    def new_tokens(self) -> int:
        """Tokens this rollout generated itself."""
        return len(self.tokens) - self.branch_pos

    def __len__(self) -> int:
        return len(self.tokens)


class RolloutTree:
    """The rollouts of one prompt, in creation order (index = rollout id)."""

    def __init__(self) -> None:
        self.rollouts: list[Rollout] = []
        self.used: set[tuple[int, int]] = set()

    def __len__(self) -> int:
        return len(self.rollouts)

    def __getitem__(self, i: int) -> Rollout:
        return self.rollouts[i]

    # ---- building -----------------------------------------------------------------------------------------
    def _fill(self, r: Rollout) -> Rollout:
        if not r.scores:
            r.scores = [0.0] * len(r.tokens)
        if not r.logprobs:
            r.logprobs = [0.0] * len(r.tokens)
        if len(r.scores) != len(r.tokens) or len(r.logprobs) != len(r.tokens):
            raise TreeError(f"rollout has {len(r.tokens)} tokens but {len(r.scores)} scores and "
                            f"{len(r.logprobs)} logprobs")
        return r

    def add_root(self, tokens: list[int], logprobs: list[float] | None = None, scores: list[float] | None = None,
                 text: str = "", finish_reason: str = "") -> int:
        """Add a rollout sampled from the prompt alone; returns its id."""
        if not tokens:
            raise TreeError("a rollout needs at least one token")
        self.rollouts.append(self._fill(Rollout(list(tokens), None, 0, list(logprobs or []), list(scores or []),
                                                text, finish_reason)))
        return len(self.rollouts) - 1

    def add_branch(self, parent: int, pos: int, new_tokens: list[int], new_logprobs: list[float] | None = None,
                   new_scores: list[float] | None = None, text: str = "", finish_reason: str = "") -> int:
        """Add a rollout that keeps parent[:pos] and continues with `new_tokens`; returns its id."""
        if not 0 <= parent < len(self.rollouts):
            raise TreeError(f"branch from unknown rollout {parent} (tree has {len(self.rollouts)})")
        if (parent, pos) in self.used:
            raise TreeError(f"branch point (rollout {parent}, position {pos}) was already used")
        p = self.rollouts[parent]
        if not p.branch_pos < pos < len(p):
            raise TreeError(f"rollout {parent} can branch at positions {p.branch_pos + 1}..{len(p) - 1}, not {pos}")
        if not new_tokens:
            raise TreeError("a branch needs at least one new token")
        n = len(new_tokens)
        logprobs = p.logprobs[:pos] + list(new_logprobs if new_logprobs is not None else [0.0] * n)
        scores = p.scores[:pos] + list(new_scores if new_scores is not None else [0.0] * n)
        child = self._fill(Rollout(p.tokens[:pos] + list(new_tokens), parent, pos, logprobs, scores, text,
                                   finish_reason))
        self.used.add((parent, pos))
        self.rollouts.append(child)
        return len(self.rollouts) - 1

    # ---- branch choice -------------------------------------------------------------------------------------
    def candidates(self) -> list[tuple[int, int]]:
        """Every (rollout, position) a new rollout may still branch from."""
        out = []
        for i, r in enumerate(self.rollouts):
            out += [(i, t) for t in range(r.branch_pos + 1, len(r)) if (i, t) not in self.used]
        return out

    def best_branch(self) -> tuple[int, int] | None:
        """Argmax of the branching score over the candidates (first one on ties); None when there is none."""
        best, best_score = None, float("-inf")
        for i, t in self.candidates():
            s = self.rollouts[i].scores[t]
            if s > best_score:
                best, best_score = (i, t), s
        return best

    # ---- shared prefixes -----------------------------------------------------------------------------------
    def segments(self, i: int) -> list[tuple[int, int, int]]:
        """(owner, start, end) pieces of rollout i from the root: whose generated tokens make up each span."""
        r = self.rollouts[i]
        if r.parent is None:
            return [(i, 0, len(r))]
        head = []
        for owner, s, e in self.segments(r.parent):
            if s >= r.branch_pos:
                break
            head.append((owner, s, min(e, r.branch_pos)))
        return head + [(i, r.branch_pos, len(r))]

    def common_prefix(self, a: int, b: int) -> int:
        """Number of leading tokens rollouts a and b share by construction (same origin)."""
        if a == b:
            return len(self.rollouts[a])
        sa, sb = self.segments(a), self.segments(b)
        for (oa, start, ea), (ob, _, eb) in zip(sa, sb):
            if oa != ob:
                return start
            if ea != eb:
                return min(ea, eb)
        return min(len(self.rollouts[a]), len(self.rollouts[b]))

    def passes_through(self, b: int, d: int) -> bool:
        """Does rollout b pass through the branch point created by branched rollout d?"""
        return self.rollouts[d].parent is not None and self.common_prefix(b, d) >= self.rollouts[d].branch_pos

    def branch_points(self, b: int) -> dict[int, int | None]:
        """K_b as {position: creating rollout id} (position 0 -> None, the root)."""
        out: dict[int, int | None] = {0: None}
        for d, r in enumerate(self.rollouts):
            if r.parent is not None and self.passes_through(b, d):
                out[r.branch_pos] = d
        return dict(sorted(out.items()))

    def common_branch_point(self, a: int, b: int) -> int:
        """Position of the deepest branch point on both paths (their common prefix length in a tree)."""
        ka, kb = self.branch_points(a), self.branch_points(b)
        return max(k for k in ka if k in kb and ka[k] == kb[k])

    # ---- accounting ----------------------------------------------------------------------------------------
    @property
    def generated_tokens(self) -> int:
        """Tokens actually sampled for this tree (prefixes are reused, not regenerated)."""
        return sum(r.new_tokens for r in self.rollouts)

    @property
    def response_tokens(self) -> int:
        """Tokens of all responses, prefixes included (what independent sampling would have generated)."""
        return sum(len(r) for r in self.rollouts)

    def metadata(self, i: int) -> dict[str, int | None]:
        """Per-rollout record kept on trajectories so the advantage step can rebuild the tree."""
        r = self.rollouts[i]
        return {"rose_node": i, "rose_parent": r.parent, "rose_branch_pos": r.branch_pos,
                "rose_prefix_len": r.prefix_len, "rose_new_tokens": r.new_tokens}

    @classmethod
    def from_metadata(cls, token_lists: list[list[int]], metas: list[dict]) -> tuple[RolloutTree, list[int]]:
        """Rebuild a tree from rollouts and their `metadata()` (rows without it are roots); checks consistency.

        Returns (tree, ids) with ids[j] the tree id of row j."""
        order = sorted(range(len(token_lists)), key=lambda j: metas[j].get("rose_node", j))
        tree = cls()
        new_id: dict[int, int] = {}
        for j in order:
            meta = metas[j]
            parent = meta.get("rose_parent")
            if parent is None:
                tree.add_root(token_lists[j])
            else:
                if parent not in new_id:
                    raise TreeError(f"rollout {meta.get('rose_node')} names parent {parent}, which is not in the group")
                pos = int(meta["rose_branch_pos"])
                p_tokens = tree.rollouts[new_id[parent]].tokens
                if token_lists[j][:pos] != p_tokens[:pos]:
                    raise TreeError(f"rollout {meta.get('rose_node')}: its first {pos} tokens differ from its parent's")
                tree.add_branch(new_id[parent], pos, token_lists[j][pos:])
            new_id[meta.get("rose_node", j)] = len(tree) - 1
        return tree, [new_id[metas[j].get("rose_node", j)] for j in range(len(token_lists))]
