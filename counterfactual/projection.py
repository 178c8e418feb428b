"""Box overlap and constant-velocity (CV) time-to-collision, pure numpy, vectorized.

The miner uses these to find risky moments in a log independently of the scorer: a *collision* is an overlap of
the ego box with an agent box at a logged frame; a *near-miss* is a short CV time-to-collision with a positive
closing speed.

CV projection (documented here once, referenced by the label schema)
--------------------------------------------------------------------
Agents keep their current heading and move with their current world-frame velocity: ``p(tau) = p(0) + v * tau``.
The ego keeps its current speed and **yaw rate** (constant turn rate; with zero yaw rate this is the same straight
line), so a turning ego is not projected straight across the oncoming lanes. The time-to-collision is the smallest ``tau`` in ``{0, step, 2 step, ..., horizon}``
at which the two oriented boxes overlap (separating-axis test), or ``inf`` when they never do within the horizon.
The ego box is the box-centre pose (rear axle + ``rear_axle_to_center`` along the heading) with the ego's length and
width, moved along the rear axle's arc.
"""

from __future__ import annotations

import numpy as np

from rewards.geometry import box_corners, boxes_overlap, vehicle_corners


def ego_turning_poses(rear_pose: np.ndarray, speed: np.ndarray, yaw_rate: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Rear-axle poses at constant speed and yaw rate.

    Args:
        rear_pose: ``(..., 3)`` rear-axle poses [m, m, rad].
        speed: ``(...)`` signed speed along the heading [m/s].
        yaw_rate: ``(...)`` [rad/s].
        taus: ``(K,)`` times ahead [s].

    Returns:
        ``(..., K, 3)`` poses.
    """
    p = np.asarray(rear_pose, dtype=np.float64)[..., None, :]
    v = np.asarray(speed, dtype=np.float64)[..., None]
    w = np.asarray(yaw_rate, dtype=np.float64)[..., None]
    yaw0 = p[..., 2]
    yaw = yaw0 + w * taus
    small = np.abs(w) < 1e-6
    w_safe = np.where(small, 1.0, w)
    dx = np.where(small, v * taus * np.cos(yaw0), v / w_safe * (np.sin(yaw) - np.sin(yaw0)))
    dy = np.where(small, v * taus * np.sin(yaw0), -v / w_safe * (np.cos(yaw) - np.cos(yaw0)))
    return np.stack([p[..., 0] + dx, p[..., 1] + dy, yaw], axis=-1)


def closing_speed(rel_position: np.ndarray, rel_velocity: np.ndarray) -> np.ndarray:
    """Rate at which the centre distance shrinks [m/s] (positive: approaching).

    Args:
        rel_position: ``(..., 2)`` agent centre minus ego centre [m].
        rel_velocity: ``(..., 2)`` agent velocity minus ego velocity [m/s].

    Returns:
        ``(...)`` ``-d|rel_position|/dt`` [m/s]; 0 where the centres coincide.
    """
    p = np.asarray(rel_position, dtype=np.float64)
    v = np.asarray(rel_velocity, dtype=np.float64)
    dist = np.linalg.norm(p, axis=-1)
    return np.where(dist > 1e-9, -np.sum(p * v, axis=-1) / np.maximum(dist, 1e-9), 0.0)


def cv_time_to_collision(
    ego_pose: np.ndarray,
    ego_velocity: np.ndarray,
    ego_params,
    agent_centers: np.ndarray,
    agent_velocities: np.ndarray,
    agent_sizes: np.ndarray,
    horizon: float = 5.0,
    step: float = 0.1,
    ego_yaw_rate: float = 0.0,
) -> np.ndarray:
    """Time to collision of the ego (constant speed and yaw rate) against agents (constant velocity) [s].

    Args:
        ego_pose: ``(3,)`` ego **rear-axle** pose, world frame [m, m, rad].
        ego_velocity: ``(2,)`` ego world-frame velocity [m/s] (its projection on the heading is the speed).
        ego_params: :class:`rewards.geometry.VehicleParameters` (box size, rear axle to centre).
        agent_centers: ``(N, 3)`` agent box-centre poses, world frame.
        agent_velocities: ``(N, 2)`` world-frame velocities [m/s].
        agent_sizes: ``(N, 2)`` box (length, width) [m].
        horizon: projection horizon [s].
        step: projection step [s].
        ego_yaw_rate: [rad/s].

    Returns:
        ``(N,)`` first projected overlap time in ``[0, horizon]`` [s], ``inf`` where none (0 when overlapping now).
    """
    if horizon < 0 or step <= 0:
        raise ValueError(f"cv_time_to_collision: need horizon >= 0 and step > 0, got {horizon}, {step}")
    agent_centers = np.asarray(agent_centers, dtype=np.float64).reshape(-1, 3)
    n = len(agent_centers)
    if n == 0:
        return np.zeros(0)
    taus = np.arange(int(np.floor(horizon / step + 1e-9)) + 1) * step  # (K,)
    ego_pose = np.asarray(ego_pose, dtype=np.float64)
    v = np.asarray(ego_velocity, dtype=np.float64)
    speed = v[0] * np.cos(ego_pose[2]) + v[1] * np.sin(ego_pose[2])
    ego_c = vehicle_corners(ego_turning_poses(ego_pose, speed, ego_yaw_rate, taus), ego_params)  # (K, 4, 2)
    ag = np.repeat(agent_centers[:, None], len(taus), axis=1)  # (N, K, 3)
    ag[..., :2] += taus[None, :, None] * np.asarray(agent_velocities, dtype=np.float64).reshape(n, 1, 2)
    sizes = np.asarray(agent_sizes, dtype=np.float64).reshape(n, 2)
    ag_c = box_corners(ag, sizes[:, None, 0], sizes[:, None, 1])  # (N, K, 4, 2)
    hit = boxes_overlap(ego_c[None], ag_c)  # (N, K)
    first = np.argmax(hit, axis=1)
    return np.where(hit.any(axis=1), taus[first], np.inf)


def ego_yaw_rates(poses: np.ndarray, dt: float) -> np.ndarray:
    """``(T,)`` ego yaw rate [rad/s] from logged headings ``(T, 3)`` (central differences, one-sided at the ends)."""
    poses = np.asarray(poses, dtype=np.float64)
    if len(poses) < 2:
        return np.zeros(len(poses))
    return np.gradient(np.unwrap(poses[:, 2]), dt)
