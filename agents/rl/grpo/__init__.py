"""Anchor-based GRPO on stable-baselines3 (see :mod:`agents.rl.grpo.grpo` for the algorithm and its choices).

Public API::

    from agents.rl.env import GroupEnvConfig, make_group_vec_env
    from agents.rl.grpo import GRPO, GRPOConfig
    env = make_group_vec_env(GroupEnvConfig(num_scenes=32, seed=0), n_envs=2)
    model = GRPO("MultiInputPolicy", env, GRPOConfig(group_size=8), anchor_pairs="outputs/pairs.parquet", seed=0)
    model.learn(10_000, progress_bar=True)
    model.save("grpo.zip"); model = GRPO.load("grpo.zip", env=env)

Modules: :mod:`~agents.rl.grpo.config` (GRPOConfig), :mod:`~agents.rl.grpo.loss` (advantages, k3 KL, clipped loss),
:mod:`~agents.rl.grpo.anchors` (AnchorBank: pairs in the current ego frame), :mod:`~agents.rl.grpo.buffer`
(GroupRolloutBuffer), :mod:`~agents.rl.grpo.policies` (GroupPolicy, TrajectoryGaussianPolicy),
:mod:`~agents.rl.grpo.vla_policy` (VLAGroupPolicy). The env it trains on is :mod:`agents.rl.env`.
"""

from agents.rl.grpo.anchors import Anchor, AnchorBank, AnchorTolerance, DecisionContext
from agents.rl.grpo.config import GRPOConfig
from agents.rl.grpo.grpo import GRPO
from agents.rl.grpo.policies import GroupPolicy, TrajectoryGaussianPolicy

__all__ = ["GRPO", "GRPOConfig", "Anchor", "AnchorBank", "AnchorTolerance", "DecisionContext", "GroupPolicy",
           "TrajectoryGaussianPolicy"]
