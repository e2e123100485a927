"""Training the retriever of a search agent from passage utility (Agentic-R)."""

__version__ = "0.3.0"
