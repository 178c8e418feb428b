"""PDM-Closed-like reference planner: the trajectory EP is normalised against (NAVSIM v1.1 scores every prediction
paired with PDM-Closed, ``navsim/evaluate/pdm_score.py``). It builds on :mod:`rewards.pdm` (its proposals are scored
with :func:`rewards.pdm.score_states`); :mod:`rewards.scorer` composes the two and caches the reference per problem.

What it does (after ``navsim/planning/simulation/planner/pdm_planner/abstract_pdm_closed_planner.py``,
``.../proposal/pdm_generator.py``, ``.../proposal/batch_idm_policy.py`` and the parameters NAVSIM's metric caching
uses, ``navsim/planning/metric_caching/metric_cache_processor.py``):

* centreline = the route polyline (``MapGeometry.route``); paths = the centreline offset laterally by
  ``PDMConfig.reference_lateral_offsets`` (-1, 0, +1 m);
* longitudinal profiles = IDM (``batch_idm_policy.py``: acceleration exponent 10, min gap 1.0 m, headway 1.5 s,
  a_max 1.5 m/s^2, b 3.0 m/s^2, forward Euler at 0.1 s) with target speeds ``speed_limit x
  reference_speed_fractions`` (0.2 .. 1.0), w.r.t. the closest object ahead on the path, objects forecast at
  constant velocity from their state at t=0;
* the 15 proposals (poses along the path at the IDM progress) are simulated with the same tracker
  (:func:`rewards.tracking.simulate_poses`) and scored with :func:`rewards.pdm.score_states` against the
  constant-velocity forecasts (normalising EP among the proposals, as PDM-Closed does); the best PDMS wins (first on
  ties);
* the winner's simulated 0.1 s trajectory is simulated once more (NAVSIM re-simulates the cached PDM-Closed
  trajectory in ``pdm_score``) and scored against the *logged* objects: its ``progress * NC * DAC`` is the
  ``masked_progress`` used for EP normalisation.

Proposal sets (``proposal_set``):

* ``"navsim"``: the 15 IDM proposals above, exactly PDM-Closed's set: the reference of the NAVSIM-faithful EP.
* ``"careful"``: those 15 plus **braking** (constant decelerations ``PDMConfig.careful_brake_decels`` to a stop) and
  **yield** proposals (slow to ``careful_hold_fractions`` of the current speed, then hold) along the route. PDM-
  Closed's IDM only brakes for an object already ahead on its path, so when a crossing or cutting-in agent makes
  every IDM proposal collide under the forecast, it still drives on (the best of 15 zero scores); the careful set
  then has a proposal that stops short. Used by the safe-progress reference and the safe oracle's fallback (and
  by the ``pdm_closed_like`` baseline with ``proposal_set="careful"``).

:func:`plan_action`: the same choice as :func:`plan_reference`, but among the proposals as the 8-pose actions the
env executes (:func:`proposal_actions`); the ``pdm_closed_like`` policy uses it.

Safe progress (:func:`plan_safe_progress`, the RL reward's EP reference): every proposal of the careful set is
scored against the **logged** objects; the reference progress is the largest progress of a proposal that is safe
there (no contact at all, NC = DAC = DDC = TTC = 1), i.e. what a careful driver who knew the next 4 s could safely
achieve. Standing still then earns EP 0 wherever moving safely was possible. When no proposal is safe the largest
``progress * NC * DAC`` is used (``fallback="nc_dac"``), and 0 when none moves without an at-fault collision.

Simplifications (documented deviations from PDM-Closed): the route polyline replaces PDM's lane-graph centreline
search; the leading object is the closest forecast object whose centre lies within (ego half width + object half
width) of the path, ahead of the ego front (PDM intersects the path corridor with the occupancy map), searched on the
stretch of path the ego can reach within the horizon plus 20 m (``LEAD_SEARCH_MARGIN``; an object beyond it would
change the IDM acceleration by under 2 %: on 240 bank states the reference's masked progress moved by at most
0.2 m); no emergency
brake fallback; beyond the end of the route the path is extended straight along its last segment.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import numpy as np
from numba import njit

from rewards.config import PDMConfig
from rewards.geometry import offset_polyline, polyline_arclength, wrap_angle, world_to_local
from rewards.pdm import score_states
from rewards.clearance import min_gaps
from rewards.tracking import SX, SYAW, simulate_candidates, simulate_poses
from rewards.types import AgentsFuture, MapGeometry, ScoringProblem

# batch_idm_policy.py / metric_cache_processor.py (NAVSIM v1.1)
IDM_MIN_GAP = 1.0  # [m]
IDM_HEADWAY = 1.5  # [s]
IDM_ACCEL_MAX = 1.5  # [m/s^2]
IDM_DECEL_MAX = 3.0  # [m/s^2]
IDM_EXPONENT = 10
LEAD_SEARCH_MARGIN = 20.0  # [m] path kept behind the ego and beyond its reach when searching the lead object
FALLBACK_TARGET_VELOCITY = 15.0  # [m/s] when the speed limit is unknown (<= 0)


@dataclass(frozen=True)
class ReferenceResult:
    """The chosen reference.

    Attributes:
        trajectory: ``(num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] at ``pose_interval`` (8 at 0.5 s).
        states: ``(T, 7)`` world-frame states scored against the log (T = 41).
        masked_progress: progress x NC x DAC [m] against the logged objects (EP normaliser).
        index: chosen proposal (``speed_index * len(offsets) + offset_index``).
        proposal_scores: ``(15,)`` PDMS of the proposals against the constant-velocity forecasts.
    """

    trajectory: np.ndarray
    states: np.ndarray
    masked_progress: float
    index: int
    proposal_scores: np.ndarray


_CHUNK = 16
"""Segments per chunk of :func:`_project_kernel`'s pruning."""


@njit(cache=True, inline="always")
def _segment_d2(px: float, py: float, path: np.ndarray, j: int) -> tuple[float, float, float]:
    """``(d2, f, cross)`` of point ``(px, py)`` and segment ``j`` of ``path``: squared distance to its closest point,
    that point's fraction along the segment, and the cross product giving the side (the arithmetic of
    :func:`_project_numpy`)."""
    ax, ay = path[j, 0], path[j, 1]
    bx, by = path[j + 1, 0] - ax, path[j + 1, 1] - ay
    len2 = max(bx * bx + by * by, 1e-12)
    apx, apy = px - ax, py - ay
    f = min(max((apx * bx + apy * by) / len2, 0.0), 1.0)
    dx, dy = px - (ax + f * bx), py - (ay + f * by)
    return dx * dx + dy * dy, f, bx * apy - by * apx


@njit(cache=True)
def _project_kernel(points: np.ndarray, path: np.ndarray, path_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Compiled :func:`_project` (same arithmetic, same first-minimum tie-break, no ``(M, R)`` temporaries).

    Pruned exactly: the segments are grouped in chunks of :data:`_CHUNK` with a bounding circle each; per point, the
    chunk nearest by its circle gives an upper bound ``ub`` of the smallest squared distance, and the ordered scan
    skips every chunk whose circle is farther than ``sqrt(ub)`` (by a margin far above rounding): such segments are
    strictly farther than the minimum, so the first segment reaching the minimum, and every output, is unchanged.
    """
    m, r = points.shape[0], path.shape[0] - 1
    s = np.empty(m)
    lat = np.empty(m)
    n_chunks = (r + _CHUNK - 1) // _CHUNK
    cx = np.empty(n_chunks)
    cy = np.empty(n_chunks)
    cr = np.empty(n_chunks)
    for c in range(n_chunks):
        j0, j1 = c * _CHUNK, min((c + 1) * _CHUNK, r)  # segments j0 .. j1 - 1: vertices j0 .. j1
        lox, loy, hix, hiy = np.inf, np.inf, -np.inf, -np.inf
        for v in range(j0, j1 + 1):
            lox, hix = min(lox, path[v, 0]), max(hix, path[v, 0])
            loy, hiy = min(loy, path[v, 1]), max(hiy, path[v, 1])
        cx[c], cy[c] = 0.5 * (lox + hix), 0.5 * (loy + hiy)
        rad = 0.0
        for v in range(j0, j1 + 1):
            rad = max(rad, np.sqrt((path[v, 0] - cx[c]) ** 2 + (path[v, 1] - cy[c]) ** 2))
        cr[c] = rad
    lower = np.empty(n_chunks)
    for i in range(m):
        px, py = points[i, 0], points[i, 1]
        nearest = 0
        for c in range(n_chunks):
            lower[c] = max(np.sqrt((px - cx[c]) ** 2 + (py - cy[c]) ** 2) - cr[c], 0.0)
            if lower[c] < lower[nearest]:
                nearest = c
        ub = np.inf
        for j in range(nearest * _CHUNK, min((nearest + 1) * _CHUNK, r)):
            ub = min(ub, _segment_d2(px, py, path, j)[0])
        limit = np.sqrt(ub) * (1.0 + 1e-9) + 1e-6  # [m]; a chunk whose circle is farther cannot hold the minimum
        best, best_j, best_f, best_cross = np.inf, 0, 0.0, 0.0
        for c in range(n_chunks):
            if lower[c] > limit:
                continue
            for j in range(c * _CHUNK, min((c + 1) * _CHUNK, r)):
                d2, f, cross = _segment_d2(px, py, path, j)
                if d2 < best:
                    best, best_j, best_f, best_cross = d2, j, f, cross
        bx, by = path[best_j + 1, 0] - path[best_j, 0], path[best_j + 1, 1] - path[best_j, 1]
        s[i] = path_s[best_j] + best_f * np.sqrt(max(bx * bx + by * by, 1e-12))
        lat[i] = np.sign(best_cross) * np.sqrt(best)
    return s, lat


def _project(points: np.ndarray, path: np.ndarray, path_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Arc length [m] and signed lateral offset [m] (left positive) of points ``(M, 2)`` on a polyline ``(R, 2)``
    with cumulative arc length ``path_s (R,)``: the closest point over all segments (first one on ties)."""
    return _project_kernel(_kernel_view(points), _kernel_view(path), _kernel_view(path_s))


def _kernel_view(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous float64 read-only view (or copy): the kernel then compiles once, whether the caller's
    array is writeable (an offset path) or not (a problem's frozen route or pose)."""
    out = np.ascontiguousarray(a, dtype=np.float64).view()
    out.setflags(write=False)
    return out


def _project_numpy(points: np.ndarray, path: np.ndarray, path_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numpy form of :func:`_project` (kept for tests: the compiled kernel must agree with it)."""
    a = path[:-1]
    ab = path[1:] - a
    len2 = np.maximum(np.sum(ab * ab, axis=1), 1e-12)
    ap = points[:, None, :] - a
    frac = np.clip(np.sum(ap * ab, axis=-1) / len2, 0.0, 1.0)
    closest = a + frac[..., None] * ab
    d2 = np.sum((points[:, None, :] - closest) ** 2, axis=-1)
    seg = np.argmin(d2, axis=1)
    rows = np.arange(len(points))
    s = path_s[seg] + frac[rows, seg] * np.sqrt(len2[seg])
    cross = ab[seg, 0] * ap[rows, seg, 1] - ab[seg, 1] * ap[rows, seg, 0]
    lat = np.sign(cross) * np.sqrt(d2[rows, seg])
    return s, lat


def _path_poses(path: np.ndarray, path_s: np.ndarray, s: np.ndarray, heading: np.ndarray | None = None) -> np.ndarray:
    """Poses ``(..., 3)`` on a polyline at arc lengths ``s`` (extended straight beyond both ends); ``heading``: the
    path's segment headings ``(R - 1,)`` [rad] when already computed (:func:`_route_paths`)."""
    if heading is None:
        d = np.diff(path, axis=0)
        heading = np.arctan2(d[:, 1], d[:, 0])
    seg = np.clip(np.searchsorted(path_s, s, side="right") - 1, 0, len(heading) - 1)
    along = s - path_s[seg]
    h = heading[seg]
    return np.stack([path[seg, 0] + along * np.cos(h), path[seg, 1] + along * np.sin(h), h], axis=-1)


@dataclass(frozen=True, eq=False)
class _RoutePath:
    """A planner path: the route offset laterally (read-only arrays, cached per map, :func:`_route_paths`)."""

    path: np.ndarray
    """``(R, 2)`` polyline [m]."""
    path_s: np.ndarray
    """``(R,)`` cumulative arc length [m]."""
    heading: np.ndarray
    """``(R - 1,)`` segment headings [rad]."""


_PATHS: "weakref.WeakKeyDictionary[MapGeometry, dict[float, _RoutePath]]" = weakref.WeakKeyDictionary()
"""Per map geometry object (released with it): ``{lateral offset: _RoutePath}``."""


def _path_headings(path: np.ndarray, path_s: np.ndarray, s: np.ndarray, heading: np.ndarray | None = None
                   ) -> np.ndarray:
    """The heading column of :func:`_path_poses` alone (same segment choice, no positions computed)."""
    if heading is None:
        d = np.diff(path, axis=0)
        heading = np.arctan2(d[:, 1], d[:, 0])
    return heading[np.clip(np.searchsorted(path_s, s, side="right") - 1, 0, len(heading) - 1)]


def _route_paths(geometry: MapGeometry, offset: float) -> _RoutePath:
    """The route of ``geometry`` offset by ``offset`` [m] (left positive; 0: the route itself), with its arc length
    and segment headings, computed once per map and offset (the same arithmetic as computing them per plan)."""
    per_map = _PATHS.setdefault(geometry, {})
    cached = per_map.get(float(offset))
    if cached is None:
        path = geometry.route if offset == 0 else offset_polyline(geometry.route, float(offset))
        d = np.diff(path, axis=0)
        arrays = [np.asarray(path), polyline_arclength(path), np.arctan2(d[:, 1], d[:, 0])]
        for a in arrays:
            a.setflags(write=False)
        cached = per_map[float(offset)] = _RoutePath(*arrays)
    return cached


_FORECASTS: "weakref.WeakKeyDictionary[AgentsFuture, dict[float, AgentsFuture]]" = weakref.WeakKeyDictionary()
"""Per agents object (released with it): ``{dt: constant-velocity forecast}`` (the proposals' lead search and the
proposals' scoring read the same forecast)."""


def constant_velocity_agents(agents: AgentsFuture, dt: float) -> AgentsFuture:
    """Objects forecast at constant velocity from step 0, every ``dt`` [s] (objects invalid at step 0 are dropped, as PDM-Closed only
    sees the current detections). Computed once per agents object and ``dt`` (the result is immutable)."""
    per_agents = _FORECASTS.setdefault(agents, {})
    cached = per_agents.get(float(dt))
    if cached is None:
        cached = per_agents[float(dt)] = _constant_velocity_agents(agents, float(dt))
    return cached


def _constant_velocity_agents(agents: AgentsFuture, dt: float) -> AgentsFuture:
    """:func:`constant_velocity_agents` computed."""
    keep = agents.valid[:, 0] if agents.num_steps else np.zeros(agents.num_agents, dtype=bool)
    s = agents.num_steps
    t = np.arange(s)
    poses = agents.poses[keep, :1].repeat(s, axis=1)
    vel = agents.velocities[keep, :1]
    dt_steps = t[None, :, None]
    poses = poses.copy()
    poses[..., :2] = agents.poses[keep, :1, :2] + vel * dt_steps * dt
    return AgentsFuture(
        ids=agents.ids[keep],
        is_static=agents.is_static[keep],
        sizes=agents.sizes[keep],
        poses=poses,
        velocities=np.repeat(vel, s, axis=1),
        valid=np.ones((int(keep.sum()), s), dtype=bool),
    )


def _idm_progress(problem: ScoringProblem, forecast: AgentsFuture, path: np.ndarray, path_s: np.ndarray,
                  s0: float, targets: np.ndarray, config: PDMConfig, heading: np.ndarray | None = None) -> np.ndarray:
    """IDM rear-axle progress ``(V, T)`` [m] along ``path`` for target speeds ``targets (V,)`` (``heading``: the
    path's segment headings, see :func:`_path_poses`)."""
    params = problem.ego.params
    dt = config.sim_dt
    steps = config.num_sim_steps
    front = params.rear_axle_to_center + 0.5 * params.length
    n = forecast.num_agents
    lead_s = np.full(steps, np.inf)
    lead_v = np.zeros(steps)
    if n:
        # Only the stretch of the path the ego can reach matters for the lead: project onto it (objects beyond its
        # ends clamp there, far from the path laterally, so they are never "near"); it spares most of the work on
        # long routes. Reach: the horizon at the highest target or current speed, plus a margin.
        reach = (max(float(targets.max()), float(problem.ego.velocity[0])) * (steps - 1) * dt
                 + params.length + LEAD_SEARCH_MARGIN)
        lo = max(int(np.searchsorted(path_s, s0 - LEAD_SEARCH_MARGIN, side="right")) - 1, 0)
        hi = min(int(np.searchsorted(path_s, s0 + reach, side="left")) + 1, len(path) - 1)
        s_obj, lat = _project(forecast.poses[:, :steps, :2].reshape(-1, 2), path[lo:hi + 1], path_s[lo:hi + 1])
        s_obj = s_obj.reshape(n, steps)
        lat = lat.reshape(n, steps)
        heading = _path_headings(path, path_s, s_obj, heading)
        v_along = (forecast.velocities[:, :steps, 0] * np.cos(heading)
                   + forecast.velocities[:, :steps, 1] * np.sin(heading))
        near = np.abs(lat) < 0.5 * params.width + 0.5 * forecast.sizes[:, 1, None]
        rear = s_obj - 0.5 * forecast.sizes[:, 0, None]
        ahead = near & (s_obj > s0 + params.rear_axle_to_center)  # centre ahead of the ego centre
        cand = np.where(ahead, rear, np.inf)
        j = np.argmin(cand, axis=0)
        lead_s = cand[j, np.arange(steps)]
        lead_v = np.where(np.isfinite(lead_s), v_along[j, np.arange(steps)], 0.0)
    return _idm_rollout(max(float(problem.ego.velocity[0]), 0.0), float(s0), np.ascontiguousarray(targets, np.float64),
                        np.ascontiguousarray(lead_s), np.ascontiguousarray(lead_v), float(front), float(dt), int(steps))


@njit(cache=True)
def _idm_rollout(v0: float, s0: float, targets: np.ndarray, lead_s: np.ndarray, lead_v: np.ndarray, front: float,
                 dt: float, steps: int) -> np.ndarray:
    """IDM forward-Euler rollout ``(V, steps)`` [m] of rear-axle progress for target speeds ``targets (V,)`` [m/s]
    behind a lead at progress ``lead_s (steps,)`` [m] (inf: none) with speed ``lead_v`` [m/s] (``batch_idm_policy.py``;
    the accelerations are clipped to ``[-IDM_DECEL_MAX, IDM_ACCEL_MAX]``, speeds at 0)."""
    root = 2.0 * np.sqrt(IDM_ACCEL_MAX * IDM_DECEL_MAX)
    n = targets.shape[0]
    out = np.empty((n, steps))
    for i in range(n):
        v = v0
        x = s0
        out[i, 0] = s0
        for t in range(steps - 1):
            s_star = IDM_MIN_GAP + v * IDM_HEADWAY + v * (v - lead_v[t]) / root
            gap = max(lead_s[t] - (x + front), IDM_MIN_GAP)
            acc = IDM_ACCEL_MAX * (1.0 - (v / targets[i]) ** IDM_EXPONENT - (s_star / gap) ** 2)
            acc = min(max(acc, -IDM_DECEL_MAX), IDM_ACCEL_MAX)
            x = x + dt * v
            v = max(v + dt * acc, 0.0)
            out[i, t + 1] = x
    return out

PROPOSAL_SETS = ("navsim", "careful")
"""Proposal sets of :func:`proposal_poses` (see the module docstring)."""


def _stopping_progress(v0: float, decel: float, hold_speed: float, t: np.ndarray) -> np.ndarray:
    """Distance [m] travelled at times ``t`` [s] from speed ``v0`` [m/s] decelerating at ``decel`` [m/s^2] down to
    ``hold_speed`` [m/s], then holding it."""
    t_brake = max(v0 - hold_speed, 0.0) / decel
    tb = np.minimum(t, t_brake)
    return v0 * tb - 0.5 * decel * tb**2 + hold_speed * np.maximum(t - t_brake, 0.0)


def proposal_poses(problem: ScoringProblem, config: PDMConfig = PDMConfig(), proposal_set: str = "navsim") -> np.ndarray:
    """World-frame rear-axle poses ``(P, num_sim_steps, 3)`` [m, m, rad] of the planner's proposals (pose 0 = the
    ego's), in index order: IDM ``speed_index * n_offsets + offset_index`` (15), then for ``"careful"`` the braking
    proposals (one per ``careful_brake_decels``) and the yield proposals (one per ``careful_hold_fractions``).

    Raises:
        ValueError: unknown ``proposal_set``, or a problem without a map / route (nothing to follow).
    """
    if proposal_set not in PROPOSAL_SETS:
        raise ValueError(f"proposal_set: expected one of {PROPOSAL_SETS}, got {proposal_set!r}")
    geometry = problem.map
    if geometry is None or len(geometry.route) < 2:
        raise ValueError(f"proposal_poses: problem {problem.scene_id!r} has no map route to follow")
    ego = problem.ego
    speed_limit = geometry.speed_limit if geometry.speed_limit > 0 else FALLBACK_TARGET_VELOCITY
    targets = np.maximum(np.asarray(config.reference_speed_fractions, dtype=np.float64) * speed_limit, 1e-3)
    forecast = constant_velocity_agents(problem.agents, config.sim_dt)
    proposals = []
    for offset in config.reference_lateral_offsets:
        rp = _route_paths(geometry, float(offset))
        s0 = float(_project(ego.pose[None, :2], rp.path, rp.path_s)[0][0])
        prog = _idm_progress(problem, forecast, rp.path, rp.path_s, s0, targets, config, rp.heading)  # (V, T)
        proposals.append(_path_poses(rp.path, rp.path_s, prog, rp.heading))
    # (offsets, V, T, 3) -> proposal index = speed_index * n_offsets + offset_index
    poses = np.stack(proposals, axis=1).reshape(-1, config.num_sim_steps, 3)
    if proposal_set == "careful":
        rp = _route_paths(geometry, 0.0)
        s0 = float(_project(ego.pose[None, :2], rp.path, rp.path_s)[0][0])
        v0 = max(float(ego.velocity[0]), 0.0)
        t = np.arange(config.num_sim_steps) * config.sim_dt
        profiles = [_stopping_progress(v0, float(a), 0.0, t) for a in config.careful_brake_decels]
        profiles += [_stopping_progress(v0, float(config.careful_hold_decel), float(f) * v0, t)
                     for f in config.careful_hold_fractions]
        if profiles:
            extra = _path_poses(rp.path, rp.path_s, s0 + np.stack(profiles), rp.heading)
            poses = np.concatenate([poses, extra], axis=0)
    poses[:, 0] = ego.pose
    poses[..., 2] = np.unwrap(poses[..., 2], axis=1)
    poses[..., 2] = wrap_angle(poses[..., 2])
    return poses


def _ego_frame_trajectory(states: np.ndarray, ego_pose: np.ndarray, config: PDMConfig) -> np.ndarray:
    """``(num_poses, 3)`` ego-frame poses at the pose interval of simulated world states ``(T, >=3)``."""
    ratio = int(round(config.pose_interval / config.sim_dt))
    return world_to_local(states[ratio::ratio, SX:SYAW + 1][: config.num_poses], ego_pose)


def num_proposals(config: PDMConfig, proposal_set: str) -> int:
    """How many proposals :func:`proposal_poses` makes (the ``"navsim"`` set is a prefix of the ``"careful"`` one)."""
    n = len(config.reference_speed_fractions) * len(config.reference_lateral_offsets)
    if proposal_set == "careful":
        n += len(config.careful_brake_decels) + len(config.careful_hold_fractions)
    return n


def forecast_problem(problem: ScoringProblem, config: PDMConfig = PDMConfig(),
                     agent_ids: Collection[int] | None = None,
                     motion: Mapping[int, tuple[float, float]] | None = None) -> ScoringProblem:
    """``problem`` with every agent forecast at constant velocity from its current state
    (:func:`constant_velocity_agents`): what PDM-Closed scores its proposals against.

    ``agent_ids``: forecast only the agents with these ids and keep every other agent's future as ``problem`` has it
    (the log's); an id the problem lacks is ignored. None (the default): every agent. ``motion``: ``{id: (yaw rate
    [rad/s], acceleration [m/s^2])}``: the forecast agents turn and accelerate at those constant rates instead
    (:func:`turning_agents`; an agent not in it keeps constant velocity)."""
    agents = problem.agents
    pick = (np.ones(agents.num_agents, dtype=bool) if agent_ids is None
            else np.isin(agents.ids, np.fromiter(agent_ids, dtype=np.int64)))
    if motion is not None:
        rates = np.array([motion.get(int(i), (0.0, 0.0)) for i in agents.ids[pick]], dtype=np.float64).reshape(-1, 2)
        moved = turning_agents(_agent_rows(agents, pick), rates[:, 0], rates[:, 1], config.sim_dt)
    elif agent_ids is None:
        moved = constant_velocity_agents(agents, config.sim_dt)
    else:
        moved = _constant_velocity_agents(_agent_rows(agents, pick), config.sim_dt)
    forecast = moved
    if not pick.all():
        kept = _agent_rows(agents, ~pick)
        forecast = AgentsFuture(**{f: np.concatenate([getattr(kept, f), getattr(moved, f)])
                                   for f in ("ids", "is_static", "sizes", "poses", "velocities", "valid")})
    return ScoringProblem(ego=problem.ego, agents=forecast, map=problem.map, scene_id=problem.scene_id,
                          time_index=problem.time_index)


def turning_agents(agents: AgentsFuture, yaw_rates: np.ndarray, accelerations: np.ndarray,
                   dt: float) -> AgentsFuture:
    """Objects forecast from step 0 at a constant turn rate ``yaw_rates (N,)`` [rad/s] and a constant acceleration of
    their speed ``accelerations (N,)`` [m/s^2] (the speed held at 0 once reached; no turning while stopped), every
    ``dt`` [s] (forward Euler). The motion starts along the velocity (the box heading for a standing object); the box
    turns with it. Zero rates give :func:`constant_velocity_agents` (to rounding). Objects invalid at step 0 are
    dropped."""
    keep = agents.valid[:, 0] if agents.num_steps else np.zeros(agents.num_agents, dtype=bool)
    s = agents.num_steps
    t = np.arange(s) * dt
    v0 = agents.velocities[keep, 0]  # (M, 2)
    yaw0 = agents.poses[keep, 0, 2]
    speed0 = np.hypot(v0[:, 0], v0[:, 1])
    heading0 = np.where(speed0 > 0.0, np.arctan2(v0[:, 1], v0[:, 0]), yaw0)
    speed = np.maximum(speed0[:, None] + np.asarray(accelerations, dtype=np.float64)[keep, None] * t, 0.0)  # (M, S)
    moving = np.concatenate([np.zeros((len(speed0), 1)), (speed[:, :-1] > 0.0) * dt], axis=1).cumsum(axis=1)
    turn = np.asarray(yaw_rates, dtype=np.float64)[keep, None] * moving  # (M, S) [rad]
    heading = heading0[:, None] + turn
    step = np.stack([speed * np.cos(heading), speed * np.sin(heading)], axis=-1)  # (M, S, 2) [m/s]
    disp = np.concatenate([np.zeros((len(speed0), 1, 2)), np.cumsum(step[:, :-1] * dt, axis=1)], axis=1)
    poses = np.concatenate([agents.poses[keep, :1, :2] + disp, (yaw0[:, None] + turn)[..., None]], axis=-1)
    return AgentsFuture(ids=agents.ids[keep], is_static=agents.is_static[keep], sizes=agents.sizes[keep],
                        poses=poses, velocities=step, valid=np.ones((int(keep.sum()), s), dtype=bool))


def _agent_rows(agents: AgentsFuture, rows: np.ndarray) -> AgentsFuture:
    """The agents selected by the boolean ``rows (N,)``."""
    return AgentsFuture(ids=agents.ids[rows], is_static=agents.is_static[rows], sizes=agents.sizes[rows],
                        poses=agents.poses[rows], velocities=agents.velocities[rows], valid=agents.valid[rows])


def plan_reference(problem: ScoringProblem, config: PDMConfig = PDMConfig(), proposal_set: str = "navsim",
                   proposal_states: np.ndarray | None = None) -> ReferenceResult | None:
    """Plan the PDM-Closed-like reference for ``problem`` (None without map). See the module docstring.

    ``proposal_states``: the simulated proposals of this problem (``simulate_poses`` of :func:`proposal_poses`,
    at least the set's proposals, in order), when already computed (:mod:`rewards.scorer` shares them)."""
    geometry = problem.map
    if geometry is None or len(geometry.route) < 2:
        return None
    ego = problem.ego
    cv_problem = forecast_problem(problem, config)
    if proposal_states is None:
        sim = simulate_poses(ego, proposal_poses(problem, config, proposal_set), config)
    else:
        sim = proposal_states[: num_proposals(config, proposal_set)]
    scores = score_states(cv_problem, sim, config, reference_progress=None).pdms
    best = int(np.argmax(scores))
    chosen = sim[best, :, SX:SYAW + 1]
    states = simulate_poses(ego, chosen[None], config)
    logged = score_states(problem, states, config, reference_progress=None)
    return ReferenceResult(
        trajectory=_ego_frame_trajectory(chosen, ego.pose, config),
        states=states[0],
        masked_progress=float(logged.masked_progress[0]),
        index=best,
        proposal_scores=scores,
    )


def proposal_actions(problem: ScoringProblem, poses: np.ndarray, config: PDMConfig = PDMConfig()
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Proposals as a policy outputs and the env executes them.

    Args:
        problem: the decision time (its ego state is the frame of the actions).
        poses: ``(P, T, 3)`` world-frame proposal poses at ``sim_dt`` (:func:`proposal_poses`).
        config: scorer configuration.

    Returns:
        ``(actions (P, num_poses, 3), states (P, T, 7))``: the ego-frame 8-pose actions [m, m, rad] (every
        ``pose_interval``) and their simulation as the env executes an action
        (:func:`rewards.tracking.simulate_candidates`: interpolation of the 8 poses, LQR tracker, bicycle).
    """
    ratio = int(round(config.pose_interval / config.sim_dt))
    trajs = world_to_local(poses[:, ratio::ratio][:, : config.num_poses], problem.ego.pose)  # (P, 8, 3)
    return trajs, simulate_candidates(problem.ego, trajs, config)


@dataclass(frozen=True)
class ActionPlan:
    """The planner's choice among its proposals as actions (:func:`plan_action`).

    Attributes:
        trajectory: ``(num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] (8 at 0.5 s): the action.
        index: the chosen proposal in :func:`proposal_poses` order.
        proposal_scores: ``(P,)`` PDMS of the proposals' actions against the constant-velocity forecasts.
    """

    trajectory: np.ndarray
    index: int
    proposal_scores: np.ndarray


def plan_action(problem: ScoringProblem, config: PDMConfig = PDMConfig(), proposal_set: str = "navsim",
                poses: np.ndarray | None = None) -> ActionPlan | None:
    """PDM-Closed's choice made as a policy that outputs 8 poses must make it (None without a map).

    :func:`plan_reference` scores the proposals' 0.1 s states, as PDM-Closed does; the env then executes the
    chosen proposal from its 8 poses at 0.5 s (re-interpolated and re-tracked), and on a tight junction turn that
    execution cuts the corner (off road, DAC 0) although the 0.1 s proposal stayed on the road. Here every proposal
    is scored as the action it becomes (:func:`proposal_actions`) against constant-velocity forecasts of every
    agent, and the best PDMS wins (first on ties). Measured closed loop on 32 bank scenes (seed 1000): normal scenes'
    off-road endings 12.5 % -> 0 %, accident scenes' collisions 67 % -> 58 %.

    ``poses``: the problem's :func:`proposal_poses` of ``proposal_set`` (or a longer set whose prefix it is)."""
    geometry = problem.map
    if geometry is None or len(geometry.route) < 2:
        return None
    n = num_proposals(config, proposal_set)
    poses = proposal_poses(problem, config, proposal_set) if poses is None else poses[:n]
    trajs, sim = proposal_actions(problem, poses, config)
    scores = score_states(forecast_problem(problem, config), sim, config, reference_progress=None).pdms
    best = int(np.argmax(scores))
    return ActionPlan(trajectory=trajs[best], index=best, proposal_scores=scores)


@dataclass(frozen=True)
class SafeProgressResult:
    """The safe-progress reference of a problem (see the module docstring).

    Attributes:
        progress: the EP normaliser [m]: the largest progress of a safe careful proposal against the logged objects.
        index: that proposal's index in :func:`proposal_poses` ``(..., "careful")`` (-1 when none moves).
        trajectory: its ``(num_poses, 3)`` ego-frame poses [m, m, rad], or None.
        num_safe: how many proposals are safe.
        fallback: ``"safe"``, ``"nc_dac"`` (no proposal safe; largest ``progress * NC * DAC``) or ``"none"``.
    """

    progress: float
    index: int
    trajectory: np.ndarray | None
    num_safe: int
    fallback: str


def plan_safe_progress(problem: ScoringProblem, config: PDMConfig = PDMConfig(),
                       poses: np.ndarray | None = None) -> SafeProgressResult | None:
    """The safe-progress reference of ``problem`` (None without a map). See the module docstring.

    Each careful proposal is turned into the 8-pose action a policy would output (:func:`_ego_frame_trajectory`) and
    simulated as the env executes actions (:func:`rewards.tracking.simulate_candidates`), so the reference is
    achievable through the action space; "safe" also requires ``config.safe_progress_margin`` of clearance.
    ``poses``: the problem's careful :func:`proposal_poses` when already computed."""
    geometry = problem.map
    if geometry is None or len(geometry.route) < 2:
        return None
    if poses is None:
        poses = proposal_poses(problem, config, "careful")
    trajs, sim = proposal_actions(problem, poses, config)
    r = score_states(problem, sim, config, reference_progress=None)
    safe = (r.nc == 1.0) & (r.dac == 1.0) & (r.ddc == 1.0) & (r.ttc == 1.0) & ~r.collision
    if safe.any() and config.safe_progress_margin > 0:
        gaps = min_gaps(sim[:, :, :3], problem, np.arange(sim.shape[1]), float(config.safe_progress_margin))
        safe &= gaps >= config.safe_progress_margin
    if safe.any():
        pool, fallback = np.where(safe, r.progress, -np.inf), "safe"
    else:
        pool, fallback = np.where(r.masked_progress > 0, r.masked_progress, -np.inf), "nc_dac"
    if not np.isfinite(pool).any():
        return SafeProgressResult(progress=0.0, index=-1, trajectory=None, num_safe=0, fallback="none")
    best = int(np.argmax(pool))
    return SafeProgressResult(progress=float(pool[best]), index=best, trajectory=trajs[best],
                              num_safe=int(safe.sum()), fallback=fallback)


@dataclass(frozen=True)
class FallbackAction:
    """The safe oracle's choice when no careful proposal is safe (:func:`plan_fallback_action`).

    Attributes:
        trajectory: ``(num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] (8 at 0.5 s): the action.
        index: the chosen proposal in :func:`proposal_poses` ``(..., "careful")`` order (then the ``extra`` actions).
        tier: 3 no contact and NC = DAC = DDC = 1 (only TTC or the margin fail), 2 no contact and DAC = 1, 1 no
            contact, 0 every proposal touches an agent within the horizon.
        gap_m: its smallest box-to-box gap to any agent over states 1..40 [m] (0: contact; ``inf``: none within
            ``safe_progress_margin + 5`` m).
    """

    trajectory: np.ndarray
    index: int
    tier: int
    gap_m: float


def plan_fallback_action(problem: ScoringProblem, config: PDMConfig = PDMConfig(),
                         poses: np.ndarray | None = None, extra: np.ndarray | None = None) -> FallbackAction | None:
    """The least unsafe careful proposal against the **logged** agents, as the action the env executes: what the
    safe oracle drives when :func:`plan_safe_progress` finds no safe proposal (None without a map).

    Every careful proposal is scored as its 8-pose action (:func:`proposal_actions`) against the logged objects and
    ranked lexicographically: the highest tier (see :class:`FallbackAction`: avoiding any contact first, then the
    map), then the largest gap up to ``config.safe_progress_margin`` [m] over states 1..40 (the present state is
    shared by every proposal), then the largest progress [m]; in tier 0 (every proposal touches an agent) the latest
    first contact [s], then no at-fault contact, then the smallest progress (the hardest stop). Unlike the careful
    planner's choice under constant-velocity forecasts (the oracle's fallback before), it never prefers a proposal
    that touches a logged agent over one that does not, nor one that leaves the road as executed.

    ``poses``: the problem's careful :func:`proposal_poses` when already computed. ``extra``: ``(K, num_poses, 3)``
    further ego-frame actions [m, m, rad] ranked with them (indices ``P ..``; :func:`rewards.scorer.fallback_action_for`
    adds the careful planner's choice under constant-velocity forecasts, the oracle's fallback before, so the new
    one is never ranked below it)."""
    geometry = problem.map
    if geometry is None or len(geometry.route) < 2:
        return None
    if poses is None:
        poses = proposal_poses(problem, config, "careful")
    trajs, sim = proposal_actions(problem, poses, config)
    if extra is not None and len(extra):
        extra = np.asarray(extra, dtype=np.float64).reshape(-1, config.num_poses, 3)
        trajs = np.concatenate([trajs, extra])
        sim = np.concatenate([sim, simulate_candidates(problem.ego, extra, config)])
    r = score_states(problem, sim, config, reference_progress=None)
    margin = float(config.safe_progress_margin)
    steps = np.arange(1, sim.shape[1])
    gaps = min_gaps(sim[:, 1:, :3], problem, steps, margin + 5.0)
    free = ~r.collision.astype(bool)
    dac_ok = r.dac == 1.0
    tier = np.where(free & (r.nc == 1.0) & dac_ok & (r.ddc == 1.0), 3, np.where(free & dac_ok, 2, free.astype(int)))
    progress = np.nan_to_num(r.progress, nan=0.0)
    if tier.max() > 0:
        keys = (progress, np.minimum(gaps, margin), tier)  # np.lexsort: the last key is the primary one
    else:
        first = np.nan_to_num(r.collision_time, nan=np.inf)
        keys = (-progress, (r.nc == 1.0).astype(int), first)
    best = int(np.lexsort(keys)[-1])
    return FallbackAction(trajectory=trajs[best], index=best, tier=int(tier[best]), gap_m=float(gaps[best]))
