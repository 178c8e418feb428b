"""Exact, vectorized map lookups for the scorer: which map polygons strictly contain each of many points.

NAVSIM v1.1 tests ego corners / centre against map polygons with ``shapely.vectorized.contains``
(``navsim/.../pdm_planner/observation/pdm_occupancy_map.py``, ``PDMDrivableMap.points_in_polygons``) and the rear axle
against intersections with an STRtree ``within`` query (``PDMDrivableMap.is_in_layer``): both are **strict** (a
point exactly on a polygon boundary is outside). This module reproduces that without shapely at query time:

* every polygon is triangulated once (``shapely.constrained_delaunay_triangles``; no Steiner points, so triangle
  edges used by one triangle only are exactly the polygon's boundary edges);
* a uniform grid (CSR layout) lists per cell the polygons whose interior strictly contains the whole closed cell
  (membership known without a test) and the triangles of the other polygons that intersect the cell (exact
  shapely test at build time);
* a point is strictly inside polygon ``p`` iff it lies in some *closed* triangle of ``p`` and on no boundary edge of
  ``p`` (a closed triangle holding the point, with the point on one of its boundary edges). Signs come from cross
  products relative to a triangle vertex, so axis-aligned boundaries are decided exactly; for points within about
  1e-12 m of a slanted edge the floating-point sign may differ from GEOS's robust predicate.

The index covers three layers, in this column order of :meth:`MapIndex.contains`:
drivable polygons (``MapGeometry.drivable_areas`` then ``MapGeometry.intersections``: NAVSIM's drivable layers are
roadblock, intersection, drivable area and car park), lanes (``lane_polygons``), intersections.

Also the route: arc-length projection of points onto the route polyline with the semantics of shapely's
``LineString.project`` (used by NAVSIM's ``PDMPath.project`` in ``navsim/.../utils/pdm_path.py``): closest point,
first segment on ties, clamped to the ends.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np
import shapely

from rewards import kernels
from rewards.types import MapGeometry

_CACHE: "weakref.WeakKeyDictionary[MapGeometry, MapIndex]" = weakref.WeakKeyDictionary()


def _triangulate(poly_xy: np.ndarray, name: str) -> np.ndarray:
    """CCW triangles ``(K, 3, 2)`` [m] of a simple polygon ``(P, 2)``."""
    poly = shapely.Polygon(poly_xy)
    if poly.is_empty or poly.area <= 0:
        return np.zeros((0, 3, 2))
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    tris = []
    for part in getattr(poly, "geoms", [poly]):
        if not isinstance(part, shapely.Polygon) or part.area <= 0:
            continue
        coll = shapely.constrained_delaunay_triangles(part)
        for tri in coll.geoms:
            tris.append(np.asarray(tri.exterior.coords)[:3])
    if not tris:
        raise ValueError(f"{name}: polygon could not be triangulated")
    out = np.asarray(tris, dtype=np.float64)
    a, b, c = out[:, 0], out[:, 1], out[:, 2]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    out = out[np.abs(cross) > 0]
    cw = ((out[:, 1, 0] - out[:, 0, 0]) * (out[:, 2, 1] - out[:, 0, 1])
          - (out[:, 1, 1] - out[:, 0, 1]) * (out[:, 2, 0] - out[:, 0, 0])) < 0
    out[cw] = out[cw][:, ::-1]
    return out


def _boundary_edge_flags(tris: np.ndarray) -> np.ndarray:
    """``(K, 3)`` bool: edge ``i`` (vertex ``i`` -> ``i+1``) of each triangle is used by no other triangle."""
    if len(tris) == 0:
        return np.zeros((0, 3), dtype=bool)
    a = tris
    b = np.roll(tris, -1, axis=1)
    # Canonical unordered edge key from the exact coordinates.
    lo = ((a[..., 0] < b[..., 0]) | ((a[..., 0] == b[..., 0]) & (a[..., 1] <= b[..., 1])))[..., None]
    first = np.where(lo, a, b)
    second = np.where(lo, b, a)
    keys = np.concatenate([first, second], axis=-1).reshape(-1, 4)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    return (counts[inverse.ravel()] == 1).reshape(-1, 3)


@dataclass(frozen=True, eq=False)
class MapIndex:
    """Precomputed strict point-in-polygon lookups and route projection for one :class:`MapGeometry`.

    Build with :meth:`build` or (cached per geometry object) :func:`map_index_for`.

    Attributes:
        num_drivable: number of drivable-layer polygons (columns ``[0, num_drivable)``).
        num_lanes: number of lane polygons (next columns).
        num_intersections: number of intersection polygons (last columns).
        lane_ids: ``(num_lanes,)`` ids of the lane columns.
        lane_on_route: ``(num_lanes,)`` bool, lane id in ``route_lane_ids``.
        route: ``(R, 2)`` route polyline [m]; ``route_s`` ``(R,)`` its cumulative arc length [m].
    """

    num_drivable: int
    num_lanes: int
    num_intersections: int
    lane_ids: np.ndarray
    lane_on_route: np.ndarray
    route: np.ndarray
    route_s: np.ndarray
    _tri_a: np.ndarray  # (K, 2) first vertex
    _tri_e: np.ndarray  # (K, 3, 2) edge vectors a->b, b->c, c->a
    _tri_v: np.ndarray  # (K, 3, 2) edge start vertices
    _tri_boundary: np.ndarray  # (K, 3) bool
    _tri_poly: np.ndarray  # (K,) polygon column
    _origin: np.ndarray  # (2,) grid origin
    _cell: float
    _shape: tuple[int, int]  # (nx, ny)
    _cell_start: np.ndarray  # (nx * ny + 1,) CSR offsets into _cell_tris
    _cell_tris: np.ndarray  # triangle indices (only polygons whose boundary may cross the cell)
    _full_start: np.ndarray  # (nx * ny + 1,) CSR offsets into _full_polys
    _full_polys: np.ndarray  # polygon columns whose interior strictly contains the whole (closed) cell
    _kernel_args: tuple = field(init=False, repr=False, compare=False)  # see kernel_arrays()
    _kernel_route: np.ndarray = field(init=False, repr=False, compare=False)  # route, C-contiguous float64
    _kernel_route_s: np.ndarray = field(init=False, repr=False, compare=False)  # route_s, C-contiguous float64

    def __post_init__(self) -> None:
        nx, ny = self._shape
        cell_start = np.ascontiguousarray(self._cell_start, dtype=np.int64)
        cell_tris = np.ascontiguousarray(self._cell_tris, dtype=np.int64)
        tri_v = np.ascontiguousarray(self._tri_v, dtype=np.float64).reshape(-1, 3, 2)
        tri_poly = np.ascontiguousarray(self._tri_poly, dtype=np.int64)
        origin = np.ascontiguousarray(self._origin, dtype=np.float64)
        extent = float(np.max(np.abs(tri_v))) if len(tri_v) else 1.0
        pad = 1e-6 + 1e-12 * extent  # >> rounding of the clip and of floor((p - origin) / cell) at cell borders
        boxes = kernels.entry_boxes(cell_start, cell_tris, tri_v, origin, float(self._cell), int(ny), pad)
        args = (
            np.ascontiguousarray(self.lane_on_route, dtype=np.bool_),
            origin,
            float(self._cell),
            int(nx),
            int(ny),
            cell_start,
            cell_tris,
            boxes,
            np.ascontiguousarray(self._full_start, dtype=np.int64),
            np.ascontiguousarray(self._full_polys, dtype=np.int64),
            tri_v,
            np.ascontiguousarray(self._tri_e, dtype=np.float64).reshape(-1, 3, 2),
            np.ascontiguousarray(self._tri_boundary, dtype=np.bool_).reshape(-1, 3),
            tri_poly,
        )
        object.__setattr__(self, "_kernel_args", args)
        object.__setattr__(self, "_kernel_route", np.ascontiguousarray(self.route, dtype=np.float64))
        object.__setattr__(self, "_kernel_route_s", np.ascontiguousarray(self.route_s, dtype=np.float64))

    def kernel_arrays(self) -> tuple:
        """Arguments of the compiled lookups (:mod:`rewards.kernels`) after the layer counts: ``lane_on_route``,
        grid origin [m], cell size [m], ``nx``, ``ny``, the triangle CSR list (offsets, triangle indices,
        per-entry prefilter boxes of :func:`rewards.kernels.entry_boxes`), the
        "full" CSR list and the triangle arrays (vertices, edge vectors, boundary flags, polygon column), all
        C-contiguous."""
        return self._kernel_args

    @property
    def num_polygons(self) -> int:
        """Total columns of :meth:`contains`."""
        return self.num_drivable + self.num_lanes + self.num_intersections

    @property
    def drivable_columns(self) -> slice:
        return slice(0, self.num_drivable)

    @property
    def lane_columns(self) -> slice:
        return slice(self.num_drivable, self.num_drivable + self.num_lanes)

    @property
    def intersection_columns(self) -> slice:
        return slice(self.num_drivable + self.num_lanes, self.num_polygons)

    @classmethod
    def build(cls, geometry: MapGeometry, cell_size: float | None = None) -> "MapIndex":
        """Triangulate and grid every polygon of ``geometry`` (see the module docstring for the layer order)."""
        layers = (
            [(f"MapGeometry.drivable_areas[{i}]", p) for i, p in enumerate(geometry.drivable_areas)]
            + [(f"MapGeometry.intersections[{i}] (as drivable)", p) for i, p in enumerate(geometry.intersections)]
            + [(f"MapGeometry.lane_polygons[{i}]", p) for i, p in enumerate(geometry.lane_polygons)]
            + [(f"MapGeometry.intersections[{i}]", p) for i, p in enumerate(geometry.intersections)]
        )
        tris, polys, bflags = [], [], []
        for col, (name, poly) in enumerate(layers):
            if len(poly) < 3:
                continue
            t = _triangulate(poly, name)
            tris.append(t)
            polys.append(np.full(len(t), col, dtype=np.int64))
            bflags.append(_boundary_edge_flags(t))
        tri = np.concatenate(tris) if tris else np.zeros((0, 3, 2))
        tri_poly = np.concatenate(polys) if polys else np.zeros(0, dtype=np.int64)
        tri_boundary = np.concatenate(bflags) if bflags else np.zeros((0, 3), dtype=bool)

        if len(tri):
            lo = tri.reshape(-1, 2).min(axis=0) - 1.0
            hi = tri.reshape(-1, 2).max(axis=0) + 1.0
        else:
            lo, hi = np.zeros(2), np.ones(2)
        extent = float(np.max(hi - lo))
        if cell_size is None:
            cell_size = max(0.5, extent / 256.0)
        nx, ny = (np.ceil((hi - lo) / cell_size).astype(int) + 1).tolist()
        npoly = len(layers)
        # Per polygon: cells strictly inside it ("full": membership known without tests) and cells its triangles
        # touch (exact shapely intersects of triangle and cell box, full cells excluded).
        full_cells, full_polys, cells, owners = [], [], [], []
        for col in range(npoly):
            mine = np.flatnonzero(tri_poly == col)
            if len(mine) == 0:
                continue
            pmin = np.floor((tri[mine].reshape(-1, 2).min(axis=0) - lo) / cell_size).astype(int)
            pmax = np.floor((tri[mine].reshape(-1, 2).max(axis=0) - lo) / cell_size).astype(int)
            xs = np.arange(pmin[0], pmax[0] + 1)
            ys = np.arange(pmin[1], pmax[1] + 1)
            gx, gy = np.meshgrid(xs, ys, indexing="ij")
            gx, gy = gx.ravel(), gy.ravel()
            x0 = lo[0] + gx * cell_size
            y0 = lo[1] + gy * cell_size
            boxes = shapely.box(x0, y0, x0 + cell_size, y0 + cell_size)
            poly_geom = shapely.union_all(shapely.polygons(tri[mine]))
            shapely.prepare(poly_geom)
            is_full = shapely.contains_properly(poly_geom, boxes)
            full_cells.append(gx[is_full] * ny + gy[is_full])
            full_polys.append(np.full(int(is_full.sum()), col, dtype=np.int64))
            part_x, part_y, part_boxes = gx[~is_full], gy[~is_full], boxes[~is_full]
            for k in mine:
                tri_geom = shapely.Polygon(tri[k])
                kmin = np.floor((tri[k].min(axis=0) - lo) / cell_size).astype(int)
                kmax = np.floor((tri[k].max(axis=0) - lo) / cell_size).astype(int)
                sel = (part_x >= kmin[0]) & (part_x <= kmax[0]) & (part_y >= kmin[1]) & (part_y <= kmax[1])
                hit = np.flatnonzero(sel)[shapely.intersects(tri_geom, part_boxes[sel])]
                cells.append(part_x[hit] * ny + part_y[hit])
                owners.append(np.full(len(hit), k, dtype=np.int64))
        cells_a = np.concatenate(cells) if cells else np.zeros(0, np.int64)
        owners_a = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        order = np.argsort(cells_a, kind="stable")
        start = np.concatenate([[0], np.cumsum(np.bincount(cells_a, minlength=nx * ny))])
        fc = np.concatenate(full_cells) if full_cells else np.zeros(0, np.int64)
        fp = np.concatenate(full_polys) if full_polys else np.zeros(0, np.int64)
        forder = np.argsort(fc, kind="stable")
        fstart = np.concatenate([[0], np.cumsum(np.bincount(fc, minlength=nx * ny))])

        lane_ids = np.asarray(geometry.lane_ids, dtype=np.int64)
        route = np.asarray(geometry.route, dtype=np.float64)
        seg = np.linalg.norm(np.diff(route, axis=0), axis=1) if len(route) > 1 else np.zeros(0)
        return cls(
            num_drivable=len(geometry.drivable_areas) + len(geometry.intersections),
            num_lanes=len(geometry.lane_polygons),
            num_intersections=len(geometry.intersections),
            lane_ids=lane_ids,
            lane_on_route=np.isin(lane_ids, np.asarray(geometry.route_lane_ids, dtype=np.int64)),
            route=route,
            route_s=np.concatenate([[0.0], np.cumsum(seg)]),
            _tri_a=tri[:, 0].copy(),
            _tri_e=np.roll(tri, -1, axis=1) - tri,
            _tri_v=tri.copy(),
            _tri_boundary=tri_boundary,
            _tri_poly=tri_poly,
            _origin=lo,
            _cell=float(cell_size),
            _shape=(int(nx), int(ny)),
            _cell_start=start,
            _cell_tris=owners_a[order],
            _full_start=fstart,
            _full_polys=fp[forder],
        )

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Strict containment of points ``(..., 2)`` [m] in every polygon: ``(..., num_polygons)`` bool.

        Per point: the polygons whose interior holds the point's whole grid cell, then the strict test against the
        triangles listed for the cell (compiled: :func:`rewards.kernels.contains_points`).
        """
        pts = np.asarray(points, dtype=np.float64)
        lead = pts.shape[:-1]
        flat = np.ascontiguousarray(pts.reshape(-1, 2))
        npoly = self.num_polygons
        if flat.shape[0] == 0 or npoly == 0:
            return np.zeros(lead + (npoly,), dtype=bool)
        out = kernels.contains_points(flat, npoly, *self._kernel_args[1:])
        return out.reshape(lead + (npoly,))

    def project_route(self, points: np.ndarray) -> np.ndarray:
        """Arc length [m] of the closest route point for points ``(..., 2)`` (shapely ``LineString.project``; 0 for a
        route of fewer than 2 points). Compiled: :func:`rewards.kernels.project_points`."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim < 1 or pts.shape[-1] != 2:
            raise ValueError(f"points: expected shape (..., 2), got {pts.shape}")
        flat = np.ascontiguousarray(pts.reshape(-1, 2))
        return kernels.project_points(flat, self._kernel_route, self._kernel_route_s).reshape(pts.shape[:-1])


def map_index_for(geometry: MapGeometry) -> MapIndex:
    """:meth:`MapIndex.build` cached per ``MapGeometry`` object (weak reference, freed with the geometry)."""
    idx = _CACHE.get(geometry)
    if idx is None:
        idx = MapIndex.build(geometry)
        _CACHE[geometry] = idx
    return idx
