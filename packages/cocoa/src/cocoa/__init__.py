"""Content-reconstruction pre-training for multimodal embeddings (CoCoA)."""

__version__ = "0.3.0"
