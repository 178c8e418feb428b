"""Compiled parts of the comfort metric (:mod:`rewards.comfort`, after ``pdm_comfort_metrics.py``): the filter
inputs, the 8-decimal rounding, and the strict bound checks. The Savitzky-Golay filtering and differentiation
between them are matrix products done by :func:`rewards.comfort.comfort_score`. No fast-math.

Arrays: ``G`` candidates, ``T`` steps; accelerations [m/s^2], jerks [m/s^3], yaw rates [rad/s].
"""

from __future__ import annotations

import numpy as np
from numba import njit


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
