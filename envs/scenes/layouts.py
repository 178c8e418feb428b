"""Procedural road layouts for the synthetic scenario bank, and polyline helpers (arc-length placement).

A :class:`Layout` holds the immutable geometry of one road layout variant (lanes with stable ids and names,
drivable-area and junction polygons, sidewalks, crosswalks, parking strips). :meth:`Layout.scene_map` turns it into
the :class:`~envs.scenes.scene.SceneMap` of a scene for a given ego route; maps are cached, so every scene of the same
layout and route shares one ``SceneMap`` object (maps and lanes are immutable).

Layouts (:data:`LAYOUT_NAMES`), all right-hand traffic, lanes 3.5 m wide, world frame x east / y north:

* ``straight``: a straight two-way road along x in [-250, 250] m, two lanes per direction (``E0``/``E1``
  eastbound, ``W0``/``W1`` westbound; index 0 is next to the centre line), a 2.5 m parking strip on each side
  (drivable) and a 3 m sidewalk beyond it.
* ``junction_<a>x<b>``: a 4-way signalized junction centred at the origin; the north-south road has ``a`` lanes
  per direction, the east-west road ``b``. Arms are 150 m long; lanes ``S_in0`` (southern arm, driving north, inner
  lane), ``S_out0`` (southern arm, driving south) etc.; lane connectors ``S_in0>W_out0`` (straight lines, or
  straight + circular arc + straight for turns, ~1 m spacing). The junction box has rounded curbs of radius 6 m.
  Signal plan: the north-south road is green and the east-west road red for the whole scene.
* ``merge``: the straight two-way road without parking strips plus an on-ramp from the south-west joining the
  outer eastbound lane through a 40 m taper at x in [-20, 20] m (``E1_up`` ends and ``E1_down`` starts at x = 20).

Parametric road-geometry families (opt-in, ``ScenarioBank(..., roads="families")``) live in
:mod:`envs.scenes.road_families`; :func:`get_layout` also builds (and caches) their layouts by name
(``"<family>[k=v,...]"``).

All geometry is synthetic (procedurally generated), not taken from any real map.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from envs.scenes.scene import Lane, SceneMap, TrafficLight, TrafficLightState

LANE_WIDTH = 3.5
"""Lane width of every layout [m]."""
SPACING = 1.0
"""Target spacing of sampled centreline points [m]."""
URBAN_SPEED_LIMIT = 13.89
"""Speed limit of urban lanes (50 km/h) [m/s]."""
MERGE_SPEED_LIMIT = 16.67
"""Speed limit of the merge layout's main road (60 km/h) [m/s]."""

LAYOUT_NAMES = ("straight", "junction_1x1", "junction_2x2", "junction_2x1", "junction_1x2", "merge")
"""Names accepted by :func:`get_layout`."""


# ---------------------------------------------------------------------------------------------------------- paths
@dataclass(frozen=True, eq=False)
class Path:
    """A polyline parametrised by arc length, for placing agents along lanes and routes [world frame].

    Attributes:
        points: ``(K, 2)`` vertices [m], K >= 2, no repeated consecutive points.
        s: ``(K,)`` cumulative arc length at the vertices [m], ``s[0] == 0``.
        mid_s: ``(K-1,)`` arc length of the segment midpoints [m].
        headings: ``(K-1,)`` unwrapped segment headings [rad]; headings between segment midpoints are
            interpolated linearly (exact on straight stretches, smooth on sampled curves).
    """

    points: np.ndarray
    s: np.ndarray
    mid_s: np.ndarray
    headings: np.ndarray

    @classmethod
    def from_points(cls, points: np.ndarray) -> "Path":
        """Build a path from ``(K, 2)`` vertices [m]; consecutive duplicates (< 1 mm apart) are dropped."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"Path.points: expected shape (K, 2), got {pts.shape}")
        keep = np.concatenate([[True], np.linalg.norm(np.diff(pts, axis=0), axis=1) > 1e-3])
        pts = pts[keep]
        if len(pts) < 2:
            raise ValueError(f"Path.points: needs at least 2 distinct points, got {len(pts)}")
        d = np.diff(pts, axis=0)
        headings = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(d, axis=1))])
        mid_s = 0.5 * (s[:-1] + s[1:])
        for arr in (pts, s, mid_s, headings):
            arr.setflags(write=False)
        return cls(pts, s, mid_s, headings)

    @property
    def length(self) -> float:
        """Total arc length [m]."""
        return float(self.s[-1])

    def poses(self, s: np.ndarray | float, lateral: np.ndarray | float | None = None) -> np.ndarray:
        """Poses ``(..., 3)`` [m, m, rad] at arc lengths ``s (...)`` [m], shifted ``lateral`` [m] to the left.

        Positions interpolate linearly between vertices, headings between segment midpoints; beyond either end the
        path continues straight along its end heading. The heading is the path's (a lateral shift does not turn it).
        """
        s = np.asarray(s, dtype=np.float64)
        base = np.clip(s, 0.0, self.s[-1])
        extra = s - base
        h_end = np.where(extra > 0, self.headings[-1], self.headings[0])
        x = np.interp(base, self.s, self.points[:, 0]) + extra * np.cos(h_end)
        y = np.interp(base, self.s, self.points[:, 1]) + extra * np.sin(h_end)
        h = np.interp(base, self.mid_s, self.headings)
        if lateral is not None:
            x = x - np.sin(h) * lateral
            y = y + np.cos(h) * lateral
        return np.stack([x, y, (h + np.pi) % (2.0 * np.pi) - np.pi], axis=-1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arc length and signed lateral offset (left positive) of points ``(M, 2)`` [m] on the nearest segment.

        The first and last segments extend beyond the path ends, so arc lengths may be < 0 or > :attr:`length`.

        Returns:
            ``(s (M,), d (M,))`` [m].
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        a = self.points[:-1]
        ab = np.diff(self.points, axis=0)  # (K-1, 2)
        seg_len = np.diff(self.s)
        rel = p[:, None, :] - a[None]  # (M, K-1, 2)
        t = np.einsum("mkd,kd->mk", rel, ab) / seg_len**2
        lo = np.full(len(ab), 0.0)
        hi = np.full(len(ab), 1.0)
        lo[0], hi[-1] = -np.inf, np.inf
        t = np.clip(t, lo, hi)
        closest = a[None] + t[..., None] * ab[None]
        dist = np.linalg.norm(p[:, None, :] - closest, axis=-1)
        k = np.argmin(dist, axis=1)
        rows = np.arange(len(p))
        s = self.s[k] + t[rows, k] * seg_len[k]
        r = rel[rows, k]
        d = (ab[k, 0] * r[:, 1] - ab[k, 1] * r[:, 0]) / seg_len[k]
        return s, d

    def curvature(self) -> np.ndarray:
        """``(K,)`` absolute curvature at the vertices [1/m] (heading change per arc length; 0 at the ends)."""
        kappa = np.zeros(len(self.s))
        if len(self.headings) > 1:
            kappa[1:-1] = np.abs(np.diff(self.headings) / np.diff(self.mid_s))
        return kappa


def pose_at(polyline: np.ndarray, s: np.ndarray | float, lateral: np.ndarray | float | None = None) -> np.ndarray:
    """Pose(s) ``(..., 3)`` [m, m, rad] at arc length(s) ``s`` [m] along a polyline ``(K, 2)`` (see :meth:`Path.poses`)."""
    return Path.from_points(polyline).poses(s, lateral)


def polyline_of_lanes(lanes: Sequence[Lane]) -> np.ndarray:
    """Concatenated centreline ``(R, 2)`` [m] of consecutive lanes (shared end/start points appear once).

    Raises:
        ValueError: naming the lane ids when a lane does not start (within 0.5 m) where the previous one ends.
    """
    if not lanes:
        raise ValueError("polyline_of_lanes: no lanes given")
    parts = [lanes[0].centerline]
    for prev, lane in zip(lanes[:-1], lanes[1:]):
        gap = float(np.linalg.norm(lane.centerline[0] - prev.centerline[-1]))
        if gap > 0.5:
            raise ValueError(f"lanes {prev.lane_id} -> {lane.lane_id} are not connected (gap {gap:.2f} m)")
        parts.append(lane.centerline[1:] if gap < 1e-6 else lane.centerline)
    return np.concatenate(parts, axis=0)


def route_polyline(scene_map: SceneMap, lane_ids: Sequence[int]) -> np.ndarray:
    """Centreline ``(R, 2)`` [m] of the lane sequence ``lane_ids`` of ``scene_map`` (a route, in driving order)."""
    return polyline_of_lanes([scene_map.lane(int(i)) for i in lane_ids])


# ---------------------------------------------------------------------------------------------- sampled shapes
def _segment(p0: np.ndarray, p1: np.ndarray, spacing: float = SPACING) -> np.ndarray:
    """``(K, 2)`` points from ``p0`` to ``p1`` [m], about ``spacing`` apart (both ends included)."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    n = max(2, int(math.ceil(np.linalg.norm(p1 - p0) / spacing)) + 1)
    u = np.linspace(0.0, 1.0, n)[:, None]
    return p0 + u * (p1 - p0)


def _turn(p0: np.ndarray, d0: np.ndarray, p1: np.ndarray, d1: np.ndarray, spacing: float = SPACING) -> np.ndarray:
    """Right-angle turn from ``p0`` heading ``d0`` to ``p1`` heading ``d1`` (unit vectors): straight, arc, straight.

    The arc radius is the shorter distance from an end point to the corner where the two tangent lines meet.
    """
    p0, p1, d0, d1 = (np.asarray(v, dtype=np.float64) for v in (p0, p1, d0, d1))
    cross = d0[0] * d1[1] - d0[1] * d1[0]
    if abs(abs(cross) - 1.0) > 1e-6:
        raise ValueError(f"_turn: headings {d0} and {d1} are not perpendicular")
    # corner C = p0 + a d0 = p1 - b d1
    m = np.array([[d0[0], d1[0]], [d0[1], d1[1]]])
    a, b = np.linalg.solve(m, p1 - p0)
    r = min(a, b)
    if r <= 0:
        raise ValueError("_turn: the end point lies behind the start")
    corner = p0 + a * d0
    q0, q1 = corner - r * d0, corner + r * d1
    normal = np.array([-d0[1], d0[0]]) * np.sign(cross)  # towards the arc centre
    centre = q0 + r * normal
    a0 = math.atan2(q0[1] - centre[1], q0[0] - centre[0])
    n_arc = max(3, int(math.ceil(0.5 * math.pi * r / spacing)) + 1)
    ang = a0 + np.sign(cross) * np.linspace(0.0, 0.5 * math.pi, n_arc)
    arc = centre + r * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    parts = [arc]
    if a - r > 1e-6:
        parts.insert(0, _segment(p0, q0, spacing)[:-1])
    if b - r > 1e-6:
        parts.append(_segment(q1, p1, spacing)[1:])
    return np.concatenate(parts, axis=0)


def _cosine_shift(x0: float, x1: float, y0: float, y1: float, spacing: float = SPACING) -> np.ndarray:
    """``(K, 2)`` points, about ``spacing`` [m] apart along the curve, of a smooth lateral shift y0 -> y1 [m] while
    x runs x0 -> x1 (half-cosine blend)."""
    x = np.linspace(x0, x1, 20 * max(3, int(math.ceil(abs(x1 - x0) / spacing))) + 1)
    y = y0 + (y1 - y0) * 0.5 * (1.0 - np.cos(np.pi * (x - x0) / (x1 - x0)))
    s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
    s_new = np.linspace(0.0, s[-1], max(3, int(math.ceil(s[-1] / spacing)) + 1))
    return np.stack([np.interp(s_new, s, x), np.interp(s_new, s, y)], axis=1)


def _rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    """``(4, 2)`` axis-aligned rectangle polygon (counter-clockwise) [m]."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- layouts
@dataclass(frozen=True, eq=False)
class Layout:
    """One immutable road layout variant (see the module docstring) [world frame].

    Attributes:
        name: one of :data:`LAYOUT_NAMES`.
        lanes: lanes and lane connectors (ids unique and stable: assigned 1.. in construction order).
        lane_ids: lane name -> lane id (e.g. ``"E1"``, ``"S_in0>W_out0"``).
        drivable_areas: polygons ``(P, 2)`` [m] whose union is the drivable area.
        intersections: junction polygons ``(P, 2)`` [m].
        walkways: sidewalk centre polylines ``(K, 2)`` [m] (not drivable), where pedestrians walk.
        crosswalks: arm name -> crossing polyline ``(K, 2)`` [m] across that arm next to the junction box.
        parking: parking-strip centre polylines ``(K, 2)`` [m], in the adjacent lanes' driving direction.
        green_arms: arms whose lane connectors show green (all others red); empty for unsignalized layouts.
        connector_arm: connector lane id -> arm it enters from (signalized layouts only).
        family: road-geometry family of a parametric layout (:mod:`envs.scenes.road_families`), "" for the classic
            layouts of :data:`LAYOUT_NAMES`.
        params: the family's parameters (lane counts, radius [m], angles [deg], ...), empty for classic layouts.
        centre: ``(K, 2)`` reference centreline [m] of a two-way road family (the road frame: station along it,
            lateral offset left positive), None when the road runs along the x axis from x = -250 m or for junctions.
        through_routes: lane-name routes background traffic may drive (road families; empty otherwise).
    """

    name: str
    lanes: tuple[Lane, ...]
    lane_ids: Mapping[str, int]
    drivable_areas: tuple[np.ndarray, ...]
    intersections: tuple[np.ndarray, ...] = ()
    walkways: tuple[np.ndarray, ...] = ()
    crosswalks: Mapping[str, np.ndarray] = field(default_factory=dict)
    parking: tuple[np.ndarray, ...] = ()
    green_arms: tuple[str, ...] = ()
    connector_arm: Mapping[int, str] = field(default_factory=dict)
    family: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    centre: np.ndarray | None = None
    through_routes: tuple[tuple[str, ...], ...] = ()

    def lane(self, name: str) -> Lane:
        """The lane called ``name`` (``KeyError`` listing the known names if absent)."""
        try:
            lane_id = self.lane_ids[name]
        except KeyError:
            raise KeyError(f"layout {self.name!r} has no lane {name!r}; known: {sorted(self.lane_ids)}") from None
        return self.lanes[lane_id - 1]

    def route_ids(self, names: Sequence[str]) -> tuple[int, ...]:
        """Lane ids of the lane names ``names``."""
        return tuple(self.lane(n).lane_id for n in names)

    def path(self, names: Sequence[str]) -> Path:
        """:class:`Path` along the centrelines of the consecutive lanes ``names``."""
        return _cached_path(self.name, tuple(names))

    def scene_map(self, route_names: Sequence[str], num_frames: int) -> SceneMap:
        """The (cached, shared) :class:`SceneMap` with ego route ``route_names`` and ``num_frames`` light states."""
        return _cached_scene_map(self.name, tuple(route_names), int(num_frames))

    def lights(self, num_frames: int) -> tuple[TrafficLight, ...]:
        """One signal per lane connector (stop point = connector start), constant over ``num_frames`` frames."""
        lights = []
        for lane_id, arm in self.connector_arm.items():
            state = TrafficLightState.GREEN if arm in self.green_arms else TrafficLightState.RED
            lane = self.lanes[lane_id - 1]
            lights.append(TrafficLight(lane_id, lane.centerline[0], np.full(num_frames, int(state), dtype=np.uint8)))
        return tuple(lights)


class _Builder:
    """Collects named lanes with consecutive ids."""

    def __init__(self) -> None:
        self.lanes: list[Lane] = []
        self.ids: dict[str, int] = {}

    def add(
        self, name: str, centerline: np.ndarray, speed_limit: float, in_intersection: bool = False,
        polygon: np.ndarray | None = None,
    ) -> int:
        """Add a lane (``polygon``: its outline, when known; default: derived by :class:`Lane`)."""
        lane_id = len(self.lanes) + 1
        self.lanes.append(Lane(lane_id, centerline, LANE_WIDTH, in_intersection, speed_limit, polygon))
        self.ids[name] = lane_id
        return lane_id


def _build_straight(name: str = "straight", half_length: float = 250.0, parking: bool = True) -> Layout:
    w, b = LANE_WIDTH, _Builder()
    for i in range(2):
        b.add(f"E{i}", _segment([-half_length, -(i + 0.5) * w], [half_length, -(i + 0.5) * w]), URBAN_SPEED_LIMIT)
    for i in range(2):
        b.add(f"W{i}", _segment([half_length, (i + 0.5) * w], [-half_length, (i + 0.5) * w]), URBAN_SPEED_LIMIT)
    edge = 2 * w + (2.5 if parking else 0.0)
    walk = edge + 1.5
    return Layout(
        name=name,
        lanes=tuple(b.lanes),
        lane_ids=MappingProxyType(b.ids),
        drivable_areas=(_rect(-half_length, half_length, -edge, edge),),
        walkways=(
            _segment([-half_length, -walk], [half_length, -walk]),
            _segment([half_length, walk], [-half_length, walk]),
        ),
        parking=(
            (
                _segment([-half_length, -(2 * w + 1.25)], [half_length, -(2 * w + 1.25)]),
                _segment([half_length, 2 * w + 1.25], [-half_length, 2 * w + 1.25]),
            )
            if parking
            else ()
        ),
    )


_ARM_ANGLES = {"E": 0.0, "N": 0.5 * math.pi, "W": math.pi, "S": -0.5 * math.pi}


def _rot90(v: np.ndarray, sign: float) -> np.ndarray:
    """Rotate a 2-vector by +90 deg (sign=1) or -90 deg (sign=-1)."""
    return np.array([-sign * v[1], sign * v[0]])


def _build_junction(n_ns: int, n_ew: int, arm_length: float = 150.0, margin: float = 6.0) -> Layout:
    """4-way junction; ``n_ns``/``n_ew`` lanes per direction on the north-south / east-west road."""
    w, b = LANE_WIDTH, _Builder()
    nl = {"N": n_ns, "S": n_ns, "E": n_ew, "W": n_ew}
    hw = {a: nl[a] * w for a in nl}  # half width of each arm's road [m]
    edge = {"N": n_ew * w + margin, "S": n_ew * w + margin, "E": n_ns * w + margin, "W": n_ns * w + margin}
    u = {a: np.array([math.cos(t), math.sin(t)]).round(12) for a, t in _ARM_ANGLES.items()}
    left = {a: _rot90(u[a], 1.0) for a in u}  # left normal of the outward direction
    in_lane, out_lane = {}, {}
    for a in ("S", "E", "N", "W"):
        for i in range(nl[a]):
            off = (i + 0.5) * w * left[a]  # inbound lanes lie left of the outward direction (right of travel)
            p_far, p_near = u[a] * (edge[a] + arm_length) + off, u[a] * edge[a] + off
            in_lane[a, i] = b.add(f"{a}_in{i}", _segment(p_far, p_near), URBAN_SPEED_LIMIT)
        for j in range(nl[a]):
            off = -(j + 0.5) * w * left[a]
            out_lane[a, j] = b.add(
                f"{a}_out{j}", _segment(u[a] * edge[a] + off, u[a] * (edge[a] + arm_length) + off), URBAN_SPEED_LIMIT
            )
    connector_arm = {}
    for a in ("S", "E", "N", "W"):
        d_in = -u[a]
        for i in range(nl[a]):
            moves = ["left", "straight", "right"] if nl[a] == 1 else (["left", "straight"] if i == 0 else ["straight", "right"])
            p0 = b.lanes[in_lane[a, i] - 1].centerline[-1]
            for move in moves:
                d_out = {"left": _rot90(d_in, 1.0), "right": _rot90(d_in, -1.0), "straight": d_in}[move]
                dest = next(k for k in u if np.allclose(u[k], d_out))
                j = {"left": 0, "right": nl[dest] - 1, "straight": min(i, nl[dest] - 1)}[move]
                p1 = b.lanes[out_lane[dest, j] - 1].centerline[0]
                pts = _segment(p0, p1) if move == "straight" else _turn(p0, d_in, p1, d_out)
                cid = b.add(f"{a}_in{i}>{dest}_out{j}", pts, URBAN_SPEED_LIMIT, in_intersection=True)
                connector_arm[cid] = a
    # Junction box with concave curb arcs of radius `margin` at the corners.
    ex, ey = edge["E"], edge["N"]
    box = []
    for cx, cy in ((ex, -ey), (ex, ey), (-ex, ey), (-ex, -ey)):  # SE, NE, NW, SW corners, counter-clockwise
        inward = math.atan2(-math.copysign(1.0, cy), -math.copysign(1.0, cx))  # diagonal towards the centre
        ang = np.linspace(inward - 0.25 * math.pi, inward + 0.25 * math.pi, 9)
        arc = np.stack([cx + margin * np.cos(ang), cy + margin * np.sin(ang)], axis=1)
        if arc[0, 0] * arc[-1, 1] - arc[0, 1] * arc[-1, 0] < 0:  # run counter-clockwise around the origin
            arc = arc[::-1]
        box.append(arc)
    box_poly = np.concatenate(box, axis=0)
    arms = [
        _rect(-hw["S"], hw["S"], -ey - arm_length, -ey),
        _rect(-hw["N"], hw["N"], ey, ey + arm_length),
        _rect(ex, ex + arm_length, -hw["E"], hw["E"]),
        _rect(-ex - arm_length, -ex, -hw["W"], hw["W"]),
    ]
    walkways, crosswalks = [], {}
    for a in ("S", "E", "N", "W"):
        for side in (1.0, -1.0):
            off = side * (hw[a] + 2.0) * left[a]
            walkways.append(_segment(u[a] * (edge[a] - 0.5 * margin) + off, u[a] * (edge[a] + arm_length) + off))
        c = u[a] * (edge[a] - 0.5 * margin)
        crosswalks[a] = _segment(c - (hw[a] + 2.0) * left[a], c + (hw[a] + 2.0) * left[a])
    return Layout(
        name=f"junction_{n_ns}x{n_ew}",
        lanes=tuple(b.lanes),
        lane_ids=MappingProxyType(b.ids),
        drivable_areas=(box_poly, *arms),
        intersections=(box_poly,),
        walkways=tuple(walkways),
        crosswalks=MappingProxyType(crosswalks),
        green_arms=("S", "N"),
        connector_arm=MappingProxyType(connector_arm),
    )


def _build_merge(half_length: float = 250.0) -> Layout:
    w, b = LANE_WIDTH, _Builder()
    y0, y1, y_acc = -0.5 * w, -1.5 * w, -2.5 * w
    b.add("E0", _segment([-half_length, y0], [half_length, y0]), MERGE_SPEED_LIMIT)
    b.add("E1_up", _segment([-half_length, y1], [20.0, y1]), MERGE_SPEED_LIMIT)
    b.add("E1_down", _segment([20.0, y1], [half_length, y1]), MERGE_SPEED_LIMIT)
    b.add("W0", _segment([half_length, -y0], [-half_length, -y0]), MERGE_SPEED_LIMIT)
    b.add("W1", _segment([half_length, -y1], [-half_length, -y1]), MERGE_SPEED_LIMIT)
    ramp = np.concatenate(
        [
            _cosine_shift(-170.0, -70.0, -40.0, y_acc)[:-1],
            _segment([-70.0, y_acc], [-20.0, y_acc])[:-1],
            _cosine_shift(-20.0, 20.0, y_acc, y1),
        ]
    )
    ramp_id = b.add("ramp", ramp, URBAN_SPEED_LIMIT)
    ramp_lane = b.lanes[ramp_id - 1]
    return Layout(
        name="merge",
        lanes=tuple(b.lanes),
        lane_ids=MappingProxyType(b.ids),
        drivable_areas=(_rect(-half_length, half_length, -2 * w, 2 * w), _rect(-70.0, 20.0, y_acc - 0.5 * w, y1), ramp_lane.polygon),
        walkways=(),
        parking=(_segment([half_length, 2 * w + 1.0], [-half_length, 2 * w + 1.0]),),
    )


_FAMILY_BUILDER: list[Callable[[str], Layout]] = []
"""The builder of parametric family layouts (registered by :mod:`envs.scenes.road_families` on import, which the
``envs.scenes`` package does)."""


def register_family_builder(builder: Callable[[str], Layout]) -> None:
    """Let :func:`get_layout` build ``"<family>[k=v,...]"`` names with ``builder(name) -> Layout``."""
    _FAMILY_BUILDER[:] = [builder]
    get_layout.cache_clear()


@functools.lru_cache(maxsize=512)  # ~0.3 MB per family layout with its paths and maps: bounded at ~150 MB
def get_layout(name: str) -> Layout:
    """The (cached, immutable) layout called ``name``: one of :data:`LAYOUT_NAMES`, or a parametric family layout
    ``"<family>[k=v,...]"`` (:func:`envs.scenes.road_families.family_layout_name`); ``ValueError`` if unknown."""
    if "[" in name:
        if not _FAMILY_BUILDER:
            raise ValueError(f"layout {name!r}: no road-family builder registered (import envs.scenes.road_families)")
        return _FAMILY_BUILDER[0](name)
    if name == "straight":
        return _build_straight()
    if name == "merge":
        return _build_merge()
    if name.startswith("junction_") and name in LAYOUT_NAMES:
        n_ns, n_ew = (int(v) for v in name.split("_")[1].split("x"))
        return _build_junction(n_ns, n_ew)
    raise ValueError(f"unknown layout {name!r}; known layouts: {LAYOUT_NAMES}")


@functools.lru_cache(maxsize=4096)
def _cached_path(layout_name: str, names: tuple[str, ...]) -> Path:
    layout = get_layout(layout_name)
    return Path.from_points(polyline_of_lanes([layout.lane(n) for n in names]))


def _roadblock(lane_name: str) -> str:
    """Road segment ("roadblock") of a lane name: the name without lane indices and taper suffixes, per side of a
    connector (``"E1_up"`` -> ``"E"``, ``"S_in1"`` -> ``"S_in"``, ``"S_in0>W_out0"`` -> ``"S_in>W_out"``)."""
    return ">".join(re.sub(r"\d.*$", "", part) for part in lane_name.split(">"))


def on_route_lane_ids(layout: "Layout", route_names: Sequence[str]) -> tuple[int, ...]:
    """Ids of every lane in the road segments the route passes (NAVSIM's on-route lanes: all lanes of the route's
    roadblocks, so a lane change into a parallel same-direction lane stays on route), in id order."""
    blocks = {_roadblock(name) for name in route_names}
    return tuple(sorted(lane_id for name, lane_id in layout.lane_ids.items() if _roadblock(name) in blocks))


@functools.lru_cache(maxsize=512)
def _cached_scene_map(layout_name: str, route_names: tuple[str, ...], num_frames: int) -> SceneMap:
    layout = get_layout(layout_name)
    return SceneMap(
        drivable_areas=layout.drivable_areas,
        lanes=layout.lanes,
        route_lane_ids=on_route_lane_ids(layout, route_names),
        route=layout.path(route_names).points,
        intersections=layout.intersections,
        traffic_lights=layout.lights(num_frames),
    )
