"""Compiled (numba) inner loops of the closed-loop checks (:func:`envs.sim.simulation.check_frames`).

Same conventions as :mod:`rewards.kernels`: no fast-math (no fused multiply-adds, no reassociation), sines and
cosines computed by the caller with numpy and passed in, so every result equals the numpy formulation it replaces
bit for bit (pinned in ``tests/test_replay_env.py`` against :func:`envs.sim.simulation.check_frames_numpy`).
Compilation is lazy and cached on disk (``cache=True``), as the scorer's kernels.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """:func:`rewards.geometry.boxes_overlap` of two ``(4, 2)`` corner arrays (closed separating-axis test), same
    arithmetic."""
    for axis in range(4):
        if axis == 0:
            ax, ay = a[1, 0] - a[0, 0], a[1, 1] - a[0, 1]
        elif axis == 1:
            ax, ay = a[2, 0] - a[1, 0], a[2, 1] - a[1, 1]
        elif axis == 2:
            ax, ay = b[1, 0] - b[0, 0], b[1, 1] - b[0, 1]
        else:
            ax, ay = b[2, 0] - b[1, 0], b[2, 1] - b[1, 1]
        amin, amax, bmin, bmax = np.inf, -np.inf, np.inf, -np.inf
        for j in range(4):
            pa = ax * a[j, 0] + ay * a[j, 1]
            pb = ax * b[j, 0] + ay * b[j, 1]
            amin, amax = min(amin, pa), max(amax, pa)
            bmin, bmax = min(bmin, pb), max(bmax, pb)
        if not max(amin, bmin) <= min(amax, bmax):
            return False
    return True


@njit(cache=True)
def frame_collisions(poses: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray, rear_to_center: float,
                     half_length: float, half_width: float, agent_poses: np.ndarray, agent_cos: np.ndarray,
                     agent_sin: np.ndarray, agent_valid: np.ndarray, agent_half_lengths: np.ndarray,
                     agent_half_widths: np.ndarray, reach2: np.ndarray, agent_ids: np.ndarray):
    """Ego box corners and the first colliding agent per frame.

    Args:
        poses: ``(k, 3)`` ego rear-axle poses [m, m, rad]; ``cos_yaw``, ``sin_yaw``: ``(k,)`` of their yaw (numpy).
        rear_to_center, half_length, half_width: ego box [m].
        agent_poses: ``(N, k, 3)`` agent box-centre poses at the frames; ``agent_cos``, ``agent_sin``: ``(N, k)``.
        agent_valid: ``(N, k)`` bool; ``agent_half_lengths``, ``agent_half_widths``: ``(N,)`` [m].
        reach2: ``(N,)`` squared bounding-circle reach [m^2] (ego half diagonal + agent half diagonal, squared).
        agent_ids: ``(N,)`` int64.

    Returns:
        ``(corners (k, 4, 2), colliding (k,) int64)``: the ego corners (FL, RL, RR, FR; the arithmetic of
        :func:`rewards.geometry.vehicle_corners`) and the id of the lowest agent row whose box overlaps the ego box
        among those valid and within reach (the centre prefilter of :func:`envs.sim.simulation.check_frames`), -1:
        none.
    """
    k = poses.shape[0]
    n_agents = agent_poses.shape[0]
    corners = np.empty((k, 4, 2))
    colliding = np.full(k, -1, dtype=np.int64)
    box = np.empty((4, 2))
    for f in range(k):
        c, s = cos_yaw[f], sin_yaw[f]
        cx = poses[f, 0] + rear_to_center * c
        cy = poses[f, 1] + rear_to_center * s
        hl_c, hl_s = c * half_length, s * half_length
        hw_s, hw_c = s * half_width, c * half_width
        nhl_c, nhl_s = c * -half_length, s * -half_length
        nhw_s, nhw_c = s * -half_width, c * -half_width
        corners[f, 0, 0], corners[f, 0, 1] = cx + hl_c - hw_s, cy + hl_s + hw_c
        corners[f, 1, 0], corners[f, 1, 1] = cx + nhl_c - hw_s, cy + nhl_s + hw_c
        corners[f, 2, 0], corners[f, 2, 1] = cx + nhl_c - nhw_s, cy + nhl_s + nhw_c
        corners[f, 3, 0], corners[f, 3, 1] = cx + hl_c - nhw_s, cy + hl_s + nhw_c
        # centre as numpy's mean over the 4 corners: ((c0 + c1) + c2) + c3, divided by 4
        mx = (((corners[f, 0, 0] + corners[f, 1, 0]) + corners[f, 2, 0]) + corners[f, 3, 0]) / 4.0
        my = (((corners[f, 0, 1] + corners[f, 1, 1]) + corners[f, 2, 1]) + corners[f, 3, 1]) / 4.0
        for n in range(n_agents):
            if not agent_valid[n, f]:
                continue
            dx, dy = agent_poses[n, f, 0] - mx, agent_poses[n, f, 1] - my
            if not dx * dx + dy * dy <= reach2[n]:
                continue
            ac, as_ = agent_cos[n, f], agent_sin[n, f]
            hl, hw = agent_half_lengths[n], agent_half_widths[n]
            px, py = agent_poses[n, f, 0], agent_poses[n, f, 1]
            box[0, 0], box[0, 1] = (px + ac * hl) - as_ * hw, (py + as_ * hl) + ac * hw
            box[1, 0], box[1, 1] = (px + ac * -hl) - as_ * hw, (py + as_ * -hl) + ac * hw
            box[2, 0], box[2, 1] = (px + ac * -hl) - as_ * -hw, (py + as_ * -hl) + ac * -hw
            box[3, 0], box[3, 1] = (px + ac * hl) - as_ * -hw, (py + as_ * hl) + ac * -hw
            if _overlap(corners[f], box):
                colliding[f] = agent_ids[n]
                break
    return corners, colliding


@njit(cache=True)
def raster_inside(points: np.ndarray, origin_x: float, origin_y: float, resolution: float,
                  mask: np.ndarray) -> np.ndarray:
    """``(M,)`` bool: points ``(M, 2)`` [m] whose raster cell ``floor((p - origin) / resolution)`` lies in
    ``mask (H, W)`` (rows: y) and is set (the fast path of :meth:`envs.sim.simulation.DrivableArea.contains`)."""
    h, w = mask.shape
    out = np.zeros(points.shape[0], dtype=np.bool_)
    for i in range(points.shape[0]):
        u = math.floor((points[i, 0] - origin_x) / resolution)
        v = math.floor((points[i, 1] - origin_y) / resolution)
        if 0 <= u < w and 0 <= v < h:
            out[i] = mask[int(v), int(u)]
    return out
