"""Anchor-based GRPO on stable-baselines3 (see :mod:`agents.grpo.grpo` for the algorithm and its choices).

Public API::

    from agents.grpo import GRPO, GRPOConfig, GroupEnvConfig, make_group_vec_env
    env = make_group_vec_env(GroupEnvConfig(num_scenes=32, seed=0), n_envs=2)
    model = GRPO("MultiInputPolicy", env, GRPOConfig(group_size=8), anchor_pairs="outputs/pairs.parquet", seed=0)
    model.learn(10_000, progress_bar=True)
    model.save("grpo.zip"); model = GRPO.load("grpo.zip", env=env)

Modules: :mod:`~agents.grpo.config` (GRPOConfig), :mod:`~agents.grpo.loss` (advantages, k3 KL, clipped loss),
:mod:`~agents.grpo.anchors` (AnchorBank: pairs in the current ego frame), :mod:`~agents.grpo.buffer`
(GroupRolloutBuffer), :mod:`~agents.grpo.policies` (GroupPolicy, TrajectoryGaussianPolicy),
:mod:`~agents.grpo.vla_policy` (VLAGroupPolicy), :mod:`~agents.grpo.env` (env factory, per-env calls),
:mod:`~agents.grpo.ppo` (the PPO baseline), :mod:`~agents.grpo.evaluate` (SB3Agent), :mod:`~agents.grpo.bc`
(behaviour cloning of the Gaussian policy), :mod:`~agents.grpo.compare` (the comparison CLI).
"""

from agents.grpo.anchors import Anchor, AnchorBank, AnchorTolerance, DecisionContext
from agents.grpo.config import GRPOConfig
from agents.grpo.env import (
           GroupEnvConfig,
           GroupEnvWrapper,
           make_group_env,
           make_group_vec_env,
)
from agents.grpo.grpo import GRPO
from agents.grpo.policies import GroupPolicy, TrajectoryGaussianPolicy

__all__ = ["GRPO", "GRPOConfig", "Anchor", "AnchorBank", "AnchorTolerance", "DecisionContext", "GroupEnvConfig",
           "GroupEnvWrapper", "make_group_env", "make_group_vec_env", "GroupPolicy", "TrajectoryGaussianPolicy"]
