"""Oriented-box overlap (separating-axis test) and the search for the ego's colliding object in a log."""

from __future__ import annotations

import numpy as np

from rewards.geometry import box_corners


def penetration_depth(pose_a: np.ndarray, size_a: np.ndarray, pose_b: np.ndarray, size_b: np.ndarray) -> float:
    """Separating-axis overlap of two oriented boxes in the plane.

    Args:
        pose_a, pose_b: ``(3,)`` box-centre poses (x, y, yaw) [m, m, rad], same frame.
        size_a, size_b: ``(2,)`` length, width [m].

    Returns:
        the smallest overlap of the two boxes' projections over the 4 edge normals [m]: > 0 when the boxes overlap,
        <= 0 when they are separated (touching counts as not overlapping).
    """
    ca = box_corners(np.asarray(pose_a, dtype=np.float64), size_a[0], size_a[1])
    cb = box_corners(np.asarray(pose_b, dtype=np.float64), size_b[0], size_b[1])
    depth = np.inf
    for yaw in (pose_a[2], pose_b[2]):
        for axis in (np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])):
            pa, pb = ca @ axis, cb @ axis
            depth = min(depth, min(pa.max(), pb.max()) - max(pa.min(), pb.min()))
    return float(depth)


def first_overlap(
    ego_centers: np.ndarray,
    ego_size: np.ndarray,
    agent_poses: np.ndarray,
    agent_sizes: np.ndarray,
    agent_valid: np.ndarray,
    candidates: list[int] | None = None,
) -> tuple[int, int] | None:
    """The first frame at which an agent's box overlaps the ego box, and that agent.

    Args:
        ego_centers: ``(T, 3)`` ego box-centre poses, world frame.
        ego_size: ``(2,)`` ego length, width [m].
        agent_poses: ``(N, T, 3)`` box-centre poses, world frame.
        agent_sizes: ``(N, 2)`` [m].
        agent_valid: ``(N, T)`` bool.
        candidates: agent rows to consider (default: all).

    Returns:
        ``(agent_row, frame)`` of the earliest overlap (deepest overlap among agents at that frame), or None.
    """
    rows = range(len(agent_poses)) if candidates is None else candidates
    for t in range(len(ego_centers)):
        best: tuple[float, int] | None = None
        for n in rows:
            if not agent_valid[n, t]:
                continue
            # cheap reject: centres further apart than the sum of half diagonals
            reach = 0.5 * (np.hypot(*ego_size) + np.hypot(*agent_sizes[n]))
            if np.hypot(*(agent_poses[n, t, :2] - ego_centers[t, :2])) > reach:
                continue
            d = penetration_depth(ego_centers[t], ego_size, agent_poses[n, t], agent_sizes[n])
            if d > 0 and (best is None or d > best[0]):
                best = (d, n)
        if best is not None:
            return best[1], t
    return None
