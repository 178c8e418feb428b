"""Reinforcement learning on the closed-loop replay env, on stable-baselines3: the env the RL methods train on
(:mod:`agents.rl.env`: group env, per-env calls), anchor-based GRPO (:mod:`agents.rl.grpo`), the SB3 PPO baseline
(:mod:`agents.rl.ppo`), behaviour cloning of the Gaussian policy, the MLP agent's SFT analogue (:mod:`agents.rl.bc`),
and trained SB3 models as evaluation policies (:mod:`agents.rl.sb3_agent`)."""
