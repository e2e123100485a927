"""Staged domain training: CPT, SFT and RL stages with per-stage evaluation (QianfanHuijin)."""

__version__ = "0.2.1"
