"""Synthetic suites that tiny models learn on a CPU in minutes.

Every generator is deterministic by seed, has disjoint train/test splits, and ships a scripted oracle that solves
100% of its items (the tests check both), so a learning curve on these suites measures the method, not the data.
Modules: `arithmetic` (worked \\boxed{} solutions), `kb` (multi-hop knowledge base + passage corpus), `tools`
(tool schemas, executable tools, gold call traces), `images` (procedural image-text pairs, MMEB format) and
`docs` (documents with queries for generative retrieval).
"""

from benchmarks.synthetic.jsonl import read_jsonl, write_jsonl

__all__ = ["read_jsonl", "write_jsonl"]
