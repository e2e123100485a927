"""Tree rollouts with semantic-entropy branching and segment advantages (ROSE)."""

__version__ = "0.2.0"
