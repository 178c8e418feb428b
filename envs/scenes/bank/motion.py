"""Longitudinal profiles and poses along paths for the synthetic scenario bank (vectorized numpy).

Everything here is kinematic: an agent is a box moving along a :class:`~envs.scenes.layouts.Path` with an arc-length
profile ``s (T,)`` [m] and an optional lateral offset ``(T,)`` [m] (left positive); velocities are finite
differences of the poses, so they are consistent with them by construction.
"""

from __future__ import annotations

import math

import numpy as np

from envs.scenes.layouts import Path

DT = 0.1
"""Log step of every synthetic scene [s] (10 Hz)."""
NUM_FRAMES = 101
"""Frames per synthetic scene (10 s at 10 Hz)."""


def frame_times(num_frames: int = NUM_FRAMES, dt: float = DT) -> np.ndarray:
    """``(T,)`` frame times [s] starting at 0."""
    return np.arange(num_frames) * dt


def smoothstep(u: np.ndarray | float) -> np.ndarray:
    """Half-cosine blend ``(1 - cos(pi u)) / 2`` of ``u`` clipped to [0, 1] (0 -> 0, 1 -> 1, zero end slopes)."""
    u = np.clip(np.asarray(u, dtype=np.float64), 0.0, 1.0)
    return 0.5 * (1.0 - np.cos(np.pi * u))


def ramp_profile(t: np.ndarray, s0: float, v0: float, t_start: float, accel: float, v_end: float) -> np.ndarray:
    """Arc length ``(T,)`` [m] of a point moving at ``v0`` [m/s] that, from ``t_start`` [s], changes speed at
    ``accel`` [m/s^2] (sign: towards ``v_end``) until it reaches ``v_end`` [m/s] and then holds it.

    ``s0`` is the position the motion would have at ``t = 0`` if it had always moved at ``v0`` (so with
    ``t_start < 0`` the ramp is already under way at ``t = 0``). Covers constant speed (``v_end == v0``),
    braking to a stop (``v_end = 0``) and starting from standstill (``v0 = 0``).
    """
    t = np.asarray(t, dtype=np.float64)
    a = abs(accel) * (1.0 if v_end >= v0 else -1.0)
    dur = 0.0 if a == 0.0 else (v_end - v0) / a
    tau = np.maximum(t - t_start, 0.0)
    tau1 = np.minimum(tau, dur)
    return s0 + v0 * np.minimum(t, t_start) + v0 * tau1 + 0.5 * a * tau1**2 + v_end * (tau - tau1)


def brake_after(s: np.ndarray, frame: int, decel: float, dt: float = DT) -> np.ndarray:
    """Copy of the arc-length profile ``s (T,)`` [m] that brakes at ``decel`` [m/s^2] to a stop from ``frame`` on.

    Frames ``<= frame`` are unchanged; the speed at ``frame`` is the backward difference ``(s[f] - s[f-1]) / dt``.
    """
    s = np.asarray(s, dtype=np.float64)
    out = s.copy()
    if frame >= len(s) - 1:
        return out
    v = max(0.0, (s[frame] - s[frame - 1]) / dt) if frame > 0 else max(0.0, (s[1] - s[0]) / dt)
    tau = (np.arange(frame + 1, len(s)) - frame) * dt
    tau = np.minimum(tau, v / decel)
    out[frame + 1 :] = s[frame] + v * tau - 0.5 * decel * tau**2
    return out


def speed_caps(path: Path, v_cruise: float, a_lat: float, a_down: float, spacing: float = 0.5) -> np.ndarray:
    """Speed cap on a uniform arc-length grid (``spacing`` [m]) along ``path`` [m/s].

    The cap is ``min(v_cruise, sqrt(a_lat / curvature))``, lowered ahead of curves so that decelerating at
    ``a_down`` [m/s^2] reaches each curve's speed in time.
    """
    kappa = np.maximum(path.curvature(), 1e-6)
    cap = np.minimum(v_cruise, np.sqrt(a_lat / kappa))
    # backward pass: cap(s)^2 <= min_{s' >= s} cap(s')^2 + 2 a (s' - s)
    c2 = cap**2 + 2.0 * a_down * path.s
    c2 = np.minimum.accumulate(c2[::-1])[::-1] - 2.0 * a_down * path.s
    grid = np.arange(0.0, path.length + spacing, spacing)
    return np.interp(grid, path.s, np.sqrt(np.maximum(c2, 0.0)))


def speed_plan(
    caps: np.ndarray,
    v_cruise: float,
    s0: float,
    v0: float,
    num_frames: int,
    a_up: float,
    a_down: float,
    dt: float = DT,
    spacing: float = 0.5,
) -> np.ndarray:
    """Arc length ``(num_frames,)`` [m] of a driver that tracks the speed caps of :func:`speed_caps`.

    Starting at ``s0`` [m] with speed ``v0`` [m/s], each step accelerates by at most ``a_up`` and brakes by at
    most ``a_down`` [m/s^2] towards the cap at the position one step ahead (``v_cruise`` past the path end).
    """
    out = np.empty(num_frames)
    s, v = float(s0), float(v0)
    n = len(caps)
    cap_list = caps.tolist()
    for k in range(num_frames):
        out[k] = s
        i = int((s + v * dt) / spacing)
        cap = cap_list[i] if 0 <= i < n else v_cruise
        v_new = max(min(v + a_up * dt, cap), v - a_down * dt, 0.0)
        s += 0.5 * (v + v_new) * dt
        v = v_new
    return out


def track_poses(path: Path, s: np.ndarray, lateral: np.ndarray | None = None, dt: float = DT) -> np.ndarray:
    """Poses ``(T, 3)`` [m, m, rad] of a point at arc lengths ``s (T,)`` [m] shifted ``lateral (T,)`` [m] left.

    With a lateral offset the heading turns by ``atan2(d lateral/dt, d s/dt)`` (the direction of motion).
    """
    poses = path.poses(s, lateral)
    if lateral is not None:
        dlat = np.gradient(lateral, dt)
        ds = np.maximum(np.gradient(s, dt), 0.5)
        poses[:, 2] = (poses[:, 2] + np.arctan2(dlat, ds) + np.pi) % (2.0 * np.pi) - np.pi
    return poses


def velocities(poses: np.ndarray, dt: float = DT) -> np.ndarray:
    """World-frame velocities ``(..., T, 2)`` [m/s]: central finite differences of positions ``poses (..., T, 3)``."""
    return np.gradient(np.asarray(poses)[..., :2], dt, axis=-2)


def crossing_time(centres: np.ndarray, gate: Path, dt: float = DT) -> tuple[float, float] | None:
    """First time [s] at which points ``centres (T, 2)`` cross ``gate`` from right to left or left to right.

    Returns:
        ``(t, s_gate)``: the crossing time (linear interpolation between frames) and the arc length [m] of the
        crossing point along ``gate``, or None if the points never change side (or cross beyond the gate's ends
        by more than 5 m).
    """
    s, d = gate.project(centres)
    side = np.sign(d)
    change = np.flatnonzero((side[:-1] != side[1:]) & (side[:-1] != 0))
    for k in change:
        frac = d[k] / (d[k] - d[k + 1])
        s_gate = s[k] + frac * (s[k + 1] - s[k])
        if -5.0 <= s_gate <= gate.length + 5.0:
            return (k + frac) * dt, float(s_gate)
    return None


def solve_time(fn, target: float, t_max: float = 15.0, step: float = 0.005) -> float | None:
    """Smallest ``t`` in ``[0, t_max]`` [s] with ``fn(t) >= target`` for a vectorized ``fn`` (grid + linear
    interpolation), or None."""
    t = np.arange(0.0, t_max + step, step)
    f = fn(t)
    hit = np.flatnonzero(f >= target)
    if len(hit) == 0:
        return None
    k = int(hit[0])
    if k == 0:
        return 0.0
    return float(t[k - 1] + (target - f[k - 1]) / (f[k] - f[k - 1]) * step)


def ped_start_time(distance: float, v: float, accel: float, t_arrive: float) -> float:
    """Start time [s] of a walker who accelerates from standstill at ``accel`` [m/s^2] to ``v`` [m/s] and must
    cover ``distance`` [m] by ``t_arrive`` [s]."""
    ramp_d = 0.5 * v * v / accel
    if distance <= ramp_d:
        return t_arrive - math.sqrt(2.0 * distance / accel)
    return t_arrive - v / accel - (distance - ramp_d) / v
