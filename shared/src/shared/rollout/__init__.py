"""Multi-turn rollouts: trajectories, environments and the agent loop.

`trajectory.Trajectory` (ids, loss mask, turn spans, rewards) and `pad_trajectories`; `envs` (Env protocol,
SearchEnv, ToolEnv, parse_action, parse_tool_call(s)); `agent_loop` (AgentLoop, generate_trajectories,
encode_prompt).
"""
