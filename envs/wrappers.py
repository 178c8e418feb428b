"""Gymnasium wrappers for the driving environments.

:class:`NormalizedTrajectoryAction` (for SB3 and other RL libraries)
--------------------------------------------------------------------
The trajectory action space (:mod:`envs.spaces`) spans x in [-10, 80] m, y in [-40, 40] m: a Gaussian policy that
starts at mean 0, std 1 (SB3's default) then proposes trajectories within a metre of the ego, i.e. it stands still
before it has learned anything, and a plain linear rescaling to [-1, 1] would make the zero action a jump to x = 35 m
at every pose. This wrapper instead exposes a **kinematic** parametrisation in ``[-1, 1]``:

``action (8, 2) float32``: for each 0.5 s interval ``k``

* ``a[k, 0]`` -> speed ``v_k = max_speed * (a[k, 0] + 1) / 2`` [m/s] (0 .. ``max_speed``, forward only);
* ``a[k, 1]`` -> yaw rate ``w_k = max_yaw_rate * a[k, 1]`` [rad/s].

Poses are integrated from the ego origin: ``yaw_k = yaw_{k-1} + w_k dt`` and the position advances ``v_k dt`` along
the interval's mid heading ``yaw_{k-1} + w_k dt / 2`` (``dt`` = 0.5 s). The zero action is a straight drive at half
``max_speed`` (10 m/s by default), so an untrained policy explores speeds around it instead of standing still.
Defaults keep every trajectory inside the action bounds (``max_speed * 4 s <= 80 m``; ``max_yaw_rate * 4 s < pi``).
:meth:`NormalizedTrajectoryAction.normalize` maps a trajectory (e.g. an expert's) back to the closest action.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.spaces import ACTION_HIGH, NUM_POSES, POSE_INTERVAL, clip_trajectories, validate_trajectories


def kinematic_trajectories(action: np.ndarray, max_speed: float, max_yaw_rate: float,
                           dt: float = POSE_INTERVAL) -> np.ndarray:
    """Ego-frame trajectories ``(..., 8, 3)`` [m, m, rad] of normalised actions ``(..., 8, 2)`` (see the module
    docstring); values outside ``[-1, 1]`` are clipped first."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    speed = max_speed * 0.5 * (a[..., 0] + 1.0)  # (..., 8) [m/s]
    turn = max_yaw_rate * a[..., 1] * dt  # (..., 8) [rad] per interval
    yaw = np.cumsum(turn, axis=-1)
    mid = yaw - 0.5 * turn
    step = speed * dt
    out = np.empty(a.shape[:-1] + (3,))
    out[..., 0] = np.cumsum(step * np.cos(mid), axis=-1)
    out[..., 1] = np.cumsum(step * np.sin(mid), axis=-1)
    out[..., 2] = yaw
    return out


def normalize_trajectories(trajectories: np.ndarray, max_speed: float, max_yaw_rate: float,
                           dt: float = POSE_INTERVAL) -> np.ndarray:
    """The normalised actions ``(..., 8, 2)`` closest to ego-frame trajectories ``(..., 8, 3)``: per interval the
    speed is the travelled distance / ``dt`` and the yaw rate the heading change / ``dt``, clipped to ``[-1, 1]``
    (exact inverse of :func:`kinematic_trajectories` for trajectories it can produce)."""
    traj = np.asarray(trajectories, dtype=np.float64)
    zero = np.zeros(traj.shape[:-2] + (1, 3))
    prev = np.concatenate([zero, traj[..., :-1, :]], axis=-2)
    dist = np.hypot(traj[..., 0] - prev[..., 0], traj[..., 1] - prev[..., 1])
    dyaw = np.angle(np.exp(1j * (traj[..., 2] - prev[..., 2])))
    out = np.empty(traj.shape[:-1] + (2,))
    out[..., 0] = 2.0 * dist / (dt * max_speed) - 1.0
    out[..., 1] = dyaw / (dt * max_yaw_rate)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


class NormalizedTrajectoryAction(gym.ActionWrapper):
    """Actions in ``[-1, 1]^(8, 2)`` (speed, yaw rate per 0.5 s interval) mapped to trajectory actions (module
    docstring).

    Args:
        env: a driving env with the trajectory action space (:func:`envs.spaces.action_space`).
        max_speed: speed of ``a[k, 0] = 1`` [m/s]; ``max_speed * 4 s`` must not exceed the x bound (80 m).
        max_yaw_rate: yaw rate of ``a[k, 1] = +-1`` [rad/s]; ``max_yaw_rate * 4 s`` must stay below pi.
    """

    def __init__(self, env: gym.Env, max_speed: float = 20.0, max_yaw_rate: float = 0.6) -> None:
        super().__init__(env)
        horizon = NUM_POSES * POSE_INTERVAL
        if not (np.isfinite(max_speed) and 0 < max_speed * horizon <= float(ACTION_HIGH[0, 0])):
            raise ValueError(f"max_speed: expected (0, {ACTION_HIGH[0, 0] / horizon}] m/s, got {max_speed!r}")
        if not (np.isfinite(max_yaw_rate) and 0 < max_yaw_rate * horizon < np.pi):
            raise ValueError(f"max_yaw_rate: expected (0, {np.pi / horizon:.3f}) rad/s, got {max_yaw_rate!r}")
        self.max_speed = float(max_speed)
        self.max_yaw_rate = float(max_yaw_rate)
        self.action_space = spaces.Box(-1.0, 1.0, (NUM_POSES, 2), dtype=np.float32)

    def action(self, action: Any) -> np.ndarray:
        """The ``(8, 3)`` float32 trajectory of a normalised action."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (NUM_POSES, 2) or not np.all(np.isfinite(a)):
            raise ValueError(f"action: expected a finite array of shape ({NUM_POSES}, 2) in [-1, 1], got shape "
                             f"{a.shape}")
        return clip_trajectories(kinematic_trajectories(a, self.max_speed, self.max_yaw_rate))

    def normalize(self, trajectory: Any) -> np.ndarray:
        """The normalised action ``(8, 2)`` float32 closest to a trajectory action ``(8, 3)``."""
        traj = validate_trajectories(trajectory, "trajectory")
        return normalize_trajectories(traj, self.max_speed, self.max_yaw_rate)
