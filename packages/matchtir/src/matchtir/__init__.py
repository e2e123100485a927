"""Bipartite-matching turn-level rewards for tool-integrated reasoning (MatchTIR)."""

__version__ = "0.4.1"
