"""A CARLA town's road network as SafeAlign map geometry, and routes along it (right-handed world frame).

* :class:`TownLanes` (built once per town, :meth:`TownLanes.from_map`): every lane segment of
  ``carla.Map.get_topology()`` sampled every ``spacing`` metres by walking ``Waypoint.next`` from the segment's start
  to its end (the approach of CARLA's ``GlobalRoutePlanner``), mirrored into the right-handed frame
  (:mod:`envs.carla.frames`), with its OpenDRIVE key ``(road_id, section_id, lane_id)``, width and junction id;
  junction areas are the junctions' bounding boxes.
* :meth:`TownLanes.scene_map` gives the :class:`~envs.scenes.scene.SceneMap` of one episode: the lanes within ``radius`` of
  the route (a lane's polygon is its centreline widened to its width; the drivable area is the union of these lane
  polygons and the junction boxes: shoulders, parking lanes and sidewalks are not drivable), the route polyline, and
  as on-route lanes every lane of the road sections the route passes in its driving direction (NAVSIM's roadblocks:
  same ``road_id`` and ``section_id``, same sign of ``lane_id``).
* :func:`plan_route` follows ``Waypoint.next`` from a start waypoint, choosing at each fork the branch of the
  requested turn (first junction) or the straightest one.

Speed limits are ``TownLanes.speed_limit`` for every lane (CARLA keeps speed limits in landmarks, not in
waypoints). Not represented: elevation, lane markings' types (the BEV draws centrelines), non-driving lanes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from envs.carla.frames import location_xy, pose_from_transform
from envs.scenes.scene import Lane, SceneMap, TrafficLight
from rewards.geometry import wrap_angle

TURNS = ("straight", "left", "right")
"""Route choices at a junction."""


@dataclass(frozen=True, eq=False)
class LaneSegment:
    """One lane segment of a town [right-handed world frame].

    Attributes:
        key: ``(road_id, section_id, lane_id)`` (OpenDRIVE ids of CARLA's waypoints).
        points: ``(K, 2)`` centreline [m] in the driving direction, K >= 2.
        width: lane width [m].
        junction_id: the junction it lies in, -1 outside junctions.
    """

    key: tuple[int, int, int]
    points: np.ndarray
    width: float
    junction_id: int = -1

    @property
    def roadblock(self) -> tuple[int, int, int]:
        """``(road_id, section_id, sign(lane_id))``: the road section and driving direction."""
        return self.key[0], self.key[1], int(np.sign(self.key[2]))


@dataclass
class TownLanes:
    """Every driving lane segment of a town and its junction areas (see the module docstring).

    Attributes:
        name: the CARLA map name.
        segments: lane segments, index = the lane id used in scene maps.
        junctions: ``{junction_id: (4, 2) polygon}`` [m].
        speed_limit: speed limit given to every lane [m/s].
    """

    name: str
    segments: list[LaneSegment]
    junctions: dict[int, np.ndarray] = field(default_factory=dict)
    speed_limit: float = 13.89

    @classmethod
    def from_map(cls, carla_map: Any, spacing: float = 2.0, speed_limit: float = 13.89) -> "TownLanes":
        """Sample every topology segment of ``carla_map`` every ``spacing`` metres."""
        segments: list[LaneSegment] = []
        junctions: dict[int, np.ndarray] = {}
        for start, end in carla_map.get_topology():
            key = (int(start.road_id), int(start.section_id), int(start.lane_id))
            pts = [location_xy(start.transform.location)]
            end_xy = location_xy(end.transform.location)
            wp = start
            for _ in range(10000):
                if np.linalg.norm(pts[-1] - end_xy) <= spacing:
                    break
                same = [w for w in wp.next(spacing)
                        if (int(w.road_id), int(w.section_id), int(w.lane_id)) == key]
                if not same:
                    break
                wp = same[0]
                pts.append(location_xy(wp.transform.location))
            pts.append(end_xy)
            arr = _dedupe(np.array(pts))
            if len(arr) < 2:
                continue
            jid = int(start.junction_id) if start.is_junction else -1
            if start.is_junction and jid not in junctions:
                junctions[jid] = _junction_polygon(start.get_junction())
            segments.append(LaneSegment(key, arr, float(start.lane_width), jid))
        return cls(str(carla_map.name), segments, junctions, speed_limit)

    def scene_map(self, route: np.ndarray, route_keys: Sequence[tuple[int, int, int]], radius: float = 80.0,
                  traffic_lights: Sequence[TrafficLight] = ()) -> SceneMap:
        """The scene map of a route ``(R, 2)`` [m] whose waypoints had OpenDRIVE keys ``route_keys``.

        Raises:
            ValueError: the route is empty or no lane lies within ``radius`` of it.
        """
        route = np.asarray(route, dtype=np.float64)
        ids = self.lanes_near(route, radius)
        if not ids:
            raise ValueError(f"{self.name}: no lane within {radius} m of the route")
        lanes = tuple(Lane(i, self.segments[i].points, self.segments[i].width, self.segments[i].junction_id >= 0,
                           self.speed_limit) for i in ids)
        blocks = {(k[0], k[1], int(np.sign(k[2]))) for k in route_keys}
        on_route = tuple(i for i in ids if self.segments[i].roadblock in blocks)
        lo, hi = route.min(axis=0) - radius, route.max(axis=0) + radius
        inters = tuple(p for p in self.junctions.values() if np.all(p.max(axis=0) >= lo) and np.all(p.min(axis=0) <= hi))
        return SceneMap(
            drivable_areas=tuple(lane.polygon for lane in lanes) + inters,
            lanes=lanes,
            route_lane_ids=on_route,
            route=route,
            intersections=inters,
            traffic_lights=tuple(traffic_lights),
        )

    def lanes_near(self, points: np.ndarray, radius: float) -> list[int]:
        """Indices of the segments with a sampled point within ``radius`` [m] of one of ``points (P, 2)``."""
        pts = np.asarray(points, dtype=np.float64)[:: max(1, len(points) // 200)]
        out = []
        for i, seg in enumerate(self.segments):
            lo, hi = seg.points.min(axis=0) - radius, seg.points.max(axis=0) + radius
            inside = np.all((pts >= lo) & (pts <= hi), axis=1)
            if not inside.any():
                continue
            d2 = np.min(np.sum((seg.points[:, None, :] - pts[None, inside, :]) ** 2, axis=-1))
            if d2 <= radius * radius:
                out.append(i)
        return out

    def segment_of(self, key: tuple[int, int, int], xy: np.ndarray) -> int | None:
        """Index of the segment with OpenDRIVE ``key`` whose centreline passes closest to ``xy (2,)``, or None."""
        best, best_d = None, math.inf
        for i, seg in enumerate(self.segments):
            if seg.key != key:
                continue
            d = float(np.min(np.sum((seg.points - xy) ** 2, axis=1)))
            if d < best_d:
                best, best_d = i, d
        return best


def waypoint_key(wp: Any) -> tuple[int, int, int]:
    """``(road_id, section_id, lane_id)`` of a CARLA waypoint."""
    return int(wp.road_id), int(wp.section_id), int(wp.lane_id)


def waypoint_pose(wp: Any) -> np.ndarray:
    """``(3,)`` right-handed pose of a waypoint's lane centre [m, m, rad]."""
    return pose_from_transform(wp.transform)


def branch_turn(wp: Any, branch: Any, probe: float = 12.0) -> float:
    """Heading change [rad] (right-handed, positive = left) from ``wp`` to the end of ``branch``'s lane (at most
    ``probe`` metres beyond a fork the branch's own lane is followed to its end)."""
    ahead = branch.next_until_lane_end(2.0)
    tip = ahead[-1] if ahead else branch
    if not branch.is_junction:
        tip = (branch.next(probe) or [branch])[0]
    return float(wrap_angle(waypoint_pose(tip)[2] - waypoint_pose(wp)[2]))


def choose_branch(wp: Any, branches: Sequence[Any], turn: str = "straight") -> Any:
    """The branch of ``branches`` (``wp.next(d)`` at a fork) that best matches ``turn``: ``"left"`` the largest
    positive heading change, ``"right"`` the most negative, ``"straight"`` the smallest absolute one."""
    if turn not in TURNS:
        raise ValueError(f"turn: expected one of {TURNS}, got {turn!r}")
    if len(branches) == 1:
        return branches[0]
    changes = [branch_turn(wp, b) for b in branches]
    if turn == "left":
        i = int(np.argmax(changes))
    elif turn == "right":
        i = int(np.argmin(changes))
    else:
        i = int(np.argmin(np.abs(changes)))
    return branches[i]


def plan_route(start: Any, length: float, turn: str = "straight", spacing: float = 2.0) -> list[Any]:
    """Waypoints every ``spacing`` metres from ``start`` over ``length`` metres, taking ``turn`` at the first junction
    and going straightest at later forks; shorter if the road ends."""
    route = [start]
    first_junction_done = False
    travelled = 0.0
    while travelled < length:
        nxt = route[-1].next(spacing)
        if not nxt:
            break
        if len(nxt) > 1:
            choice = turn if not first_junction_done else "straight"
            wp = choose_branch(route[-1], nxt, choice)
        else:
            wp = nxt[0]
        if wp.is_junction:
            first_junction_done = True
        route.append(wp)
        travelled += spacing
    return route


def route_polyline(route: Sequence[Any]) -> np.ndarray:
    """``(R, 2)`` right-handed points of route waypoints [m], consecutive duplicates dropped."""
    return _dedupe(np.array([location_xy(w.transform.location) for w in route]))


def _dedupe(points: np.ndarray, tol: float = 1e-3) -> np.ndarray:
    keep = [0]
    for i in range(1, len(points)):
        if np.linalg.norm(points[i] - points[keep[-1]]) > tol:
            keep.append(i)
    return points[keep]


def _junction_polygon(junction: Any) -> np.ndarray:
    """``(4, 2)`` right-handed corners of a junction's bounding box [m] (counter-clockwise)."""
    bb = junction.bounding_box
    c, e = bb.location, bb.extent
    yaw = math.radians(bb.rotation.yaw)
    corners = []
    for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
        x = c.x + sx * e.x * math.cos(yaw) - sy * e.y * math.sin(yaw)
        y = c.y + sx * e.x * math.sin(yaw) + sy * e.y * math.cos(yaw)
        corners.append((x, -y))
    poly = np.array(corners)
    area = 0.5 * np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1])
    return poly if area > 0 else poly[::-1]
