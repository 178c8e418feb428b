"""Compiled map lookups of :class:`rewards.map_index.MapIndex`: strict point-in-polygon tests on its uniform grid of
triangulated polygons, and the ego areas of the PDM score (pdm_scorer.py ``_calculate_ego_area``).

A point is *strictly* inside a polygon when it lies in one of the polygon's (closed) triangles and on none of its
boundary edges; a grid cell lying strictly inside a polygon answers for every point in it without a triangle test.
No fast-math: the edge cross products are evaluated as written (relative to each edge's start vertex).

Arrays: ``G`` candidates, ``T`` steps, ``P`` points, ``E`` (cell, triangle) entries, ``K`` triangles; lengths [m].
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _cell_of(px: float, py: float, origin: np.ndarray, cell_size: float, nx: int, ny: int) -> int:
    """Grid cell index of a point, -1 outside the grid (``MapIndex``'s uniform grid)."""
    fx = math.floor((px - origin[0]) / cell_size)
    fy = math.floor((py - origin[1]) / cell_size)
    if not (fx >= 0.0 and fx < nx and fy >= 0.0 and fy < ny):  # also NaN / huge values
        return -1
    return np.int64(fx) * ny + np.int64(fy)


@njit(cache=True)
def entry_boxes(cell_start: np.ndarray, cell_tris: np.ndarray, tri_v: np.ndarray, origin: np.ndarray,
                cell_size: float, ny: int, pad: float) -> np.ndarray:
    """``(E, 4)`` box ``(xmin, ymin, xmax, ymax)`` [m] per (cell, triangle) entry of the grid: the bounding box of the
    part of the triangle inside the cell, grown by ``pad`` [m]; a conservative prefilter (a point of the cell outside
    it is outside the triangle) that lets long sliver triangles be skipped cheaply.

    The part is computed by clipping the triangle to the four half-planes of the closed cell box
    ``[x0, x0 + cell] x [y0, y0 + cell]`` (``x0 = origin_x + ix * cell`` as in ``MapIndex.build``); ``pad`` covers the
    clipping's rounding and points placed in the cell by ``floor`` at its border. If the clip comes out empty in
    floating point (the triangle only touches the cell), the box is the triangle's own bounding box, clamped to the
    padded cell.
    """
    n_cells = cell_start.shape[0] - 1
    out = np.empty((cell_tris.shape[0], 4))
    buf_x = np.empty(16)
    buf_y = np.empty(16)
    nxt_x = np.empty(16)
    nxt_y = np.empty(16)
    for c in range(n_cells):
        ix = c // ny
        iy = c - ix * ny
        x0 = origin[0] + ix * cell_size
        y0 = origin[1] + iy * cell_size
        x1 = x0 + cell_size
        y1 = y0 + cell_size
        for j in range(cell_start[c], cell_start[c + 1]):
            k = cell_tris[j]
            n = 3
            for i in range(3):
                buf_x[i] = tri_v[k, i, 0]
                buf_y[i] = tri_v[k, i, 1]
            for plane in range(4):  # Sutherland-Hodgman: x >= x0, x <= x1, y >= y0, y <= y1
                m = 0
                for i in range(n):
                    ax = buf_x[i]
                    ay = buf_y[i]
                    bx = buf_x[(i + 1) % n]
                    by = buf_y[(i + 1) % n]
                    if plane == 0:
                        da = ax - x0
                        db = bx - x0
                    elif plane == 1:
                        da = x1 - ax
                        db = x1 - bx
                    elif plane == 2:
                        da = ay - y0
                        db = by - y0
                    else:
                        da = y1 - ay
                        db = y1 - by
                    if da >= 0.0:
                        nxt_x[m] = ax
                        nxt_y[m] = ay
                        m += 1
                    if (da >= 0.0) != (db >= 0.0):
                        f = da / (da - db)
                        nxt_x[m] = ax + f * (bx - ax)
                        nxt_y[m] = ay + f * (by - ay)
                        m += 1
                n = m
                for i in range(n):
                    buf_x[i] = nxt_x[i]
                    buf_y[i] = nxt_y[i]
                if n == 0:
                    break
            if n == 0:
                lo_x = min(tri_v[k, 0, 0], tri_v[k, 1, 0], tri_v[k, 2, 0])
                lo_y = min(tri_v[k, 0, 1], tri_v[k, 1, 1], tri_v[k, 2, 1])
                hi_x = max(tri_v[k, 0, 0], tri_v[k, 1, 0], tri_v[k, 2, 0])
                hi_y = max(tri_v[k, 0, 1], tri_v[k, 1, 1], tri_v[k, 2, 1])
                out[j, 0] = max(lo_x, x0) - pad
                out[j, 1] = max(lo_y, y0) - pad
                out[j, 2] = min(hi_x, x1) + pad
                out[j, 3] = min(hi_y, y1) + pad
                continue
            lo_x = np.inf
            lo_y = np.inf
            hi_x = -np.inf
            hi_y = -np.inf
            for i in range(n):
                lo_x = min(lo_x, buf_x[i])
                lo_y = min(lo_y, buf_y[i])
                hi_x = max(hi_x, buf_x[i])
                hi_y = max(hi_y, buf_y[i])
            out[j, 0] = lo_x - pad
            out[j, 1] = lo_y - pad
            out[j, 2] = hi_x + pad
            out[j, 3] = hi_y + pad
    return out


@njit(cache=True, inline="always")
def _mark_point(px: float, py: float, cell: int, col_lo: int, col_hi: int, cell_start: np.ndarray,
                cell_tris: np.ndarray, cell_boxes: np.ndarray, full_start: np.ndarray, full_polys: np.ndarray,
                tri_v: np.ndarray,
                tri_e: np.ndarray, tri_boundary: np.ndarray, tri_poly: np.ndarray, flags: np.ndarray,
                touched: np.ndarray, num_touched: int) -> int:
    """Strict point-in-polygon of one point against the polygon columns ``[col_lo, col_hi)`` of its grid cell.

    Sets ``flags[col]``: bit 1 inside a closed triangle of ``col`` (or the cell lies strictly inside ``col``), bit 2
    on a boundary edge of ``col``; the point is strictly inside ``col`` iff ``flags[col] == 1``. Columns whose flags
    went from 0 to non-zero are appended to ``touched`` (the caller resets them). Returns the new ``num_touched``.
    The triangle test is ``MapIndex.contains``'s: CCW edge cross products relative to the edge start, ``>= 0``;
    ``cell_boxes`` ``(E, 4)`` (:func:`entry_boxes`) first skips entries whose clipped box misses the point.
    """
    for j in range(full_start[cell], full_start[cell + 1]):
        col = full_polys[j]
        if col_lo <= col < col_hi:
            if flags[col] == 0:
                touched[num_touched] = col
                num_touched += 1
            flags[col] |= 1
    for j in range(cell_start[cell], cell_start[cell + 1]):
        if px < cell_boxes[j, 0] or py < cell_boxes[j, 1] or px > cell_boxes[j, 2] or py > cell_boxes[j, 3]:
            continue
        k = cell_tris[j]
        col = tri_poly[k]
        if col < col_lo or col >= col_hi:
            continue
        c0 = tri_e[k, 0, 0] * (py - tri_v[k, 0, 1]) - tri_e[k, 0, 1] * (px - tri_v[k, 0, 0])
        if c0 < 0.0:
            continue
        c1 = tri_e[k, 1, 0] * (py - tri_v[k, 1, 1]) - tri_e[k, 1, 1] * (px - tri_v[k, 1, 0])
        if c1 < 0.0:
            continue
        c2 = tri_e[k, 2, 0] * (py - tri_v[k, 2, 1]) - tri_e[k, 2, 1] * (px - tri_v[k, 2, 0])
        if c2 < 0.0:
            continue
        if flags[col] == 0:
            touched[num_touched] = col
            num_touched += 1
        flags[col] |= 1
        if ((c0 == 0.0 and tri_boundary[k, 0]) or (c1 == 0.0 and tri_boundary[k, 1])
                or (c2 == 0.0 and tri_boundary[k, 2])):
            flags[col] |= 2
    return num_touched


@njit(cache=True)
def contains_points(points: np.ndarray, num_polygons: int, origin: np.ndarray, cell_size: float, nx: int, ny: int,
                    cell_start: np.ndarray, cell_tris: np.ndarray, cell_boxes: np.ndarray, full_start: np.ndarray,
                    full_polys: np.ndarray, tri_v: np.ndarray, tri_e: np.ndarray, tri_boundary: np.ndarray,
                    tri_poly: np.ndarray) -> np.ndarray:
    """``(P, num_polygons)`` bool: strict containment of points ``(P, 2)`` [m] in every map polygon
    (``MapIndex.contains``; the grid / triangle arrays are the index's)."""
    n = points.shape[0]
    out = np.zeros((n, num_polygons), dtype=np.bool_)
    flags = np.zeros(num_polygons, dtype=np.uint8)
    touched = np.empty(num_polygons, dtype=np.int64)
    for p in range(n):
        px = points[p, 0]
        py = points[p, 1]
        cell = _cell_of(px, py, origin, cell_size, nx, ny)
        if cell < 0:
            continue
        nt = _mark_point(px, py, cell, 0, num_polygons, cell_start, cell_tris, cell_boxes, full_start, full_polys,
                         tri_v, tri_e, tri_boundary, tri_poly, flags, touched, 0)
        for j in range(nt):
            col = touched[j]
            out[p, col] = flags[col] == 1
            flags[col] = 0
    return out


@njit(cache=True)
def ego_areas(corners: np.ndarray, centers: np.ndarray, states: np.ndarray, num_drivable: int, num_lanes: int,
              num_intersections: int, lane_on_route: np.ndarray, origin: np.ndarray, cell_size: float, nx: int, ny: int,
              cell_start: np.ndarray, cell_tris: np.ndarray, cell_boxes: np.ndarray, full_start: np.ndarray,
              full_polys: np.ndarray, tri_v: np.ndarray, tri_e: np.ndarray, tri_boundary: np.ndarray,
              tri_poly: np.ndarray):
    """Ego areas per (candidate, step) from strict point-in-polygon tests (pdm_scorer.py ``_calculate_ego_area``).

    Args:
        corners: ``(G, T, 4, 2)`` ego corners [m]; centers: ``(G, T, 2)`` box centres; states: ``(G, T, 7)`` (the
            rear axle, columns 0-1, is tested against intersections).
        num_drivable, num_lanes, num_intersections: polygon columns of the index, in that order.
        lane_on_route: ``(num_lanes,)`` bool.
        the rest: the ``MapIndex`` grid and triangles (:meth:`MapIndex.kernel_arrays`).

    Returns:
        ``(multiple_lanes, non_drivable, oncoming, in_intersection)``, each ``(G, T)`` bool: more than one lane holds a
        corner and no lane holds all four; some corner in no drivable polygon; centre in no on-route lane; rear axle
        in an intersection. Each point is tested only against the layers its flag needs (corners: drivable + lanes,
        centre: lanes, rear axle: intersections).
    """
    g_count, t_count = centers.shape[:2]
    npoly = num_drivable + num_lanes + num_intersections
    lane_lo = num_drivable
    lane_hi = num_drivable + num_lanes
    multiple_lanes = np.zeros((g_count, t_count), dtype=np.bool_)
    non_drivable = np.zeros((g_count, t_count), dtype=np.bool_)
    oncoming = np.zeros((g_count, t_count), dtype=np.bool_)
    in_intersection = np.zeros((g_count, t_count), dtype=np.bool_)
    flags = np.zeros(npoly, dtype=np.uint8)
    touched = np.empty(npoly, dtype=np.int64)
    lane_count = np.zeros(max(num_lanes, 1), dtype=np.int64)
    lane_touched = np.empty(max(num_lanes, 1), dtype=np.int64)
    for g in range(g_count):
        for t in range(t_count):
            # --- corners: drivable and lane layers
            all_drivable = True
            num_lane_touched = 0
            for c in range(4):
                px = corners[g, t, c, 0]
                py = corners[g, t, c, 1]
                cell = _cell_of(px, py, origin, cell_size, nx, ny)
                drivable = False
                if cell >= 0:
                    # Drivable triangles are only tested while the answer is open: not when an earlier corner is
                    # already off-road, nor when the cell lies inside a drivable polygon.
                    col_lo = lane_lo if not all_drivable else 0
                    for j in range(full_start[cell], full_start[cell + 1]):
                        if full_polys[j] < lane_lo:
                            drivable = True
                            col_lo = lane_lo
                            break
                    nt = _mark_point(px, py, cell, col_lo, lane_hi, cell_start, cell_tris, cell_boxes, full_start,
                                     full_polys, tri_v, tri_e, tri_boundary, tri_poly, flags, touched, 0)
                    for j in range(nt):
                        col = touched[j]
                        if flags[col] == 1:
                            if col < lane_lo:
                                drivable = True
                            else:
                                lane = col - lane_lo
                                if lane_count[lane] == 0:
                                    lane_touched[num_lane_touched] = lane
                                    num_lane_touched += 1
                                lane_count[lane] += 1
                        flags[col] = 0
                if not drivable:
                    all_drivable = False
            non_drivable[g, t] = not all_drivable
            single = False
            for j in range(num_lane_touched):
                lane = lane_touched[j]
                if lane_count[lane] == 4:
                    single = True
                lane_count[lane] = 0
            multiple_lanes[g, t] = num_lane_touched > 1 and not single
            # --- centre: on-route lanes
            px = centers[g, t, 0]
            py = centers[g, t, 1]
            cell = _cell_of(px, py, origin, cell_size, nx, ny)
            on_route = False
            if cell >= 0 and num_lanes > 0:
                nt = _mark_point(px, py, cell, lane_lo, lane_hi, cell_start, cell_tris, cell_boxes, full_start,
                                 full_polys, tri_v, tri_e, tri_boundary, tri_poly, flags, touched, 0)
                for j in range(nt):
                    col = touched[j]
                    if flags[col] == 1 and lane_on_route[col - lane_lo]:
                        on_route = True
                    flags[col] = 0
            oncoming[g, t] = not on_route
            # --- rear axle: intersections
            if num_intersections > 0:
                px = states[g, t, 0]
                py = states[g, t, 1]
                cell = _cell_of(px, py, origin, cell_size, nx, ny)
                inside = False
                if cell >= 0:
                    nt = _mark_point(px, py, cell, lane_hi, npoly, cell_start, cell_tris, cell_boxes, full_start,
                                     full_polys, tri_v, tri_e, tri_boundary, tri_poly, flags, touched, 0)
                    for j in range(nt):
                        col = touched[j]
                        if flags[col] == 1:
                            inside = True
                        flags[col] = 0
                in_intersection[g, t] = inside
    return multiple_lanes, non_drivable, oncoming, in_intersection
