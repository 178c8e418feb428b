"""Observation and action spaces shared by every driving environment (replay, CARLA) and every policy.

* **Action**: a trajectory in the NAVSIM convention, ``Box (8, 3) float32``: 8 rear-axle poses ``(x, y, yaw)`` at
  0.5 s over 4 s in the ego frame at the decision time (x forward, y left) [m, m, rad], bounds :data:`ACTION_LOW` /
  :data:`ACTION_HIGH`. :func:`validate_trajectories` checks shape, finiteness and bounds and never clips.
* **Observation** (``Dict``, :func:`observation_space`): ``"bev"`` ``uint8 (H, W, C)`` (optional), ``"ego_state"``
  ``float32 (3,)`` (speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s]), ``"command"``
  ``Discrete(3)`` (left / straight / right), ``"history"`` ``float32 (H_hist, 3)`` past rear-axle poses in the
  current ego frame [m, m, rad]; with ``prompt_state`` ``"ego"`` / ``"agents"`` also ``"ego_velocity"`` ``float32
  (2,)`` [m/s] and (``"agents"``) ``"agents"`` ``float32 (K, 6)`` (:mod:`envs.prompt_state`). Built by
  :func:`envs.observation.build_observation`.

Agents, the VLA and the environments import these from here (not from an environment class).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

NUM_POSES = 8
"""Poses per action trajectory (NAVSIM: 8 at 0.5 s)."""
POSE_INTERVAL = 0.5
"""Time between action poses [s] (NAVSIM: 0.5 s, 4 s horizon)."""
ACTION_LOW = np.tile(np.array([-10.0, -40.0, -np.pi], dtype=np.float32), (NUM_POSES, 1))
"""``(8, 3)`` lower action bounds: x [m], y [m], yaw [rad] in the ego frame."""
ACTION_HIGH = np.tile(np.array([80.0, 40.0, np.pi], dtype=np.float32), (NUM_POSES, 1))
"""``(8, 3)`` upper action bounds."""
EGO_STATE_LOW = np.array([0.0, -20.0, -4.0], dtype=np.float32)
"""Lower bounds of ``ego_state``: speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s]."""
EGO_STATE_HIGH = np.array([60.0, 20.0, 4.0], dtype=np.float32)
"""Upper bounds of ``ego_state``."""
HISTORY_RANGE = 200.0
"""History x, y bound [m] (values are clipped to +-200 m)."""
NUM_COMMANDS = 3
"""Size of the ``command`` space (left, straight, right; :data:`envs.observation.COMMANDS`)."""


def action_space() -> spaces.Box:
    """The trajectory action space ``Box(ACTION_LOW, ACTION_HIGH) (8, 3) float32``."""
    return spaces.Box(ACTION_LOW, ACTION_HIGH, dtype=np.float32)


def observation_space(config: Any) -> spaces.Dict:
    """The observation space for an :class:`~envs.observation.ObservationConfig` (``"bev"`` only when
    ``config.bev`` is set; ``"history"`` has ``config.history_poses`` rows; ``"ego_velocity"`` / ``"agents"`` as
    ``config.prompt_state`` asks; the privileged ``"hazard"`` ``(8,)`` with ``config.privileged_hazard``)."""
    obs: dict[str, spaces.Space] = {}
    if config.bev is not None:
        obs["bev"] = spaces.Box(0, 255, config.bev.shape, dtype=np.uint8)
    hist_hi = np.tile(np.array([HISTORY_RANGE, HISTORY_RANGE, np.pi], dtype=np.float32), (config.history_poses, 1))
    obs["ego_state"] = spaces.Box(EGO_STATE_LOW, EGO_STATE_HIGH, dtype=np.float32)
    obs["command"] = spaces.Discrete(NUM_COMMANDS)
    obs["history"] = spaces.Box(-hist_hi, hist_hi, dtype=np.float32)
    state = getattr(config, "prompt_state", "none")
    if state != "none":
        from envs.prompt_state import AGENT_COLUMNS, CLASS_WORDS, POSITION_RANGE, VELOCITY_RANGE

        obs["ego_velocity"] = spaces.Box(-VELOCITY_RANGE, VELOCITY_RANGE, (2,), dtype=np.float32)
        if state == "agents":
            hi = np.array([1.0, len(CLASS_WORDS) - 1, POSITION_RANGE, POSITION_RANGE, VELOCITY_RANGE,
                           VELOCITY_RANGE], dtype=np.float32)
            lo = np.concatenate([[0.0, 0.0], -hi[2:]]).astype(np.float32)
            k = int(config.prompt_agents)
            obs["agents"] = spaces.Box(np.tile(lo, (k, 1)), np.tile(hi, (k, 1)), dtype=np.float32)
            assert len(hi) == len(AGENT_COLUMNS)
    if getattr(config, "privileged_hazard", False):
        from envs.prompt_state import HAZARD_COLUMNS, HAZARD_HORIZON, POSITION_RANGE, VELOCITY_RANGE

        r, v = POSITION_RANGE, VELOCITY_RANGE
        obs["hazard"] = spaces.Box(np.array([0, -r, -r, -v, -v, 0, 0, 0], dtype=np.float32),
                                   np.array([1, r, r, v, v, r, r, HAZARD_HORIZON], dtype=np.float32), dtype=np.float32)
        assert obs["hazard"].shape == (len(HAZARD_COLUMNS),)
    return spaces.Dict(obs)


_ACTION_LOW_TOL, _ACTION_HIGH_TOL = ACTION_LOW - 1e-5, ACTION_HIGH + 1e-5
"""The action bounds with :func:`validate_trajectories`' tolerance (1e-5)."""


def validate_trajectories(trajectories: Any, name: str = "action", group: bool = False) -> np.ndarray:
    """Check trajectories against the action space: shape, finiteness and bounds (no clipping).

    Args:
        trajectories: ``(8, 3)`` (``group=False``) or ``(G, 8, 3)`` (``group=True``) ego-frame poses.
        name: what to call it in error messages.
        group: expect a leading group axis.

    Returns:
        float64 array of the same shape.

    Raises:
        ValueError: wrong shape, NaN/inf, or a value outside :data:`ACTION_LOW` / :data:`ACTION_HIGH` (the message
            names the first offending index and value).
    """
    try:
        arr = np.asarray(trajectories, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to a float array ({exc})") from None
    want = ("(G, 8, 3)" if group else "(8, 3)")
    if arr.shape[-2:] != (NUM_POSES, 3) or arr.ndim != (3 if group else 2) or (group and arr.shape[0] == 0):
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        raise ValueError(f"{name}: NaN or inf at index {i} (shape {arr.shape}): {arr[i]}")
    out = (arr < _ACTION_LOW_TOL) | (arr > _ACTION_HIGH_TOL)
    if out.any():
        i = tuple(int(k) for k in np.argwhere(out)[0])
        lo, hi = ACTION_LOW[i[-2:]], ACTION_HIGH[i[-2:]]
        raise ValueError(f"{name}: value {arr[i]:.6g} at index {i} is outside the action bounds [{lo:.6g}, {hi:.6g}]")
    return arr


def clip_trajectories(trajectories: np.ndarray) -> np.ndarray:
    """``(..., 8, 3)`` trajectories clipped to the action bounds, as float32 (for policies whose raw output may
    leave them, e.g. a decoded codeword or a planner's path)."""
    # np.clip's value, without its Python-level dispatch
    return np.minimum(np.maximum(np.asarray(trajectories, dtype=np.float64), ACTION_LOW), ACTION_HIGH).astype(np.float32)
