"""Deep-research agents trained on synthesised multi-level search data (DR9K)."""

__version__ = "0.0.1"
