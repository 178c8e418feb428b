"""Projected time-to-collision along the ego's own path, and closing speed; pure numpy, vectorized.

The miner uses these to find near-misses in a log independently of the scorer, and the labels to state the
projected time to collision (TTC).

Path projection (documented here once, referenced by the label schema)
---------------------------------------------------------------------
Agents keep their current heading and move with their current world-frame velocity: ``p(tau) = p(0) + v * tau``
(constant velocity). The ego keeps its current speed but follows **its own future path**: the rear-axle path of the
log from the current frame on (the route it actually drives; for rollouts the recorded states, then their
constant-velocity continuation), extended straight along the last logged heading past the end of the log. At time
``tau`` the ego is at arc length ``|v| * tau`` along that path, with the path's heading there (linear in arc
length between logged frames). A turning ego is therefore projected through its turn, not straight across the
oncoming lanes (a constant-velocity projection) nor around a circle that the road does not follow (a constant
yaw rate). The TTC is the smallest ``tau`` in ``{0, step, 2 step, ..., horizon}`` at which the ego box (box centre =
rear axle + ``rear_axle_to_center``, ego length x width) and an agent box overlap (separating-axis test), or
``inf`` when they never do within the horizon.
"""

from __future__ import annotations

import math

import numpy as np

from rewards.geometry import box_corners, boxes_overlap, vehicle_corners


def projection_times(horizon: float, step: float) -> np.ndarray:
    """``(K,)`` projection times ``0, step, ..., <= horizon`` [s]."""
    if horizon < 0 or step <= 0:
        raise ValueError(f"projection times: need horizon >= 0 and step > 0, got {horizon}, {step}")
    return np.arange(int(np.floor(horizon / step + 1e-9)) + 1) * step


def path_poses(ego_poses: np.ndarray, frames: np.ndarray, speeds: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """Rear-axle poses of the ego moving along its own logged path at a constant speed (module docstring).

    Args:
        ego_poses: ``(T, 3)`` logged rear-axle poses, world frame [m, m, rad].
        frames: ``(F,)`` start frames.
        speeds: ``(F,)`` speed at each start frame [m/s] (its magnitude is used).
        taus: ``(K,)`` times ahead [s].

    Returns:
        ``(F, K, 3)`` world-frame rear-axle poses.
    """
    poses = np.asarray(ego_poses, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.int64).reshape(-1)
    seg = np.linalg.norm(np.diff(poses[:, :2], axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])  # (T,) arc length of each frame
    s_key = s + 1e-9 * np.arange(len(s))  # strictly increasing for np.interp (standing frames keep their pose)
    yaw = np.unwrap(poses[:, 2])
    target = s[frames, None] + np.abs(np.asarray(speeds, dtype=np.float64)).reshape(-1, 1) * taus[None]  # (F, K)
    target_key = target + 1e-9 * frames[:, None]
    out = np.empty(target.shape + (3,))
    out[..., 0] = np.interp(target_key, s_key, poses[:, 0])
    out[..., 1] = np.interp(target_key, s_key, poses[:, 1])
    out[..., 2] = np.interp(target_key, s_key, yaw)
    beyond = np.maximum(target - s[-1], 0.0)  # straight continuation past the log's end
    out[..., 0] += beyond * np.cos(yaw[-1])
    out[..., 1] += beyond * np.sin(yaw[-1])
    return out


def own_path_track(ego_poses: np.ndarray, ego_velocities: np.ndarray, t: int, taus: np.ndarray) -> np.ndarray:
    """``(K, 3)`` world-frame rear-axle poses of the ego at frame ``t`` keeping its current speed (its velocity
    ``(T, 2)`` [m/s] along its heading) along its own logged path (:func:`path_poses`), at the times ``taus`` [s]."""
    v = ego_velocities[t]
    yaw = ego_poses[t, 2]
    speed = v[0] * math.cos(yaw) + v[1] * math.sin(yaw)
    return path_poses(ego_poses, np.array([t]), np.array([speed]), taus)[0]


def time_to_collision(
    ego_track: np.ndarray,
    ego_params,
    agent_centers: np.ndarray,
    agent_velocities: np.ndarray,
    agent_sizes: np.ndarray,
    taus: np.ndarray,
) -> np.ndarray:
    """First projected overlap of the ego (given track) with constant-velocity agents [s].

    Args:
        ego_track: ``(..., K, 3)`` ego **rear-axle** poses at the times ``taus`` (e.g. :func:`path_poses`).
        ego_params: :class:`rewards.geometry.VehicleParameters` (box size, rear axle to centre).
        agent_centers: ``(..., N, 3)`` agent box-centre poses at ``tau = 0``, world frame.
        agent_velocities: ``(..., N, 2)`` world-frame velocities [m/s].
        agent_sizes: ``(N, 2)`` box (length, width) [m].
        taus: ``(K,)`` times [s], ascending.

    Returns:
        ``(..., N)`` first ``tau`` with an overlap, ``inf`` where none (0 when overlapping now).
    """
    centers = np.asarray(agent_centers, dtype=np.float64)
    if centers.shape[-2] == 0:
        return np.zeros(centers.shape[:-1])
    ego = vehicle_corners(np.asarray(ego_track, dtype=np.float64), ego_params)[..., None, :, :, :]  # (..., 1, K, 4, 2)
    ag = np.repeat(centers[..., None, :], len(taus), axis=-2)  # (..., N, K, 3)
    ag[..., :2] += taus[:, None] * np.asarray(agent_velocities, dtype=np.float64)[..., None, :]
    sizes = np.asarray(agent_sizes, dtype=np.float64)
    ag_box = box_corners(ag, sizes[:, 0, None], sizes[:, 1, None])  # (..., N, K, 4, 2)
    hit = boxes_overlap(ego, ag_box)  # (..., N, K)
    return np.where(hit.any(axis=-1), taus[np.argmax(hit, axis=-1)], np.inf)


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
