"""Multi-agent search with roles, memory and per-turn credit (MASK)."""

__version__ = "0.1.0"
