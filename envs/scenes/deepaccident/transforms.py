"""The one frame convention of DeepAccident files, and the conversion to SafeAlign's right-handed world frame.

What the files hold (derived from the public code of tianqi-wang1996/DeepAccident)
---------------------------------------------------------------------------------
* **Label rows** ``<cls> x y z l w h yaw vx vy ...``: a box in the observing agent's **lidar** frame. The converter
  (``tools/data_converter/carla_converter.py``) turns a row into the training target with exactly three changes:
  ``bbox[6] = -bbox[6]`` (yaw negated, line 252), ``# bbox[1] = -bbox[1]`` (y left as written: the line is
  commented out, line 253) and ``vel = [vel[0], -vel[1]]`` (vy negated, line 268). The loading pipeline negates the
  y of every lidar point of DeepAccident (``mmdet3d/datasets/pipelines/loading.py`` lines 330-332 and 574-576),
  turning CARLA's left-handed sensor frame (x forward, y right, z up) into mmdet3d's right-handed LiDAR frame (x
  forward, y **left**, z up; yaw counter-clockwise from x), in which those targets must match the points. Hence, as
  written in a label file:

  - ``x, y, z``: already right-handed (y to the **left**);
  - ``yaw``: CARLA's left-handed sign (clockwise); the right-handed yaw is ``-yaw``;
  - ``vx, vy``: CARLA's left-handed sign of vy (to the right); the right-handed velocity is ``(vx, -vy)``.

  Row velocities are the object's own (absolute) velocity expressed in the lidar frame (the converter's comment,
  lines 237-238, names them ``vel_other_vec_transformed``), so a parked car has velocity 0 from a moving observer.
* **Line 1** ``<vx> <vy>`` of a label file, the observer's own velocity: the converter reads it
  (``vehicle_speed_x/y``, lines 230-231) and nothing uses it. It is taken here in the same convention as the rows
  (lidar frame, vy with CARLA's sign) **(unverified)**: the kinematic checks (:mod:`envs.scenes.deepaccident.checks`)
  compare it with the ego's finite differences on every scene read.
* **Calib** ``ego_to_world`` and ``lidar_to_ego``: 4x4 homogeneous matrices, used unflipped by the converter (the
  ``y_reverse_matrix`` products are commented out, lines 171-177, 206-207) and composed as
  ``ego_to_world @ lidar_to_ego`` (``projects/mmdet3d_plugin/visualize/visualizer.py`` line 158). They are taken to
  be CARLA-native (``carla.Transform.get_matrix()``: left-handed frames) **(unverified against a real download;**
  a wrong guess shows up in the kinematic checks as heading / finite-difference disagreements of agents that move
  sideways relative to a turning ego).
* **The ego box** is the label row with id -100 when a frame has exactly one, else a box at the lidar origin with
  yaw 0 (``DeepAccident_dataset.py`` lines 844-850 and 592-594); both go through the same conversion as every row.

What SafeAlign computes
-----------------------
With ``F = diag(1, -1, 1)`` (the y reflection), a row is first put in the right-handed lidar frame exactly as the
converter does, ``(x, y, z, -yaw)`` and ``(vx, -vy)``, then moved to the world with the right-handed counterpart of
the CARLA matrices, ``M_rh = F @ ego_to_world @ lidar_to_ego @ F``. The resulting world frame is CARLA's world with
y negated: x east, y north, yaw counter-clockwise from +x (:mod:`envs.scenes.scene`). :func:`world_to_labels` is the exact
inverse (for boxes without pitch and roll), used by the writer.
"""

from __future__ import annotations

import numpy as np

from rewards.geometry import wrap_angle

FLIP = np.diag([1.0, -1.0, 1.0, 1.0])
"""``(4, 4)`` reflection of y: CARLA's left-handed frames <-> right-handed frames."""


def rh_matrix(ego_to_world: np.ndarray, lidar_to_ego: np.ndarray) -> np.ndarray:
    """``(4, 4)`` right-handed lidar -> right-handed world transform, ``F @ ego_to_world @ lidar_to_ego @ F``."""
    m = np.asarray(ego_to_world, dtype=np.float64) @ np.asarray(lidar_to_ego, dtype=np.float64)
    return FLIP @ m @ FLIP


def labels_to_rh_lidar(boxes: np.ndarray, velocities: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The converter's step (``carla_converter.py`` lines 252, 253, 268): rows as written -> right-handed lidar frame.

    Args:
        boxes: ``(K, 7)`` x, y, z, l, w, h, yaw as written [m, rad].
        velocities: ``(K, 2)`` vx, vy as written [m/s].

    Returns:
        ``(K, 3)`` x, y, z [m], ``(K,)`` yaw [rad] and ``(K, 2)`` vx, vy [m/s], right-handed lidar frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    vel = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
    return boxes[:, :3].copy(), -boxes[:, 6], np.stack([vel[:, 0], -vel[:, 1]], axis=1)


def _to_world(m_rh: np.ndarray, xyz: np.ndarray, yaw: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = len(xyz)
    pts = np.concatenate([xyz, np.ones((k, 1))], axis=1) @ m_rh.T
    rot = m_rh[:3, :3]
    heading = np.stack([np.cos(yaw), np.sin(yaw), np.zeros(k)], axis=1) @ rot.T
    v = np.concatenate([vel, np.zeros((k, 1))], axis=1) @ rot.T
    return np.stack([pts[:, 0], pts[:, 1], np.arctan2(heading[:, 1], heading[:, 0])], axis=1), v[:, :2]


def labels_to_world(
    boxes: np.ndarray, velocities: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Label rows of one frame to right-handed world box-centre poses and velocities.

    Args:
        boxes: ``(K, 7)`` x, y, z, l, w, h, yaw as written [m, rad].
        velocities: ``(K, 2)`` vx, vy as written [m/s].
        ego_to_world, lidar_to_ego: ``(4, 4)`` CARLA matrices of the frame.

    Returns:
        ``(K, 3)`` box-centre poses (x, y, yaw) [m, m, rad] and ``(K, 2)`` velocities [m/s], right-handed world.
    """
    xyz, yaw, vel = labels_to_rh_lidar(boxes, velocities)
    return _to_world(rh_matrix(ego_to_world, lidar_to_ego), xyz, yaw, vel)


def planar_ego_to_world(center_pose: np.ndarray, z: float = 0.0) -> np.ndarray:
    """A CARLA (left-handed) 4x4 ``ego_to_world`` whose right-handed counterpart is the planar pose ``(3,)`` at
    height ``z``: ``F @ [[R(yaw), (x, y, z)], [0, 1]] @ F``."""
    x, y, yaw = (float(v) for v in center_pose)
    c, s = np.cos(yaw), np.sin(yaw)
    m_rh = np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])
    return FLIP @ m_rh @ FLIP


def world_to_labels(
    poses: np.ndarray, velocities: np.ndarray, z: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`labels_to_world` for boxes with zero pitch and roll (what the writer puts in a label file).

    Args:
        poses: ``(K, 3)`` right-handed world box-centre poses [m, m, rad].
        velocities: ``(K, 2)`` right-handed world velocities [m/s].
        z: ``(K,)`` right-handed world heights of the box centres [m].
        ego_to_world, lidar_to_ego: ``(4, 4)`` CARLA matrices of the frame.

    Returns:
        as written in a label row: ``(K, 3)`` x, y, z [m], ``(K,)`` yaw in [-pi, pi) [rad] (CARLA's sign) and
        ``(K, 2)`` vx, vy [m/s] (vy with CARLA's sign).
    """
    m_inv = np.linalg.inv(rh_matrix(ego_to_world, lidar_to_ego))
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
    vel = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
    k = len(poses)
    world = np.stack([poses[:, 0], poses[:, 1], np.asarray(z, dtype=np.float64).reshape(k), np.ones(k)], axis=1)
    xyz = (world @ m_inv.T)[:, :3]
    rot = m_inv[:3, :3]
    heading = np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2]), np.zeros(k)], axis=1) @ rot.T
    v = np.concatenate([vel, np.zeros((k, 1))], axis=1) @ rot.T
    yaw_rh = np.arctan2(heading[:, 1], heading[:, 0])
    return xyz, wrap_angle(-yaw_rh), np.stack([v[:, 0], -v[:, 1]], axis=1)


def world_velocity_to_label(v_world: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray) -> np.ndarray:
    """``(2,)`` label line-1 velocity (the rows' convention) of a right-handed world velocity ``(2,)`` [m/s]."""
    _, _, v = world_to_labels(np.zeros((1, 3)), np.asarray(v_world, dtype=np.float64).reshape(1, 2), np.zeros(1),
                              ego_to_world, lidar_to_ego)
    return v[0]
