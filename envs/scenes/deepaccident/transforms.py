"""The two readings of DeepAccident's frames, and the conversion to SafeAlign's right-handed world frame.

What the files hold
-------------------
* **Label rows** ``<cls> x y z l w h yaw vx vy ...``: a box in the observing agent's **lidar** frame. The public
  converter (``tools/data_converter/carla_converter.py`` of tianqi-wang1996/DeepAccident) changes a row in exactly
  two ways: ``bbox[6] = -bbox[6]`` (yaw negated, line 252; ``# bbox[1] = -bbox[1]`` stays commented out, line 253)
  and ``vel = [vel[0], -vel[1]]`` (line 268).
* **Calib** ``ego_to_world`` and ``lidar_to_ego``: 4x4 CARLA matrices (``carla.Transform.get_matrix()``:
  left-handed, x forward, y right, z up), used unflipped by the converter (the ``y_reverse_matrix`` products are
  commented out, lines 171-177 and 206-215) and composed as ``ego_to_world @ lidar_to_ego``
  (``projects/mmdet3d_plugin/visualize/visualizer.py`` line 158).
* **Line 1** ``<vx> <vy>``: the observer's own velocity, read with the rows' convention for velocities.

Whether the row's ``y`` shares the calib's (left-handed) frame is what the two readings disagree on:

* ``"one_frame"`` (:data:`DEFAULT_CONVENTION`): rows and calib share CARLA's left-handed lidar frame. The world
  pose is ``ego_to_world @ lidar_to_ego @ (x, y, z)`` with yaw ``lidar yaw + yaw`` and velocity ``(vx, vy)``
  rotated likewise, all CARLA; it is then mirrored **once** to right-handed (``y -> -y``, ``yaw -> -yaw``). The
  converter's yaw negation is then what its mmdet3d needs to rotate corners (``rotation_3d_in_axis`` rotates by
  ``-angle``: ``mmdet3d/core/bbox/structures/utils.py`` lines 48-53 and 63, used by ``lidar_box3d.py`` line 86),
  the camera model lifts images with the unflipped ``inv(lidar_to_camera_matrix)``
  (``projects/mmdet3d_plugin/datasets/pipelines/loading.py`` line 531), and the V2X / ego-motion warps use
  ``inv(E_ego) @ E_other`` and ``inv(E_next) @ E_cur`` with no flip (``DeepAccident_dataset.py`` lines 1730-1741
  and 278-283).
* ``"mixed"`` (SafeAlign's reading before issue 27): the row's ``x, y`` are already right-handed (y to the
  **left**: the CARLA-local y negated) while yaw, vy and the calib are CARLA's. It rests on mmdet3d's point loaders
  negating the y of every lidar point (``mmdet3d/datasets/pipelines/loading.py`` lines 330-332 and 574-576), which
  the DeepAccident configs never use (their pipelines load images and annotations only,
  ``projects/configs/DeepAccident_singleframe_tiny_v2x.py`` lines 273-278).

The two differ only in the sign of the row's y: a box is mirrored across the observer's lidar x axis, headings and
velocities agree. No public code line settles it, so :mod:`envs.scenes.deepaccident.views` lets the **data**
decide: the same object seen by two V2X observers in one frame must land on one world pose under the right reading.

What SafeAlign computes
-----------------------
With ``F = diag(1, -1, 1)`` (the y reflection) and ``s = -1`` for ``"one_frame"``, ``+1`` for ``"mixed"``, a row is
put in the right-handed lidar frame as ``(x, s * y, z)``, yaw ``-yaw``, velocity ``(vx, -vy)``, then moved to the
world with ``M_rh = F @ ego_to_world @ lidar_to_ego @ F``. For ``"one_frame"`` this is exactly "CARLA world, then
mirror once"; for ``"mixed"`` it is the pre-issue-27 composition. The resulting world frame is CARLA's world with y
negated: x east, y north, yaw counter-clockwise from +x (:mod:`envs.scenes.scene`). :func:`world_to_labels` is the
exact inverse (for boxes without pitch and roll), used by the writer.

Worked example (issue 27, ``tests/test_deepaccident_views.py``): ``ego_to_world`` = CARLA yaw 0.7 rad at (10, 20),
``lidar_to_ego`` = (0, 0, 1.8), row (5, 3, yaw 0.4): ``"one_frame"`` -> (11.89, -25.52), ``"mixed"`` ->
(15.76, -20.93), both with heading -1.1 rad.
"""

from __future__ import annotations

import numpy as np

from rewards.geometry import wrap_angle

FLIP = np.diag([1.0, -1.0, 1.0, 1.0])
"""``(4, 4)`` reflection of y: CARLA's left-handed frames <-> right-handed frames."""

CONVENTIONS = ("one_frame", "mixed")
"""The two readings of a label row (module docstring)."""

DEFAULT_CONVENTION = "one_frame"
"""The reading used when the data cannot decide (a scenario with one view) and nothing else was decided: the one the
public code supports (module docstring). SafeAlign's writer writes it."""


def check_convention(convention: str) -> str:
    """``convention`` if it is one of :data:`CONVENTIONS`, else ``ValueError`` naming the value."""
    if convention not in CONVENTIONS:
        raise ValueError(f"frame_convention: expected one of {CONVENTIONS}, got {convention!r}")
    return convention


def _y_sign(convention: str) -> float:
    return -1.0 if check_convention(convention) == "one_frame" else 1.0


def rh_matrix(ego_to_world: np.ndarray, lidar_to_ego: np.ndarray) -> np.ndarray:
    """``(4, 4)`` right-handed lidar -> right-handed world transform, ``F @ ego_to_world @ lidar_to_ego @ F``."""
    m = np.asarray(ego_to_world, dtype=np.float64) @ np.asarray(lidar_to_ego, dtype=np.float64)
    return FLIP @ m @ FLIP


def labels_to_rh_lidar(boxes: np.ndarray, velocities: np.ndarray, convention: str = DEFAULT_CONVENTION
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows as written -> right-handed lidar frame: yaw and vy negated (``carla_converter.py`` lines 252, 268), y
    negated too under ``"one_frame"`` (the row shares the calib's left-handed frame), kept under ``"mixed"``.

    Args:
        boxes: ``(K, 7)`` x, y, z, l, w, h, yaw as written [m, rad].
        velocities: ``(K, 2)`` vx, vy as written [m/s].
        convention: one of :data:`CONVENTIONS`.

    Returns:
        ``(K, 3)`` x, y, z [m], ``(K,)`` yaw [rad] and ``(K, 2)`` vx, vy [m/s], right-handed lidar frame.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    vel = np.asarray(velocities, dtype=np.float64).reshape(-1, 2)
    xyz = boxes[:, :3].copy()
    xyz[:, 1] *= _y_sign(convention)
    return xyz, -boxes[:, 6], np.stack([vel[:, 0], -vel[:, 1]], axis=1)


def _to_world(m_rh: np.ndarray, xyz: np.ndarray, yaw: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = len(xyz)
    pts = np.concatenate([xyz, np.ones((k, 1))], axis=1) @ m_rh.T
    rot = m_rh[:3, :3]
    heading = np.stack([np.cos(yaw), np.sin(yaw), np.zeros(k)], axis=1) @ rot.T
    v = np.concatenate([vel, np.zeros((k, 1))], axis=1) @ rot.T
    return np.stack([pts[:, 0], pts[:, 1], np.arctan2(heading[:, 1], heading[:, 0])], axis=1), v[:, :2]


def labels_to_world(
    boxes: np.ndarray, velocities: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray,
    convention: str = DEFAULT_CONVENTION,
) -> tuple[np.ndarray, np.ndarray]:
    """Label rows of one frame to right-handed world box-centre poses and velocities.

    Args:
        boxes: ``(K, 7)`` x, y, z, l, w, h, yaw as written, observer's lidar frame [m, rad].
        velocities: ``(K, 2)`` vx, vy as written [m/s].
        ego_to_world, lidar_to_ego: ``(4, 4)`` CARLA matrices of the frame.
        convention: the reading of the rows, one of :data:`CONVENTIONS`.

    Returns:
        ``(K, 3)`` box-centre poses (x, y, yaw) [m, m, rad] and ``(K, 2)`` velocities [m/s], right-handed world.
    """
    xyz, yaw, vel = labels_to_rh_lidar(boxes, velocities, convention)
    return _to_world(rh_matrix(ego_to_world, lidar_to_ego), xyz, yaw, vel)


def planar_ego_to_world(center_pose: np.ndarray, z: float = 0.0) -> np.ndarray:
    """A CARLA (left-handed) 4x4 ``ego_to_world`` whose right-handed counterpart is the planar pose ``(3,)`` at
    height ``z``: ``F @ [[R(yaw), (x, y, z)], [0, 1]] @ F``."""
    x, y, yaw = (float(v) for v in center_pose)
    c, s = np.cos(yaw), np.sin(yaw)
    m_rh = np.array([[c, -s, 0.0, x], [s, c, 0.0, y], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]])
    return FLIP @ m_rh @ FLIP


def world_to_labels(
    poses: np.ndarray, velocities: np.ndarray, z: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray,
    convention: str = DEFAULT_CONVENTION,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`labels_to_world` for boxes with zero pitch and roll (what the writer puts in a label file).

    Args:
        poses: ``(K, 3)`` right-handed world box-centre poses [m, m, rad].
        velocities: ``(K, 2)`` right-handed world velocities [m/s].
        z: ``(K,)`` right-handed world heights of the box centres [m].
        ego_to_world, lidar_to_ego: ``(4, 4)`` CARLA matrices of the frame.
        convention: the reading to write, one of :data:`CONVENTIONS`.

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
    xyz[:, 1] *= _y_sign(convention)
    return xyz, wrap_angle(-yaw_rh), np.stack([v[:, 0], -v[:, 1]], axis=1)


def world_velocity_to_label(v_world: np.ndarray, ego_to_world: np.ndarray, lidar_to_ego: np.ndarray) -> np.ndarray:
    """``(2,)`` label line-1 velocity (the rows' convention) of a right-handed world velocity ``(2,)`` [m/s]."""
    _, _, v = world_to_labels(np.zeros((1, 3)), np.asarray(v_world, dtype=np.float64).reshape(1, 2), np.zeros(1),
                              ego_to_world, lidar_to_ego)
    return v[0]
