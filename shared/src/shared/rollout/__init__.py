"""Multi-turn and multi-role rollouts: trajectories, environments, the lock-step driver and the agent loop.

`trajectory.Trajectory` (ids, loss mask, logprobs, entropies, turn spans, rewards, group key) and
`pad_trajectories`; `driver` (MultiRoleDriver, GenRequest: episodes as programs, generation batched per role);
`envs` (Env protocol, SearchEnv, ToolEnv, parse_action, parse_tool_call(s)); `agent_loop` (AgentLoop,
generate_trajectories, encode_prompt); `spans` (tag_token_spans, segments); `text_loop` (play: text-level
agents such as endpoint teachers).
"""
