"""CARLA value types (``Vector3D``, ``Location``, ``Rotation``, ``Transform``, ``BoundingBox``): the real ones from the
``carla`` wheel when it is importable, else pure-Python equivalents with the same signatures and arithmetic.

CARLA's frame is **left-handed** (x forward / east, y right / south on CARLA maps, z up; yaw in degrees, positive
from +x towards +y, i.e. clockwise seen from above). The rotation matrix of ``Rotation(pitch, yaw, roll)`` is Unreal's
(columns: forward, right and up vectors), checked against ``carla==0.9.16`` to 1e-6 in ``tests/test_carla_standin.py``
when the wheel is installed. The real types store float32; these store Python floats.

:func:`real_carla` returns the real module or None (it is imported once; set ``SAFEALIGN_NO_CARLA=1`` to ignore an
installed wheel, e.g. to test these fallbacks).
"""

from __future__ import annotations

import functools
import math
import os
from types import ModuleType
from typing import Any


@functools.lru_cache(maxsize=None)
def real_carla() -> ModuleType | None:
    """The installed ``carla`` client module (0.9.16 wheel, the ``[carla]`` extra), or None when it is missing or
    ``SAFEALIGN_NO_CARLA=1``."""
    if os.environ.get("SAFEALIGN_NO_CARLA") == "1":
        return None
    try:
        import carla  # noqa: PLC0415
    except ImportError:
        return None
    return carla


class Vector3D:
    """A 3D vector [m, m/s, ...] (``carla.Vector3D``)."""

    __slots__ = ("x", "y", "z")

    def __init__(self, x: float = 0.0, y: float = 0.0, z: float = 0.0) -> None:
        if isinstance(x, Vector3D):  # Location(rhs: Vector3D)
            x, y, z = x.x, x.y, x.z
        self.x, self.y, self.z = float(x), float(y), float(z)

    def _new(self, x: float, y: float, z: float) -> "Vector3D":
        return type(self)(x, y, z)

    def __add__(self, other: "Vector3D") -> "Vector3D":
        return self._new(self.x + other.x, self.y + other.y, self.z + other.z)

    def __sub__(self, other: "Vector3D") -> "Vector3D":
        return self._new(self.x - other.x, self.y - other.y, self.z - other.z)

    def __mul__(self, k: float) -> "Vector3D":
        return self._new(self.x * k, self.y * k, self.z * k)

    __rmul__ = __mul__

    def __truediv__(self, k: float) -> "Vector3D":
        return self._new(self.x / k, self.y / k, self.z / k)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vector3D) and all(
            math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) for a, b in zip(self._xyz(), other._xyz())
        )

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]  (mutable, as the real type)

    def __abs__(self) -> "Vector3D":
        return self._new(abs(self.x), abs(self.y), abs(self.z))

    def _xyz(self) -> tuple[float, float, float]:
        return self.x, self.y, self.z

    def length(self) -> float:
        return math.sqrt(self.x * self.x + self.y * self.y + self.z * self.z)

    def squared_length(self) -> float:
        return self.x * self.x + self.y * self.y + self.z * self.z

    def make_unit_vector(self) -> "Vector3D":
        n = self.length()
        if n < 1e-12:
            raise ValueError(f"{self!r}: length too small to normalize")
        return Vector3D(self.x / n, self.y / n, self.z / n)

    def dot(self, v: "Vector3D") -> float:
        return self.x * v.x + self.y * v.y + self.z * v.z

    def dot_2d(self, v: "Vector3D") -> float:
        return self.x * v.x + self.y * v.y

    def cross(self, v: "Vector3D") -> "Vector3D":
        return Vector3D(self.y * v.z - self.z * v.y, self.z * v.x - self.x * v.z, self.x * v.y - self.y * v.x)

    def distance(self, v: "Vector3D") -> float:
        return math.sqrt(self.distance_squared(v))

    def distance_squared(self, v: "Vector3D") -> float:
        return (self.x - v.x) ** 2 + (self.y - v.y) ** 2 + (self.z - v.z) ** 2

    def distance_2d(self, v: "Vector3D") -> float:
        return math.hypot(self.x - v.x, self.y - v.y)

    def distance_squared_2d(self, v: "Vector3D") -> float:
        return (self.x - v.x) ** 2 + (self.y - v.y) ** 2

    def get_vector_angle(self, v: "Vector3D") -> float:
        """Angle between the two vectors [rad]."""
        c = self.dot(v) / max(self.length() * v.length(), 1e-12)
        return math.acos(max(-1.0, min(1.0, c)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(x={self.x:.6f}, y={self.y:.6f}, z={self.z:.6f})"

    __str__ = __repr__


class Location(Vector3D):
    """A point [m] (``carla.Location``); arithmetic on locations returns ``Vector3D`` as the real type does."""

    __slots__ = ()

    def _new(self, x: float, y: float, z: float) -> Vector3D:
        return Vector3D(x, y, z)


class Rotation:
    """Pitch, yaw, roll [deg] (``carla.Rotation(pitch, yaw, roll)``; Unreal convention, left-handed frame)."""

    __slots__ = ("pitch", "yaw", "roll")

    def __init__(self, pitch: float = 0.0, yaw: float = 0.0, roll: float = 0.0) -> None:
        self.pitch, self.yaw, self.roll = float(pitch), float(yaw), float(roll)

    def _matrix(self) -> tuple[tuple[float, float, float], ...]:
        """3x3 rotation matrix, rows; columns are the forward, right and up vectors."""
        cp, sp = math.cos(math.radians(self.pitch)), math.sin(math.radians(self.pitch))
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        cr, sr = math.cos(math.radians(self.roll)), math.sin(math.radians(self.roll))
        return (
            (cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr),
            (cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr),
            (sp, -cp * sr, cp * cr),
        )

    def _column(self, j: int) -> Vector3D:
        m = self._matrix()
        return Vector3D(m[0][j], m[1][j], m[2][j])

    def get_forward_vector(self) -> Vector3D:
        return self._column(0)

    def get_right_vector(self) -> Vector3D:
        return self._column(1)

    def get_up_vector(self) -> Vector3D:
        return self._column(2)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rotation) and all(
            math.isclose(a, b, abs_tol=1e-5) for a, b in ((self.pitch, other.pitch), (self.yaw, other.yaw),
                                                          (self.roll, other.roll))
        )

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Rotation(pitch={self.pitch:.6f}, yaw={self.yaw:.6f}, roll={self.roll:.6f})"

    __str__ = __repr__


def _rotate(m: tuple[tuple[float, float, float], ...], v: Vector3D) -> tuple[float, float, float]:
    return (m[0][0] * v.x + m[0][1] * v.y + m[0][2] * v.z,
            m[1][0] * v.x + m[1][1] * v.y + m[1][2] * v.z,
            m[2][0] * v.x + m[2][1] * v.y + m[2][2] * v.z)


class Transform:
    """Location + rotation (``carla.Transform(location=Location(0, 0, 0), rotation=Rotation(0, 0, 0))``)."""

    __slots__ = ("location", "rotation")

    def __init__(self, location: Location | None = None, rotation: Rotation | None = None) -> None:
        self.location = Location(location) if location is not None else Location()
        self.rotation = Rotation(rotation.pitch, rotation.yaw, rotation.roll) if rotation is not None else Rotation()

    def transform(self, in_point: Vector3D) -> Vector3D:
        """Local point -> world point."""
        x, y, z = _rotate(self.rotation._matrix(), in_point)
        return Vector3D(x + self.location.x, y + self.location.y, z + self.location.z)

    def transform_vector(self, in_point: Vector3D) -> Vector3D:
        """Local vector -> world vector (rotation only)."""
        return Vector3D(*_rotate(self.rotation._matrix(), in_point))

    def inverse_transform(self, in_point: Vector3D) -> Vector3D:
        """World point -> local point."""
        m = self.rotation._matrix()
        d = Vector3D(in_point.x - self.location.x, in_point.y - self.location.y, in_point.z - self.location.z)
        mt = tuple(tuple(m[j][i] for j in range(3)) for i in range(3))
        return Vector3D(*_rotate(mt, d))  # type: ignore[arg-type]

    def get_forward_vector(self) -> Vector3D:
        return self.rotation.get_forward_vector()

    def get_right_vector(self) -> Vector3D:
        return self.rotation.get_right_vector()

    def get_up_vector(self) -> Vector3D:
        return self.rotation.get_up_vector()

    def get_matrix(self) -> list[list[float]]:
        """4x4 local -> world matrix."""
        m = self.rotation._matrix()
        loc = (self.location.x, self.location.y, self.location.z)
        return [[*m[i], loc[i]] for i in range(3)] + [[0.0, 0.0, 0.0, 1.0]]

    def get_inverse_matrix(self) -> list[list[float]]:
        """4x4 world -> local matrix."""
        m = self.rotation._matrix()
        loc = (self.location.x, self.location.y, self.location.z)
        rows = []
        for i in range(3):
            r = [m[0][i], m[1][i], m[2][i]]
            rows.append([*r, -sum(r[k] * loc[k] for k in range(3))])
        return rows + [[0.0, 0.0, 0.0, 1.0]]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Transform) and self.location == other.location and self.rotation == other.rotation

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Transform({self.location!r}, {self.rotation!r})"

    __str__ = __repr__


class BoundingBox:
    """A box: centre ``location`` and half sizes ``extent`` [m] in the actor's frame, plus a ``rotation``
    (``carla.BoundingBox(location, extent)``)."""

    __slots__ = ("location", "extent", "rotation")

    def __init__(self, location: Location, extent: Vector3D) -> None:
        self.location = Location(location)
        self.extent = Vector3D(extent.x, extent.y, extent.z)
        self.rotation = Rotation()

    def get_local_vertices(self) -> list[Location]:
        """The 8 corners in the actor frame, x-major then y then z (signs -, +), as the real type orders them."""
        m = self.rotation._matrix()
        out = []
        for sx in (-1.0, 1.0):
            for sy in (-1.0, 1.0):
                for sz in (-1.0, 1.0):
                    x, y, z = _rotate(m, Vector3D(sx * self.extent.x, sy * self.extent.y, sz * self.extent.z))
                    out.append(Location(x + self.location.x, y + self.location.y, z + self.location.z))
        return out

    def get_world_vertices(self, transform: Transform) -> list[Location]:
        """The 8 corners in the world frame of an actor at ``transform``."""
        return [Location(transform.transform(v)) for v in self.get_local_vertices()]

    def contains(self, world_point: Location, transform: Transform) -> bool:
        """Whether ``world_point`` lies in the box of an actor at ``transform`` (the box's own rotation is ignored,
        as in CARLA's ``BoundingBox::Contains``)."""
        p = transform.inverse_transform(world_point)
        d = (p.x - self.location.x, p.y - self.location.y, p.z - self.location.z)
        e = (self.extent.x, self.extent.y, self.extent.z)
        return all(-ei <= di <= ei for di, ei in zip(d, e))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BoundingBox) and self.location == other.location and self.extent == other.extent

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BoundingBox({self.location!r}, Extent(x={self.extent.x:.6f}, y={self.extent.y:.6f}, " \
               f"z={self.extent.z:.6f}), {self.rotation!r})"

    __str__ = __repr__


def value_types() -> dict[str, Any]:
    """``{name: type}`` of the value types in use: the real ``carla`` ones when importable, else these."""
    carla = real_carla()
    names = ("Vector3D", "Location", "Rotation", "Transform", "BoundingBox")
    if carla is not None:
        return {n: getattr(carla, n) for n in names}
    return {"Vector3D": Vector3D, "Location": Location, "Rotation": Rotation, "Transform": Transform,
            "BoundingBox": BoundingBox}
