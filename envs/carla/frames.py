"""CARLA (left-handed) <-> SafeAlign (right-handed) frame conversions.

CARLA's world frame is left-handed: x forward/east, **y right/south**, z up, yaw in **degrees** from +x towards +y
(clockwise seen from above). :mod:`envs.scenes.scene` is right-handed (x east, y north, yaw counter-clockwise, radians).
Mirroring y (``y -> -y``) maps one onto the other, so (the same reflection as :mod:`envs.scenes.deepaccident.transforms`):

* positions ``(x, y) -> (x, -y)``, velocities ``(vx, vy) -> (vx, -vy)``;
* yaw ``-> -radians(yaw)`` (a CARLA heading vector ``(cos, sin)`` mirrored is ``(cos, -sin)``);
* steering: CARLA's positive steer turns right, i.e. towards negative right-handed yaw rates.

Boxes: a CARLA actor's box centre is ``transform.transform(bounding_box.location)`` (the actor origin is usually at
the box centre on the ground); lengths and widths are twice ``bounding_box.extent.x`` / ``.y``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def pose_from_transform(transform: Any) -> np.ndarray:
    """``(3,)`` right-handed ``(x, y, yaw)`` [m, m, rad] of a ``carla.Transform``'s location and yaw."""
    loc = transform.location
    return np.array([loc.x, -loc.y, -math.radians(transform.rotation.yaw)])


def transform_from_pose(carla: Any, pose: np.ndarray, z: float = 0.0) -> Any:
    """A ``carla.Transform`` at the right-handed pose ``(x, y, yaw)`` [m, m, rad], height ``z`` [m]."""
    x, y, yaw = (float(v) for v in pose)
    return carla.Transform(carla.Location(x, -y, float(z)), carla.Rotation(0.0, -math.degrees(yaw), 0.0))


def vector_to_world(vector: Any) -> np.ndarray:
    """``(2,)`` right-handed ``(vx, vy)`` of a CARLA ``Vector3D`` (velocity, acceleration)."""
    return np.array([vector.x, -vector.y])


def box_pose(actor: Any) -> np.ndarray:
    """``(3,)`` right-handed box-centre pose of a CARLA actor [m, m, rad]."""
    t = actor.get_transform()
    centre = t.transform(actor.bounding_box.location)
    return np.array([centre.x, -centre.y, -math.radians(t.rotation.yaw)])


def box_size(actor: Any) -> tuple[float, float]:
    """``(length, width)`` [m] of a CARLA actor's bounding box."""
    e = actor.bounding_box.extent
    return 2.0 * float(e.x), 2.0 * float(e.y)


def location_xy(location: Any) -> np.ndarray:
    """``(2,)`` right-handed position of a ``carla.Location`` [m]."""
    return np.array([location.x, -location.y])


def steer_from_curvature_angle(tire_angle: float, max_steer_deg: float) -> float:
    """CARLA ``VehicleControl.steer`` in [-1, 1] for a right-handed tire angle [rad] (positive: left)."""
    return float(np.clip(-tire_angle / math.radians(max_steer_deg), -1.0, 1.0))
