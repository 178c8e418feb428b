"""NAVSIM v1.1 comfort term: Savitzky-Golay estimates of accelerations, jerks and yaw derivatives within bounds.

Exactly ``navsim/planning/simulation/planner/pdm_planner/scoring/pdm_comfort_metrics.py`` (v1.1), vectorized over
candidates; ``scipy.signal.savgol_filter`` with its default ``mode="interp"``:

| quantity | signal | filter |
|---|---|---|
| lon. acceleration | ax | window min(T, T)=41, order 2 |
| lat. acceleration | ay | window 41, order 2 |
| jerk | hypot(ax, ay) | smoothed with window min(8, T), order 2, rounded; then d/dt window 41, order 2 |
| lon. jerk | ax | same as jerk |
| yaw rate | unwrapped heading | d/dt, window min(5, T), order 2 (``_extract_ego_yaw_rate`` drops the window argument) |
| yaw acceleration | unwrapped heading | d2/dt2, window 5, order 3 |

Every value is rounded to 8 decimals before the strict bound test; ``delta`` is the mean step of
``arange(T) * dt`` as in NAVSIM. Each filter is applied as a precomputed linear operator (:func:`savgol_matrix`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from rewards.config import ComfortBounds
from rewards.tracking import SAX, SAY, SYAW

COMFORT_NAMES = ("lon_accel", "lat_accel", "jerk", "lon_jerk", "yaw_accel", "yaw_rate")
"""Order of the columns of :func:`comfort_checks` (NAVSIM's ``ego_is_comfortable`` order)."""


@lru_cache(maxsize=64)
def savgol_matrix(n_time: int, window: int, order: int, deriv: int, delta: float) -> np.ndarray:
    """``(T, T)`` matrix ``W`` with ``savgol_filter(x, ...) == x @ W`` for ``x (..., T)`` (mode ``"interp"``).

    The filter is linear in its input, so applying it to the identity gives its matrix once; scoring then costs one
    matrix product per quantity (equal to scipy's output up to floating-point rounding).
    """
    eye = np.eye(n_time)
    w = savgol_filter(eye, window_length=window, polyorder=order, deriv=deriv, delta=delta, axis=-1)
    w.setflags(write=False)
    return np.ascontiguousarray(w)


def _phase_unwrap(headings: np.ndarray) -> np.ndarray:
    """``_phase_unwrap`` of pdm_comfort_metrics.py: remove 2 pi jumps between successive headings."""
    adj = np.zeros_like(headings)
    adj[..., 1:] = np.cumsum(np.round(np.diff(headings, axis=-1) / (2.0 * np.pi)), axis=-1)
    return headings - 2.0 * np.pi * adj


def _within(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``_within_bound``: strict, all over time (note NAVSIM treats a bound of exactly 0 as absent)."""
    lo = lo if lo else -np.inf
    hi = hi if hi else np.inf
    return np.all((values > lo) & (values < hi), axis=-1)


def comfort_checks(states: np.ndarray, dt: float, bounds: ComfortBounds = ComfortBounds()) -> np.ndarray:
    """Per-candidate comfort checks ``(G, 6)`` bool (columns :data:`COMFORT_NAMES`) of states ``(G, T, 7)``."""
    n_time = states.shape[1]
    delta = float(np.diff(np.arange(n_time, dtype=np.float64) * dt).mean())
    ax = states[..., SAX]
    ay = states[..., SAY]
    mag = np.hypot(ax, ay)
    smooth_all = savgol_matrix(n_time, n_time, 2, 0, 1.0)
    smooth_8 = savgol_matrix(n_time, min(8, n_time), 2, 0, 1.0)
    d1_all = savgol_matrix(n_time, n_time, 2, 1, delta)
    win = min(5, n_time)
    acc = np.round(np.stack([ax, ay]) @ smooth_all, 8)
    short = np.round(np.stack([mag, ax]) @ smooth_8, 8)
    jerks = np.round(short @ d1_all, 8)
    heading = _phase_unwrap(states[..., SYAW])
    yaw_rate = np.round(heading @ savgol_matrix(n_time, win, 2, 1, delta), 8)
    yaw_acc = np.round(heading @ savgol_matrix(n_time, win, 3, 2, delta), 8)
    b = bounds
    return np.stack([
        _within(acc[0], b.min_lon_accel, b.max_lon_accel),
        _within(acc[1], -b.max_abs_lat_accel, b.max_abs_lat_accel),
        _within(jerks[0], -b.max_abs_jerk, b.max_abs_jerk),
        _within(jerks[1], -b.max_abs_lon_jerk, b.max_abs_lon_jerk),
        _within(yaw_acc, -b.max_abs_yaw_accel, b.max_abs_yaw_accel),
        _within(yaw_rate, -b.max_abs_yaw_rate, b.max_abs_yaw_rate),
    ], axis=-1)


def comfort_score(states: np.ndarray, dt: float, bounds: ComfortBounds = ComfortBounds()) -> np.ndarray:
    """NAVSIM comfort term ``(G,)`` float64: 1.0 if all six checks hold at every step, else 0.0."""
    return np.all(comfort_checks(states, dt, bounds), axis=-1).astype(np.float64)
