"""The stand-in's road maps: ``carla.Map`` / ``Waypoint`` / ``Junction`` built from the synthetic bank layouts.

A stand-in town is one layout of :mod:`envs.scenes.layouts` (``"Standin_<layout>"``, e.g. ``"Standin_junction_2x2"``),
converted into CARLA's **left-handed** frame (``y -> -y``, yaw ``-> -yaw``, yaw in degrees), so the code under test
reads it exactly as it reads a real town and must mirror it back. OpenDRIVE-like ids are derived from the geometry:
parallel lanes (either direction) form one road (``road_id``), lanes driving along the road's first lane have
``lane_id`` -1, -2, ... (outwards), the others +1, +2, ...; every junction connector is a road of its own in
junction ``JUNCTION_ID`` (``section_id`` is always 0). Successors are lanes whose start meets a lane's end.

Semantics follow ``carla.Waypoint``: ``next(d)`` / ``previous(d)`` return every waypoint ``d`` metres along the lane
graph (several at a fork), ``get_left_lane`` / ``get_right_lane`` the parallel lane on that side in either direction
(None beyond the road edge: layouts have no shoulder or sidewalk lanes), ``lane_change`` the allowed changes,
``transform`` the lane centre at ``s`` facing the driving direction. Not modelled: elevation, lane types other than
``Driving``, landmarks.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from envs.carla.standin.enums import LaneChange, LaneMarkingColor, LaneMarkingType, LaneType
from envs.carla.standin.values import value_types
from envs.scenes.layouts import LAYOUT_NAMES, get_layout

TOWN_PREFIX = "Standin_"
"""Stand-in town names are ``TOWN_PREFIX + layout name``."""
STANDIN_TOWNS = tuple(TOWN_PREFIX + name for name in LAYOUT_NAMES)
"""Every stand-in town (one per bank layout)."""
JUNCTION_ID = 1000
"""Junction id of the junction layouts' intersection."""
_CONNECT_TOL = 0.3
"""Max distance between a lane's end and a successor's start [m]."""


def _v():
    return value_types()


@dataclass
class _Lane:
    """One lane in the left-handed frame: centreline ``points (K, 2)`` [m], arc length ``s (K,)``, segment yaws
    ``yaw (K-1,)`` [rad, left-handed]."""

    index: int
    name: str
    points: np.ndarray
    s: np.ndarray
    yaw: np.ndarray
    width: float
    in_junction: bool
    speed_limit: float
    road_id: int = 0
    lane_id: int = -1
    successors: list[int] = field(default_factory=list)
    predecessors: list[int] = field(default_factory=list)

    @property
    def length(self) -> float:
        return float(self.s[-1])

    def at(self, s: float) -> tuple[float, float, float]:
        """``(x, y, yaw)`` [m, m, rad] at arc length ``s`` (clamped)."""
        s = min(max(s, 0.0), self.length)
        x = float(np.interp(s, self.s, self.points[:, 0]))
        y = float(np.interp(s, self.s, self.points[:, 1]))
        k = int(np.clip(np.searchsorted(self.s, s, side="right") - 1, 0, len(self.yaw) - 1))
        return x, y, float(self.yaw[k])

    def project(self, xy: np.ndarray) -> tuple[float, float]:
        """``(s, distance)`` of the closest centreline point to ``xy (2,)``."""
        a, b = self.points[:-1], self.points[1:]
        ab = b - a
        u = np.clip(np.sum((xy - a) * ab, axis=1) / np.maximum(np.sum(ab * ab, axis=1), 1e-12), 0.0, 1.0)
        d2 = np.sum((a + u[:, None] * ab - xy) ** 2, axis=1)
        i = int(np.argmin(d2))
        return float(self.s[i] + u[i] * (self.s[i + 1] - self.s[i])), float(math.sqrt(d2[i]))


class LaneMarking:
    """``carla.LaneMarking``: type, colour, allowed lane change across it, width [m]."""

    def __init__(self, type: LaneMarkingType, color: LaneMarkingColor, lane_change: LaneChange,  # noqa: A002
                 width: float = 0.15) -> None:
        self.type, self.color, self.lane_change, self.width = type, color, lane_change, width

    def __repr__(self) -> str:
        return f"LaneMarking(type={self.type.name}, color={self.color.name}, lane_change={self.lane_change!r})"


class Junction:
    """``carla.Junction``: ``id``, ``bounding_box`` (world frame) and its connector lanes."""

    def __init__(self, town: "Map", junction_id: int) -> None:
        self._town, self.id = town, junction_id
        V = _v()
        pts = np.concatenate([town._lanes[i].points for i in town._junction_lanes])
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        centre = 0.5 * (lo + hi)
        self.bounding_box = V["BoundingBox"](V["Location"](float(centre[0]), float(centre[1]), 0.0),
                                             V["Vector3D"](float(0.5 * (hi - lo)[0]), float(0.5 * (hi - lo)[1]), 2.0))

    def get_waypoints(self, lane_type: LaneType = LaneType.Driving) -> list[tuple["Waypoint", "Waypoint"]]:
        """``[(entry, exit), ...]`` of every connector lane of the junction (driving lanes only)."""
        if not (int(lane_type) & int(LaneType.Driving)) and lane_type != LaneType.Any:
            return []
        out = []
        for i in self._town._junction_lanes:
            lane = self._town._lanes[i]
            out.append((Waypoint(self._town, i, 0.0), Waypoint(self._town, i, lane.length)))
        return out


class Waypoint:
    """``carla.Waypoint``: a point on a lane's centreline (see the module docstring)."""

    def __init__(self, town: "Map", lane: int, s: float) -> None:
        self._town, self._lane = town, lane
        self.s = float(min(max(s, 0.0), town._lanes[lane].length))

    # ------------------------------------------------------------------ properties
    @property
    def _l(self) -> _Lane:
        return self._town._lanes[self._lane]

    @property
    def id(self) -> int:
        return hash((self._town.name, self._lane, round(self.s, 2))) & 0x7FFFFFFFFFFFFFFF

    @property
    def transform(self):
        V = _v()
        x, y, yaw = self._l.at(self.s)
        return V["Transform"](V["Location"](x, y, 0.0), V["Rotation"](0.0, math.degrees(yaw), 0.0))

    @property
    def road_id(self) -> int:
        return self._l.road_id

    @property
    def section_id(self) -> int:
        return 0

    @property
    def lane_id(self) -> int:
        return self._l.lane_id

    @property
    def is_junction(self) -> bool:
        return self._l.in_junction

    @property
    def junction_id(self) -> int:
        return JUNCTION_ID if self._l.in_junction else -1

    @property
    def lane_width(self) -> float:
        return self._l.width

    @property
    def lane_type(self) -> LaneType:
        return LaneType.Driving

    @property
    def lane_change(self) -> LaneChange:
        if self._l.in_junction:
            return LaneChange.NONE
        flags = LaneChange.NONE
        left, right = self._neighbour(-1.0), self._neighbour(1.0)
        if left is not None and left[1]:
            flags |= LaneChange.Left
        if right is not None and right[1]:
            flags |= LaneChange.Right
        return flags

    @property
    def left_lane_marking(self) -> LaneMarking:
        return self._marking(-1.0)

    @property
    def right_lane_marking(self) -> LaneMarking:
        return self._marking(1.0)

    # ------------------------------------------------------------------ navigation
    def next(self, distance: float) -> list["Waypoint"]:
        """Waypoints ``distance`` [m] ahead (one per branch at forks)."""
        if distance <= 0:
            raise ValueError(f"Waypoint.next: distance must be > 0, got {distance}")
        return self._walk(self._lane, self.s + distance, forward=True, depth=0)

    def previous(self, distance: float) -> list["Waypoint"]:
        """Waypoints ``distance`` [m] behind (one per incoming branch)."""
        if distance <= 0:
            raise ValueError(f"Waypoint.previous: distance must be > 0, got {distance}")
        return self._walk(self._lane, self.s - distance, forward=False, depth=0)

    def next_until_lane_end(self, distance: float) -> list["Waypoint"]:
        """Waypoints every ``distance`` [m] from here to the end of this lane (the end included)."""
        out, s = [], self.s + distance
        while s < self._l.length:
            out.append(Waypoint(self._town, self._lane, s))
            s += distance
        out.append(Waypoint(self._town, self._lane, self._l.length))
        return out

    def previous_until_lane_start(self, distance: float) -> list["Waypoint"]:
        """Waypoints every ``distance`` [m] from here back to the start of this lane (the start included)."""
        out, s = [], self.s - distance
        while s > 0.0:
            out.append(Waypoint(self._town, self._lane, s))
            s -= distance
        out.append(Waypoint(self._town, self._lane, 0.0))
        return out

    def get_left_lane(self) -> "Waypoint | None":
        """The parallel lane to the left (in the driving direction), either direction; None at the road edge."""
        hit = self._neighbour(-1.0)
        return None if hit is None else hit[0]

    def get_right_lane(self) -> "Waypoint | None":
        """The parallel lane to the right, either direction; None at the road edge."""
        hit = self._neighbour(1.0)
        return None if hit is None else hit[0]

    def get_junction(self) -> Junction | None:
        return self._town._junction() if self._l.in_junction else None

    def get_landmarks(self, distance: float, stop_at_junction: bool = False) -> list:
        return []

    # ------------------------------------------------------------------ internals
    def _walk(self, lane: int, s: float, forward: bool, depth: int) -> list["Waypoint"]:
        town = self._town
        length = town._lanes[lane].length
        if 0.0 <= s <= length:
            return [Waypoint(town, lane, s)]
        if depth > 20:
            return []
        nxt = town._lanes[lane].successors if forward else town._lanes[lane].predecessors
        out: list[Waypoint] = []
        for j in nxt:
            rest = s - length if forward else town._lanes[j].length + s
            out.extend(self._walk(j, rest, forward, depth + 1))
        return out

    def _neighbour(self, side: float) -> tuple["Waypoint", bool] | None:
        """The lane ``side`` (+1 right, -1 left; CARLA's right vector is +y rotated by yaw) of this waypoint:
        ``(waypoint on it, same direction)``, or None."""
        lane = self._l
        if lane.in_junction:
            return None
        x, y, yaw = lane.at(self.s)
        right = np.array([-math.sin(yaw), math.cos(yaw)])
        probe = np.array([x, y]) + side * lane.width * right
        best = None
        town = self._town
        near = np.all((town._lo - lane.width <= probe) & (probe <= town._hi + lane.width), axis=1)
        for other in (town._lanes[i] for i in np.flatnonzero(near)):
            if other.index == lane.index or other.in_junction:
                continue
            s, d = other.project(probe)
            if d < 0.25 * lane.width and (best is None or d < best[2]):
                best = (other, s, d)
        if best is None:
            return None
        other, s, _ = best
        oyaw = other.at(s)[2]
        same = math.cos(oyaw - yaw) > 0.0
        return Waypoint(self._town, other.index, s), same

    def _marking(self, side: float) -> LaneMarking:
        hit = self._neighbour(side)
        if hit is None:
            return LaneMarking(LaneMarkingType.Solid, LaneMarkingColor.White, LaneChange.NONE)
        if hit[1]:
            return LaneMarking(LaneMarkingType.Broken, LaneMarkingColor.White, LaneChange.Both)
        return LaneMarking(LaneMarkingType.SolidSolid, LaneMarkingColor.Yellow, LaneChange.NONE)

    def __repr__(self) -> str:
        loc = self.transform.location
        return (f"Waypoint(road_id={self.road_id}, lane_id={self.lane_id}, s={self.s:.2f}, "
                f"location=({loc.x:.2f}, {loc.y:.2f}), lane={self._l.name!r})")


class Map:
    """``carla.Map`` of a stand-in town (see the module docstring)."""

    def __init__(self, town: str) -> None:
        if town not in STANDIN_TOWNS:
            raise RuntimeError(f"map '{town}' not found; available stand-in maps: {', '.join(STANDIN_TOWNS)}")
        layout = get_layout(town[len(TOWN_PREFIX):])
        self.name = f"Carla/Maps/{town}"
        self.layout = layout
        self._lanes: list[_Lane] = []
        for i, lane in enumerate(layout.lanes):
            pts = lane.centerline * np.array([1.0, -1.0])  # right-handed -> CARLA left-handed
            d = np.diff(pts, axis=0)
            self._lanes.append(_Lane(
                index=i, name=layout_lane_name(layout, lane.lane_id), points=pts,
                s=np.concatenate([[0.0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))]),
                yaw=np.arctan2(d[:, 1], d[:, 0]), width=float(lane.width), in_junction=bool(lane.in_intersection),
                speed_limit=float(lane.speed_limit),
            ))
        self._junction_lanes = [lane.index for lane in self._lanes if lane.in_junction]
        self._lo = np.array([lane.points.min(axis=0) for lane in self._lanes])
        self._hi = np.array([lane.points.max(axis=0) for lane in self._lanes])
        self._link()
        self._number_roads()
        self._junction_cache: Junction | None = None

    # ------------------------------------------------------------------ carla.Map API
    def get_spawn_points(self) -> list:
        """Transforms every 20 m along every non-junction lane (from 10 m after its start to 10 m before its end),
        0.5 m above the road as CARLA's spawn points."""
        V = _v()
        out = []
        for lane in self._lanes:
            if lane.in_junction or lane.length < 25.0:
                continue
            for s in np.arange(10.0, lane.length - 10.0, 20.0):
                x, y, yaw = lane.at(float(s))
                out.append(V["Transform"](V["Location"](x, y, 0.5), V["Rotation"](0.0, math.degrees(yaw), 0.0)))
        return out

    def get_waypoint(self, location, project_to_road: bool = True, lane_type: LaneType = LaneType.Driving):
        """The waypoint of the closest lane centre; None when ``project_to_road`` is False and the location is not
        on a lane, or when ``lane_type`` excludes driving lanes."""
        if not (int(lane_type) & int(LaneType.Driving)) and lane_type != LaneType.Any:
            return None
        index, s, d = self.lane_of(np.array([location.x, location.y]))
        lane = self._lanes[index]
        if not project_to_road and d > 0.5 * lane.width:
            return None
        return Waypoint(self, lane.index, s)

    def get_waypoint_xodr(self, road_id: int, lane_id: int, s: float):
        for lane in self._lanes:
            if lane.road_id == road_id and lane.lane_id == lane_id and 0.0 <= s <= lane.length:
                return Waypoint(self, lane.index, s)
        return None

    def get_topology(self) -> list[tuple[Waypoint, Waypoint]]:
        """``[(start, end), ...]`` of every lane (CARLA: one pair per lane segment)."""
        return [(Waypoint(self, lane.index, 0.0), Waypoint(self, lane.index, lane.length)) for lane in self._lanes]

    def generate_waypoints(self, distance: float) -> list[Waypoint]:
        """Waypoints every ``distance`` [m] along every lane."""
        if distance <= 0:
            raise ValueError(f"Map.generate_waypoints: distance must be > 0, got {distance}")
        return [Waypoint(self, lane.index, float(s)) for lane in self._lanes
                for s in np.arange(0.0, lane.length, distance)]

    def get_crosswalks(self) -> list:
        V = _v()
        out = []
        for pts in self.layout.crosswalks.values():
            out.extend(V["Location"](float(x), float(-y), 0.0) for x, y in pts)
        return out

    def get_all_landmarks(self) -> list:
        return []

    def to_opendrive(self) -> str:
        raise RuntimeError("the stand-in maps have no OpenDRIVE source (they are built from envs.scenes.layouts)")

    # ------------------------------------------------------------------ helpers for the stand-in world
    def lane_of(self, xy: np.ndarray) -> tuple[int, float, float]:
        """``(lane index, s, distance)`` of the closest lane centre to ``xy (2,)`` [m, left-handed] (lanes whose
        bounding box is farther than the best distance so far are skipped)."""
        gap = np.maximum(np.maximum(self._lo - xy, xy - self._hi), 0.0)
        box_d = np.hypot(gap[:, 0], gap[:, 1])
        best = None
        for i in np.argsort(box_d):
            if best is not None and box_d[i] > best[2]:
                break
            s, d = self._lanes[i].project(xy)
            if best is None or d < best[2]:
                best = (int(i), s, d)
        return best  # type: ignore[return-value]

    def _junction(self) -> Junction:
        if self._junction_cache is None:
            self._junction_cache = Junction(self, JUNCTION_ID)
        return self._junction_cache

    def _link(self) -> None:
        for a in self._lanes:
            for b in self._lanes:
                if a.index != b.index and np.linalg.norm(a.points[-1] - b.points[0]) < _CONNECT_TOL:
                    a.successors.append(b.index)
                    b.predecessors.append(a.index)

    def _number_roads(self) -> None:
        """Group parallel non-junction lanes into roads and number lanes OpenDRIVE-style (see the module doc)."""
        road_of: dict[int, int] = {}
        next_road = 1
        for lane in self._lanes:
            if lane.in_junction or lane.index in road_of:
                continue
            members = [lane.index]
            frontier = [lane.index]
            while frontier:
                i = frontier.pop()
                mid = Waypoint(self, i, 0.5 * self._lanes[i].length)
                for side in (-1.0, 1.0):
                    hit = mid._neighbour(side)
                    if hit is not None and hit[0]._lane not in members:
                        members.append(hit[0]._lane)
                        frontier.append(hit[0]._lane)
            ref = self._lanes[members[0]]
            rx, ry, ryaw = ref.at(0.5 * ref.length)
            right = np.array([-math.sin(ryaw), math.cos(ryaw)])
            fwd, back = [], []
            for i in members:
                lane_i = self._lanes[i]
                x, y, yaw = lane_i.at(0.5 * lane_i.length)
                offset = float(np.dot(np.array([x - rx, y - ry]), right))
                (fwd if math.cos(yaw - ryaw) > 0 else back).append((offset, i))
            # Driving along the reference: ids -1, -2, ... from the centre line outwards (to the right); against it:
            # +1, +2, ... from the centre line outwards (to the left).
            for k, (_, i) in enumerate(sorted(fwd)):
                self._lanes[i].lane_id = -(k + 1)
            for k, (_, i) in enumerate(sorted(back, reverse=True)):
                self._lanes[i].lane_id = k + 1
            for i in members:
                self._lanes[i].road_id = next_road
                road_of[i] = next_road
            next_road += 1
        for lane in self._lanes:
            if lane.in_junction:
                lane.road_id, lane.lane_id = next_road, -1
                next_road += 1


def layout_lane_name(layout, lane_id: int) -> str:
    """The layout's name of lane ``lane_id``."""
    for name, i in layout.lane_ids.items():
        if i == lane_id:
            return name
    return str(lane_id)


@functools.lru_cache(maxsize=None)
def standin_map(town: str) -> Map:
    """The (cached) stand-in map of ``town``; ``RuntimeError`` naming the known towns if unknown."""
    return Map(town)
