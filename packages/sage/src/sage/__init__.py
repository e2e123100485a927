"""Stability-aware data selection for DPO on math reasoning (SAGE)."""

__version__ = "0.4.1"
