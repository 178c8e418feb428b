"""Compiled map-dependent terms and the aggregation of the PDM score: DAC, DDC, route progress, EP and PDMS
(pdm_scorer.py ``_calculate_driving_direction_compliance``, ``_calculate_progress``, ``_aggregate_scores``).

:func:`aggregate` is the one implementation of the weighted aggregation ``PDMS = NC * DAC * (w_ep EP + w_ttc TTC +
w_c C + w_ddc DDC) / (w_ep + w_ttc + w_c + w_ddc)`` (or the EPDMS-style preset where DDC multiplies); its
configuration-derived constants come grouped in :class:`AggregateRules`. Route progress is the arc length of the
closest route point (shapely ``LineString.project`` semantics); a route with fewer than 2 points has no length, so
every point projects to arc length 0 and progress is 0. No fast-math.

Arrays: ``G`` candidates, ``T`` steps, ``R`` route points; lengths [m].
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit


class AggregateRules(NamedTuple):
    """Weights and thresholds of :func:`aggregate` (from a ``PDMConfig``)."""

    ddc_horizon: int
    """DDC window [steps]."""
    ddc_compliance: float
    """Oncoming progress below this -> DDC 1 [m]."""
    ddc_violation: float
    """Oncoming progress below this (and >= ``ddc_compliance``) -> DDC 0.5, else 0 [m]."""
    ddc_multiplicative: bool
    """DDC multiplies like NC and DAC (EPDMS-style preset) instead of being averaged (``w_ddc`` then unused)."""
    progress_threshold: float
    """Minimum normaliser for EP [m] (below it EP = 1 unless the candidate is masked)."""
    w_ep: float
    """Weight of EP."""
    w_ttc: float
    """Weight of TTC."""
    w_comfort: float
    """Weight of comfort."""
    w_ddc: float
    """Weight of DDC in the average."""


@njit(cache=True)
def ddc_worst(centers: np.ndarray, oncoming: np.ndarray, horizon: int) -> np.ndarray:
    """``(G,)`` largest oncoming progress [m] over windows of steps ``max(0, t - horizon) .. t`` (pdm_scorer.py
    ``_calculate_driving_direction_compliance``), from centres ``(G, T, 2)`` and ``oncoming`` ``(G, T)``: per-step
    distance (0 where not oncoming), cumulative sum, window differences."""
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
    """Arc length [m] of the closest point of the polyline ``route (R, 2)`` to ``(px, py)`` (shapely
    ``LineString.project``: first segment on ties, clamped to the ends); ``route_s (R,)`` cumulative lengths. A
    route with fewer than 2 points has no length: 0."""
    if route.shape[0] < 2:
        return 0.0
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
    """``(P,)`` arc lengths [m] of points ``(P, 2)`` projected on the route ``(R, 2)`` with cumulative lengths
    ``route_s (R,)`` (``MapIndex.project_route``; 0 for a route of fewer than 2 points)."""
    out = np.empty(points.shape[0])
    for p in range(points.shape[0]):
        out[p] = _project(points[p, 0], points[p, 1], route, route_s)
    return out


@njit(cache=True)
def aggregate(nc: np.ndarray, ttc: np.ndarray, comfort: np.ndarray, non_drivable: np.ndarray, oncoming: np.ndarray,
              centers: np.ndarray, route: np.ndarray, route_s: np.ndarray, reference_progress: float,
              rules: AggregateRules):
    """DAC, DDC, progress, EP and PDMS of a group (pdm_scorer.py).

    Per candidate: DAC = 0 if any step is off the drivable area, else 1; DDC from the worst oncoming progress over
    the DDC window (:func:`ddc_worst`); progress = max(0, route arc length of the last box centre - of the first);
    ``mult = NC * DAC`` (``* DDC`` when ``ddc_multiplicative``); masked progress = progress * mult; EP = masked /
    normaliser when the normaliser exceeds ``progress_threshold``, else 1 (0 when mult is 0); PDMS = mult * the
    weighted average of EP, TTC, comfort (and DDC with ``w_ddc``).

    Args:
        nc, ttc, comfort: ``(G,)`` sub-scores; non_drivable, oncoming: ``(G, T)`` bool; centers: ``(G, T, 2)`` [m].
        route ``(R, 2)``, route_s ``(R,)``: route polyline and its cumulative arc length [m] (R < 2: progress 0).
        reference_progress: masked progress [m] of the reference; the normaliser of candidate g is
            ``max(reference_progress, masked_g)`` (NAVSIM scoring the pair), or, when NaN, the group's largest
            masked progress (NAVSIM scoring the group together).
        rules: weights and thresholds (:class:`AggregateRules`).

    Returns:
        ``(dac, ddc, progress, masked, ep, pdms)``, each ``(G,)``.
    """
    ddc_horizon, ddc_compliance, ddc_violation = rules.ddc_horizon, rules.ddc_compliance, rules.ddc_violation
    ddc_multiplicative = rules.ddc_multiplicative
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
    ep, pdms = ep_and_pdms(masked, mult, ttc, comfort, ddc, reference_progress, rules)
    return dac, ddc, progress, masked, ep, pdms


@njit(cache=True)
def ep_and_pdms(masked: np.ndarray, mult: np.ndarray, ttc: np.ndarray, comfort: np.ndarray, ddc: np.ndarray,
                reference_progress: float, rules: AggregateRules):
    """EP and PDMS of a group from its masked progress: the one weighted aggregation (:func:`aggregate` ends with
    it; :meth:`rewards.pdm.PDMResult.renormalized` re-runs it against another EP reference).

    Args:
        masked: ``(G,)`` masked progress ``progress * mult`` [m]; mult: ``(G,)`` ``NC * DAC`` (``* DDC`` with
            ``ddc_multiplicative``); ttc, comfort, ddc: ``(G,)`` sub-scores.
        reference_progress: the reference's masked progress [m]; the normaliser of candidate g is
            ``max(reference_progress, masked_g)``, or the group's largest masked progress when NaN.
        rules: weights and thresholds.

    Returns:
        ``(ep, pdms)``, each ``(G,)``.
    """
    ddc_multiplicative, progress_threshold = rules.ddc_multiplicative, rules.progress_threshold
    w_ep, w_ttc, w_comfort, w_ddc = rules.w_ep, rules.w_ttc, rules.w_comfort, rules.w_ddc
    g_count = masked.shape[0]
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
    return ep, pdms
