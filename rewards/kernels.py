"""Compiled (numba) inner loops of the PDM scorer: tracker time loop, ego boxes, map areas, contacts, DDC.

Each kernel is a transcription of the numpy code it replaces (same formulas, same operation order, no fast-math,
so no fused multiply-adds): every comparison the scorer makes is decided on the same floating-point values. Where
the numpy version took a sine / cosine of an input array, the caller computes it with numpy and passes it in, so
these kernels never re-derive trigonometry that the vectorized code (or the tests) already fixed. The exceptions,
documented where they occur, are the tracker's per-step ``cos / sin / tan`` of the simulated state (inherently
sequential) and the ``atan2`` of the relative angle of the (few) classified contacts; both use the C library and can
differ from numpy's vectorized (SVML) versions in the last bit.

Compilation is lazy (first call) and cached on disk (``cache=True``, ``__pycache__`` beside this file, or numba's
user-wide cache directory when that is not writable). Measured on a 2-core x86-64 VM: with an empty cache the first
scored group costs about 11 s of compilation (tracking on; 0.6 s more for the first tracking-off group); with the
cache written, loading every kernel costs about 0.2 s per process. So a fresh clone pays compilation once per
process (per pytest-xdist worker) until the cache exists, then never again. Callers pass C-contiguous float64 /
int64 / bool arrays and Python floats / ints only, so each kernel compiles to exactly one specialisation.

Array conventions: ``G`` candidates, ``T`` simulated states (41), ``M = T - 1``, ``N`` objects, ``S`` logged object
steps, ``K`` TTC offsets; lengths in metres, angles in radians, times in seconds, speeds in m/s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ------------------------------------------------------------------------------------------------------ tracking


@njit(cache=True, inline="always")
def _mod_two_pi(y: float) -> float:
    """``y % (2 pi)`` with Python / numpy float semantics (result in ``[0, 2 pi)``), bit-identical; skips the
    ``fmod`` in the common case ``0 <= y < 2 pi`` where the remainder is ``y`` itself."""
    if 0.0 <= y < 2.0 * np.pi:
        return y
    return y % (2.0 * np.pi)


@njit(cache=True)
def interpolate(candidates: np.ndarray, pose0: np.ndarray, cos0: float, sin0: float, ratio: int) -> np.ndarray:
    """World-frame poses at the simulation step from ego-frame candidate poses (``interpolate_candidates``).

    Args:
        candidates: ``(G, P, 3)`` ego-frame rear-axle poses [m, m, rad] at the pose interval.
        pose0: ``(3,)`` current world-frame rear-axle pose (knot 0 and the frame of ``candidates``).
        cos0, sin0: cosine and sine of ``pose0[2]`` (computed by the caller with numpy).
        ratio: simulation steps per pose interval (5).

    Returns:
        ``(G, P * ratio + 1, 3)`` poses, heading wrapped to ``[-pi, pi)``. Bit for bit what the numpy version
        computed: knots ``x0 + c x - s y``, ``y0 + s x + c y``, ``h0 + h``; ``np.unwrap`` over the knot headings
        (period 2 pi); the weight-matrix ``einsum`` (weights ``1 - r/ratio`` and ``r/ratio``, every other weight an
        exact zero); ``wrap_angle``.
    """
    g_count, p_count, _ = candidates.shape
    knots = p_count + 1
    t_count = p_count * ratio + 1
    pi = np.pi
    kx = np.empty(knots)
    ky = np.empty(knots)
    kh = np.empty(knots)
    out = np.empty((g_count, t_count, 3))
    for g in range(g_count):
        kx[0] = pose0[0]
        ky[0] = pose0[1]
        kh[0] = pose0[2]
        for k in range(p_count):
            cx = candidates[g, k, 0]
            cy = candidates[g, k, 1]
            kx[k + 1] = pose0[0] + cos0 * cx - sin0 * cy
            ky[k + 1] = pose0[1] + sin0 * cx + cos0 * cy
            kh[k + 1] = pose0[2] + candidates[g, k, 2]
        # np.unwrap (period 2 pi): corrections accumulate over the knot differences.
        correction = 0.0
        prev = kh[0]
        for k in range(1, knots):
            cur = kh[k]
            dd = cur - prev
            ddmod = _mod_two_pi(dd + pi) - pi
            if ddmod == -pi and dd > 0:
                ddmod = pi
            ph = ddmod - dd
            if abs(dd) < pi:
                ph = 0.0
            correction += ph
            kh[k] = cur + correction
            prev = cur
        for i in range(t_count):
            k = i // ratio
            r = i - k * ratio
            if k >= p_count:
                out[g, i, 0] = kx[p_count]
                out[g, i, 1] = ky[p_count]
                h = kh[p_count]
            else:
                frac = r / ratio
                w0 = 1.0 - frac
                out[g, i, 0] = w0 * kx[k] + frac * kx[k + 1]
                out[g, i, 1] = w0 * ky[k] + frac * ky[k + 1]
                h = w0 * kh[k] + frac * kh[k + 1]
            out[g, i, 2] = _mod_two_pi(h + pi) - pi
    return out


@njit(cache=True)
def fit_profiles(poses: np.ndarray, cos_h: np.ndarray, sin_h: np.ndarray, velocity_op_t: np.ndarray, dt: float,
                 rate_penalty: float, initial_penalty: float):
    """Velocity and curvature profiles fitted to poses (``rewards.tracking.fit_velocity_curvature``).

    Args:
        poses: ``(G, M + 1, 3)`` rear-axle poses [m, m, rad] every ``dt`` [s]; ``cos_h``, ``sin_h``: ``(G, M + 1)`` of
            their headings.
        velocity_op_t: ``(M, M)`` transpose of the regularised least-squares operator (``_velocity_fit_operator``)
            mapping projected displacements to ``[v_0, a_0 .. a_{M-2}]``.
        rate_penalty, initial_penalty: curvature-rate and initial-curvature penalties.

    Returns:
        ``(velocity (G, M) [m/s], curvature (G, M) [1/m])``.

    The curvature's tridiagonal normal equations (see ``rewards.tracking``) are solved by elimination without
    pivoting in the operation order of LAPACK ``dgtsv`` (what ``scipy.linalg.solve_banded`` calls for one sub- and
    one super-diagonal): the matrix is diagonally dominant (every reduced pivot >= the off-diagonal), so ``dgtsv``
    never swaps rows. The operator product is a plain loop (BLAS may sum in another order: rounding-level changes).
    """
    g_count = poses.shape[0]
    m = poses.shape[1] - 1
    pi = np.pi
    lam = rate_penalty / (dt * dt)
    off = -lam
    velocity = np.empty((g_count, m))
    curvature = np.empty((g_count, m))
    proj = np.empty(m)
    coef = np.empty(m)
    d = np.empty(m)
    b = np.empty(m)
    for g in range(g_count):
        for k in range(m):
            proj[k] = ((poses[g, k + 1, 0] - poses[g, k, 0]) * cos_h[g, k]
                       + (poses[g, k + 1, 1] - poses[g, k, 1]) * sin_h[g, k])
        for i in range(m):
            coef[i] = 0.0
        for k in range(m):  # coef[i] = sum_k proj[k] op[i, k], summed over k in order (vectorised over i)
            pk = proj[k]
            for i in range(m):
                coef[i] += pk * velocity_op_t[k, i]
        velocity[g, 0] = coef[0]
        run = 0.0
        for k in range(1, m):
            run += coef[k] * dt
            velocity[g, k] = coef[0] + run
        for k in range(m):
            vd = velocity[g, k] * dt
            hd = _mod_two_pi((poses[g, k + 1, 2] - poses[g, k, 2]) + pi) - pi
            d[k] = vd * vd + 2.0 * lam
            b[k] = vd * hd
        d[0] += initial_penalty - lam
        d[m - 1] -= lam
        for k in range(m - 1):
            fact = off / d[k]
            d[k + 1] = d[k + 1] - fact * off
            b[k + 1] = b[k + 1] - fact * b[k]
        curvature[g, m - 1] = b[m - 1] / d[m - 1]
        for k in range(m - 2, -1, -1):
            curvature[g, k] = (b[k] - off * curvature[g, k + 1]) / d[k]
    return velocity, curvature


@njit(cache=True)
def track(ref: np.ndarray, cos_ref: np.ndarray, sin_ref: np.ndarray, velocity: np.ndarray, curvature: np.ndarray,
          init: np.ndarray, init_steer: float, num_steps: int, w_kappa: np.ndarray, coef: np.ndarray, dt: float,
          wheelbase: float, long_gain: float, q_lat0: float, q_lat1: float, r_lat: float, accel_lag: float,
          steer_gain: float, stop_velocity: float, stop_gain: float, max_steer: float):
    """NAVSIM's batch LQR tracker + kinematic bicycle, one candidate at a time (the time loop of ``track_poses``).

    Args:
        ref: ``(G, T, 3)`` reference rear-axle poses [m, m, rad]; ``cos_ref``, ``sin_ref``: ``(G, T)`` of its heading.
        velocity, curvature: ``(G, M)`` fitted profiles [m/s], [1/m] (``M = T - 1``).
        init: ``(7,)`` state at t=0 (x, y, yaw, vx, vy, ax, ay).
        init_steer: tire steering angle at t=0 [rad] (NAVSIM: the logged one).
        num_steps: tracker steps to run, ``0 <= num_steps <= T - 1`` (``T - 1``: the whole reference); the
            references and profiles are those of the whole trajectory either way, so the first states do not depend
            on it.
        w_kappa: ``(N, 5)`` weights of the curvature window sums (``N``: LQR horizon [steps], 10).
        coef: ``(10,)`` constant coefficients of the closed-form lateral prediction: ``c_sp`` (2), ``c_pp`` (3),
            ``c_b1`` (2), ``c_b0`` (3) of ``rewards.tracking.track_poses``.
        dt: step [s]; wheelbase [m]; long_gain: one-step longitudinal LQR gain [1/s]; q_lat0, q_lat1, r_lat: lateral
            LQR weights; accel_lag, steer_gain: ``dt / (dt + tau_a)`` and ``dt / (dt + tau_s) * dt``;
            stop_velocity [m/s], stop_gain [1/s]: stopping P controller; max_steer [rad]: steering clip.

    Returns:
        ``(states (G, num_steps + 1, 7), steering (G, num_steps + 1))``: states (columns x, y, yaw, vx, vy, ax, ay;
        vy = ay = 0 after t=0) and the steering angle [rad] at each of them.

    Same formulas and operation order as the numpy loop it replaces; the motion model's ``cos(yaw)``, ``sin(yaw)``,
    ``tan(steer)`` use the C library (numpy's vectorized versions may differ in the last bit).
    """
    g_count, t_count, _ = ref.shape
    m = velocity.shape[1]
    n = w_kappa.shape[0]
    pi = np.pi
    dt2 = dt * dt
    c_sp0, c_sp1 = coef[0], coef[1]
    c_pp0, c_pp1, c_pp2 = coef[2], coef[3], coef[4]
    c_b10, c_b11 = coef[5], coef[6]
    c_b00, c_b01, c_b02 = coef[7], coef[8], coef[9]
    dt_wb = dt / wheelbase
    out = np.zeros((g_count, num_steps + 1, 7))
    steering = np.empty((g_count, num_steps + 1))
    for g in range(g_count):
        for c in range(7):
            out[g, 0, c] = init[c]
        x = init[0]
        y = init[1]
        h = init[2]
        v = init[3]
        ax = init[5]
        steer = init_steer
        steering[g, 0] = steer
        for t in range(num_steps):
            ref_i = min(t + n, m - 1)
            # curvature window curv[t : ref_i] padded with curv[ref_i], weighted (kappa @ w_kappa)
            k0 = 0.0
            k1 = 0.0
            kn = 0.0
            kw = 0.0
            kim = 0.0
            for i in range(n):
                kap = curvature[g, min(t + i, ref_i)]
                k0 += kap * w_kappa[i, 0]
                k1 += kap * w_kappa[i, 1]
                kn += kap * w_kappa[i, 2]
                kw += kap * w_kappa[i, 3]
                kim += kap * w_kappa[i, 4]
            v_ref = velocity[g, ref_i]
            # --- tracker (batch_lqr.py track_trajectory)
            e_lat = (y - ref[g, t, 1]) * cos_ref[g, t] - (x - ref[g, t, 0]) * sin_ref[g, t]
            e_head = _mod_two_pi(h - ref[g, t, 2] + pi) - pi
            dv = v - v_ref
            accel_lqr = long_gain * dv
            stop = v_ref <= stop_velocity and v <= stop_velocity
            accel_cmd = -stop_gain * dv if stop else accel_lqr
            beta = accel_lqr * dt
            aa = v * v
            ab = v * beta
            bb = beta * beta
            sum_p = c_sp0 * v + c_sp1 * beta
            d_l = steer / wheelbase
            e0 = (e_lat + e_head * sum_p
                  + d_l * (c_pp0 * aa + c_pp1 * ab + c_pp2 * bb) - dt2 * (aa * kn + ab * kw + bb * kim))
            e1 = e_head + d_l * sum_p - dt * (v * k0 + beta * k1)
            e1 = _mod_two_pi(e1 + pi) - pi
            b1 = c_b10 * v + c_b11 * beta
            b0 = c_b00 * aa + c_b01 * ab + c_b02 * bb
            rate = (q_lat0 * b0 * e0 + q_lat1 * b1 * e1) / (q_lat0 * b0 * b0 + q_lat1 * b1 * b1 + r_lat)
            if stop:
                rate = 0.0
            # --- motion model (batch_kinematic_bicycle.py propagate_state)
            ax = ax + accel_lag * (accel_cmd - ax)
            x_new = x + v * math.cos(h) * dt
            y_new = y + v * math.sin(h) * dt
            h = _mod_two_pi(h + v * math.tan(steer) * dt_wb + pi) - pi
            x = x_new
            y = y_new
            v = v + ax * dt
            steer = min(max(steer - steer_gain * rate, -max_steer), max_steer)
            out[g, t + 1, 0] = x
            out[g, t + 1, 1] = y
            out[g, t + 1, 2] = h
            out[g, t + 1, 3] = v
            out[g, t + 1, 5] = ax
            steering[g, t + 1] = steer
    return out, steering


@njit(cache=True)
def simulate_tracked(ref: np.ndarray, init: np.ndarray, init_steer: float, num_steps: int,
                     velocity_op_t: np.ndarray, w_kappa: np.ndarray, coef: np.ndarray, dt: float, rate_penalty: float,
                     initial_penalty: float, wheelbase: float, long_gain: float, q_lat0: float, q_lat1: float,
                     r_lat: float, accel_lag: float, steer_gain: float, stop_velocity: float, stop_gain: float,
                     max_steer: float):
    """:func:`fit_profiles` over the whole reference ``ref (G, T, 3)`` then ``num_steps`` steps of :func:`track` in
    one call (``rewards.tracking.track_poses_with_steering``): ``(states (G, num_steps + 1, 7), steering
    (G, num_steps + 1) [rad])``; the reference headings' cosine and sine come from the C library."""
    g_count, t_count, _ = ref.shape
    cos_ref = np.empty((g_count, t_count))
    sin_ref = np.empty((g_count, t_count))
    for g in range(g_count):
        for t in range(t_count):
            cos_ref[g, t] = math.cos(ref[g, t, 2])
            sin_ref[g, t] = math.sin(ref[g, t, 2])
    velocity, curvature = fit_profiles(ref, cos_ref, sin_ref, velocity_op_t, dt, rate_penalty, initial_penalty)
    return track(ref, cos_ref, sin_ref, velocity, curvature, init, init_steer, num_steps, w_kappa, coef, dt,
                 wheelbase, long_gain, q_lat0, q_lat1, r_lat, accel_lag, steer_gain, stop_velocity, stop_gain,
                 max_steer)


@njit(cache=True)
def simulate_tracked_each(ref: np.ndarray, init: np.ndarray, init_steer: np.ndarray, num_steps: int,
                          velocity_op_t: np.ndarray, w_kappa: np.ndarray, coef: np.ndarray, dt: float,
                          rate_penalty: float, initial_penalty: float, wheelbase: float, long_gain: float,
                          q_lat0: float, q_lat1: float, r_lat: float, accel_lag: float, steer_gain: float,
                          stop_velocity: float, stop_gain: float, max_steer: float):
    """:func:`simulate_tracked` with one start state per reference: ``init (G, 7)``, ``init_steer (G,)`` [rad]
    (a batch of closed loops that have drifted apart, ``envs.simulation.follow_trajectories``). Each candidate's
    states equal :func:`simulate_tracked` of that candidate alone from its own start state."""
    g_count, t_count, _ = ref.shape
    cos_ref = np.empty((g_count, t_count))
    sin_ref = np.empty((g_count, t_count))
    for g in range(g_count):
        for t in range(t_count):
            cos_ref[g, t] = math.cos(ref[g, t, 2])
            sin_ref[g, t] = math.sin(ref[g, t, 2])
    velocity, curvature = fit_profiles(ref, cos_ref, sin_ref, velocity_op_t, dt, rate_penalty, initial_penalty)
    out = np.empty((g_count, num_steps + 1, 7))
    steering = np.empty((g_count, num_steps + 1))
    for g in range(g_count):
        states, steer = track(ref[g:g + 1], cos_ref[g:g + 1], sin_ref[g:g + 1], velocity[g:g + 1],
                              curvature[g:g + 1], init[g], init_steer[g], num_steps, w_kappa, coef, dt, wheelbase,
                              long_gain, q_lat0, q_lat1, r_lat, accel_lag, steer_gain, stop_velocity, stop_gain,
                              max_steer)
        out[g] = states[0]
        steering[g] = steer[0]
    return out, steering


@njit(cache=True, inline="always")
def _gradient(f: np.ndarray, t: int, dt: float) -> float:
    """``np.gradient(f, dt)[t]`` for a 1-D ``f`` (uniform spacing, ``edge_order=1``): central differences inside,
    one-sided at both ends."""
    n = f.shape[0]
    if t == 0:
        return (f[1] - f[0]) / dt
    if t == n - 1:
        return (f[n - 1] - f[n - 2]) / dt
    return (f[t + 1] - f[t - 1]) / (2.0 * dt)


@njit(cache=True)
def finite_differences(poses: np.ndarray, cos_h: np.ndarray, sin_h: np.ndarray, velocity0: np.ndarray,
                       acceleration0: np.ndarray, dt: float) -> np.ndarray:
    """States ``(G, T, 7)`` of poses ``(G, T, 3)`` [m, m, rad] without tracking (``finite_difference_states``).

    World velocity = ``np.gradient`` of the rear-axle positions, world acceleration = ``np.gradient`` of that
    velocity (both with spacing ``dt`` [s]), rotated into the body frame with ``cos_h``, ``sin_h`` ``(G, T)`` of the
    headings; state 0 gets ``velocity0`` ``(2,)`` and ``acceleration0`` ``(2,)`` (body frame). Same operations as
    the numpy version.
    """
    g_count, t_count, _ = poses.shape
    out = np.empty((g_count, t_count, 7))
    px = np.empty(t_count)
    py = np.empty(t_count)
    vx = np.empty(t_count)
    vy = np.empty(t_count)
    for g in range(g_count):
        for t in range(t_count):
            px[t] = poses[g, t, 0]
            py[t] = poses[g, t, 1]
        for t in range(t_count):
            vx[t] = _gradient(px, t, dt)
            vy[t] = _gradient(py, t, dt)
        for t in range(t_count):
            ax = _gradient(vx, t, dt)
            ay = _gradient(vy, t, dt)
            c = cos_h[g, t]
            s = sin_h[g, t]
            out[g, t, 0] = px[t]
            out[g, t, 1] = py[t]
            out[g, t, 2] = poses[g, t, 2]
            out[g, t, 3] = c * vx[t] + s * vy[t]
            out[g, t, 4] = -s * vx[t] + c * vy[t]
            out[g, t, 5] = c * ax + s * ay
            out[g, t, 6] = -s * ax + c * ay
        out[g, 0, 3] = velocity0[0]
        out[g, 0, 4] = velocity0[1]
        out[g, 0, 5] = acceleration0[0]
        out[g, 0, 6] = acceleration0[1]
    return out


# ------------------------------------------------------------------------------------------------------- scoring


@njit(cache=True)
def ego_boxes(states: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray, rear_to_center: float,
              half_length: float, half_width: float):
    """Ego box corners ``(G, T, 4, 2)`` (FL, RL, RR, FR) and centres ``(G, T, 2)`` [m] from states ``(G, T, 7)``.

    ``cos_yaw``, ``sin_yaw``: ``(G, T)`` of the state heading. Same arithmetic as ``rewards.geometry.vehicle_corners``
    (numba cannot call it).
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


@njit(cache=True)
def collisions_and_ttc(states: np.ndarray, cos_yaw: np.ndarray, sin_yaw: np.ndarray, centers: np.ndarray,
                       corners: np.ndarray, speed: np.ndarray, lane_or_offroad: np.ndarray,
                       in_intersection: np.ndarray, offsets: np.ndarray, ttc_checked: np.ndarray, zero_k: int,
                       dt: float, ego_radius: float, half_length: float, half_width: float,
                       obj_centers: np.ndarray, obj_cos: np.ndarray, obj_sin: np.ndarray, obj_valid: np.ndarray,
                       obj_half: np.ndarray, obj_radius: np.ndarray, obj_lo: np.ndarray, obj_hi: np.ndarray,
                       obj_corners: np.ndarray, obj_stopped: np.ndarray, obj_static: np.ndarray, obj_drift: np.ndarray,
                       obj_ids: np.ndarray,
                       collision_stopped_speed: float, ttc_stopped_speed: float, behind_rad: float,
                       ahead_rad: float, static_score: float):
    """NC and TTC of every candidate from the ego-object contacts (pdm_scorer.py ``_calculate_no_at_fault_collision``,
    ``_calculate_ttc``; pdm_scorer_utils.py ``get_collision_type``).

    A *contact* (g, n, t, k): the ego box at step t moved by ``speed[g, t] * offsets[k] * dt`` along its heading
    overlaps object n's logged box at step ``t + offsets[k]`` (a valid step); offset 0 is the collision test. The
    tests are those of the numpy version, in the same order and arithmetic: a (g, n) bounding box of the whole sweep,
    a bounding circle, then the exact separating-axis test (``rewards.geometry.oriented_boxes_overlap``). One more
    early-out, which cannot change a result: a (g, n, t) is skipped for every offset when the unshifted centres are
    farther apart than the two radii + the largest ego shift + the object's drift over the offsets + 1 mm (by the
    triangle inequality every bounding-circle test of that step would fail).

    Per (g, n) only the first offset-0 contact is classified for NC (a not-at-fault one makes NAVSIM ignore the
    object, an at-fault one already sets NC), and only the first *checked* TTC contact (offset in ``ttc_checked``,
    ego speed >= ``ttc_stopped_speed``) in (t, k) order decides TTC. Loops stop for a pair once both are decided.

    Args:
        states: ``(G, T, 7)``; cos_yaw, sin_yaw: ``(G, T)``; centers: ``(G, T, 2)``; corners: ``(G, T, 4, 2)``;
            speed: ``(G, T)``; lane_or_offroad, in_intersection: ``(G, T)`` bool.
        offsets: ``(K,)`` int64 offsets [steps]; ttc_checked: ``(K,)`` bool; zero_k: index of offset 0.
        ego_radius, half_length, half_width: ego half diagonal and half extents [m].
        obj_*: per-problem object data (centres ``(N, S, 2)``, heading cos/sin ``(N, S)``, valid ``(N, S)``, half
            extents ``(N, 2)``, half diagonal ``(N,)``, AABB ``(N, 2)`` x2, corners ``(N, S, 4, 2)``, stopped /
            static ``(N,)`` bool, :func:`object_drift` over at least the largest offset ``(N, S)``, ids ``(N,)``).
        thresholds: speeds [m/s], angles [rad], NC value of a static object.

    Returns:
        ``(nc, ttc, collision, collision_time, colliding_id, at_fault_time, ttc_time)``, each ``(G,)``: NC, TTC, any
        contact (bool), time [s] and object id of the first contact (earliest step, then lowest object index; NaN /
        -1 if none), time [s] of the first at-fault contact and of the first TTC failure (NaN if none). Times are
        ``step * dt``.
    """
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
                        ego_stopped = sp <= collision_stopped_speed
                        behind = _relative_angle(states[g, t, 0], states[g, t, 1], ca, sa, obj_centers[n, t, 0],
                                                 obj_centers[n, t, 1]) > behind_rad
                        at_fault = False
                        if not ego_stopped:
                            if obj_stopped[n]:
                                at_fault = True
                            elif not behind:
                                at_fault = lane_or_offroad[g, t] or _segment_hits_box(
                                    corners[g, t, 0, 0], corners[g, t, 0, 1], corners[g, t, 3, 0],
                                    corners[g, t, 3, 1], obj_corners[n, t])
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


@njit(cache=True)
def ddc_worst(centers: np.ndarray, oncoming: np.ndarray, horizon: int) -> np.ndarray:
    """``(G,)`` largest oncoming progress [m] over windows of steps ``max(0, t - horizon) .. t`` (pdm_scorer.py
    ``_calculate_driving_direction_compliance``), from centres ``(G, T, 2)`` and ``oncoming`` ``(G, T)``: per-step
    distance (0 where not oncoming), cumulative sum, window differences (the numpy version's operations)."""
    g_count, t_count = oncoming.shape
    out = np.empty(g_count)
    csum = np.empty(t_count + 1)
    for g in range(g_count):
        csum[0] = 0.0
        acc = 0.0
        for t in range(t_count):
            step = 0.0
            if t > 0 and oncoming[g, t]:
                dx = centers[g, t, 0] - centers[g, t - 1, 0]
                dy = centers[g, t, 1] - centers[g, t - 1, 1]
                step = math.sqrt(dx * dx + dy * dy)
            acc += step
            csum[t + 1] = acc
        worst = -np.inf
        for t in range(t_count):
            worst = max(worst, csum[t + 1] - csum[max(0, t - horizon)])
        out[g] = worst
    return out


@njit(cache=True, inline="always")
def _project(px: float, py: float, route: np.ndarray, route_s: np.ndarray) -> float:
    """Arc length [m] of the closest point of the polyline ``route (R >= 2, 2)`` to ``(px, py)`` (shapely
    ``LineString.project``: first segment on ties, clamped to the ends); ``route_s (R,)`` cumulative lengths."""
    best = np.inf
    best_seg = 0
    best_frac = 0.0
    best_len2 = 0.0
    for i in range(route.shape[0] - 1):
        ax = route[i, 0]
        ay = route[i, 1]
        abx = route[i + 1, 0] - ax
        aby = route[i + 1, 1] - ay
        len2 = abx * abx + aby * aby
        frac = ((px - ax) * abx + (py - ay) * aby) / len2 if len2 > 0 else 0.0
        frac = min(max(frac, 0.0), 1.0)
        dx = px - (ax + frac * abx)
        dy = py - (ay + frac * aby)
        d2 = dx * dx + dy * dy
        if d2 < best:
            best = d2
            best_seg = i
            best_frac = frac
            best_len2 = len2
    return route_s[best_seg] + best_frac * math.sqrt(best_len2)


@njit(cache=True)
def project_points(points: np.ndarray, route: np.ndarray, route_s: np.ndarray) -> np.ndarray:
    """``(P,)`` arc lengths [m] of points ``(P, 2)`` projected on the route ``(R >= 2, 2)`` (``MapIndex.project_route``,
    same operations as its numpy form)."""
    out = np.empty(points.shape[0])
    for p in range(points.shape[0]):
        out[p] = _project(points[p, 0], points[p, 1], route, route_s)
    return out


@njit(cache=True)
def aggregate(nc: np.ndarray, ttc: np.ndarray, comfort: np.ndarray, non_drivable: np.ndarray, oncoming: np.ndarray,
              centers: np.ndarray, route: np.ndarray, route_s: np.ndarray, ddc_horizon: int, ddc_compliance: float,
              ddc_violation: float, ddc_multiplicative: bool, reference_progress: float, progress_threshold: float,
              w_ep: float, w_ttc: float, w_comfort: float, w_ddc: float):
    """DAC, DDC, progress, EP and PDMS of a group (pdm_scorer.py; formulas of ``rewards.pdm.score_states``).

    Args:
        nc, ttc, comfort: ``(G,)`` sub-scores; non_drivable, oncoming: ``(G, T)`` bool; centers: ``(G, T, 2)`` [m].
        route ``(R >= 2, 2)``, route_s ``(R,)``: route polyline and its cumulative arc length [m].
        ddc_horizon [steps], ddc_compliance / ddc_violation [m]: DDC window and thresholds.
        ddc_multiplicative: DDC multiplies like NC and DAC (EPDMS-style preset) *instead of* being averaged: its
            weight ``w_ddc`` then leaves the weighted average (``rewards.reference`` does the same).
        reference_progress: masked progress [m] of the reference (NaN: normalise within the group).
        progress_threshold [m]; w_*: weights of EP, TTC, comfort, DDC.

    Returns:
        ``(dac, ddc, progress, masked, ep, pdms)``, each ``(G,)``.
    """
    g_count, t_count = non_drivable.shape
    worst = ddc_worst(centers, oncoming, ddc_horizon)
    dac = np.empty(g_count)
    ddc = np.empty(g_count)
    progress = np.empty(g_count)
    masked = np.empty(g_count)
    mult = np.empty(g_count)
    for g in range(g_count):
        off = False
        for t in range(t_count):
            off = off or non_drivable[g, t]
        dac[g] = 0.0 if off else 1.0
        ddc[g] = 1.0 if worst[g] < ddc_compliance else (0.5 if worst[g] < ddc_violation else 0.0)
        s0 = _project(centers[g, 0, 0], centers[g, 0, 1], route, route_s)
        s1 = _project(centers[g, t_count - 1, 0], centers[g, t_count - 1, 1], route, route_s)
        progress[g] = max(s1 - s0, 0.0)
        mult[g] = nc[g] * dac[g] * (ddc[g] if ddc_multiplicative else 1.0)
        masked[g] = progress[g] * mult[g]
    group_max = masked.max()
    ep = np.empty(g_count)
    pdms = np.empty(g_count)
    w_ddc_avg = 0.0 if ddc_multiplicative else w_ddc
    weights = w_ep + w_ttc + w_comfort + w_ddc_avg
    for g in range(g_count):
        norm = group_max if np.isnan(reference_progress) else max(reference_progress, masked[g])
        if norm > progress_threshold:
            ep[g] = masked[g] / (norm if norm > 0 else 1.0)
        else:
            ep[g] = 0.0 if mult[g] == 0.0 else 1.0
        weighted = (w_ep * ep[g] + w_ttc * ttc[g] + w_comfort * comfort[g] + w_ddc_avg * ddc[g]) / weights
        pdms[g] = mult[g] * weighted
    return dac, ddc, progress, masked, ep, pdms


# ------------------------------------------------------------------------------------------------------- comfort


@njit(cache=True)
def comfort_inputs(states: np.ndarray, magnitude: np.ndarray):
    """Filter inputs of the comfort metrics from states ``(G, T, 7)`` and ``hypot(ax, ay)`` ``(G, T)`` [m/s^2].

    Returns ``(accel (2, G, T): ax, ay; short (2, G, T): |a|, ax; heading (G, T))``, the heading unwrapped as
    ``pdm_comfort_metrics._phase_unwrap`` (``h - 2 pi * cumsum(rint(diff(h) / 2 pi))``, same operations).
    """
    g_count, t_count, _ = states.shape
    accel = np.empty((2, g_count, t_count))
    short = np.empty((2, g_count, t_count))
    heading = np.empty((g_count, t_count))
    two_pi = 2.0 * np.pi
    for g in range(g_count):
        adj = 0.0
        for t in range(t_count):
            ax = states[g, t, 5]
            accel[0, g, t] = ax
            accel[1, g, t] = states[g, t, 6]
            short[0, g, t] = magnitude[g, t]
            short[1, g, t] = ax
            h = states[g, t, 2]
            if t > 0:
                adj += np.rint((h - states[g, t - 1, 2]) / two_pi)
            heading[g, t] = h - two_pi * adj
    return accel, short, heading


@njit(cache=True)
def round8(values: np.ndarray) -> np.ndarray:
    """``np.round(values, 8)`` of a C-contiguous float64 array (numpy's ``rint(x * 1e8) / 1e8``)."""
    out = np.empty_like(values)
    flat_in = values.reshape(-1)
    flat_out = out.reshape(-1)
    for i in range(flat_in.shape[0]):
        flat_out[i] = np.rint(flat_in[i] * 1e8) / 1e8
    return out


@njit(cache=True)
def comfort_bounds(accel: np.ndarray, jerks: np.ndarray, yaw_rate: np.ndarray, yaw_accel: np.ndarray,
                   bounds: np.ndarray):
    """Comfort checks from the filtered (not yet rounded) signals: each value is rounded to 8 decimals
    (``np.round(x, 8)``) and must lie strictly inside its bounds at every step.

    Args:
        accel: ``(2, G, T)`` smoothed ax, ay [m/s^2]; jerks: ``(2, G, T)`` jerk and longitudinal jerk [m/s^3];
            yaw_rate, yaw_accel: ``(G, T)`` [rad/s], [rad/s^2].
        bounds: ``(6, 2)`` open intervals (lo, hi) in the column order below (+-inf where a bound is absent).

    Returns:
        ``(checks (G, 6) bool, score (G,) float64)``: columns lon_accel, lat_accel, jerk, lon_jerk, yaw_accel,
        yaw_rate (``rewards.comfort.COMFORT_NAMES``); score 1.0 where all hold, else 0.0.
    """
    g_count, t_count = yaw_rate.shape
    checks = np.ones((g_count, 6), dtype=np.bool_)
    score = np.empty(g_count)
    for g in range(g_count):
        for t in range(t_count):
            for c in range(6):
                if c == 0:
                    x = accel[0, g, t]
                elif c == 1:
                    x = accel[1, g, t]
                elif c == 2:
                    x = jerks[0, g, t]
                elif c == 3:
                    x = jerks[1, g, t]
                elif c == 4:
                    x = yaw_accel[g, t]
                else:
                    x = yaw_rate[g, t]
                x = np.rint(x * 1e8) / 1e8
                if not (x > bounds[c, 0] and x < bounds[c, 1]):
                    checks[g, c] = False
        ok = True
        for c in range(6):
            ok = ok and checks[g, c]
        score[g] = 1.0 if ok else 0.0
    return checks, score


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
    """Smallest gap [m] of each ego track to any valid agent box (``counterfactual.verify.min_gaps``).

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
