"""CARLA (left-handed) <-> SafeAlign (right-handed) frame conversions for DeepAccident.

What the files hold
-------------------
* Label rows: box centre, yaw and velocity in the observing agent's **lidar** frame, CARLA convention (x forward,
  y right, z up: left-handed; the dataset author in DeepAccident issue #14). ``DeepAccident_dataset.py`` moves
  boxes from lidar to the agent with ``lidar_to_ego``.
* Calib ``ego_to_world`` / ``lidar_to_ego``: 4x4 homogeneous matrices, taken here to be CARLA-native
  (``carla.Transform.get_matrix()``-style: left-handed agent frame -> left-handed CARLA world). This is what the
  official converter's *commented-out* ``y_reverse_matrix`` lines imply (it never flips the matrices) and is
  **not verified against a real download**.

What SafeAlign stores
---------------------
The official converter makes labels right-handed by negating ``yaw`` and ``vy`` and leaving ``x, y`` as written
(``carla_converter.py``: ``bbox[6] = -bbox[6]``, ``vel = [vel[0], -vel[1]]``). A consistent right-handed version of
the whole chain is the conjugation by the reflection ``F = diag(1, -1, 1)``:
``M_rh = F @ ego_to_world @ lidar_to_ego @ F``. Applied to a converter-style (y-reflected) box this equals
"apply the CARLA matrices to the box as written, then negate world y" — which is what we compute:

* world position: ``(X, -Y)`` with ``(X, Y, Z) = ego_to_world @ lidar_to_ego @ (x, y, z, 1)``;
* world yaw: the heading vector ``(cos yaw, sin yaw, 0)`` rotated by the CARLA matrices, y negated, ``atan2``;
* world velocity: ``(vx, vy, 0)`` rotated by the CARLA matrices, y negated.

So x east stays x, CARLA's y (south on CARLA maps) becomes -y, and yaws are counter-clockwise from +x as
:mod:`envs.scene` requires. The ego pose is the ``ego_to_world`` origin (taken as the ego **box centre**); the reader
converts it to the rear axle. Row velocities are taken as each object's own (absolute) velocity expressed in the
observer's lidar frame, not relative to the observer: CARLA's static decoration objects (ids > 20000) are written
with velocity 0 (issue #14), which a relative velocity would not give from a moving observer (**not verified** on
a real download). Line 1 of a label file (the observer's own velocity) is taken to be in the observer's own frame
like the rows (**unverified**: the official code never uses it).
"""

from __future__ import annotations

import numpy as np

from rewards.geometry import wrap_angle


def _rotate(m: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate ``(K, 3)`` vectors by the 3x3 block of ``m (4, 4)``."""
    return v @ m[:3, :3].T


def ego_center_pose(ego_to_world: np.ndarray) -> np.ndarray:
    """``(3,)`` right-handed world pose (x, y, yaw) [m, m, rad] of the agent-frame origin of a CARLA 4x4 matrix."""
    e = np.asarray(ego_to_world, dtype=np.float64)
    return np.array([e[0, 3], -e[1, 3], float(np.arctan2(-e[1, 0], e[0, 0]))])


def ego_velocity_to_world(v_raw: np.ndarray, ego_to_world: np.ndarray) -> np.ndarray:
    """``(2,)`` right-handed world velocity [m/s] from a label line-1 velocity ``(2,)`` in the agent's CARLA frame."""
    v = np.array([[v_raw[0], v_raw[1], 0.0]])
    w = _rotate(np.asarray(ego_to_world, dtype=np.float64), v)[0]
    return np.array([w[0], -w[1]])


def labels_to_world(
    boxes: np.ndarray, velocities: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Label boxes of one frame to right-handed world poses and velocities.

    Args:
        boxes: ``(K, 7)`` x, y, z, l, w, h, yaw as written [m, rad] (lidar frame, left-handed).
        velocities: ``(K, 2)`` vx, vy as written [m/s].
        ego_to_world, lidar_to_ego: ``(4, 4)`` CARLA matrices of the frame.

    Returns:
        ``(K, 3)`` box-centre poses (x, y, yaw) [m, m, rad] and ``(K, 2)`` velocities [m/s], right-handed world.
    """
    m = np.asarray(ego_to_world, dtype=np.float64) @ np.asarray(lidar_to_ego, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    vel = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
    k = len(boxes)
    pts = np.concatenate([boxes[:, :3], np.ones((k, 1))], axis=1) @ m.T
    heading = _rotate(m, np.stack([np.cos(boxes[:, 6]), np.sin(boxes[:, 6]), np.zeros(k)], axis=1))
    v = _rotate(m, np.concatenate([vel, np.zeros((k, 1))], axis=1))
    poses = np.stack([pts[:, 0], -pts[:, 1], np.arctan2(-heading[:, 1], heading[:, 0])], axis=1)
    return poses, np.stack([v[:, 0], -v[:, 1]], axis=1)


def planar_ego_to_world(center_pose: np.ndarray, z: float = 0.0) -> np.ndarray:
    """Inverse of :func:`ego_center_pose`: a CARLA 4x4 ``ego_to_world`` for a right-handed pose ``(3,)`` at height z."""
    x, y, yaw = (float(v) for v in center_pose)
    c, s = np.cos(-yaw), np.sin(-yaw)
    return np.array([[c, -s, 0.0, x], [s, c, 0.0, -y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])


def world_to_labels(
    poses: np.ndarray, velocities: np.ndarray, z: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`labels_to_world` for boxes with zero pitch/roll.

    Args:
        poses: ``(K, 3)`` right-handed world box-centre poses [m, m, rad].
        velocities: ``(K, 2)`` right-handed world velocities [m/s].
        z: ``(K,)`` CARLA world heights of the box centres [m].
        ego_to_world, lidar_to_ego: ``(4, 4)`` CARLA matrices of the frame.

    Returns:
        ``(K, 3)`` x, y, z and ``(K,)`` yaw in [-pi, pi) as written in a label file, and ``(K, 2)`` vx, vy.
    """
    m_inv = np.linalg.inv(np.asarray(ego_to_world, dtype=np.float64) @ np.asarray(lidar_to_ego, dtype=np.float64))
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    vel = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
    k = len(poses)
    world = np.stack([poses[:, 0], -poses[:, 1], np.asarray(z, dtype=np.float64).reshape(k), np.ones(k)], axis=1)
    xyz = (world @ m_inv.T)[:, :3]
    heading = _rotate(m_inv, np.stack([np.cos(poses[:, 2]), -np.sin(poses[:, 2]), np.zeros(k)], axis=1))
    v = _rotate(m_inv, np.stack([vel[:, 0], -vel[:, 1], np.zeros(k)], axis=1))
    yaw = wrap_angle(np.arctan2(heading[:, 1], heading[:, 0]))
    return xyz, yaw, v[:, :2]


def world_velocity_to_ego_raw(v_world: np.ndarray, ego_to_world: np.ndarray) -> np.ndarray:
    """Inverse of :func:`ego_velocity_to_world`: ``(2,)`` label line-1 velocity in the agent's CARLA frame."""
    e = np.asarray(ego_to_world, dtype=np.float64)
    v = np.array([v_world[0], -v_world[1], 0.0]) @ e[:3, :3]
    return v[:2]
