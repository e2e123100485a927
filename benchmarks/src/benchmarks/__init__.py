"""Benchmarks: datasets, tasks, evaluation runner and leaderboard."""

__version__ = "0.4.0"
