"""Reasoner-verifier RAG with process-aware rewards (ARR)."""

__version__ = "0.1.1"
