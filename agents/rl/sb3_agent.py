"""Trained SB3 models (GRPO, the PPO baseline) as :class:`agents.base.Policy` for evaluation on the replay env.

:class:`SB3Agent` wraps a model: a GRPO policy (:class:`~agents.rl.grpo.policies.GroupPolicy`) acts with its mode
(:meth:`GroupPolicy.greedy`; ``set_decisions("sampled")``: one member of :meth:`GroupPolicy.sample_group`); any
other SB3 policy (PPO) with ``predict(deterministic=True)`` (sampled: ``False``), its normalised action
mapped to a trajectory with :func:`envs.wrappers.kinematic_trajectories`. Observation only
(``requires_privileged = False``), so :func:`agents.evaluation.evaluate_closed_loop` can run it on a raw
``ReplayEnv`` (trajectory actions), as every other policy of the results table.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from agents.base import Policy, PolicyInput
from agents.rl.grpo.policies import GroupPolicy
from envs.spaces import clip_trajectories
from envs.wrappers import kinematic_trajectories


def batch_observation(observation: Mapping[str, Any] | np.ndarray) -> Any:
    """One observation with a leading batch axis of 1 (dict entries or the array)."""
    if isinstance(observation, Mapping):
        return {k: np.asarray(v)[None] for k, v in observation.items()}
    return np.asarray(observation)[None]


class SB3Agent(Policy):
    """A GRPO / PPO model as a deterministic :class:`~agents.base.Policy` (module docstring).

    Args:
        model: an SB3 algorithm (``GRPO``, ``PPO``, ...) or its policy.
        name: label in results tables.
        max_speed, max_yaw_rate: the normalised action's parameters for non-GRPO policies [m/s], [rad/s].
    """

    requires_privileged = False
    can_sample = True

    def __init__(self, model: Any, name: str, max_speed: float = 20.0, max_yaw_rate: float = 0.6) -> None:
        self.policy = getattr(model, "policy", model)
        self.name = name
        self.max_speed = float(max_speed)
        self.max_yaw_rate = float(max_yaw_rate)

    def act(self, inp: PolicyInput) -> np.ndarray:
        obs = batch_observation(inp.observation)
        self.policy.set_training_mode(False)
        if self.decisions == "sampled":
            with self.decision_rng(), torch.no_grad():
                if isinstance(self.policy, GroupPolicy):
                    return clip_trajectories(self.policy.sample_group(obs, 1, self.temperature).trajectories[0, 0])
                action, _ = self.policy.predict(obs, deterministic=False)
        elif isinstance(self.policy, GroupPolicy):
            return clip_trajectories(self.policy.greedy(obs)[1][0])
        else:
            action, _ = self.policy.predict(obs, deterministic=True)
        return clip_trajectories(kinematic_trajectories(np.asarray(action)[0], self.max_speed, self.max_yaw_rate))
