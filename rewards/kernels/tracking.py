"""Compiled ego simulation (:mod:`rewards.tracking`): interpolation of candidate poses to the simulation step, the
velocity / curvature fit, NAVSIM's batch LQR tracker + kinematic bicycle time loop, and finite-difference states.

No fast-math: each kernel evaluates its documented formulas in the order written, so its results are fixed bit for
bit by the inputs. Interpolation and finite differences are pinned against numpy formulations of the same
operations (``np.unwrap`` + weight matrix; ``np.gradient``) in ``tests/test_tracking.py``. The tracker's per-step
``cos / sin / tan`` of the simulated state and the reference headings' ``cos / sin`` use the C library (numpy's
vectorised versions may differ in the last bit); the tests hold the tracker to 1e-7 of a direct matrix-chain
transcription of NAVSIM.

Arrays: ``G`` candidates, ``T`` states, ``M = T - 1``; lengths [m], angles [rad], times [s], speeds [m/s].
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


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
        ``(G, P * ratio + 1, 3)`` poses, heading wrapped to ``[-pi, pi)``: knots ``x0 + c x - s y``,
        ``y0 + s x + c y``, ``h0 + h``; the knot headings unwrapped as ``np.unwrap`` does (period 2 pi); step ``i``
        = ``(1 - r/ratio) knot_k + (r/ratio) knot_{k+1}`` with ``k, r = divmod(i, ratio)`` (the last knot beyond the
        end); heading wrapped as ``rewards.geometry.wrap_angle``. Equal bit for bit to the weight-matrix form of
        :func:`rewards.tracking.interpolation_weights` (every other weight is an exact zero).
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

    Per step: the curvature window sums, the one-step longitudinal LQR (or the stopping P controller), the
    closed-form lateral LQR prediction and steering rate, then the motion model (first-order lags on acceleration and
    steering, forward Euler); ``cos(yaw)``, ``sin(yaw)``, ``tan(steer)`` come from the C library.
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
def reference_profiles(ref: np.ndarray, velocity_op_t: np.ndarray, dt: float, rate_penalty: float,
                       initial_penalty: float):
    """The tracker's inputs of references ``ref (G, T, 3)``: their headings' cosine and sine (C library) and the
    velocity / curvature profiles fitted to the whole reference (:func:`fit_profiles`): ``(cos_ref, sin_ref
    (G, T), velocity, curvature (G, T - 1))``."""
    g_count, t_count, _ = ref.shape
    cos_ref = np.empty((g_count, t_count))
    sin_ref = np.empty((g_count, t_count))
    for g in range(g_count):
        for t in range(t_count):
            cos_ref[g, t] = math.cos(ref[g, t, 2])
            sin_ref[g, t] = math.sin(ref[g, t, 2])
    velocity, curvature = fit_profiles(ref, cos_ref, sin_ref, velocity_op_t, dt, rate_penalty, initial_penalty)
    return cos_ref, sin_ref, velocity, curvature


@njit(cache=True)
def simulate_tracked(ref: np.ndarray, init: np.ndarray, init_steer: float, num_steps: int,
                     velocity_op_t: np.ndarray, w_kappa: np.ndarray, coef: np.ndarray, dt: float, rate_penalty: float,
                     initial_penalty: float, wheelbase: float, long_gain: float, q_lat0: float, q_lat1: float,
                     r_lat: float, accel_lag: float, steer_gain: float, stop_velocity: float, stop_gain: float,
                     max_steer: float):
    """:func:`fit_profiles` over the whole reference ``ref (G, T, 3)`` then ``num_steps`` steps of :func:`track` in
    one call (``rewards.tracking.track_poses_with_steering``): ``(states (G, num_steps + 1, 7), steering
    (G, num_steps + 1) [rad])``; the reference headings' cosine and sine come from the C library."""
    cos_ref, sin_ref, velocity, curvature = reference_profiles(ref, velocity_op_t, dt, rate_penalty, initial_penalty)
    return track(ref, cos_ref, sin_ref, velocity, curvature, init, init_steer, num_steps, w_kappa, coef, dt,
                 wheelbase, long_gain, q_lat0, q_lat1, r_lat, accel_lag, steer_gain, stop_velocity, stop_gain,
                 max_steer)


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
    headings; state 0 gets ``velocity0`` ``(2,)`` and ``acceleration0`` ``(2,)`` (body frame).
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


@njit(cache=True)
def simulate_tracked_each(ref: np.ndarray, init: np.ndarray, init_steer: np.ndarray, num_steps: int,
                          velocity_op_t: np.ndarray, w_kappa: np.ndarray, coef: np.ndarray, dt: float,
                          rate_penalty: float, initial_penalty: float, wheelbase: float, long_gain: float,
                          q_lat0: float, q_lat1: float, r_lat: float, accel_lag: float, steer_gain: float,
                          stop_velocity: float, stop_gain: float, max_steer: float):
    """:func:`simulate_tracked` with one start state per reference: ``init (G, 7)``, ``init_steer (G,)`` [rad]
    (a batch of closed loops that have drifted apart, ``envs.sim.simulation.follow_trajectories``). Each candidate's
    states equal :func:`simulate_tracked` of that candidate alone from its own start state."""
    g_count = ref.shape[0]
    cos_ref, sin_ref, velocity, curvature = reference_profiles(ref, velocity_op_t, dt, rate_penalty, initial_penalty)
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
