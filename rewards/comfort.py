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

from rewards import kernels
from rewards.config import ComfortBounds
from rewards.tracking import SAX, SAY

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


@lru_cache(maxsize=64)
def _bounds_table(bounds: ComfortBounds) -> np.ndarray:
    """``(6, 2)`` open intervals in :data:`COMFORT_NAMES` order (a bound of exactly 0 is absent, as ``_within``)."""
    b = bounds
    rows = [(b.min_lon_accel, b.max_lon_accel), (-b.max_abs_lat_accel, b.max_abs_lat_accel),
            (-b.max_abs_jerk, b.max_abs_jerk), (-b.max_abs_lon_jerk, b.max_abs_lon_jerk),
            (-b.max_abs_yaw_accel, b.max_abs_yaw_accel), (-b.max_abs_yaw_rate, b.max_abs_yaw_rate)]
    table = np.array([(lo if lo else -np.inf, hi if hi else np.inf) for lo, hi in rows], dtype=np.float64)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=64)
def _filters(n_time: int, dt: float) -> tuple[np.ndarray, ...]:
    """The five Savitzky-Golay operators of the comfort metrics for ``n_time`` samples every ``dt`` [s]:
    smooth (window T), smooth (window 8), d/dt (window T), yaw rate (d/dt, window 5, order 2), yaw acceleration
    (d2/dt2, window 5, order 3). ``delta`` is the mean step of ``arange(T) * dt`` as in NAVSIM."""
    delta = float(np.diff(np.arange(n_time, dtype=np.float64) * dt).mean())
    win = min(5, n_time)
    return (savgol_matrix(n_time, n_time, 2, 0, 1.0), savgol_matrix(n_time, min(8, n_time), 2, 0, 1.0),
            savgol_matrix(n_time, n_time, 2, 1, delta), savgol_matrix(n_time, win, 2, 1, delta),
            savgol_matrix(n_time, win, 3, 2, delta))


def _comfort(states: np.ndarray, dt: float, bounds: ComfortBounds) -> tuple[np.ndarray, np.ndarray]:
    """``(checks (G, 6) bool, score (G,) float64)`` of states ``(G, T, 7)``.

    The five filter products stay numpy matrix products on arrays of the same shapes as before (so BLAS sums them
    in the same order); stacking, unwrapping, rounding to 8 decimals and the bound tests are compiled
    (:mod:`rewards.kernels`).
    """
    states = np.ascontiguousarray(states, dtype=np.float64)
    smooth_all, smooth_8, d1_all, d_yaw1, d_yaw2 = _filters(states.shape[1], float(dt))
    magnitude = np.hypot(states[..., SAX], states[..., SAY])
    accel, short, heading = kernels.comfort_inputs(states, magnitude)
    jerks = kernels.round8(short @ smooth_8) @ d1_all
    return kernels.comfort_bounds(accel @ smooth_all, jerks, heading @ d_yaw1, heading @ d_yaw2,
                                  _bounds_table(bounds))


def comfort_checks(states: np.ndarray, dt: float, bounds: ComfortBounds = ComfortBounds()) -> np.ndarray:
    """Per-candidate comfort checks ``(G, 6)`` bool (columns :data:`COMFORT_NAMES`) of states ``(G, T, 7)``."""
    return _comfort(states, dt, bounds)[0]


def comfort_score(states: np.ndarray, dt: float, bounds: ComfortBounds = ComfortBounds()) -> np.ndarray:
    """NAVSIM comfort term ``(G,)`` float64: 1.0 if all six checks hold at every step, else 0.0."""
    return _comfort(states, dt, bounds)[1]
