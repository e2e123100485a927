"""Multi-turn rollouts: trajectories, environments and the agent loop."""
