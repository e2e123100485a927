"""Benchmarks: datasets, tasks, evaluation runner and leaderboard."""

__version__ = "0.2.0"
