"""M-ASK: multi-agent search and knowledge management (five roles on one policy, turn-level rewards)."""

__version__ = "0.2.0"
