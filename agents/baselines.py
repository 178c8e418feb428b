"""Simple reference policies for the replay environment (NAVSIM's classic baselines).

A policy maps the current observation (and, for *privileged* baselines, the environment's logged state) to a
trajectory action ``(8, 3)`` float32 [m, m, rad] in the ego frame (rear-axle poses at 0.5 s over 4 s).

* :class:`ConstantVelocityPolicy`: keeps the current speed straight ahead (observation only).
* :class:`LogReplayPolicy`: replays the ego's logged future (privileged). In the synthetic bank's accident scenes
  the log is the **negative** data: it drives into the collision.
* :class:`ReferencePlannerPolicy`: the PDM-Closed-like reference planner of :mod:`rewards.reference_planner`
  (privileged: it reads the route and the other agents from the scene).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from envs.replay_env import ACTION_HIGH, ACTION_LOW, NUM_POSES, ReplayEnv
from rewards.scorer import reference_for


class Policy(Protocol):
    """``act(obs, env) -> (8, 3) float32`` trajectory in the ego frame; ``name`` labels results."""

    name: str

    def act(self, obs: dict[str, Any], env: ReplayEnv) -> np.ndarray: ...


class ConstantVelocityPolicy:
    """Straight ahead at the current speed ``obs["ego_state"][0]`` [m/s] (NAVSIM's constant-velocity agent)."""

    name = "constant_velocity"

    def __init__(self, pose_interval: float = 0.5) -> None:
        self.pose_interval = pose_interval

    def act(self, obs: dict[str, Any], env: ReplayEnv) -> np.ndarray:
        speed = float(obs["ego_state"][0])
        traj = np.zeros((NUM_POSES, 3), dtype=np.float32)
        traj[:, 0] = speed * self.pose_interval * np.arange(1, NUM_POSES + 1)
        return np.clip(traj, ACTION_LOW, ACTION_HIGH)


class LogReplayPolicy:
    """The ego's logged future (privileged; the expert log, which collides in accident scenes)."""

    name = "log_replay"

    def act(self, obs: dict[str, Any], env: ReplayEnv) -> np.ndarray:
        return env.logged_action()


class ReferencePlannerPolicy:
    """PDM-Closed-like planner: best of 15 IDM proposals along the route (privileged; needs a map).

    Falls back to :class:`ConstantVelocityPolicy` on scenes without a map (no route to follow).
    """

    name = "pdm_closed_like"

    def __init__(self) -> None:
        self._fallback = ConstantVelocityPolicy()

    def act(self, obs: dict[str, Any], env: ReplayEnv) -> np.ndarray:
        problem = env.current_problem()
        ref = reference_for(problem, env.config.pdm)
        if ref is None:
            return self._fallback.act(obs, env)
        return np.clip(ref.trajectory, ACTION_LOW, ACTION_HIGH).astype(np.float32)


BASELINES = {p.name: p for p in (ConstantVelocityPolicy, LogReplayPolicy, ReferencePlannerPolicy)}
"""Baseline classes by name."""


def make_baseline(name: str) -> Policy:
    """A baseline policy by name (``ValueError`` listing the known names)."""
    try:
        return BASELINES[name]()
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; known: {sorted(BASELINES)}") from None
