"""DeepResearch-9K: a synthesis pipeline for multi-level search questions and the DeepResearch-R1 training framework
(Search-R1 multi-turn agents, masked SFT, GRPO / PPO / REINFORCE++) on the workspace's shared core."""

__version__ = "0.1.0"
