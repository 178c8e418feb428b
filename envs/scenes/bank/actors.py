"""Agents and the ego of a synthetic scene while it is being built, agent sizes, and overlap bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from envs.scenes.bank.motion import DT, brake_after, smoothstep, track_poses
from envs.scenes.layouts import Path
from envs.scenes.scene import AgentClass
from rewards.geometry import NAVSIM_EGO, VehicleParameters, boxes_overlap, rear_axle_to_center

VEHICLE_KINDS = {
    # kind: ((length range), (width range)) [m]
    "car": ((4.2, 4.9), (1.75, 1.9)),
    "suv": ((4.6, 5.1), (1.9, 2.05)),
    "van": ((5.0, 5.8), (2.0, 2.2)),
    "truck": ((7.0, 9.5), (2.4, 2.6)),
}
"""Synthetic vehicle size ranges per kind."""
_KIND_NAMES = tuple(VEHICLE_KINDS)
_VEHICLE_CDF = np.cumsum([0.5, 0.25, 0.15])  # car, suv, van; the rest truck
_CLASS_SIZES = {
    AgentClass.PEDESTRIAN: ((0.5, 0.8), (0.5, 0.8)),
    AgentClass.CYCLIST: ((1.6, 1.9), (0.6, 0.8)),
    AgentClass.STATIC: ((0.35, 0.5), (0.35, 0.5)),
}


def corners_of(poses: np.ndarray, length: float, width: float) -> np.ndarray:
    """``(T, 4, 2)`` corners [m] (FL, RL, RR, FR, as :func:`rewards.geometry.box_corners`) of one box of scalar
    ``length`` x ``width`` [m] at box-centre poses ``(T, 3)`` (a faster special case for scalar sizes)."""
    c, s = np.cos(poses[:, 2])[:, None], np.sin(poses[:, 2])[:, None]
    dl = np.array([0.5, -0.5, -0.5, 0.5]) * length
    dw = np.array([0.5, 0.5, -0.5, -0.5]) * width
    out = np.empty((len(poses), 4, 2))
    out[..., 0] = poses[:, 0, None] + c * dl - s * dw
    out[..., 1] = poses[:, 1, None] + s * dl + c * dw
    return out


def sample_size(rng: np.random.Generator, cls: AgentClass, kind: str | None = None) -> tuple[float, float]:
    """Random box (length, width) [m] for an agent class (vehicles: ``kind`` from :data:`VEHICLE_KINDS` or random)."""
    if cls == AgentClass.VEHICLE:
        kind = kind or _KIND_NAMES[int(np.searchsorted(_VEHICLE_CDF, rng.random(), side="right"))]
        (l0, l1), (w0, w1) = VEHICLE_KINDS[kind]
    else:
        (l0, l1), (w0, w1) = _CLASS_SIZES[AgentClass(cls)]
    return float(rng.uniform(l0, l1)), float(rng.uniform(w0, w1))


@dataclass(frozen=True, eq=False)
class Actor:
    """A non-ego agent: a box moving along ``path`` (box-centre poses ``(T, 3)`` [m, m, rad], world frame).

    Attributes:
        cls: agent class.
        length, width: box size [m].
        path: the path it follows.
        s: ``(T,)`` arc length along ``path`` [m] (constant for parked agents).
        lateral: ``(T,)`` left offset from ``path`` [m] (lane changes), or None.
        role: ``"risk"`` (the agent the ego hits), ``"prop"`` (scenario furniture such as an occluder),
            ``"lead"`` or ``"background"``.
    """

    cls: AgentClass
    length: float
    width: float
    path: Path
    s: np.ndarray
    lateral: np.ndarray | None = None
    role: str = "background"

    @cached_property
    def poses(self) -> np.ndarray:
        """``(T, 3)`` box-centre poses [m, m, rad]."""
        return track_poses(self.path, self.s, self.lateral)

    def corners(self, margin: float = 0.0) -> np.ndarray:
        """``(T, 4, 2)`` box corners [m], each side pushed out by ``margin`` [m]."""
        return corners_of(self.poses, self.length + 2 * margin, self.width + 2 * margin)

    def braked_after(self, frame: int, decel: float) -> "Actor":
        """The same agent braking at ``decel`` [m/s^2] to a stop after ``frame`` (see :func:`brake_after`)."""
        return replace(self, s=brake_after(self.s, frame, decel))


@dataclass(frozen=True, eq=False)
class EgoTrack:
    """The ego's log: its rear axle moves along ``path`` with arc length ``s (T,)`` [m] and ``lateral (T,)`` [m]."""

    path: Path
    s: np.ndarray
    lateral: np.ndarray | None = None
    params: VehicleParameters = NAVSIM_EGO

    @cached_property
    def poses(self) -> np.ndarray:
        """``(T, 3)`` rear-axle poses [m, m, rad]."""
        return track_poses(self.path, self.s, self.lateral)

    @cached_property
    def centres(self) -> np.ndarray:
        """``(T, 3)`` box-centre poses [m, m, rad]."""
        return rear_axle_to_center(self.poses, self.params)

    def corners(self, margin: float = 0.0) -> np.ndarray:
        """``(T, 4, 2)`` ego box corners [m], each side pushed out by ``margin`` [m]."""
        return corners_of(self.centres, self.params.length + 2 * margin, self.params.width + 2 * margin)

    def braked_after(self, frame: int, decel: float) -> "EgoTrack":
        """The ego braking at ``decel`` [m/s^2] to a stop after ``frame``, on the same path."""
        return replace(self, s=brake_after(self.s, frame, decel))

    def steered_back(self, frame: int, duration: float) -> "EgoTrack":
        """The ego returning its lateral offset to 0 over ``duration`` [s] after ``frame`` (same speed profile)."""
        if self.lateral is None:
            return self
        t = (np.arange(len(self.s)) - frame) * DT
        lat = np.where(t <= 0, self.lateral, self.lateral[frame] * (1.0 - smoothstep(t / duration)))
        return replace(self, lateral=lat)


def first_overlap(corners_a: np.ndarray, corners_b: np.ndarray) -> int | None:
    """First frame at which the box tracks ``(T, 4, 2)`` overlap (strictly), or None."""
    hit = np.flatnonzero(boxes_overlap(corners_a, corners_b))
    return int(hit[0]) if len(hit) else None


class Occupancy:
    """Box tracks already placed in a scene, to keep new agents clear of them."""

    def __init__(self) -> None:
        self._corners: list[np.ndarray] = []
        self._centres: list[np.ndarray] = []
        self._radii: list[float] = []
        self._stacked: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def add(self, corners: np.ndarray) -> None:
        """Add an (inflated) box track ``(T, 4, 2)`` [m]."""
        corners = np.asarray(corners, dtype=np.float64)
        centre = 0.5 * (corners[:, 0] + corners[:, 2])  # midpoint of a diagonal
        self._corners.append(corners)
        self._centres.append(centre)
        self._radii.append(float(np.linalg.norm(corners[0, 0] - centre[0])))
        self._stacked = None

    def collides(self, corners: np.ndarray) -> bool:
        """True if the box track ``(T, 4, 2)`` overlaps any stored track at the same frame."""
        if not self._corners:
            return False
        if self._stacked is None:
            self._stacked = (np.stack(self._corners), np.stack(self._centres), np.array(self._radii))
        stack, centres, radii = self._stacked
        centre = 0.5 * (corners[:, 0] + corners[:, 2])
        radius = float(np.linalg.norm(corners[0, 0] - centre[0]))
        diff = centres - centre[None]
        near = diff[..., 0] ** 2 + diff[..., 1] ** 2 < ((radii + radius) ** 2)[:, None]  # (M, T) bounding circles
        if not near.any():
            return False
        m, t = np.nonzero(near)
        return bool(boxes_overlap(stack[m, t], corners[t]).any())
