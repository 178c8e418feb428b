"""Oriented-box overlap (separating-axis test) and the search for the ego's colliding object in a log."""

from __future__ import annotations

import numpy as np

from rewards.geometry import box_corners, boxes_overlap


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
    rows = np.arange(len(agent_poses)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    if len(rows) == 0:
        return None
    # Detection with the scorer's own overlap test (one definition of "collision" across the project).
    ego = box_corners(np.asarray(ego_centers, dtype=np.float64), ego_size[0], ego_size[1])  # (T, 4, 2)
    sizes = np.asarray(agent_sizes, dtype=np.float64)[rows]
    agents = box_corners(np.asarray(agent_poses, dtype=np.float64)[rows], sizes[:, None, 0], sizes[:, None, 1])
    hit = boxes_overlap(ego[None], agents) & np.asarray(agent_valid, dtype=bool)[rows]  # (R, T)
    frames = np.flatnonzero(hit.any(axis=0))
    if len(frames) == 0:
        return None
    t = int(frames[0])
    hits = [int(n) for n in rows[hit[:, t]]]
    best = max(hits, key=lambda n: penetration_depth(ego_centers[t], ego_size, agent_poses[n, t], agent_sizes[n]))
    return best, t


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances ``(...)`` from points ``p (..., 2)`` to segments ``a -> b (..., 2)``."""
    ab = b - a
    denom = np.maximum(np.einsum("...i,...i->...", ab, ab), 1e-18)
    s = np.clip(np.einsum("...i,...i->...", p - a, ab) / denom, 0.0, 1.0)
    return np.linalg.norm(p - (a + s[..., None] * ab), axis=-1)


def box_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between oriented rectangles (0 where they overlap or touch).

    Args:
        a, b: ``(..., 4, 2)`` corners [m] in cyclic order, broadcastable.

    Returns:
        ``(...)`` [m]: for separated convex polygons the distance is reached at a vertex of one and an edge of the
        other, so it is the minimum over the 2 x 16 vertex-edge distances.
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))

    def one_way(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        q0, q1 = q, np.roll(q, -1, axis=-2)  # (..., 4, 2) edges of q
        d = _point_segment_distance(p[..., :, None, :], q0[..., None, :, :], q1[..., None, :, :])  # (..., 4, 4)
        return d.min(axis=(-1, -2))

    dist = np.minimum(one_way(a, b), one_way(b, a))
    return np.where(boxes_overlap(a, b), 0.0, dist)


def ego_agent_distances(
    ego_centers: np.ndarray, ego_size: np.ndarray, agent_poses: np.ndarray, agent_size: np.ndarray
) -> np.ndarray:
    """``(T,)`` distance [m] between the ego box and one agent's box per frame (0: overlap or contact).

    Args:
        ego_centers: ``(T, 3)`` ego box-centre poses; ego_size: ``(2,)`` length, width [m].
        agent_poses: ``(T, 3)`` the agent's box-centre poses; agent_size: ``(2,)`` [m].
    """
    ego = box_corners(np.asarray(ego_centers, dtype=np.float64), ego_size[0], ego_size[1])
    other = box_corners(np.asarray(agent_poses, dtype=np.float64), agent_size[0], agent_size[1])
    return box_distances(ego, other)
