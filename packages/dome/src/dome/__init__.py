"""Generative retrieval with docID-oriented model editing (DOME)."""

__version__ = "0.4.0"
