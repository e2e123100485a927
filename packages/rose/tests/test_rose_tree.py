"""Tree bookkeeping on a hand-built tree of 4 rollouts.

r0: root, 10 tokens.  r1: branches from r0 at 4 (4 new tokens, length 8).
r2: branches from r1 at 6 (6 new tokens, length 12).  r3: root, 5 tokens.
"""

import random

import pytest
from rose.tree import RolloutTree, TreeError


def hand_tree() -> RolloutTree:
    tree = RolloutTree()
    tree.add_root(list(range(100, 110)))
    tree.add_branch(0, 4, [201, 202, 203, 204])
    tree.add_branch(1, 6, [301, 302, 303, 304, 305, 306])
    tree.add_root([401, 402, 403, 404, 405])
    return tree


def test_parent_branch_position_and_prefix():
    tree = hand_tree()
    assert [r.parent for r in tree.rollouts] == [None, 0, 1, None]
    assert [r.branch_pos for r in tree.rollouts] == [0, 4, 6, 0]
    assert [r.prefix_len for r in tree.rollouts] == [0, 4, 6, 0]
    assert [r.new_tokens for r in tree.rollouts] == [10, 4, 6, 5]
    assert [len(r) for r in tree.rollouts] == [10, 8, 12, 5]
    assert tree[1].tokens == [100, 101, 102, 103, 201, 202, 203, 204]
    assert tree[2].tokens[:6] == [100, 101, 102, 103, 201, 202]
    assert tree.generated_tokens == 25 and tree.response_tokens == 35


def test_common_prefixes_and_branch_points():
    tree = hand_tree()
    assert tree.common_prefix(0, 1) == 4
    assert tree.common_prefix(1, 2) == 6
    assert tree.common_prefix(0, 2) == 4
    assert tree.common_prefix(0, 3) == 0
    assert tree.common_prefix(2, 2) == 12
    assert tree.segments(2) == [(0, 0, 4), (1, 4, 6), (2, 6, 12)]
    assert tree.branch_points(0) == {0: None, 4: 1}  # r2's point at 6 lies on r1's tokens, not on r0's path
    assert tree.branch_points(1) == {0: None, 4: 1, 6: 2}
    assert tree.branch_points(2) == {0: None, 4: 1, 6: 2}
    assert tree.branch_points(3) == {0: None}
    assert tree.common_branch_point(0, 2) == 4
    assert tree.common_branch_point(2, 3) == 0


def test_no_repeated_branch_point():
    tree = hand_tree()
    cands = set(tree.candidates())
    assert (0, 4) not in cands and (1, 6) not in cands
    assert {t for r, t in cands if r == 1} == {5, 7}  # own positions only: 5..7 minus the used 6
    assert {t for r, t in cands if r == 2} == {7, 8, 9, 10, 11}
    assert {t for r, t in cands if r == 0} == {1, 2, 3, 5, 6, 7, 8, 9}
    with pytest.raises(TreeError, match="already used"):
        tree.add_branch(0, 4, [9])
    with pytest.raises(TreeError, match="positions 5..7"):
        tree.add_branch(1, 3, [9])  # that prefix belongs to r0
    with pytest.raises(TreeError, match="unknown rollout"):
        tree.add_branch(7, 1, [9])
    with pytest.raises(TreeError, match="new token"):
        tree.add_branch(0, 2, [])


def test_best_branch_is_argmax_over_unused_points():
    tree = RolloutTree()
    tree.add_root([1, 2, 3, 4, 5], scores=[0.0, 0.1, 0.9, 0.5, 0.2])
    assert tree.best_branch() == (0, 2)
    tree.add_branch(0, 2, [7, 8, 9], new_scores=[0.3, 0.8, 0.1])
    # (0, 2) is used; the child's own positions 3, 4 compete with r0's 1, 3, 4
    assert tree.best_branch() == (1, 3)
    assert tree[1].scores == [0.0, 0.1, 0.3, 0.8, 0.1]
    single = RolloutTree()
    single.add_root([1])
    assert single.best_branch() is None


def test_rebuild_from_metadata_in_any_order():
    tree = hand_tree()
    rows = list(range(4))
    random.Random(0).shuffle(rows)
    rebuilt, ids = RolloutTree.from_metadata([tree[i].tokens for i in rows], [tree.metadata(i) for i in rows])
    assert ids == rows
    assert [r.branch_pos for r in rebuilt.rollouts] == [0, 4, 6, 0]
    bad = tree.metadata(2) | {"rose_parent": 0}
    with pytest.raises(TreeError, match="differ from its parent"):
        RolloutTree.from_metadata([tree[0].tokens, tree[2].tokens], [tree.metadata(0), bad])
