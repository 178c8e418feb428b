"""Parametric road-geometry families of the SYNTHETIC scenario bank (opt-in: ``ScenarioBank(..., roads="families")``).

Each family builds a :class:`~envs.scenes.layouts.Layout` from a few parameters, drawn per scene from the scene's
random generator (:func:`draw_params`) on a coarse grid (so that layouts, paths, scene maps and the scorer's map
indices are cached and shared across scenes: about 1,700 distinct layouts in all, 800 of them curves; a finer grid
is a one-line change in :func:`draw_params`, paid for with a layout build, 2-40 ms, per new variant). A family layout is named ``"<family>[k=v,...]"`` (:func:`family_layout_name`) and rebuilt from its name by
:func:`envs.scenes.layouts.get_layout`. All right-hand traffic, lanes 3.5 m wide, world frame x east / y north; all
geometry SYNTHETIC.

Families (:data:`FAMILIES`); ``L`` lanes per direction, ``P`` a 2.5 m drivable parking strip on both sides:

* ``straight`` ``(L 1-4, P)``: a straight two-way road along x in [-250, 250] m (lanes ``E<i>`` eastbound,
  ``W<i>`` westbound, index 0 next to the centre line).
* ``curve`` ``(L 1-3, P, S, R, A, D)``: a two-way road whose centreline runs east from (-250, 0), straight for ``S``
  (150 or 190) [m], then a circular arc of radius ``R`` (60-240, step 30) [m] over ``A`` (30-120, step 15, arc at
  most ~260 m) [deg] turning left (``D=1``) or right (``D=-1``), then straight again (500 m in all). Lanes are
  offsets of the centreline (``Layout.centre``).
* ``merge`` ``(L 1-3, X, T, C, Y)``: the straight road (no parking before the merge) with a parallel on-ramp
  ``ramp``: a lateral approach from ``Y`` (20-50, step 15) [m] south of the acceleration lane, an acceleration lane
  ``C`` (30-90, step 30) [m] long and a ``T`` (30-60, step 15) [m] taper ending at ``x = X`` (0 or 40) [m] on the
  outer eastbound lane (``E<L-1>_up`` ends, ``E<L-1>_down`` starts there).
* ``ramp`` ``(L 1-3, X, T, C, H, R)``: the same main road with an angled on-ramp: a straight approach at heading
  ``H`` (20-40, step 10) [deg], a circular arc of radius ``R`` (60-150, step 45) [m] onto a short acceleration lane
  (``C`` 10-40, step 15 [m]), then the taper.
* ``lane_drop`` ``(L 1-3, X, T)``: the outer eastbound lane ``drop`` ends, tapering over ``T`` [m] into the next
  lane at ``x = X``.
* ``junction_x`` ``(N, E)``: an orthogonal 4-way signalized junction, ``N`` / ``E`` lanes per direction on the
  north-south / east-west road (1-3 each).
* ``junction_skew`` ``(N, E, A)``: a 4-way junction whose east-west road crosses at ``A`` (55, 65, 75, 105, 115 or
  125) [deg].
* ``junction_t`` ``(N, E, A, M)``: a 3-way junction: the north-south road with one side arm (``M``: the missing arm,
  ``E`` or ``W``) at angle ``A`` (60-120, step 15) [deg].

The merge families (``merge``, ``ramp``, ``lane_drop``) have drivable parking strips on the north side and, past the
merge, on the south side. Junction families: arms 150 m long, the north-south road green for the whole scene, lane
connectors as the classic junction's plus left turns from the inner lane into every exit lane; the junction box is the
polygon through the arm mouths (chamfered corners, no curb arcs).
"""

from __future__ import annotations

import math
import re
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from envs.scenes.layouts import (
    LANE_WIDTH,
    MERGE_SPEED_LIMIT,
    SPACING,
    URBAN_SPEED_LIMIT,
    Layout,
    Path,
    _Builder,
    _cosine_shift,
    _rect,
    _rot90,
    _segment,
    register_family_builder,
)

HALF_LENGTH = 250.0
"""Half length of the two-way road families (x in [-250, 250] m, or 500 m of curved centreline) [m]."""
ARM_LENGTH = 150.0
"""Length of a junction arm [m]."""
JUNCTION_MARGIN = 6.0
"""Extra distance of each arm mouth from where the neighbouring arms' roads end [m]."""
ROAD_FAMILIES = ("straight", "curve")
MERGE_FAMILIES = ("merge", "ramp", "lane_drop")
JUNCTION_FAMILIES = ("junction_x", "junction_skew", "junction_t")
FAMILIES = ROAD_FAMILIES + MERGE_FAMILIES + JUNCTION_FAMILIES
"""Every road-geometry family."""
HELD_OUT_FAMILIES = ("curve",)
"""Families reserved as the held-out evaluation split (never in a training bank by default)."""
TRAIN_FAMILIES = tuple(f for f in FAMILIES if f not in HELD_OUT_FAMILIES)
"""Families of a ``roads="families"`` bank by default."""

_PARAM_KEYS: dict[str, tuple[str, ...]] = {
    "straight": ("L", "P"),
    "curve": ("L", "P", "S", "R", "A", "D"),
    "merge": ("L", "X", "T", "C", "Y"),
    "ramp": ("L", "X", "T", "C", "H", "R"),
    "lane_drop": ("L", "X", "T"),
    "junction_x": ("N", "E"),
    "junction_skew": ("N", "E", "A"),
    "junction_t": ("N", "E", "A", "M"),
}


def _straight_lane(b: _Builder, name: str, p0, p1, speed_limit: float, in_intersection: bool = False) -> int:
    """Add a straight lane from ``p0`` to ``p1`` [m] (centreline sampled every metre) with its 4-corner outline
    (what :class:`~envs.scenes.scene.Lane` derives after dropping collinear vertices, without the exact-arithmetic
    pass over every sample: the expensive part of building a layout)."""
    p0, p1 = np.asarray(p0, dtype=np.float64), np.asarray(p1, dtype=np.float64)
    d = (p1 - p0) / np.linalg.norm(p1 - p0)
    n = 0.5 * LANE_WIDTH * np.array([-d[1], d[0]])
    polygon = np.array([p0 + n, p1 + n, p1 - n, p0 - n])
    return b.add(name, _segment(p0, p1), speed_limit, in_intersection, polygon)


def check_family(family: str) -> str:
    """``family`` if known, else ``ValueError`` listing :data:`FAMILIES`."""
    if family not in _PARAM_KEYS:
        raise ValueError(f"unknown road family {family!r}; known families: {', '.join(FAMILIES)}")
    return family


def family_layout_name(family: str, params: Mapping[str, Any]) -> str:
    """``"<family>[k=v,...]"`` (keys in the family's order; values ints or a one-letter string)."""
    check_family(family)
    missing = [k for k in _PARAM_KEYS[family] if k not in params]
    if missing:
        raise ValueError(f"road family {family!r}: missing parameters {missing} (needs {_PARAM_KEYS[family]})")
    return f"{family}[" + ",".join(f"{k}={params[k]}" for k in _PARAM_KEYS[family]) + "]"


def parse_layout_name(name: str) -> tuple[str, dict[str, Any]]:
    """``(family, params)`` of a family layout name; ``ValueError`` naming it when malformed."""
    m = re.fullmatch(r"(\w+)\[([^\]]*)\]", name)
    if not m:
        raise ValueError(f"malformed family layout name {name!r} (expected '<family>[k=v,...]')")
    family = check_family(m.group(1))
    params: dict[str, Any] = {}
    for item in filter(None, m.group(2).split(",")):
        key, _, value = item.partition("=")
        params[key] = int(value) if re.fullmatch(r"-?\d+", value) else value
    if tuple(params) != _PARAM_KEYS[family]:
        raise ValueError(f"family layout {name!r}: parameters {tuple(params)} != {_PARAM_KEYS[family]}")
    return family, params


def _grid(rng: np.random.Generator, lo: int, hi: int, step: int) -> int:
    """Uniform draw from ``lo, lo + step, ..., hi``."""
    return int(lo + step * rng.integers((hi - lo) // step + 1))


def draw_params(
    rng: np.random.Generator, family: str, *, min_lanes: int = 1, parking: bool = False, missing: str | None = None,
    min_ns: int = 1,
) -> dict[str, Any]:
    """Parameters of ``family`` drawn from ``rng`` (see the module docstring for their meaning and ranges).

    Args:
        min_lanes: fewest lanes per direction wanted (two-way road and merge families).
        parking: force parking strips (``straight`` / ``curve``).
        missing: the arm a ``junction_t`` lacks (``"E"`` or ``"W"``; drawn when None).
        min_ns: fewest lanes per direction on a junction's north-south road.
    """
    check_family(family)
    if family in ROAD_FAMILIES:
        p: dict[str, Any] = {"L": int(rng.integers(min_lanes, 5 if family == "straight" else 4)),
                             "P": 1 if parking or rng.random() < 0.6 else 0}
        if family == "curve":
            r = _grid(rng, 60, 240, 30)
            arc_deg_max = min(120, int(math.degrees(260.0 / r)) // 15 * 15)
            p.update(S=_grid(rng, 150, 190, 40), R=r, A=_grid(rng, 30, max(30, arc_deg_max), 15),
                     D=1 if rng.random() < 0.5 else -1)
        return p
    if family in MERGE_FAMILIES:
        p = {"L": int(rng.integers(min_lanes, 4)), "X": _grid(rng, 0, 40, 40), "T": _grid(rng, 30, 60, 15)}
        if family == "merge":
            p.update(C=_grid(rng, 30, 90, 30), Y=_grid(rng, 20, 50, 15))
        elif family == "ramp":
            p.update(C=_grid(rng, 10, 40, 15), H=_grid(rng, 20, 40, 10), R=_grid(rng, 60, 150, 45))
        return p
    p = {"N": int(rng.integers(min_ns, 4)), "E": int(rng.integers(1, 4))}
    if family == "junction_skew":
        a = _grid(rng, 55, 75, 10)
        p["A"] = a if rng.random() < 0.5 else 180 - a
    elif family == "junction_t":
        p["A"] = _grid(rng, 60, 120, 15)
        p["M"] = missing if missing is not None else ("E" if rng.random() < 0.5 else "W")
    return p


def build_family_layout(name: str) -> Layout:
    """The layout of a family layout name (use :func:`envs.scenes.layouts.get_layout`, which caches it)."""
    family, p = parse_layout_name(name)
    if family in ROAD_FAMILIES:
        return _two_way_road(name, family, p, _centreline(family, p))
    if family in MERGE_FAMILIES:
        return _merge_road(name, family, p)
    return _junction(name, family, p)


# ------------------------------------------------------------------------------------------------- two-way roads
def _centreline(family: str, p: Mapping[str, Any]) -> Path:
    """Reference centreline of a two-way road family (500 m, starting at (-250, 0) heading east)."""
    if family == "straight":
        return Path.from_points(_segment([-HALF_LENGTH, 0.0], [HALF_LENGTH, 0.0]))
    r, a, sign, s0 = float(p["R"]), math.radians(p["A"]), float(p["D"]), float(p["S"])
    start = np.array([-HALF_LENGTH, 0.0])
    q0 = start + [s0, 0.0]
    centre = q0 + [0.0, sign * r]
    n = max(3, int(math.ceil(r * a / SPACING)) + 1)
    phi = -sign * 0.5 * math.pi + sign * np.linspace(0.0, a, n)
    arc = centre + r * np.stack([np.cos(phi), np.sin(phi)], axis=1)
    rest = 2 * HALF_LENGTH - s0 - r * a
    heading = sign * a
    end = arc[-1] + rest * np.array([math.cos(heading), math.sin(heading)])
    pts = np.concatenate([_segment(start, q0)[:-1], arc, _segment(arc[-1], end)[1:]])
    return Path.from_points(pts)


def _offset(centre: Path, lateral: float) -> np.ndarray:
    """``(K, 2)`` points of ``centre`` shifted ``lateral`` [m] to its left, about :data:`SPACING` apart."""
    s = np.linspace(0.0, centre.length, int(math.ceil(centre.length / SPACING)) + 1)
    return centre.poses(s, lateral)[:, :2]


def _two_way_road(name: str, family: str, p: Mapping[str, Any], centre: Path) -> Layout:
    w, b, n = LANE_WIDTH, _Builder(), int(p["L"])
    if not 1 <= n <= 4:
        raise ValueError(f"layout {name!r}: L (lanes per direction) must be 1-4, got {n}")
    h = HALF_LENGTH
    for i in range(n):
        if family == "straight":
            _straight_lane(b, f"E{i}", [-h, -(i + 0.5) * w], [h, -(i + 0.5) * w], URBAN_SPEED_LIMIT)
        else:
            b.add(f"E{i}", _offset(centre, -(i + 0.5) * w), URBAN_SPEED_LIMIT)
    for i in range(n):
        if family == "straight":
            _straight_lane(b, f"W{i}", [h, (i + 0.5) * w], [-h, (i + 0.5) * w], URBAN_SPEED_LIMIT)
        else:
            b.add(f"W{i}", _offset(centre, (i + 0.5) * w)[::-1], URBAN_SPEED_LIMIT)
    parking = bool(p["P"])
    edge = n * w + (2.5 if parking else 0.0)
    area = np.concatenate([_offset(centre, -edge), _offset(centre, edge)[::-1]])
    walk = edge + 1.5
    routes = tuple((f"{d}{i}",) for d in "EW" for i in range(n))
    return Layout(
        name=name, lanes=tuple(b.lanes), lane_ids=MappingProxyType(b.ids), drivable_areas=(area,),
        walkways=(_offset(centre, -walk), _offset(centre, walk)[::-1]),
        parking=(_offset(centre, -(n * w + 1.25)), _offset(centre, n * w + 1.25)[::-1]) if parking else (),
        family=family, params=MappingProxyType(dict(p)), centre=None if family == "straight" else centre.points,
        through_routes=routes,
    )


# ----------------------------------------------------------------------------------------------- merge families
def _merge_road(name: str, family: str, p: Mapping[str, Any]) -> Layout:
    w, b, n = LANE_WIDTH, _Builder(), int(p["L"])
    h, x_end, taper = HALF_LENGTH, float(p["X"]), float(p["T"])
    k = n - 1
    y_k, y_acc = -(k + 0.5) * w, -(n + 0.5) * w
    for i in range(k):
        _straight_lane(b, f"E{i}", [-h, -(i + 0.5) * w], [h, -(i + 0.5) * w], MERGE_SPEED_LIMIT)
    _straight_lane(b, f"E{k}_up", [-h, y_k], [x_end, y_k], MERGE_SPEED_LIMIT)
    _straight_lane(b, f"E{k}_down", [x_end, y_k], [h, y_k], MERGE_SPEED_LIMIT)
    for i in range(n):
        _straight_lane(b, f"W{i}", [h, (i + 0.5) * w], [-h, (i + 0.5) * w], MERGE_SPEED_LIMIT)
    x_taper = x_end - taper
    tail = _cosine_shift(x_taper, x_end, y_acc, y_k)
    if family == "lane_drop":
        merging = "drop"
        pts = np.concatenate([_segment([-h, y_acc], [x_taper, y_acc])[:-1], tail])
        strip = _rect(-h, x_end, y_acc - 0.5 * w, -n * w + 0.5)
    else:
        merging = "ramp"
        x_acc = x_taper - float(p["C"])
        if family == "merge":
            approach = _cosine_shift(x_acc - 100.0, x_acc, y_acc - float(p["Y"]), y_acc)
        else:
            r, hd = float(p["R"]), math.radians(p["H"])
            centre = np.array([x_acc, y_acc - r])
            phi = np.linspace(0.5 * math.pi + hd, 0.5 * math.pi, max(3, int(math.ceil(r * hd / SPACING)) + 1))
            arc = centre + r * np.stack([np.cos(phi), np.sin(phi)], axis=1)
            start = arc[0] - 80.0 * np.array([math.cos(hd), math.sin(hd)])
            approach = np.concatenate([_segment(start, arc[0])[:-1], arc])
        pts = np.concatenate([approach[:-1], _segment([x_acc, y_acc], [x_taper, y_acc])[:-1], tail])
        strip = _rect(x_acc, x_end, y_acc - 0.5 * w, -n * w + 0.5)
    merge_id = b.add(merging, pts, URBAN_SPEED_LIMIT)
    areas = [_rect(-h, h, -n * w, n * w + 2.5), strip, _rect(x_end, h, -n * w - 2.5, -n * w + 0.5)]
    if merging == "ramp":
        areas.append(b.lanes[merge_id - 1].polygon)
    walk_n, walk_s = n * w + 4.0, -(n * w + 4.0)
    routes = (*((f"E{i}",) for i in range(k)), (f"E{k}_up", f"E{k}_down"), (merging, f"E{k}_down"),
              *((f"W{i}",) for i in range(n)))
    return Layout(
        name=name, lanes=tuple(b.lanes), lane_ids=MappingProxyType(b.ids), drivable_areas=tuple(areas),
        walkways=(_segment([x_end, walk_s], [h, walk_s]), _segment([h, walk_n], [-h, walk_n])),
        parking=(_segment([x_end, -(n * w + 1.25)], [h, -(n * w + 1.25)]),
                 _segment([h, n * w + 1.25], [-h, n * w + 1.25])),
        family=family, params=MappingProxyType(dict(p)), through_routes=routes,
    )


# -------------------------------------------------------------------------------------------- junction families
def _unit(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)]).round(12)


def arc_turn(p0: np.ndarray, d0: np.ndarray, p1: np.ndarray, d1: np.ndarray, spacing: float = SPACING) -> np.ndarray:
    """Turn of any angle in (0, 180) deg from ``p0`` heading ``d0`` to ``p1`` heading ``d1`` (unit vectors):
    straight, circular arc tangent to both lines, straight; ``(K, 2)`` points [m]. The arc's tangent length is the
    shorter distance from an end point to the corner where the two lines meet."""
    p0, p1, d0, d1 = (np.asarray(v, dtype=np.float64) for v in (p0, p1, d0, d1))
    cross = d0[0] * d1[1] - d0[1] * d1[0]
    theta = math.atan2(abs(cross), float(d0 @ d1))
    if abs(cross) < 1e-9 or theta <= 1e-6:
        raise ValueError(f"arc_turn: headings {d0} and {d1} are parallel")
    a, bb = np.linalg.solve(np.array([[d0[0], d1[0]], [d0[1], d1[1]]]), p1 - p0)
    t = min(a, bb)
    if t <= 0:
        raise ValueError("arc_turn: the end point lies behind the start")
    r = t / math.tan(0.5 * theta)
    corner = p0 + a * d0
    q0, q1 = corner - t * d0, corner + t * d1
    normal = np.array([-d0[1], d0[0]]) * math.copysign(1.0, cross)
    c = q0 + r * normal
    a0 = math.atan2(q0[1] - c[1], q0[0] - c[0])
    ang = a0 + math.copysign(1.0, cross) * np.linspace(0.0, theta, max(3, int(math.ceil(theta * r / spacing)) + 1))
    parts = [c + r * np.stack([np.cos(ang), np.sin(ang)], axis=1)]
    if a - t > 1e-6:
        parts.insert(0, _segment(p0, q0, spacing)[:-1])
    if bb - t > 1e-6:
        parts.append(_segment(q1, p1, spacing)[1:])
    return np.concatenate(parts, axis=0)


def _junction(name: str, family: str, p: Mapping[str, Any]) -> Layout:
    w, b = LANE_WIDTH, _Builder()
    n_ns, n_ew = int(p["N"]), int(p["E"])
    if not (1 <= n_ns <= 3 and 1 <= n_ew <= 3):
        raise ValueError(f"layout {name!r}: lane counts N, E must be 1-3, got {n_ns}, {n_ew}")
    delta = math.radians(90 - int(p.get("A", 90)))  # rotation of the east-west road [rad]
    angles = {"E": delta, "N": 0.5 * math.pi, "W": math.pi + delta, "S": 1.5 * math.pi}
    arms = [a for a in ("S", "E", "N", "W") if a != p.get("M")]
    nl = {"N": n_ns, "S": n_ns, "E": n_ew, "W": n_ew}
    hw = {a: nl[a] * w for a in nl}
    u = {a: _unit(angles[a]) for a in arms}
    left = {a: _rot90(u[a], 1.0) for a in arms}
    edge = {}
    for a in arms:
        e = 0.0
        for o in arms:
            sin_g = abs(u[a][0] * u[o][1] - u[a][1] * u[o][0])
            if o != a and sin_g > 1e-6:
                e = max(e, (hw[o] + hw[a] * abs(float(u[a] @ u[o]))) / sin_g)
        edge[a] = e + JUNCTION_MARGIN
    in_lane, out_lane = {}, {}
    for a in arms:
        for i in range(nl[a]):
            off = (i + 0.5) * w * left[a]
            in_lane[a, i] = _straight_lane(b, f"{a}_in{i}", u[a] * (edge[a] + ARM_LENGTH) + off, u[a] * edge[a] + off,
                                           URBAN_SPEED_LIMIT)
        for j in range(nl[a]):
            off = -(j + 0.5) * w * left[a]
            out_lane[a, j] = _straight_lane(b, f"{a}_out{j}", u[a] * edge[a] + off, u[a] * (edge[a] + ARM_LENGTH) + off,
                                            URBAN_SPEED_LIMIT)
    connector_arm = {}
    for a in arms:
        d_in = -u[a]
        moves: dict[str, str] = {}
        for o in arms:
            if o == a:
                continue
            rel = math.atan2(d_in[0] * u[o][1] - d_in[1] * u[o][0], float(d_in @ u[o]))
            moves["straight" if abs(rel) < math.radians(20) else ("left" if rel > 0 else "right")] = o
        for i in range(nl[a]):
            allowed = ["left", "straight", "right"] if nl[a] == 1 else (["left", "straight"] if i == 0 else ["straight", "right"])
            p0 = b.lanes[in_lane[a, i] - 1].centerline[-1]
            for move in allowed:
                if move not in moves:
                    continue
                dest = moves[move]
                if move == "left" and i == 0:
                    js = list(range(nl[dest]))
                else:
                    js = [{"left": 0, "right": nl[dest] - 1, "straight": min(i, nl[dest] - 1)}[move]]
                for j in js:
                    p1 = b.lanes[out_lane[dest, j] - 1].centerline[0]
                    cname = f"{a}_in{i}>{dest}_out{j}"
                    if move == "straight":
                        cid = _straight_lane(b, cname, p0, p1, URBAN_SPEED_LIMIT, in_intersection=True)
                    else:
                        cid = b.add(cname, arc_turn(p0, d_in, p1, u[dest]), URBAN_SPEED_LIMIT, in_intersection=True)
                    connector_arm[cid] = a
    ordered = sorted(arms, key=lambda a: angles[a] % (2 * math.pi))
    box = np.array([c for a in ordered for c in (u[a] * edge[a] - hw[a] * left[a], u[a] * edge[a] + hw[a] * left[a])])
    rects = []
    walkways, crosswalks = [], {}
    for a in arms:
        far = edge[a] + ARM_LENGTH
        rects.append(np.array([u[a] * edge[a] - hw[a] * left[a], u[a] * far - hw[a] * left[a],
                               u[a] * far + hw[a] * left[a], u[a] * edge[a] + hw[a] * left[a]]))
        for side in (1.0, -1.0):
            off = side * (hw[a] + 2.0) * left[a]
            walkways.append(_segment(u[a] * (edge[a] + 2.0) + off, u[a] * far + off))
        c = u[a] * (edge[a] - 0.5 * JUNCTION_MARGIN)
        crosswalks[a] = _segment(c - (hw[a] + 2.0) * left[a], c + (hw[a] + 2.0) * left[a])
    return Layout(
        name=name, lanes=tuple(b.lanes), lane_ids=MappingProxyType(b.ids), drivable_areas=(box, *rects),
        intersections=(box,), walkways=tuple(walkways), crosswalks=MappingProxyType(crosswalks),
        green_arms=tuple(a for a in ("S", "N") if a in arms), connector_arm=MappingProxyType(connector_arm),
        family=family, params=MappingProxyType(dict(p)),
    )


register_family_builder(build_family_layout)
