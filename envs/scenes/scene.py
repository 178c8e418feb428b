"""The one scene type: a time-indexed driving log at a fixed step, with map and meta data.

Every source (the built-in synthetic bank, DeepAccident folders, CARLA recordings, closed-loop rollouts) produces a
:class:`Scene`; every consumer (renderer, environments, scorer adapters, miner) reads one.

Frames and units
----------------
* World frame: right-handed, x east, y north, yaw counter-clockwise from +x [m, m, rad].
* Ego poses are **rear-axle** poses (NAVSIM convention); the ego box centre is ``ego_params.rear_axle_to_center``
  ahead along the heading. The *ego frame at time t* is the rear-axle frame at frame ``t``.
* Agent poses are **box-centre** poses.
* Velocities are world-frame ``(vx, vy)`` [m/s].
* ``dt`` is the log step [s] (10 Hz: 0.1 s).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from rewards.geometry import (
    NAVSIM_EGO,
    VehicleParameters,
    drop_collinear_vertices,
    local_to_world,
    offset_polyline,
    rear_axle_to_center,
    world_to_local,
)

SOURCES = ("synthetic", "deepaccident", "carla", "rollout")
"""Known scene sources. ``synthetic`` marks procedurally generated data everywhere it appears."""


class SceneValidationError(ValueError):
    """A scene field has the wrong shape, dtype or value. The message names the field."""


class AgentClass(enum.IntEnum):
    """Agent classes (stored as ``int8`` codes in :attr:`Scene.agent_classes`)."""

    VEHICLE = 0
    PEDESTRIAN = 1
    CYCLIST = 2
    STATIC = 3

    @classmethod
    def parse(cls, name: str) -> "AgentClass":
        """Class from its lower-case name (``"vehicle"``, ``"pedestrian"``, ``"cyclist"``, ``"static"``)."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown agent class {name!r}; expected one of {[c.name.lower() for c in cls]}") from None


class TrafficLightState(enum.IntEnum):
    """Traffic-light states (stored as ``uint8`` codes)."""

    UNKNOWN = 0
    GREEN = 1
    YELLOW = 2
    RED = 3


def _array(name: str, value: Any, dtype: Any, shape: tuple[int | None, ...]) -> np.ndarray:
    """Convert ``value`` to a read-only array of ``dtype`` and check its shape (``None``: any size)."""
    try:
        arr = np.array(value, dtype=dtype, copy=True)
    except (TypeError, ValueError) as exc:
        raise SceneValidationError(f"{name}: cannot convert to {np.dtype(dtype).name} array ({exc})") from None
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise SceneValidationError(f"{name}: expected shape {want}, got {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise SceneValidationError(f"{name}: non-finite value (NaN/inf) at index {tuple(int(i) for i in bad)}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Lane:
    """A lane (or a lane connector inside a junction) [world frame].

    Attributes:
        lane_id: stable integer id.
        centerline: ``(K, 2)`` [m], ordered in the driving direction, K >= 2.
        width: lane width [m].
        in_intersection: True for lane connectors inside a junction.
        speed_limit: [m/s].
        polygon: ``(P, 2)`` [m], left boundary then the right boundary reversed; derived from centerline and width
            when not given (then without exactly collinear vertices, see
            :func:`rewards.geometry.drop_collinear_vertices`: a straight lane sampled every metre gives a 4-vertex
            polygon, which keeps map triangulations free of needle triangles; the centerline keeps every point).
    """

    lane_id: int
    centerline: np.ndarray
    width: float = 3.5
    in_intersection: bool = False
    speed_limit: float = 13.89
    polygon: np.ndarray | None = None

    def __post_init__(self) -> None:
        name = f"Lane[{self.lane_id}]"
        cl = _array(f"{name}.centerline", self.centerline, np.float64, (None, 2))
        if len(cl) < 2:
            raise SceneValidationError(f"{name}.centerline: needs at least 2 points, got {len(cl)}")
        if np.any(np.linalg.norm(np.diff(cl, axis=0), axis=1) <= 1e-9):
            raise SceneValidationError(f"{name}.centerline: repeated consecutive points")
        if not (np.isfinite(self.width) and self.width > 0):
            raise SceneValidationError(f"{name}.width: must be positive, got {self.width!r}")
        if not (np.isfinite(self.speed_limit) and self.speed_limit > 0):
            raise SceneValidationError(f"{name}.speed_limit: must be positive, got {self.speed_limit!r}")
        object.__setattr__(self, "centerline", cl)
        if self.polygon is None:
            left = offset_polyline(cl, 0.5 * self.width)
            right = offset_polyline(cl, -0.5 * self.width)
            poly = drop_collinear_vertices(np.concatenate([left, right[::-1]], axis=0))
        else:
            poly = self.polygon
        object.__setattr__(self, "polygon", _array(f"{name}.polygon", poly, np.float64, (None, 2)))


@dataclass(frozen=True, eq=False)
class TrafficLight:
    """A signal controlling one lane: its stop point and its state per frame.

    Attributes:
        lane_id: the controlled lane (the lane connector entering the junction).
        stop_point: ``(2,)`` [m] world position of the stop line centre.
        states: ``(T,)`` ``uint8`` :class:`TrafficLightState` codes, one per scene frame.
    """

    lane_id: int
    stop_point: np.ndarray
    states: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "stop_point", _array("TrafficLight.stop_point", self.stop_point, np.float64, (2,)))
        states = _array("TrafficLight.states", self.states, np.uint8, (None,))
        if np.any(states > max(TrafficLightState)):
            raise SceneValidationError(f"TrafficLight.states: unknown state code {int(states.max())}")
        object.__setattr__(self, "states", states)


@dataclass(frozen=True, eq=False)
class SceneMap:
    """Road geometry of a scene [world frame].

    Attributes:
        drivable_areas: polygons ``(P_i, 2)`` [m] whose union is the drivable area (roads, junctions).
        lanes: lanes and lane connectors.
        route_lane_ids: ids of the on-route lanes: every lane of the road segments the route passes (NAVSIM's
            definition: all lanes of the route's roadblocks, parallel same-direction lanes included; the scorer's
            DDC / ``oncoming`` test uses them).
        route: ``(R, 2)`` [m] the ego route centreline, in driving order (used for progress and commands).
        intersections: polygons ``(P_i, 2)`` [m] of junction areas.
        traffic_lights: signals, where known.
    """

    drivable_areas: tuple[np.ndarray, ...]
    lanes: tuple[Lane, ...]
    route_lane_ids: tuple[int, ...]
    route: np.ndarray
    intersections: tuple[np.ndarray, ...] = ()
    traffic_lights: tuple[TrafficLight, ...] = ()

    def __post_init__(self) -> None:
        polys = tuple(
            _array(f"SceneMap.drivable_areas[{i}]", p, np.float64, (None, 2)) for i, p in enumerate(self.drivable_areas)
        )
        if not polys:
            raise SceneValidationError("SceneMap.drivable_areas: at least one polygon is required")
        for i, p in enumerate(polys):
            if len(p) < 3:
                raise SceneValidationError(f"SceneMap.drivable_areas[{i}]: a polygon needs >= 3 points, got {len(p)}")
        inters = tuple(
            _array(f"SceneMap.intersections[{i}]", p, np.float64, (None, 2)) for i, p in enumerate(self.intersections)
        )
        lanes = tuple(self.lanes)
        for i, lane in enumerate(lanes):
            if not isinstance(lane, Lane):
                raise SceneValidationError(f"SceneMap.lanes[{i}]: expected Lane, got {type(lane).__name__}")
        ids = [lane.lane_id for lane in lanes]
        if len(set(ids)) != len(ids):
            raise SceneValidationError("SceneMap.lanes: duplicate lane ids")
        route_ids = tuple(int(i) for i in self.route_lane_ids)
        unknown = sorted(set(route_ids) - set(ids))
        if unknown:
            raise SceneValidationError(f"SceneMap.route_lane_ids: ids {unknown} are not lanes of this map")
        route = _array("SceneMap.route", self.route, np.float64, (None, 2))
        if len(route) < 2:
            raise SceneValidationError(f"SceneMap.route: needs at least 2 points, got {len(route)}")
        lights = tuple(self.traffic_lights)
        for i, light in enumerate(lights):
            if light.lane_id not in ids:
                raise SceneValidationError(f"SceneMap.traffic_lights[{i}].lane_id: {light.lane_id} is not a lane")
        object.__setattr__(self, "drivable_areas", polys)
        object.__setattr__(self, "intersections", inters)
        object.__setattr__(self, "lanes", lanes)
        object.__setattr__(self, "route_lane_ids", route_ids)
        object.__setattr__(self, "route", route)
        object.__setattr__(self, "traffic_lights", lights)

    def lane(self, lane_id: int) -> Lane:
        """The lane with ``lane_id`` (``KeyError`` naming the id if absent)."""
        for lane in self.lanes:
            if lane.lane_id == lane_id:
                return lane
        raise KeyError(f"no lane with id {lane_id}")


@dataclass(frozen=True, eq=False)
class SceneMeta:
    """Facts about a scene's origin.

    Attributes:
        source: one of :data:`SOURCES` (``"synthetic"`` for the built-in bank).
        scenario_type: e.g. ``"rear_end"``, ``"cut_in"``, ``"normal"``, or DeepAccident's folder name.
        colliding_agent_id: id of the agent the ego collides with in the log, where known.
        collision_frame: frame index of the first contact in the log, where known.
        extra: free-form facts (seed, town, weather, raw accident tokens, ...), read-only.
    """

    source: str
    scenario_type: str
    colliding_agent_id: int | None = None
    collision_frame: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise SceneValidationError(f"SceneMeta.source: unknown source {self.source!r}; expected one of {SOURCES}")
        if not isinstance(self.scenario_type, str) or not self.scenario_type:
            raise SceneValidationError(f"SceneMeta.scenario_type: must be a non-empty string, got {self.scenario_type!r}")
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def is_accident(self) -> bool:
        """True when the log records a collision of the ego."""
        return self.collision_frame is not None


@dataclass(frozen=True, eq=False)
class Scene:
    """A time-indexed scene of ``T`` frames with ``N`` other agents (arrays are validated and read-only).

    Attributes:
        scene_id: unique id, e.g. ``"synthetic/rear_end/s0-000017"``.
        dt: log step [s].
        ego_poses: ``(T, 3)`` rear-axle poses, world frame [m, m, rad].
        ego_velocities: ``(T, 2)`` world-frame velocity [m/s].
        agent_ids: ``(N,)`` ``int64`` stable ids.
        agent_classes: ``(N,)`` ``int8`` :class:`AgentClass` codes.
        agent_sizes: ``(N, 2)`` box length, width [m].
        agent_poses: ``(N, T, 3)`` box-centre poses, world frame [m, m, rad].
        agent_velocities: ``(N, T, 2)`` world-frame velocities [m/s].
        agent_valid: ``(N, T)`` bool, False where the agent is not observed (its pose there is meaningless).
        map: road geometry, or None when the source has no map (DeepAccident).
        meta: source, scenario type and accident facts.
        ego_params: ego geometry (defaults to NAVSIM's Pacifica).
    """

    scene_id: str
    dt: float
    ego_poses: np.ndarray
    ego_velocities: np.ndarray
    agent_ids: np.ndarray
    agent_classes: np.ndarray
    agent_sizes: np.ndarray
    agent_poses: np.ndarray
    agent_velocities: np.ndarray
    agent_valid: np.ndarray
    map: SceneMap | None
    meta: SceneMeta
    ego_params: VehicleParameters = NAVSIM_EGO

    def __post_init__(self) -> None:
        if not isinstance(self.scene_id, str) or not self.scene_id:
            raise SceneValidationError(f"scene_id: must be a non-empty string, got {self.scene_id!r}")
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise SceneValidationError(f"dt: must be a positive number of seconds, got {self.dt!r}")
        ego = _array("ego_poses", self.ego_poses, np.float64, (None, 3))
        T = len(ego)
        if T < 1:
            raise SceneValidationError("ego_poses: a scene needs at least one frame")
        ego_v = _array("ego_velocities", self.ego_velocities, np.float64, (T, 2))
        ids = _array("agent_ids", self.agent_ids, np.int64, (None,))
        N = len(ids)
        if len(np.unique(ids)) != N:
            raise SceneValidationError("agent_ids: ids must be unique")
        classes = _array("agent_classes", self.agent_classes, np.int64, (N,))
        known = {int(c) for c in AgentClass}
        bad = [int(c) for c in classes if int(c) not in known]
        if bad:
            raise SceneValidationError(f"agent_classes: unknown class code {bad[0]}; known: {sorted(known)}")
        classes = _array("agent_classes", classes, np.int8, (N,))
        sizes = _array("agent_sizes", self.agent_sizes, np.float64, (N, 2))
        if np.any(sizes <= 0):
            raise SceneValidationError(f"agent_sizes: must be positive, got min {sizes.min()}")
        poses = _array("agent_poses", self.agent_poses, np.float64, (N, T, 3))
        vels = _array("agent_velocities", self.agent_velocities, np.float64, (N, T, 2))
        valid = _array("agent_valid", self.agent_valid, np.bool_, (N, T))
        if not isinstance(self.meta, SceneMeta):
            raise SceneValidationError(f"meta: expected SceneMeta, got {type(self.meta).__name__}")
        if self.map is not None and not isinstance(self.map, SceneMap):
            raise SceneValidationError(f"map: expected SceneMap or None, got {type(self.map).__name__}")
        if self.map is not None:
            for i, light in enumerate(self.map.traffic_lights):
                if len(light.states) != T:
                    raise SceneValidationError(
                        f"map.traffic_lights[{i}].states: expected {T} frames, got {len(light.states)}"
                    )
        m = self.meta
        if m.collision_frame is not None and not (0 <= m.collision_frame < T):
            raise SceneValidationError(f"meta.collision_frame: {m.collision_frame} is outside [0, {T})")
        if m.colliding_agent_id is not None and m.colliding_agent_id not in set(ids.tolist()):
            raise SceneValidationError(f"meta.colliding_agent_id: {m.colliding_agent_id} is not in agent_ids")
        for name, value in (
            ("ego_poses", ego),
            ("ego_velocities", ego_v),
            ("agent_ids", ids),
            ("agent_classes", classes),
            ("agent_sizes", sizes),
            ("agent_poses", poses),
            ("agent_velocities", vels),
            ("agent_valid", valid),
        ):
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ sizes
    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.ego_poses.shape[0])

    @property
    def num_agents(self) -> int:
        """N, the number of other agents."""
        return int(self.agent_ids.shape[0])

    @property
    def duration(self) -> float:
        """Time span of the log [s]."""
        return (self.num_frames - 1) * self.dt

    @property
    def ego_speeds(self) -> np.ndarray:
        """``(T,)`` ego speed [m/s]."""
        return np.linalg.norm(self.ego_velocities, axis=-1)

    def agent_index(self, agent_id: int) -> int:
        """Row of ``agent_id`` in the agent arrays (``KeyError`` naming the id if absent)."""
        hits = np.flatnonzero(self.agent_ids == agent_id)
        if len(hits) == 0:
            raise KeyError(f"scene {self.scene_id}: no agent with id {agent_id}")
        return int(hits[0])

    def _check_frame(self, t: int) -> int:
        if not (0 <= int(t) < self.num_frames):
            raise IndexError(f"scene {self.scene_id}: frame {t} outside [0, {self.num_frames})")
        return int(t)

    # ------------------------------------------------------------------ frames
    def ego_pose(self, t: int) -> np.ndarray:
        """``(3,)`` ego rear-axle pose at frame ``t``, world frame."""
        return self.ego_poses[self._check_frame(t)].copy()

    def ego_box_centers(self) -> np.ndarray:
        """``(T, 3)`` ego box-centre poses, world frame."""
        return rear_axle_to_center(self.ego_poses, self.ego_params)

    def world_to_ego(self, values: np.ndarray, t: int) -> np.ndarray:
        """World-frame points ``(..., 2)`` or poses ``(..., 3)`` into the ego frame at frame ``t``."""
        return world_to_local(values, self.ego_poses[self._check_frame(t)])

    def ego_to_world(self, values: np.ndarray, t: int) -> np.ndarray:
        """Ego-frame (at frame ``t``) points ``(..., 2)`` or poses ``(..., 3)`` into the world frame."""
        return local_to_world(values, self.ego_poses[self._check_frame(t)])

    def velocities_to_ego(self, velocities: np.ndarray, t: int) -> np.ndarray:
        """World-frame velocity vectors ``(..., 2)`` rotated into the ego frame at frame ``t``."""
        yaw = self.ego_poses[self._check_frame(t), 2]
        c, s = np.cos(yaw), np.sin(yaw)
        v = np.asarray(velocities, dtype=np.float64)
        return np.stack([c * v[..., 0] + s * v[..., 1], -s * v[..., 0] + c * v[..., 1]], axis=-1)

    def __repr__(self) -> str:
        return (
            f"Scene(id={self.scene_id!r}, source={self.meta.source!r}, type={self.meta.scenario_type!r}, "
            f"T={self.num_frames}, N={self.num_agents}, dt={self.dt}, map={'yes' if self.map else 'no'}, "
            f"collision_frame={self.meta.collision_frame})"
        )


def designated_hazard(scene: Scene) -> int | None:
    """Id of the scene's designated hazard agent (``meta.extra["hazard_agent_id"]`` of the outcome-varied bank, else
    ``meta.colliding_agent_id``) where the log observes it at some frame; None otherwise (normal scenes, logs without
    one). From the scene's meta data (its kind), never from a label: what the scenario says the hazard is, which a
    policy cannot see (an observation built from it is privileged, :func:`envs.prompt_state.hazard_state`)."""
    extra = scene.meta.extra or {}
    hazard = extra.get("hazard_agent_id", scene.meta.colliding_agent_id)
    if hazard is None:
        return None
    rows = np.flatnonzero(np.asarray(scene.agent_ids) == hazard)
    return int(hazard) if len(rows) and scene.agent_valid[rows[0]].any() else None
