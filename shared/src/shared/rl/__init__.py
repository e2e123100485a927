"""RL engine: advantages, losses, the on-policy trainer, checkpoints, and TRL SFT/DPO wrappers.

Modules: `advantages` (ADVANTAGES name -> fn over token-level rewards), `losses` (clipped PG, aggregation, KL
k1/k2/k3, entropy, value, DPO/IPO), `trainer` (RLConfig, RLTrainer with reward_fn / rollout_fn / advantage_fn
hooks), `critic` (value head for PPO with GAE), `checkpoint` (atomic save, exact resume), `sft` / `dpo` (TRL wrappers), `warmstart` (cached SFT'd tiny
arithmetic policy), `cli` (`shared-rl grpo --config ...`).
"""
