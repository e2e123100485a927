"""The leaderboard: run every built method package's replication and render one table and one plot.

Console script `leaderboard` (see `cli.py`); the package list is in `registry.py`, running and caching in
`runner.py`, reading results.json in `results.py`, the markdown/PNG in `render.py`, regression checks in `check.py`.
"""

from benchmarks.leaderboard.cli import main

__all__ = ["main"]
