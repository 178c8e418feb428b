"""Clearance between the ego's boxes and the other agents' boxes: the exact smallest box-to-box gap over a track.

Used by the counterfactual verification (a positive keeps a margin from every agent) and by the safe-progress
reference (a proposal counts as safe only with a margin, so that the closed loop's tracking drift does not turn it
into a contact).
"""

from __future__ import annotations

import math

import numpy as np

from rewards import kernels
from rewards.geometry import box_corners, rear_axle_to_center
from rewards.types import ScoringProblem


def min_gaps(
    ego_poses: np.ndarray,
    problem: ScoringProblem,
    steps: np.ndarray,
    reach: float,
) -> np.ndarray:
    """Smallest box-to-box gap of each ego track to any valid agent box [m].

    Args:
        ego_poses: ``(G, K, 3)`` world-frame rear-axle poses at the scorer steps ``steps`` ``(K,)`` (indices into
            ``problem.agents``' window).
        problem: agents (boxes, validity) and ego geometry.
        steps: ``(K,)`` int step of each pose.
        reach: gaps larger than this are not resolved [m].

    Returns:
        ``(G,)`` gap [m]: 0 where some box overlaps, ``inf`` where no agent comes within ``reach``
        (compiled: :func:`rewards.kernels.min_box_gaps`, the exact gap of :func:`rewards.geometry.box_distance`).
    """
    poses = np.asarray(ego_poses, dtype=np.float64)
    G, K = poses.shape[:2]
    agents = problem.agents
    if agents.num_agents == 0 or K == 0:
        return np.full(G, np.inf)
    params = problem.ego.params
    ego_c = rear_axle_to_center(poses, params)  # (G, K, 3)
    ego_box = box_corners(ego_c, params.length, params.width)  # (G, K, 4, 2)
    ag = agents.poses[:, steps]  # (N, K, 3)
    ag_box = box_corners(ag, agents.sizes[:, 0, None], agents.sizes[:, 1, None])  # (N, K, 4, 2)
    return kernels.min_box_gaps(
        np.ascontiguousarray(ego_box), np.ascontiguousarray(ego_c[..., :2]), 0.5 * math.hypot(params.length, params.width),
        np.ascontiguousarray(ag_box), np.ascontiguousarray(ag[..., :2]),
        np.ascontiguousarray(0.5 * np.hypot(agents.sizes[:, 0], agents.sizes[:, 1])),
        np.ascontiguousarray(agents.valid[:, steps]), float(reach),
    )
