"""Staged domain training: CPT, SFT and RL stages with per-stage evaluation (Huijin)."""

__version__ = "0.0.1"
