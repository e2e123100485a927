"""RL engine: advantages, losses, the on-policy trainer, checkpoints, and TRL SFT/DPO wrappers."""
