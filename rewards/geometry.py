"""Planar geometry shared by the scorer, the environments and the miner (pure numpy, no shapely).

Conventions
-----------
* Poses are ``(..., 3)`` arrays ``(x, y, yaw)`` in ``[m, m, rad]``; yaw is counter-clockwise from +x.
* A *local* frame is given by a pose ``origin (3,)`` in the *world* frame; ``x`` points along the heading.
* Box corners come in NAVSIM's order: front-left, rear-left, rear-right, front-right
  (``navsim/planning/simulation/planner/pdm_planner/utils/pdm_enums.py``, ``BBCoordsIndex``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class VehicleParameters:
    """Ego vehicle geometry [m]. Defaults: nuPlan's Chrysler Pacifica, as used by NAVSIM v1.1.

    Source: ``nuplan/common/actor_state/vehicle_parameters.py`` (``get_pacifica_parameters``).
    Poses of the ego in a :class:`~envs.scenes.scene.Scene` and in trajectories are **rear-axle** poses; the box
    centre lies ``rear_axle_to_center`` ahead of the rear axle along the heading.
    """

    length: float = 5.176
    """Box length [m]."""
    width: float = 2.297
    """Box width [m]."""
    wheelbase: float = 3.089
    """Distance rear axle to front axle [m]."""
    rear_axle_to_center: float = 1.461
    """Distance from the rear axle to the box centre, along the heading [m]."""

    def __post_init__(self) -> None:
        for name in ("length", "width", "wheelbase"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"VehicleParameters.{name} must be a positive finite number, got {value!r}")
        if not np.isfinite(self.rear_axle_to_center):
            raise ValueError(f"VehicleParameters.rear_axle_to_center must be finite, got {self.rear_axle_to_center!r}")


NAVSIM_EGO = VehicleParameters()


def wrap_angle(angle: np.ndarray | float) -> np.ndarray:
    """Wrap angles to ``[-pi, pi)`` [rad]."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


def world_to_local(values: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Express world-frame points ``(..., 2)`` or poses ``(..., 3)`` in the local frame of ``origin (3,)``.

    Returns an array of the same shape; yaw of poses is wrapped to ``[-pi, pi)``.
    """
    values = np.asarray(values, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    dx = values[..., 0] - origin[0]
    dy = values[..., 1] - origin[1]
    out = np.empty_like(values)
    out[..., 0] = c * dx + s * dy
    out[..., 1] = -s * dx + c * dy
    if values.shape[-1] >= 3:
        out[..., 2] = wrap_angle(values[..., 2] - origin[2])
        out[..., 3:] = values[..., 3:]
    return out


def local_to_world(values: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Inverse of :func:`world_to_local`: local points ``(..., 2)`` / poses ``(..., 3)`` to the world frame."""
    values = np.asarray(values, dtype=np.float64)
    origin = np.asarray(origin, dtype=np.float64)
    c, s = np.cos(origin[2]), np.sin(origin[2])
    out = np.empty_like(values)
    out[..., 0] = origin[0] + c * values[..., 0] - s * values[..., 1]
    out[..., 1] = origin[1] + s * values[..., 0] + c * values[..., 1]
    if values.shape[-1] >= 3:
        out[..., 2] = wrap_angle(values[..., 2] + origin[2])
        out[..., 3:] = values[..., 3:]
    return out


def rotate_vectors(vectors: np.ndarray, angle: np.ndarray | float) -> np.ndarray:
    """Rotate vectors ``(..., 2)`` counter-clockwise by ``angle`` [rad] (broadcast over leading dims)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    out = np.empty_like(vectors)
    out[..., 0] = c * vectors[..., 0] - s * vectors[..., 1]
    out[..., 1] = s * vectors[..., 0] + c * vectors[..., 1]
    return out


def box_corners(centers: np.ndarray, lengths: np.ndarray | float, widths: np.ndarray | float) -> np.ndarray:
    """Corners of oriented boxes.

    Args:
        centers: ``(..., 3)`` box-centre poses [m, m, rad].
        lengths: box lengths [m], broadcastable to ``centers[..., 0]``.
        widths: box widths [m], broadcastable to ``centers[..., 0]``.

    Returns:
        ``(..., 4, 2)`` corners [m] in the order front-left, rear-left, rear-right, front-right.
    """
    centers = np.asarray(centers, dtype=np.float64)
    half_l = 0.5 * np.asarray(lengths, dtype=np.float64)
    half_w = 0.5 * np.asarray(widths, dtype=np.float64)
    c, s = np.cos(centers[..., 2]), np.sin(centers[..., 2])
    # Local offsets (dl along heading, dw to the left) per corner: FL, RL, RR, FR.
    dl = np.stack([half_l, -half_l, -half_l, half_l], axis=-1) * np.ones_like(c)[..., None]
    dw = np.stack([half_w, half_w, -half_w, -half_w], axis=-1) * np.ones_like(c)[..., None]
    x = centers[..., 0, None] + c[..., None] * dl - s[..., None] * dw
    y = centers[..., 1, None] + s[..., None] * dl + c[..., None] * dw
    return np.stack([x, y], axis=-1)


def rear_axle_to_center(poses: np.ndarray, params: VehicleParameters = NAVSIM_EGO) -> np.ndarray:
    """Shift rear-axle poses ``(..., 3)`` forward to box-centre poses ``(..., 3)`` [m, m, rad]."""
    poses = np.asarray(poses, dtype=np.float64)
    out = poses.copy()
    out[..., 0] += params.rear_axle_to_center * np.cos(poses[..., 2])
    out[..., 1] += params.rear_axle_to_center * np.sin(poses[..., 2])
    return out


def vehicle_corners(rear_axle_poses: np.ndarray, params: VehicleParameters = NAVSIM_EGO) -> np.ndarray:
    """Box corners ``(..., 4, 2)`` [m] (front-left, rear-left, rear-right, front-right) of a vehicle at rear-axle
    poses ``(..., 3)`` [m, m, rad]: the box of ``params.length x params.width`` centred ``params.rear_axle_to_center``
    ahead of the rear axle (:func:`rear_axle_to_center` then :func:`box_corners`).

    The one definition of the ego box outside compiled code: closed-loop checks (:mod:`envs.sim.simulation`), the miner
    (:mod:`counterfactual`); the scorer's compiled twin ``rewards.kernels.ego_boxes`` uses the same arithmetic (equal
    bit for bit, checked in ``tests/test_pdm.py``).
    """
    return box_corners(rear_axle_to_center(rear_axle_poses, params), params.length, params.width)


def center_to_rear_axle(poses: np.ndarray, params: VehicleParameters = NAVSIM_EGO) -> np.ndarray:
    """Inverse of :func:`rear_axle_to_center`: box-centre poses ``(..., 3)`` to rear-axle poses."""
    poses = np.asarray(poses, dtype=np.float64)
    out = poses.copy()
    out[..., 0] -= params.rear_axle_to_center * np.cos(poses[..., 2])
    out[..., 1] -= params.rear_axle_to_center * np.sin(poses[..., 2])
    return out


def polyline_arclength(points: np.ndarray) -> np.ndarray:
    """Cumulative arc length ``(K,)`` [m] of a polyline ``(K, 2)``, starting at 0."""
    points = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return np.concatenate([[0.0], np.cumsum(seg)])


def polyline_headings(points: np.ndarray) -> np.ndarray:
    """Heading ``(K,)`` [rad] of a polyline ``(K, 2)`` at each vertex (last vertex repeats the last segment)."""
    points = np.asarray(points, dtype=np.float64)
    d = np.diff(points, axis=0)
    h = np.arctan2(d[:, 1], d[:, 0])
    return np.concatenate([h, h[-1:]])


def offset_polyline(points: np.ndarray, offset: float) -> np.ndarray:
    """Offset a polyline ``(K, 2)`` by ``offset`` [m] to its left (negative: right), using vertex normals.

    The normal at an inner vertex is the mean of the adjacent segment normals scaled so the offset
    segments stay parallel to the originals (a miter join); good for the gentle bends of road lanes.
    """
    points = np.asarray(points, dtype=np.float64)
    d = np.diff(points, axis=0)
    seg_len = np.linalg.norm(d, axis=1, keepdims=True)
    if np.any(seg_len <= 0):
        raise ValueError("offset_polyline: polyline has repeated consecutive points")
    n = np.stack([-d[:, 1], d[:, 0]], axis=1) / seg_len  # left normals per segment (K-1, 2)
    normals = np.empty_like(points)
    normals[0] = n[0]
    normals[-1] = n[-1]
    if len(points) > 2:
        m = n[:-1] + n[1:]
        m /= np.linalg.norm(m, axis=1, keepdims=True)
        cos_half = np.sum(m * n[1:], axis=1, keepdims=True)
        normals[1:-1] = m / np.clip(cos_half, 0.25, None)
    return points + offset * normals


def _strictly_between_exact(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    """Exact (rational) test that point ``b (2,)`` lies on the open segment ``a c`` (points ``(2,)`` [m])."""
    ax, ay, bx, by, cx, cy = (Fraction(float(v)) for v in (*a, *b, *c))
    d1x, d1y, d2x, d2y = bx - ax, by - ay, cx - bx, cy - by
    return d1x * d2y == d1y * d2x and d1x * d2x + d1y * d2y > 0


def drop_collinear_vertices(polygon: np.ndarray) -> np.ndarray:
    """The polygon ``(P, 2)`` [m] without the vertices that lie exactly on the open segment between their two
    (cyclic) neighbours: the same boundary and point set with fewer vertices (``(P', 2)``, ``3 <= P' <= P``, the
    kept vertices in their original order).

    A vertex every metre along a 500 m straight lane edge otherwise makes the map triangulation a fan of needle
    triangles, which slows :class:`rewards.map_index.MapIndex` build and lookups. Only *exactly* collinear vertices
    go: a float pre-filter (cross product 0, positive dot product) picks candidates, which are kept unless three
    consecutive points share an x or a y coordinate (exact in floating point) or rational arithmetic confirms it.
    A run of such vertices between two kept ones lies on one segment, so dropping them all at once is exact.
    Polygons that would keep fewer than 3 vertices (degenerate input) are returned unchanged.
    """
    poly = np.asarray(polygon, dtype=np.float64)
    if poly.ndim != 2 or poly.shape[1] != 2:
        raise ValueError(f"drop_collinear_vertices: expected a polygon of shape (P, 2), got {poly.shape}")
    if len(poly) <= 3:
        return poly.copy()
    prev, nxt = np.roll(poly, 1, axis=0), np.roll(poly, -1, axis=0)
    d1, d2 = poly - prev, nxt - poly
    cand = (d1[:, 0] * d2[:, 1] - d1[:, 1] * d2[:, 0] == 0.0) & ((d1 * d2).sum(axis=1) > 0.0)
    axis_aligned = ((prev[:, 0] == poly[:, 0]) & (poly[:, 0] == nxt[:, 0])) | (
        (prev[:, 1] == poly[:, 1]) & (poly[:, 1] == nxt[:, 1])
    )
    drop = cand & axis_aligned
    for i in np.flatnonzero(cand & ~axis_aligned):
        drop[i] = _strictly_between_exact(prev[i], poly[i], nxt[i])
    if len(poly) - int(drop.sum()) < 3:
        return poly.copy()
    return poly[~drop]


def boxes_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Closed overlap test of oriented rectangles by the separating-axis theorem (touching counts as overlap).

    Args:
        a: ``(..., 4, 2)`` corners [m] of rectangles in cyclic order (e.g. FL, RL, RR, FR).
        b: ``(..., 4, 2)`` corners, broadcastable against ``a``.

    Returns:
        ``(...)`` bool, True where the closed rectangles share at least one point (shapely ``intersects``).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = np.broadcast_arrays(a, b)
    axes = np.stack([a[..., 1, :] - a[..., 0, :], a[..., 2, :] - a[..., 1, :],
                     b[..., 1, :] - b[..., 0, :], b[..., 2, :] - b[..., 1, :]], axis=-2)  # (..., 4, 2)
    pa = axes[..., :, None, 0] * a[..., None, :, 0] + axes[..., :, None, 1] * a[..., None, :, 1]  # (..., 4, 4)
    pb = axes[..., :, None, 0] * b[..., None, :, 0] + axes[..., :, None, 1] * b[..., None, :, 1]
    return np.all(np.maximum(pa.min(-1), pb.min(-1)) <= np.minimum(pa.max(-1), pb.max(-1)), axis=-1)


def box_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean gap between convex quadrilaterals (e.g. oriented boxes) [m]; 0 where they overlap or touch.

    For disjoint convex polygons the gap is the smallest distance from a vertex of one to an edge of the other
    (16 point-segment distances each way); overlap is decided by :func:`boxes_overlap` (closed).

    Args:
        a: ``(..., 4, 2)`` corners [m] in cyclic order.
        b: ``(..., 4, 2)`` corners, broadcastable against ``a``.

    Returns:
        ``(...)`` float64 gap [m].
    """
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))

    def vertex_to_edges(p: np.ndarray, q: np.ndarray) -> np.ndarray:
        s0 = q[..., None, :, :]  # (..., 1, 4, 2) edge starts of q
        d = np.roll(q, -1, axis=-2)[..., None, :, :] - s0  # edge vectors
        rel = p[..., :, None, :] - s0  # (..., 4, 4, 2): vertex i of p against edge j of q
        u = np.clip(np.sum(rel * d, axis=-1) / np.maximum(np.sum(d * d, axis=-1), 1e-300), 0.0, 1.0)
        return np.hypot(*np.moveaxis(rel - u[..., None] * d, -1, 0)).min(axis=(-2, -1))

    gap = np.minimum(vertex_to_edges(a, b), vertex_to_edges(b, a))
    return np.where(boxes_overlap(a, b), 0.0, gap)


def segment_intersects_box(p0: np.ndarray, p1: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Closed intersection test of segments ``p0 -> p1`` ``(..., 2)`` with rectangles ``box`` ``(..., 4, 2)``.

    Separating axes: the rectangle's two edge directions and the segment's normal. Returns ``(...)`` bool.
    """
    p0 = np.asarray(p0, dtype=np.float64)
    p1 = np.asarray(p1, dtype=np.float64)
    box = np.asarray(box, dtype=np.float64)
    seg = np.stack([p0, p1], axis=-2)  # (..., 2, 2)
    d = p1 - p0
    normal = np.stack([-d[..., 1], d[..., 0]], axis=-1)
    axes = np.stack(np.broadcast_arrays(box[..., 1, :] - box[..., 0, :], box[..., 2, :] - box[..., 1, :], normal),
                    axis=-2)  # (..., 3, 2)
    ps = axes[..., :, None, 0] * seg[..., None, :, 0] + axes[..., :, None, 1] * seg[..., None, :, 1]
    pb = axes[..., :, None, 0] * box[..., None, :, 0] + axes[..., :, None, 1] * box[..., None, :, 1]
    return np.all(np.maximum(ps.min(-1), pb.min(-1)) <= np.minimum(ps.max(-1), pb.max(-1)), axis=-1)


def relative_angle(origin: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Angle [rad] in ``[0, pi]`` between the heading of poses ``origin (..., 3)`` and the vector to points
    ``target (..., 2)``; NaN where they coincide (nuPlan ``get_agent_relative_angle``, idm/utils.py, gives NaN)."""
    origin = np.asarray(origin, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    dx = target[..., 0] - origin[..., 0]
    dy = target[..., 1] - origin[..., 1]
    c, s = np.cos(origin[..., 2]), np.sin(origin[..., 2])
    ang = np.arctan2(np.abs(c * dy - s * dx), c * dx + s * dy)
    return np.where((dx == 0) & (dy == 0), np.nan, ang)


def oriented_boxes_overlap(
    center_a: np.ndarray, yaw_a: np.ndarray, half_a: np.ndarray,
    center_b: np.ndarray, yaw_b: np.ndarray, half_b: np.ndarray,
) -> np.ndarray:
    """Closed overlap of oriented rectangles given as centre ``(..., 2)`` [m], yaw ``(...)`` [rad] and half extents
    ``(..., 2)`` (half length, half width) [m]: the separating-axis test of :func:`boxes_overlap` in centre form
    (4 axes, no corners; same result up to floating-point rounding). Arguments broadcast; returns ``(...)`` bool."""
    dx = center_b[..., 0] - center_a[..., 0]
    dy = center_b[..., 1] - center_a[..., 1]
    ca, sa = np.cos(yaw_a), np.sin(yaw_a)
    cb, sb = np.cos(yaw_b), np.sin(yaw_b)
    cos_d = np.abs(ca * cb + sa * sb)
    sin_d = np.abs(ca * sb - sa * cb)
    a1, a2 = half_a[..., 0], half_a[..., 1]
    b1, b2 = half_b[..., 0], half_b[..., 1]
    ok = np.abs(dx * ca + dy * sa) <= a1 + b1 * cos_d + b2 * sin_d
    ok &= np.abs(-dx * sa + dy * ca) <= a2 + b1 * sin_d + b2 * cos_d
    ok &= np.abs(dx * cb + dy * sb) <= b1 + a1 * cos_d + a2 * sin_d
    ok &= np.abs(-dx * sb + dy * cb) <= b2 + a1 * sin_d + a2 * cos_d
    return ok
