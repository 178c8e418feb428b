"""Inputs and outputs of the scorer: arrays and geometry only (no Scene, no env, no torch).

``envs.sim.scoring.problem_from_scene(scene, t)`` builds a :class:`ScoringProblem` from a scene; anything else that can
fill these arrays (a CARLA world, a test) can call the scorer directly.

**Frozen inputs.** :class:`EgoState`, :class:`AgentsFuture` and :class:`MapGeometry` keep read-only arrays that they
own: an array given to them is copied (after the dtype / shape / finiteness checks) and its copy made read-only, so
the caller can edit or reuse its own array afterwards without changing a problem the scorer has seen (the scorer
caches per problem object: object boxes, map index, reference). An array that is already read-only and not a view
of a writeable array is kept as is (no copy), so ``dataclasses.replace(problem, ego=...)`` and rebuilding from
frozen parts stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rewards.geometry import NAVSIM_EGO, VehicleParameters


def _is_frozen(arr: np.ndarray) -> bool:
    """True when nobody can write ``arr``'s data through numpy: ``arr`` and every array it is a view of are
    read-only, and the chain ends in no buffer or in an immutable one (``bytes``)."""
    base: Any = arr
    while isinstance(base, np.ndarray):
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def _freeze(arr: np.ndarray, value: Any) -> np.ndarray:
    """``arr`` (= ``np.asarray(value, ...)``) as a read-only array no other array can write: ``arr`` itself when it
    already is one (:func:`_is_frozen`); a fresh array from a conversion (owning its data, not ``value``) made
    read-only in place; otherwise a read-only copy."""
    if _is_frozen(arr):
        return arr
    if arr is value or not arr.flags.owndata:
        arr = arr.copy()
    arr.setflags(write=False)
    return arr


def _checked(name: str, value: Any, shape: tuple[int | None, ...], dtype: Any = np.float64) -> np.ndarray:
    """Read-only array (:func:`_freeze`) of ``dtype`` with ``shape`` (``None``: any), finite if floating;
    ``ValueError`` naming ``name``."""
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != shape and (arr.ndim != len(shape)
                               or any(s is not None and s != a for s, a in zip(shape, arr.shape))):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf (shape {arr.shape})")
    return _freeze(arr, value)


def checked_group(name: str, value: Any, tail: tuple[int, ...]) -> np.ndarray:
    """A candidate group as float64 ``(G, *tail)`` with ``G >= 1`` and finite values; otherwise a ``ValueError``
    naming ``name`` and the shape (and the first non-finite index). Shared by the tracker (candidates
    ``(G, 8, 3)``) and both scorers (simulated states ``(G, 41, 7)``)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to a float array ({exc})") from None
    if arr.ndim != 1 + len(tail) or arr.shape[1:] != tuple(tail):
        want = "(G, " + ", ".join(str(n) for n in tail) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: G must be >= 1 (the group is empty), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name}: contains NaN or inf (shape {arr.shape}, first at index {bad})")
    return arr


@dataclass(frozen=True, eq=False)
class EgoState:
    """Ego state at the decision time.

    Attributes:
        pose: ``(3,)`` rear-axle pose, world frame [m, m, rad]; the ego frame of the candidates.
        velocity: ``(2,)`` rear-axle velocity in the ego body frame (longitudinal, lateral) [m/s].
        acceleration: ``(2,)`` acceleration in the body frame [m/s^2].
        params: ego geometry.
        steering_angle: tire steering angle [rad] the tracker starts from (:mod:`rewards.tracking`). NAVSIM starts
            from the logged tire steering angle; our sources have none, so it defaults to 0 (straight wheels). A
            closed loop that re-plans carries it across re-plans (:func:`envs.sim.simulation.simulate_prefix`)
            and starts an episode from the logged path's steering (``EnvConfig.start_steering``, default ``"log"``:
            :func:`envs.sim.scoring.logged_steering_angle`); the scorer's state of a logged frame keeps 0.
    """

    pose: np.ndarray
    velocity: np.ndarray
    acceleration: np.ndarray = field(default_factory=lambda: np.zeros(2))
    params: VehicleParameters = NAVSIM_EGO
    steering_angle: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "pose", _checked("EgoState.pose", self.pose, (3,)))
        object.__setattr__(self, "velocity", _checked("EgoState.velocity", self.velocity, (2,)))
        object.__setattr__(self, "acceleration", _checked("EgoState.acceleration", self.acceleration, (2,)))
        object.__setattr__(self, "steering_angle", float(_checked("EgoState.steering_angle", self.steering_angle, ())))


@dataclass(frozen=True, eq=False)
class AgentsFuture:
    """Other objects' logged boxes over the scoring window (non-reactive, as in NAVSIM), world frame.

    ``S`` steps at the scorer's ``sim_dt`` starting at the decision time (``PDMConfig.num_observation_steps``:
    41 states of the horizon plus 9 more for the TTC projection).

    Attributes:
        ids: ``(N,)`` int64 object ids.
        is_static: ``(N,)`` bool, True for static objects (cones, barriers): NC 0.5 when hit at fault.
        sizes: ``(N, 2)`` box length, width [m].
        poses: ``(N, S, 3)`` box-centre poses [m, m, rad].
        velocities: ``(N, S, 2)`` world-frame velocities [m/s].
        valid: ``(N, S)`` bool; invalid entries are ignored.
    """

    ids: np.ndarray
    is_static: np.ndarray
    sizes: np.ndarray
    poses: np.ndarray
    velocities: np.ndarray
    valid: np.ndarray

    def __post_init__(self) -> None:
        ids = _checked("AgentsFuture.ids", self.ids, (None,), np.int64)
        n = len(ids)
        poses = _checked("AgentsFuture.poses", self.poses, (n, None, 3))
        s = poses.shape[1]
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "is_static", _checked("AgentsFuture.is_static", self.is_static, (n,), bool))
        object.__setattr__(self, "sizes", _checked("AgentsFuture.sizes", self.sizes, (n, 2)))
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "velocities", _checked("AgentsFuture.velocities", self.velocities, (n, s, 2)))
        object.__setattr__(self, "valid", _checked("AgentsFuture.valid", self.valid, (n, s), bool))

    @property
    def num_agents(self) -> int:
        """N."""
        return int(self.ids.shape[0])

    @property
    def num_steps(self) -> int:
        """S."""
        return int(self.poses.shape[1])


@dataclass(frozen=True, eq=False)
class MapGeometry:
    """Map polygons the scorer needs, world frame [m].

    Attributes:
        drivable_areas: polygons ``(P_i, 2)`` whose union is the drivable area.
        lane_polygons: polygons ``(P_i, 2)`` of lanes and lane connectors.
        lane_ids: ``(L,)`` ids of ``lane_polygons``.
        route_lane_ids: ids of the on-route lanes.
        route: ``(R, 2)`` route centreline in driving order (progress is measured along it).
        intersections: polygons ``(P_i, 2)`` of junction areas.
        speed_limit: route speed limit [m/s] (for the reference planner).
    """

    drivable_areas: tuple[np.ndarray, ...]
    lane_polygons: tuple[np.ndarray, ...]
    lane_ids: np.ndarray
    route_lane_ids: tuple[int, ...]
    route: np.ndarray
    intersections: tuple[np.ndarray, ...] = ()
    speed_limit: float = 13.89

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "drivable_areas",
            tuple(_checked(f"MapGeometry.drivable_areas[{i}]", p, (None, 2)) for i, p in enumerate(self.drivable_areas)),
        )
        lanes = tuple(_checked(f"MapGeometry.lane_polygons[{i}]", p, (None, 2)) for i, p in enumerate(self.lane_polygons))
        object.__setattr__(self, "lane_polygons", lanes)
        object.__setattr__(self, "lane_ids", _checked("MapGeometry.lane_ids", self.lane_ids, (len(lanes),), np.int64))
        object.__setattr__(self, "route_lane_ids", tuple(int(i) for i in self.route_lane_ids))
        object.__setattr__(self, "route", _checked("MapGeometry.route", self.route, (None, 2)))
        object.__setattr__(
            self,
            "intersections",
            tuple(_checked(f"MapGeometry.intersections[{i}]", p, (None, 2)) for i, p in enumerate(self.intersections)),
        )


@dataclass(frozen=True, eq=False)
class ScoringProblem:
    """Everything the scorer needs about one decision time, independent of the candidates.

    Attributes:
        ego: ego state at the decision time.
        agents: other objects' logged future boxes.
        map: map geometry, or None (then DAC, DDC, EP and PDMS are reported as unavailable: NaN).
        scene_id: for error messages and caching only.
        time_index: decision frame in the source scene, for error messages only.
    """

    ego: EgoState
    agents: AgentsFuture
    map: MapGeometry | None
    scene_id: str = ""
    time_index: int = 0
