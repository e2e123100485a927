"""Common core of the workspace."""

__version__ = "0.6.1"
