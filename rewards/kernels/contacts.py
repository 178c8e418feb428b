"""Compiled ego-object contacts of the PDM score: ego and object boxes, and NC / TTC from the contacts
(pdm_scorer.py ``_calculate_no_at_fault_collision``, ``_calculate_ttc``; pdm_scorer_utils.py
``get_collision_type``).

:func:`collisions_and_ttc` takes its inputs in three named groups (plain ``NamedTuple`` s, one compiled
specialisation): :class:`EgoSweep` (the simulated candidates), :class:`ObjectTracks` (the logged objects of a
problem, built once per problem by ``rewards.pdm``) and :class:`ContactRules` (offsets and thresholds of a
configuration). No fast-math: the box and separating-axis arithmetic is evaluated as written; the relative angle of
a classified contact is the C library's ``atan2``.

Arrays: ``G`` candidates, ``T`` steps, ``N`` objects, ``S`` logged steps, ``K`` TTC offsets; lengths [m], angles
[rad], times [s], speeds [m/s].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit


class EgoSweep(NamedTuple):
    """The simulated candidates of a group, as :func:`collisions_and_ttc` reads them."""

    states: np.ndarray
    """``(G, T, 7)`` simulated states (rear axle x, y, yaw, then body-frame velocity and acceleration)."""
    cos_yaw: np.ndarray
    """``(G, T)`` cosine of the state heading."""
    sin_yaw: np.ndarray
    """``(G, T)`` sine of the state heading."""
    centers: np.ndarray
    """``(G, T, 2)`` box centres [m] (:func:`ego_boxes`)."""
    corners: np.ndarray
    """``(G, T, 4, 2)`` box corners FL, RL, RR, FR [m] (:func:`ego_boxes`)."""
    speed: np.ndarray
    """``(G, T)`` speed ``hypot(vx, vy)`` [m/s]."""
    lane_or_offroad: np.ndarray
    """``(G, T)`` bool: the box spans several lanes or leaves the drivable area (False without a map)."""
    in_intersection: np.ndarray
    """``(G, T)`` bool: the rear axle is in an intersection (False without a map)."""
    radius: float
    """Ego half diagonal [m]."""
    half_length: float
    """Ego half length [m]."""
    half_width: float
    """Ego half width [m]."""


class ObjectTracks(NamedTuple):
    """The logged objects of a problem (candidate-independent, built once per problem by ``rewards.pdm``)."""

    centers: np.ndarray
    """``(N, S, 2)`` box centres [m]."""
    cos_yaw: np.ndarray
    """``(N, S)`` cosine of the heading."""
    sin_yaw: np.ndarray
    """``(N, S)`` sine of the heading."""
    valid: np.ndarray
    """``(N, S)`` bool."""
    half: np.ndarray
    """``(N, 2)`` half length, half width [m]."""
    radius: np.ndarray
    """``(N,)`` half diagonal [m]."""
    lo: np.ndarray
    """``(N, 2)`` lower corner of the bounding box of the valid steps [m] (inf if never valid)."""
    hi: np.ndarray
    """``(N, 2)`` upper corner of that bounding box [m] (-inf if never valid)."""
    corners: np.ndarray
    """``(N, S, 4, 2)`` box corners FL, RL, RR, FR [m]."""
    stopped: np.ndarray
    """``(N,)`` bool: stopped as first seen (static objects always)."""
    is_static: np.ndarray
    """``(N,)`` bool: static object (NC ``static_score`` when hit at fault)."""
    drift: np.ndarray
    """``(N, S)`` :func:`object_drift` over at least the largest TTC offset [m] (inf where invalid)."""
    ids: np.ndarray
    """``(N,)`` int64 object ids."""


class ContactRules(NamedTuple):
    """TTC offsets and thresholds of a configuration."""

    offsets: np.ndarray
    """``(K,)`` int64 projection offsets [steps], 0 included (the collision test of NC)."""
    ttc_checked: np.ndarray
    """``(K,)`` bool: the offsets TTC checks."""
    zero_k: int
    """Index of offset 0 in ``offsets``."""
    dt: float
    """Simulation step [s]."""
    collision_stopped_speed: float
    """Ego / object speed at or below which it counts as stopped in the collision classifier [m/s]."""
    ttc_stopped_speed: float
    """Ego speed below which TTC is not checked [m/s]."""
    behind_rad: float
    """Relative angle above which an object is behind [rad]."""
    ahead_rad: float
    """Relative angle below which an object is ahead (TTC) [rad]."""
    static_score: float
    """NC value of an at-fault collision with a static object."""


@njit(cache=True)
def ego_boxes(states: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray, rear_to_center: float,
              half_length: float, half_width: float):
    """Ego box corners ``(G, T, 4, 2)`` (FL, RL, RR, FR) and centres ``(G, T, 2)`` [m] from states ``(G, T, 7)``.

    ``cos_yaw``, ``sin_yaw``: ``(G, T)`` of the state heading; centre = rear axle + ``rear_to_center`` [m] along the
    heading. Same arithmetic as ``rewards.geometry.vehicle_corners`` (which numba cannot call; pinned equal in
    ``tests/test_pdm.py``).
    """
    g_count, t_count, _ = states.shape
    corners = np.empty((g_count, t_count, 4, 2))
    centers = np.empty((g_count, t_count, 2))
    for g in range(g_count):
        for t in range(t_count):
            c = cos_yaw[g, t]
            s = sin_yaw[g, t]
            cx = states[g, t, 0] + rear_to_center * c
            cy = states[g, t, 1] + rear_to_center * s
            lx = half_length * c
            ly = half_length * s
            wx = -half_width * s
            wy = half_width * c
            corners[g, t, 0, 0] = cx + lx + wx
            corners[g, t, 0, 1] = cy + ly + wy
            corners[g, t, 1, 0] = cx - lx + wx
            corners[g, t, 1, 1] = cy - ly + wy
            corners[g, t, 2, 0] = cx - lx - wx
            corners[g, t, 2, 1] = cy - ly - wy
            corners[g, t, 3, 0] = cx + lx - wx
            corners[g, t, 3, 1] = cy + ly - wy
            centers[g, t, 0] = cx
            centers[g, t, 1] = cy
    return corners, centers


@njit(cache=True, inline="always")
def _relative_angle(x: float, y: float, c: float, s: float, tx: float, ty: float) -> float:
    """Angle [rad] in ``[0, pi]`` between heading ``(c, s)`` at ``(x, y)`` and the vector to ``(tx, ty)``; NaN
    when the points coincide (``rewards.geometry.relative_angle``)."""
    dx = tx - x
    dy = ty - y
    if dx == 0.0 and dy == 0.0:
        return np.nan
    return math.atan2(abs(c * dy - s * dx), c * dx + s * dy)


@njit(cache=True, inline="always")
def _segment_hits_box(p0x: float, p0y: float, p1x: float, p1y: float, box: np.ndarray) -> bool:
    """Closed segment / rectangle ``(4, 2)`` intersection by separating axes (``segment_intersects_box``)."""
    dx = p1x - p0x
    dy = p1y - p0y
    for a in range(3):
        if a == 0:
            a0 = box[1, 0] - box[0, 0]
            a1 = box[1, 1] - box[0, 1]
        elif a == 1:
            a0 = box[2, 0] - box[1, 0]
            a1 = box[2, 1] - box[1, 1]
        else:
            a0 = -dy
            a1 = dx
        s0 = a0 * p0x + a1 * p0y
        s1 = a0 * p1x + a1 * p1y
        smin = min(s0, s1)
        smax = max(s0, s1)
        bmin = np.inf
        bmax = -np.inf
        for i in range(4):
            pb = a0 * box[i, 0] + a1 * box[i, 1]
            bmin = min(bmin, pb)
            bmax = max(bmax, pb)
        if not max(smin, bmin) <= min(smax, bmax):
            return False
    return True


@njit(cache=True)
def object_boxes(centers: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray, half: np.ndarray,
                 valid: np.ndarray):
    """Object box corners and bounding boxes (``rewards.geometry.box_corners`` arithmetic).

    Args:
        centers: ``(N, S, 2)`` box centres [m]; cos_yaw, sin_yaw: ``(N, S)`` of the headings; half: ``(N, 2)`` half
            length, half width [m]; valid: ``(N, S)`` bool.

    Returns:
        ``(corners (N, S, 4, 2) FL, RL, RR, FR; lo (N, 2); hi (N, 2))``: ``lo`` / ``hi`` bound the corners of the
        valid steps (``inf`` / ``-inf`` for an object never valid).
    """
    n_count, s_count = valid.shape
    corners = np.empty((n_count, s_count, 4, 2))
    lo = np.full((n_count, 2), np.inf)
    hi = np.full((n_count, 2), -np.inf)
    for n in range(n_count):
        hl = half[n, 0]
        hw = half[n, 1]
        for s in range(s_count):
            c = cos_yaw[n, s]
            sn = sin_yaw[n, s]
            cx = centers[n, s, 0]
            cy = centers[n, s, 1]
            for i in range(4):
                dl = hl if (i == 0 or i == 3) else -hl
                dw = hw if i < 2 else -hw
                x = cx + c * dl - sn * dw
                y = cy + sn * dl + c * dw
                corners[n, s, i, 0] = x
                corners[n, s, i, 1] = y
                if valid[n, s]:
                    lo[n, 0] = min(lo[n, 0], x)
                    lo[n, 1] = min(lo[n, 1], y)
                    hi[n, 0] = max(hi[n, 0], x)
                    hi[n, 1] = max(hi[n, 1], y)
    return corners, lo, hi


@njit(cache=True)
def object_drift(centers: np.ndarray, valid: np.ndarray, horizon: int) -> np.ndarray:
    """``(N, S)`` largest distance [m] from an object's centre at step s to its valid centres at steps
    ``s + 1 .. s + horizon`` (inf where step s is invalid); from centres ``(N, S, 2)`` [m] and ``valid`` ``(N, S)``.
    Used by :func:`collisions_and_ttc` to skip a (candidate, object, step) for every TTC offset at once."""
    n_count, s_count = valid.shape
    out = np.zeros((n_count, s_count))
    for n in range(n_count):
        for s in range(s_count):
            if not valid[n, s]:
                out[n, s] = np.inf
                continue
            worst = 0.0
            for j in range(s + 1, min(s + horizon + 1, s_count)):
                if valid[n, j]:
                    dx = centers[n, j, 0] - centers[n, s, 0]
                    dy = centers[n, j, 1] - centers[n, s, 1]
                    worst = max(worst, math.sqrt(dx * dx + dy * dy))
            out[n, s] = worst
    return out


@njit(cache=True, inline="always")
def _at_fault(x: float, y: float, c: float, s: float, speed: float, lane_or_offroad: bool, ego_corners: np.ndarray,
              ox: float, oy: float, obj_stopped: bool, obj_corners: np.ndarray, stopped_speed: float,
              behind_rad: float) -> bool:
    """Whether an ego-object contact is the ego's fault (pdm_scorer_utils.py ``get_collision_type``; the one
    classification of the score's NC and of the closed-loop envs' termination, :func:`contacts_at_fault`).

    Not at fault when the ego is stopped (``speed <= stopped_speed``); at fault when the object is stopped;
    otherwise not at fault when the object's centre is behind the ego (relative angle from the rear axle ``(x, y)``
    heading ``(c, s)`` above ``behind_rad``), else at fault when the ego spans several lanes or leaves the drivable
    area (``lane_or_offroad``) or its front bumper (segment FL-FR of ``ego_corners (4, 2)``) touches the object's box
    ``obj_corners (4, 2)`` (a lateral contact by the object is not at fault).
    """
    if speed <= stopped_speed:
        return False
    if obj_stopped:
        return True
    if _relative_angle(x, y, c, s, ox, oy) > behind_rad:
        return False
    return lane_or_offroad or _segment_hits_box(ego_corners[0, 0], ego_corners[0, 1], ego_corners[3, 0],
                                                ego_corners[3, 1], obj_corners)


@njit(cache=True)
def contacts_at_fault(states: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray, corners: np.ndarray,
                      speed: np.ndarray, lane_or_offroad: np.ndarray, steps: np.ndarray, objects: np.ndarray,
                      obj_centers: np.ndarray, obj_stopped: np.ndarray, obj_corners: np.ndarray,
                      stopped_speed: float, behind_rad: float) -> np.ndarray:
    """``(M,)`` bool: whether each of M given ego-object contacts is the ego's fault (:func:`_at_fault`, the rule of
    :func:`collisions_and_ttc`'s NC).

    Args:
        states: ``(M, 7)`` ego states at the contacts; cos_yaw, sin_yaw, speed: ``(M,)``; corners: ``(M, 4, 2)``
            ego box corners (:func:`ego_boxes`); lane_or_offroad: ``(M,)`` bool.
        steps: ``(M,)`` int64 object step of each contact; objects: ``(M,)`` int64 object index.
        obj_centers: ``(N, S, 2)``; obj_stopped: ``(N,)`` bool; obj_corners: ``(N, S, 4, 2)``
            (:class:`ObjectTracks`).
    """
    m_count = steps.shape[0]
    out = np.zeros(m_count, dtype=np.bool_)
    for m in range(m_count):
        n = objects[m]
        s = steps[m]
        out[m] = _at_fault(states[m, 0], states[m, 1], cos_yaw[m], sin_yaw[m], speed[m], lane_or_offroad[m],
                           corners[m], obj_centers[n, s, 0], obj_centers[n, s, 1], obj_stopped[n], obj_corners[n, s],
                           stopped_speed, behind_rad)
    return out


@njit(cache=True)
def collisions_and_ttc(ego: EgoSweep, objects: ObjectTracks, rules: ContactRules):
    """NC and TTC of every candidate from the ego-object contacts (pdm_scorer.py ``_calculate_no_at_fault_collision``,
    ``_calculate_ttc``; pdm_scorer_utils.py ``get_collision_type``).

    A *contact* (g, n, t, k): the ego box at step t moved by ``speed[g, t] * offsets[k] * dt`` along its heading
    overlaps object n's logged box at step ``t + offsets[k]`` (a valid step); offset 0 is the collision test. Tests,
    cheapest first: a (g, n) bounding box of the whole sweep against the object's; a (g, n, t) early-out for every
    offset at once when the unshifted centres are farther apart than the two radii + the largest ego shift + the
    object's drift over the offsets + 1 mm (by the triangle inequality every bounding-circle test of that step would
    fail); a (g, n, t, k) bounding circle; then the exact separating-axis test (the centre form of
    ``rewards.geometry.oriented_boxes_overlap``). The prefilters only skip pairs that cannot overlap.

    Per (g, n) only the first offset-0 contact is classified for NC (a not-at-fault one makes NAVSIM ignore the
    object, an at-fault one already sets NC), and only the first *checked* TTC contact (offset in ``ttc_checked``,
    ego speed >= ``ttc_stopped_speed``) in (t, k) order decides TTC. Loops stop for a pair once both are decided.

    Args:
        ego: the simulated candidates (:class:`EgoSweep`).
        objects: the logged objects (:class:`ObjectTracks`; ``drift`` over at least the largest offset).
        rules: offsets and thresholds (:class:`ContactRules`).

    Returns:
        ``(nc, ttc, collision, collision_time, colliding_id, at_fault_time, ttc_time)``, each ``(G,)``: NC, TTC, any
        contact (bool), time [s] and object id of the first contact (earliest step, then lowest object index; NaN /
        -1 if none), time [s] of the first at-fault contact and of the first TTC failure (NaN if none). Times are
        ``step * dt``.
    """
    states, cos_yaw, sin_yaw, centers, corners = ego.states, ego.cos_yaw, ego.sin_yaw, ego.centers, ego.corners
    speed, lane_or_offroad, in_intersection = ego.speed, ego.lane_or_offroad, ego.in_intersection
    ego_radius, half_length, half_width = ego.radius, ego.half_length, ego.half_width
    obj_centers, obj_cos, obj_sin, obj_valid = objects.centers, objects.cos_yaw, objects.sin_yaw, objects.valid
    obj_half, obj_radius, obj_lo, obj_hi = objects.half, objects.radius, objects.lo, objects.hi
    obj_corners, obj_stopped, obj_static = objects.corners, objects.stopped, objects.is_static
    obj_drift, obj_ids = objects.drift, objects.ids
    offsets, ttc_checked, zero_k, dt = rules.offsets, rules.ttc_checked, rules.zero_k, rules.dt
    collision_stopped_speed, ttc_stopped_speed = rules.collision_stopped_speed, rules.ttc_stopped_speed
    behind_rad, ahead_rad, static_score = rules.behind_rad, rules.ahead_rad, rules.static_score
    g_count, t_count = speed.shape
    n_count, s_count = obj_valid.shape
    k_count = offsets.shape[0]
    max_off = offsets.max()
    max_shift = max_off * dt
    nc = np.ones(g_count)
    ttc = np.ones(g_count)
    collision_t = np.full(g_count, -1, dtype=np.int64)
    collision_n = np.full(g_count, -1, dtype=np.int64)
    at_fault_t = np.full(g_count, -1, dtype=np.int64)
    ttc_t = np.full(g_count, -1, dtype=np.int64)
    if n_count == 0 or s_count == 0:
        return _contact_outputs(nc, ttc, collision_t, collision_n, at_fault_t, ttc_t, obj_ids, dt)
    shift_k = np.empty(k_count)
    for k in range(k_count):
        shift_k[k] = offsets[k] * dt
    for g in range(g_count):
        # (g, n) bounding boxes: the ego centres of the whole horizon grown by the ego radius and largest shift.
        smax = -np.inf
        lox = np.inf
        loy = np.inf
        hix = -np.inf
        hiy = -np.inf
        for t in range(t_count):
            smax = max(smax, max_shift * speed[g, t])
            lox = min(lox, centers[g, t, 0])
            loy = min(loy, centers[g, t, 1])
            hix = max(hix, centers[g, t, 0])
            hiy = max(hiy, centers[g, t, 1])
        reach = ego_radius + smax
        elox = lox - reach
        eloy = loy - reach
        ehix = hix + reach
        ehiy = hiy + reach
        for n in range(n_count):
            if not (elox <= obj_hi[n, 0] and obj_lo[n, 0] <= ehix and eloy <= obj_hi[n, 1] and obj_lo[n, 1] <= ehiy):
                continue
            r_sum = ego_radius + obj_radius[n] + 1e-6
            lim = r_sum * r_sum
            nc_done = False
            ttc_done = False
            for t in range(t_count):
                ca = cos_yaw[g, t]
                sa = sin_yaw[g, t]
                sp = speed[g, t]
                if t < s_count:
                    far = r_sum + sp * max_shift + obj_drift[n, t] + 1e-3  # inf when step t is invalid
                    fx = centers[g, t, 0] - obj_centers[n, t, 0]
                    fy = centers[g, t, 1] - obj_centers[n, t, 1]
                    if fx * fx + fy * fy > far * far:
                        continue
                for k in range(k_count):
                    is_nc = k == zero_k and not nc_done
                    is_ttc = ttc_checked[k] and not ttc_done and sp >= ttc_stopped_speed
                    if not (is_nc or is_ttc):
                        continue
                    s = t + offsets[k]
                    if s >= s_count or not obj_valid[n, s]:
                        continue
                    shift = sp * shift_k[k]
                    ecx = centers[g, t, 0] + shift * ca
                    ecy = centers[g, t, 1] + shift * sa
                    ddx = ecx - obj_centers[n, s, 0]
                    ddy = ecy - obj_centers[n, s, 1]
                    d2 = ddx * ddx
                    d2 += ddy * ddy
                    if not d2 <= lim:
                        continue
                    # exact separating-axis test (oriented_boxes_overlap, centre form)
                    dx = obj_centers[n, s, 0] - ecx
                    dy = obj_centers[n, s, 1] - ecy
                    cb = obj_cos[n, s]
                    sb = obj_sin[n, s]
                    cos_d = abs(ca * cb + sa * sb)
                    sin_d = abs(ca * sb - sa * cb)
                    b1 = obj_half[n, 0]
                    b2 = obj_half[n, 1]
                    if not abs(dx * ca + dy * sa) <= half_length + b1 * cos_d + b2 * sin_d:
                        continue
                    if not abs(-dx * sa + dy * ca) <= half_width + b1 * sin_d + b2 * cos_d:
                        continue
                    if not abs(dx * cb + dy * sb) <= b1 + half_length * cos_d + half_width * sin_d:
                        continue
                    if not abs(-dx * sb + dy * cb) <= b2 + half_length * sin_d + half_width * cos_d:
                        continue
                    if is_nc:
                        nc_done = True
                        if collision_t[g] < 0 or t < collision_t[g]:
                            collision_t[g] = t
                            collision_n[g] = n
                        at_fault = _at_fault(states[g, t, 0], states[g, t, 1], ca, sa, sp, lane_or_offroad[g, t],
                                             corners[g, t], obj_centers[n, t, 0], obj_centers[n, t, 1],
                                             obj_stopped[n], obj_corners[n, t], collision_stopped_speed, behind_rad)
                        if at_fault:
                            value = static_score if obj_static[n] else 0.0
                            nc[g] = min(nc[g], value)
                            if at_fault_t[g] < 0 or t < at_fault_t[g]:
                                at_fault_t[g] = t
                    if is_ttc:
                        ttc_done = True
                        angle = _relative_angle(states[g, t, 0], states[g, t, 1], ca, sa, obj_centers[n, s, 0],
                                                obj_centers[n, s, 1])
                        cond = lane_or_offroad[g, t] or in_intersection[g, t]
                        if angle < ahead_rad or (cond and not angle > behind_rad):
                            ttc[g] = 0.0
                            if ttc_t[g] < 0 or t < ttc_t[g]:
                                ttc_t[g] = t
                if nc_done and ttc_done:
                    break
    return _contact_outputs(nc, ttc, collision_t, collision_n, at_fault_t, ttc_t, obj_ids, dt)


@njit(cache=True, inline="always")
def _contact_outputs(nc, ttc, collision_t, collision_n, at_fault_t, ttc_t, obj_ids, dt):
    """Result arrays of :func:`collisions_and_ttc` from the first-event steps / object indices (-1: none)."""
    g_count = nc.shape[0]
    collision = np.zeros(g_count, dtype=np.bool_)
    collision_time = np.full(g_count, np.nan)
    colliding_id = np.full(g_count, -1, dtype=np.int64)
    at_fault_time = np.full(g_count, np.nan)
    ttc_time = np.full(g_count, np.nan)
    for g in range(g_count):
        if collision_t[g] >= 0:
            collision[g] = True
            collision_time[g] = collision_t[g] * dt
            colliding_id[g] = obj_ids[collision_n[g]]
        if at_fault_t[g] >= 0:
            at_fault_time[g] = at_fault_t[g] * dt
        if ttc_t[g] >= 0:
            ttc_time[g] = ttc_t[g] * dt
    return nc, ttc, collision, collision_time, colliding_id, at_fault_time, ttc_time


# ------------------------------------------------------------------------------------------------------ clearance


@njit(cache=True, inline="always")
def _quad_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Gap [m] between convex quadrilaterals ``a``, ``b`` ``(4, 2)`` (cyclic corners): 0 when they overlap or touch
    (closed separating-axis test, as ``rewards.geometry.boxes_overlap``), else the smallest vertex-to-edge
    distance either way (``rewards.geometry.box_distance``)."""
    separated = False
    for shape in range(2):
        p = a if shape == 0 else b
        for e in range(2):
            ax = p[e + 1, 0] - p[e, 0]
            ay = p[e + 1, 1] - p[e, 1]
            amin = bmin = np.inf
            amax = bmax = -np.inf
            for i in range(4):
                pa = ax * a[i, 0] + ay * a[i, 1]
                pb = ax * b[i, 0] + ay * b[i, 1]
                amin = min(amin, pa)
                amax = max(amax, pa)
                bmin = min(bmin, pb)
                bmax = max(bmax, pb)
            if max(amin, bmin) > min(amax, bmax):
                separated = True
    if not separated:
        return 0.0
    best = np.inf
    for shape in range(2):
        p = a if shape == 0 else b
        q = b if shape == 0 else a
        for i in range(4):
            for j in range(4):
                sx = q[j, 0]
                sy = q[j, 1]
                dx = q[(j + 1) % 4, 0] - sx
                dy = q[(j + 1) % 4, 1] - sy
                rx = p[i, 0] - sx
                ry = p[i, 1] - sy
                den = dx * dx + dy * dy
                u = (rx * dx + ry * dy) / den if den > 0.0 else 0.0
                u = min(max(u, 0.0), 1.0)
                ex = rx - u * dx
                ey = ry - u * dy
                best = min(best, math.sqrt(ex * ex + ey * ey))
    return best


@njit(cache=True)
def min_box_gaps(ego: np.ndarray, ego_centers: np.ndarray, ego_radius: float, agents: np.ndarray,
                 agent_centers: np.ndarray, agent_radius: np.ndarray, valid: np.ndarray, reach: float) -> np.ndarray:
    """Smallest gap [m] of each ego track to any valid agent box (``rewards.clearance.min_gaps``).

    Args:
        ego: ``(G, K, 4, 2)`` ego box corners; ``ego_centers`` ``(G, K, 2)``; ``ego_radius``: half diagonal [m].
        agents: ``(N, K, 4, 2)`` agent box corners at the same steps; ``agent_centers`` ``(N, K, 2)``;
            ``agent_radius`` ``(N,)`` half diagonals [m]; ``valid`` ``(N, K)``.
        reach: gaps of at least this are not resolved [m].

    Returns:
        ``(G,)`` gap (0: overlap; ``inf``: nothing closer than ``reach``). Pairs whose bounding circles are
        further apart than the best gap so far are skipped (the result does not depend on it).
    """
    g_count, k_count = ego.shape[:2]
    n_count = agents.shape[0]
    out = np.empty(g_count)
    for g in range(g_count):
        best = reach
        for k in range(k_count):
            for n in range(n_count):
                if not valid[n, k]:
                    continue
                dx = ego_centers[g, k, 0] - agent_centers[n, k, 0]
                dy = ego_centers[g, k, 1] - agent_centers[n, k, 1]
                if math.sqrt(dx * dx + dy * dy) - ego_radius - agent_radius[n] >= best:
                    continue
                best = min(best, _quad_gap(ego[g, k], agents[n, k]))
            if best == 0.0:
                break
        out[g] = best if best < reach else np.inf
    return out
