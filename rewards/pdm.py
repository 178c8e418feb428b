"""NAVSIM v1.1 PDM score of a group of candidate trajectories, vectorized over candidates, objects and time.

Rules: ``../shared/specs/navsim-pdm.md``; source: ``navsim/planning/simulation/planner/pdm_planner/scoring/
pdm_scorer.py`` (metrics, aggregation), ``.../scoring/pdm_scorer_utils.py`` (collision classification),
``.../scoring/pdm_comfort_metrics.py`` (see :mod:`rewards.comfort`), ``navsim/evaluate/pdm_score.py`` (simulation +
pairing with the PDM-Closed reference), nuPlan ``planning/simulation/observation/idm/utils.py`` (ahead / behind
angles, stopped tracks).

Pipeline of :func:`score_states` (``G`` candidates, ``T`` = 41 states, ``N`` objects, ``S`` logged steps):

1. ego boxes ``(G, T, 4, 2)`` from the rear-axle states (centre = rear axle + ``rear_axle_to_center``);
2. ego areas per (g, t) from one strict point-in-polygon query (:mod:`rewards.map_index`): ``multiple_lanes``,
   ``non_drivable``, ``oncoming`` (centre in no on-route lane), rear axle in an intersection;
3. ego-object contacts for the TTC offsets ``k`` in (0, 3, 6, 9) (k = 0 is the collision test of NC): a (g, n)
   bounding-box prefilter, a (g, n, t, k) bounding-circle prefilter, then an exact separating-axis test;
4. NC: only the first contact of each (g, n) is classified (a not-at-fault contact makes NAVSIM ignore the object for
   the rest of the candidate; an at-fault one already sets NC and the time), TTC: only the first *checked* hit of
   each (g, n) in (t, k) order matters for the same reason;
5. DAC, DDC (window sums by cumulative sums), EP (route arc-length projection), comfort, PDMS.

Without a map (``problem.map is None``): DAC, DDC, EP, progress and PDMS are NaN ("unavailable"); NC and TTC are
computed with ``multiple_lanes``, ``non_drivable`` and "in intersection" all False (so a lateral contact is never at
fault and TTC only fails for objects ahead); comfort and the collision flags are unaffected.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from rewards.comfort import comfort_score
from rewards.config import PDMConfig
from rewards.geometry import box_corners, oriented_boxes_overlap, relative_angle, segment_intersects_box
from rewards.map_index import MapIndex, map_index_for
from rewards.tracking import NUM_STATE_COLUMNS, SAX, SVX, SVY, SX, SY, SYAW, simulate_candidates
from rewards.types import ScoringProblem

if TYPE_CHECKING:  # pragma: no cover
    from rewards.reference_planner import ReferenceResult

_EPS = 1e-9


@dataclass
class PDMResult:
    """Per-candidate PDM sub-scores of one group; every array is ``(G,)``.

    Attributes:
        nc: no at-fault collision (1, 0.5 static object, 0).
        dac: drivable area compliance (NaN without map).
        ddc: driving direction compliance (1, 0.5, 0; NaN without map).
        ttc: time-to-collision within bound (1 or 0).
        ep: ego progress, normalised (NaN without map).
        comfort: 1 or 0.
        pdms: aggregate score (NaN without map).
        progress: raw progress of the box centre along the route [m], clipped >= 0 (NaN without map).
        collision: any ego-object box overlap in the horizon, at fault or not.
        at_fault_collision: an at-fault collision (NC < 1).
        collision_time: time of the first contact [s] (NaN if none).
        colliding_agent_id: id of the object of the first contact (-1 if none; lowest index on ties).
        map_available: False when the problem had no map.
        at_fault_time: time of the first at-fault contact [s] (NaN if none). (addition)
        ttc_time: time step of the first TTC violation [s] (NaN if none). (addition)
        masked_progress: ``progress * NC * DAC`` [m] as used for EP (NaN without map). (addition)
    """

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    ttc: np.ndarray
    ep: np.ndarray
    comfort: np.ndarray
    pdms: np.ndarray
    progress: np.ndarray
    collision: np.ndarray
    at_fault_collision: np.ndarray
    collision_time: np.ndarray
    colliding_agent_id: np.ndarray
    map_available: bool
    at_fault_time: np.ndarray | None = None
    ttc_time: np.ndarray | None = None
    masked_progress: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.nc.shape[0])

    def terms(self, config: PDMConfig = PDMConfig()) -> dict[str, np.ndarray]:
        """Named ``(G,)`` float64 reward terms: the sub-scores, ``pdms`` and ``collision`` (``-collision_penalty``
        where the candidate touched any object, else 0)."""
        return {
            "nc": self.nc.copy(),
            "dac": self.dac.copy(),
            "ddc": self.ddc.copy(),
            "ttc": self.ttc.copy(),
            "ep": self.ep.copy(),
            "comfort": self.comfort.copy(),
            "pdms": self.pdms.copy(),
            "collision": np.where(self.collision, -float(config.collision_penalty), 0.0),
        }

    def select(self, i: int) -> dict[str, Any]:
        """Python scalars of candidate ``i`` (every field; ``map_available`` as is)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                out[f.name] = value[i].item()
            elif value is None:
                out[f.name] = None
            else:
                out[f.name] = value
        return out


# ----------------------------------------------------------------------------------------------------------------
# Candidate-independent data per problem (cached on a weak-key dictionary).


@dataclass(eq=False)
class _ProblemData:
    """Precomputed per :class:`ScoringProblem`: object boxes, prefilter bounds, map index, reference cache."""

    corners: np.ndarray  # (N, S, 4, 2)
    centers: np.ndarray  # (N, S, 2)
    valid: np.ndarray  # (N, S)
    yaw: np.ndarray  # (N, S)
    half: np.ndarray  # (N, 2) half length, half width [m]
    radius: np.ndarray  # (N,) half diagonal [m]
    drift: np.ndarray  # (N, S) how far the centre moves within the next max-TTC-offset steps [m] (inf if invalid)
    lo: np.ndarray  # (N, 2) AABB over valid steps
    hi: np.ndarray  # (N, 2)
    stopped: np.ndarray  # (N,) object "stopped" as first seen (static objects always)
    is_static: np.ndarray  # (N,)
    ids: np.ndarray  # (N,)
    map_index: MapIndex | None
    references: dict


_PROBLEMS: "weakref.WeakKeyDictionary[ScoringProblem, dict]" = weakref.WeakKeyDictionary()
"""Per problem object: ``{(collision_stopped_speed, max TTC offset): _ProblemData}``."""


def _drift(centers: np.ndarray, valid: np.ndarray, horizon: int) -> np.ndarray:
    """``(N, S)``: max distance from the centre at step s to the valid centres at steps s..s+horizon (inf where
    step s is invalid)."""
    n, s = valid.shape
    out = np.zeros((n, s))
    for k in range(1, horizon + 1):
        if k >= s:
            break
        d = np.linalg.norm(centers[:, k:] - centers[:, :-k], axis=-1)
        d = np.where(valid[:, k:], d, 0.0)
        out[:, :-k] = np.maximum(out[:, :-k], d)
    out[~valid] = np.inf
    return out


def _problem_data(problem: ScoringProblem, stopped_speed: float, horizon: int) -> _ProblemData:
    per_problem = _PROBLEMS.setdefault(problem, {})
    key = (float(stopped_speed), int(horizon))
    if key in per_problem:
        return per_problem[key]
    ag = problem.agents
    n, s = ag.num_agents, ag.num_steps
    corners = box_corners(ag.poses, ag.sizes[:, 0, None], ag.sizes[:, 1, None]) if n else np.zeros((0, s, 4, 2))
    valid = ag.valid.copy()
    big = np.where(valid[..., None, None], corners, np.nan)
    with np.errstate(invalid="ignore"):
        lo = np.nanmin(big.reshape(n, -1, 2), axis=1) if n and s else np.zeros((n, 2))
        hi = np.nanmax(big.reshape(n, -1, 2), axis=1) if n and s else np.zeros((n, 2))
    never = ~valid.any(axis=1) if s else np.ones(n, dtype=bool)
    lo[never] = np.inf
    hi[never] = -np.inf
    # nuPlan is_track_stopped on PDMObservation.unique_objects: the object as first seen in the observation.
    first = np.argmax(valid, axis=1) if s else np.zeros(n, dtype=int)
    v_first = ag.velocities[np.arange(n), first] if s else np.zeros((n, 2))
    stopped = ag.is_static | (np.hypot(v_first[:, 0], v_first[:, 1]) <= stopped_speed)
    data = _ProblemData(
        corners=corners,
        centers=ag.poses[..., :2].copy(),
        valid=valid,
        yaw=ag.poses[..., 2].copy(),
        half=0.5 * ag.sizes,
        radius=0.5 * np.hypot(ag.sizes[:, 0], ag.sizes[:, 1]),
        drift=_drift(ag.poses[..., :2], valid, horizon),
        lo=lo,
        hi=hi,
        stopped=stopped,
        is_static=ag.is_static.copy(),
        ids=ag.ids.copy(),
        map_index=map_index_for(problem.map) if problem.map is not None else None,
        references={},
    )
    per_problem[key] = data
    return data


def ego_corners(states: np.ndarray, params) -> tuple[np.ndarray, np.ndarray]:
    """Ego box corners ``(..., 4, 2)`` (FL, RL, RR, FR) and centres ``(..., 2)`` [m] from states ``(..., 7)``."""
    c, s = np.cos(states[..., SYAW]), np.sin(states[..., SYAW])
    cx = states[..., SX] + params.rear_axle_to_center * c
    cy = states[..., SY] + params.rear_axle_to_center * s
    hl, hw = 0.5 * params.length, 0.5 * params.width
    lx, ly = hl * c, hl * s  # half length along heading
    wx, wy = -hw * s, hw * c  # half width to the left
    corners = np.empty(states.shape[:-1] + (4, 2))
    corners[..., 0, 0] = cx + lx + wx
    corners[..., 0, 1] = cy + ly + wy
    corners[..., 1, 0] = cx - lx + wx
    corners[..., 1, 1] = cy - ly + wy
    corners[..., 2, 0] = cx - lx - wx
    corners[..., 2, 1] = cy - ly - wy
    corners[..., 3, 0] = cx + lx - wx
    corners[..., 3, 1] = cy + ly - wy
    return corners, np.stack([cx, cy], axis=-1)


# ----------------------------------------------------------------------------------------------------------------
# Metric pieces.


def _ego_areas(index: MapIndex, corners: np.ndarray, centers: np.ndarray, states: np.ndarray):
    """``multiple_lanes, non_drivable, oncoming, in_intersection`` each ``(G, T)`` bool (pdm_scorer.py
    ``_calculate_ego_area``; intersection: ``PDMDrivableMap.is_in_layer`` of the rear axle)."""
    pts = np.concatenate([corners, centers[..., None, :], states[..., None, SX:SY + 1]], axis=-2)  # (G, T, 6, 2)
    inside = index.contains(pts)  # (G, T, 6, P)
    corner_drv = inside[..., :4, index.drivable_columns].any(axis=-1)  # (G, T, 4)
    non_drivable = ~corner_drv.all(axis=-1)
    lane_counts = inside[..., :4, index.lane_columns].sum(axis=-2)  # (G, T, L)
    multiple = (lane_counts > 0).sum(axis=-1) > 1
    not_single = np.all(lane_counts != 4, axis=-1)
    multiple_lanes = multiple & not_single
    center_lanes = inside[..., 4, index.lane_columns]
    oncoming = ~(center_lanes & index.lane_on_route).any(axis=-1)
    in_intersection = inside[..., 5, index.intersection_columns].any(axis=-1)
    return multiple_lanes, non_drivable, oncoming, in_intersection


def _contacts(data: _ProblemData, centers: np.ndarray, states: np.ndarray, offsets: tuple[int, ...], dt: float,
              params):
    """Sparse ego-object contacts for every TTC offset.

    Returns ``(g, n, t, k)`` int arrays of the overlapping (candidate, object, step, offset index) quadruples:
    the ego box at ``t`` moved by ``speed * offsets[k] * dt`` along its heading overlaps the object's logged box at
    ``t + offsets[k]`` (valid steps only). Offset 0 is the plain collision test. Three stages: (g, n) bounding
    boxes of the whole sweep, (g, n, t, k) bounding circles (broadcast over the objects that survive the first
    stage), then the exact separating-axis test on the remaining quadruples.
    """
    g_count, t_count = states.shape[:2]
    n_count, s_count = data.valid.shape
    empty = (np.zeros(0, dtype=np.int64),) * 4
    if n_count == 0 or s_count == 0:
        return empty
    ego_radius = 0.5 * float(np.hypot(params.length, params.width))
    max_off = max(offsets)
    speed = np.hypot(states[..., SVX], states[..., SVY])  # (G, T)
    shift_max = max_off * dt * speed  # (G, T)
    reach = ego_radius + shift_max.max(axis=1)
    elo = centers.min(axis=1) - reach[:, None]
    ehi = centers.max(axis=1) + reach[:, None]
    pair = np.all((elo[:, None] <= data.hi[None]) & (data.lo[None] <= ehi[:, None]), axis=-1)  # (G, N)
    pg, pn = np.nonzero(pair)
    if len(pg) == 0:
        return empty
    # Level 2: bounding circles per (g, n, t, k) for the objects that survive level 1 for some candidate.
    keep_n = np.flatnonzero(pair.any(axis=0))
    off = np.asarray(offsets, dtype=np.int64)
    obj_step = np.arange(t_count)[:, None] + off[None, :]  # (T, K)
    in_range = obj_step < s_count
    obj_step = np.minimum(obj_step, s_count - 1)
    yaw_e = states[..., SYAW]
    shift = speed[..., None] * (off * dt)  # (G, T, K)
    ecx = centers[..., 0, None] + shift * np.cos(yaw_e)[..., None]
    ecy = centers[..., 1, None] + shift * np.sin(yaw_e)[..., None]
    ocx = data.centers[keep_n][:, obj_step, 0]  # (N', T, K)
    ocy = data.centers[keep_n][:, obj_step, 1]
    ok_obj = data.valid[keep_n][:, obj_step] & in_range  # (N', T, K)
    lim = (ego_radius + data.radius[keep_n] + 1e-6) ** 2
    d2 = (ecx[:, None] - ocx[None]) ** 2
    d2 += (ecy[:, None] - ocy[None]) ** 2
    near = (d2 <= lim[None, :, None, None]) & ok_obj[None] & pair[:, keep_n, None, None]
    g_i, n_j, t_i, k_i = np.nonzero(near)
    if len(g_i) == 0:
        return empty
    n_i = keep_n[n_j]
    s_i = obj_step[t_i, k_i]
    yaw = yaw_e[g_i, t_i]
    ego_c = np.stack([ecx[g_i, t_i, k_i], ecy[g_i, t_i, k_i]], axis=-1)
    half_e = np.array([0.5 * params.length, 0.5 * params.width])
    hit = oriented_boxes_overlap(ego_c, yaw, half_e, data.centers[n_i, s_i], data.yaw[n_i, s_i], data.half[n_i])
    return g_i[hit], n_i[hit], t_i[hit], k_i[hit]


def _first_per_pair(g: np.ndarray, n: np.ndarray, order_key: np.ndarray, n_count: int):
    """Index (into the sparse arrays) of the smallest ``order_key`` per distinct (g, n); stable on ties."""
    if len(g) == 0:
        return np.zeros(0, dtype=np.int64)
    pair = g * n_count + n
    idx = np.lexsort((order_key, pair))
    first = np.ones(len(idx), dtype=bool)
    first[1:] = pair[idx[1:]] != pair[idx[:-1]]
    return idx[first]


def _ddc(centers: np.ndarray, oncoming: np.ndarray, config: PDMConfig) -> np.ndarray:
    """Driving direction compliance ``(G,)`` (pdm_scorer.py ``_calculate_driving_direction_compliance``)."""
    step = np.zeros(oncoming.shape)
    step[:, 1:] = np.linalg.norm(centers[:, 1:] - centers[:, :-1], axis=-1)
    step[~oncoming] = 0.0
    horizon = int(config.ddc_horizon / config.sim_dt)
    csum = np.concatenate([np.zeros((step.shape[0], 1)), np.cumsum(step, axis=1)], axis=1)
    t = np.arange(step.shape[1])
    window = csum[:, t + 1] - csum[:, np.maximum(0, t - horizon)]  # steps max(0, t-h) .. t inclusive
    worst = window.max(axis=1)
    return np.where(worst < config.ddc_compliance_threshold, 1.0,
                    np.where(worst < config.ddc_violation_threshold, 0.5, 0.0))


def _validate_states(states: np.ndarray, config: PDMConfig) -> np.ndarray:
    try:
        arr = np.asarray(states, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"states: cannot convert to a float array ({exc})") from None
    want_t = config.num_sim_steps
    if arr.ndim != 3 or arr.shape[1] != want_t or arr.shape[2] != NUM_STATE_COLUMNS:
        raise ValueError(f"states: expected shape (G, {want_t}, {NUM_STATE_COLUMNS}), got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"states: G must be >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"states: contains NaN or inf (shape {arr.shape})")
    return arr


def score_states(
    problem: ScoringProblem,
    states: np.ndarray,
    config: PDMConfig = PDMConfig(),
    reference_progress: float | None = None,
) -> PDMResult:
    """Score simulated candidate states (the vectorized core).

    Args:
        problem: objects, map and ego parameters.
        states: ``(G, T, 7)`` world-frame states from :func:`rewards.tracking.simulate_candidates` (T = 41).
        config: weights and thresholds.
        reference_progress: masked progress [m] (progress x NC x DAC) of the reference trajectory scored against the
            same log. EP of candidate g is normalised by ``M = max(reference_progress, masked_g)`` exactly as when
            NAVSIM scores the pair (reference, candidate). ``None`` (or NaN): normalise among the candidates of this
            group instead (``M = max_g masked_g``), which is NAVSIM's rule for scoring all of them together.

    Returns:
        :class:`PDMResult`.
    """
    states = _validate_states(states, config)
    data = _problem_data(problem, config.collision_stopped_speed, max(config.ttc_offsets))
    params = problem.ego.params
    g_count, t_count = states.shape[:2]
    dt = config.sim_dt
    corners, centers = ego_corners(states, params)
    speed = np.hypot(states[..., SVX], states[..., SVY])
    has_map = data.map_index is not None

    if has_map:
        multiple_lanes, non_drivable, oncoming, in_intersection = _ego_areas(data.map_index, corners, centers, states)
    else:
        multiple_lanes = non_drivable = in_intersection = np.zeros((g_count, t_count), dtype=bool)
        oncoming = None
    lane_or_offroad = multiple_lanes | non_drivable

    offsets = tuple(int(k) for k in config.ttc_offsets)
    if 0 not in offsets:
        offsets = (0,) + offsets
    zero_k = offsets.index(0)
    cg, cn, ct, ck = _contacts(data, centers, states, offsets, dt, params)
    n_count = data.valid.shape[0]
    behind_rad = np.deg2rad(config.behind_angle_deg)
    ahead_rad = np.deg2rad(config.ttc_ahead_angle_deg)

    # --- NC (pdm_scorer.py _calculate_no_at_fault_collision, pdm_scorer_utils.get_collision_type)
    nc = np.ones(g_count)
    collision = np.zeros(g_count, dtype=bool)
    collision_time = np.full(g_count, np.nan)
    colliding_id = np.full(g_count, -1, dtype=np.int64)
    at_fault_time = np.full(g_count, np.nan)
    m0 = ck == zero_k
    g0, n0, t0 = cg[m0], cn[m0], ct[m0]
    if len(g0):
        # First contact overall per candidate (flag, time, id): earliest t, then lowest object index.
        order = np.lexsort((n0, t0, g0))
        firsts = order[np.r_[True, g0[order[1:]] != g0[order[:-1]]]]
        collision[g0[firsts]] = True
        collision_time[g0[firsts]] = t0[firsts] * dt
        colliding_id[g0[firsts]] = data.ids[n0[firsts]]
        sel = _first_per_pair(g0, n0, t0, n_count)
        g1, n1, t1 = g0[sel], n0[sel], t0[sel]
        ego_stopped = speed[g1, t1] <= config.collision_stopped_speed
        track_stopped = data.stopped[n1]
        obj_center = data.centers[n1, t1]
        behind = relative_angle(states[g1, t1, :3], obj_center) > behind_rad
        front = segment_intersects_box(corners[g1, t1, 0], corners[g1, t1, 3], data.corners[n1, t1])
        lateral_fault = lane_or_offroad[g1, t1]
        at_fault = ~ego_stopped & (track_stopped | (~behind & (front | lateral_fault)))
        value = np.where(data.is_static[n1], config.static_collision_score, 0.0)
        np.minimum.at(nc, g1[at_fault], value[at_fault])
        tmin = np.full(g_count, np.inf)
        np.minimum.at(tmin, g1[at_fault], t1[at_fault].astype(np.float64))
        at_fault_time = np.where(np.isfinite(tmin), tmin * dt, np.nan)

    # --- TTC (pdm_scorer.py _calculate_ttc)
    ttc = np.ones(g_count)
    ttc_time = np.full(g_count, np.nan)
    k_sel = np.isin(np.arange(len(offsets)), [offsets.index(k) for k in config.ttc_offsets])
    checked = k_sel[ck] & (speed[cg, ct] >= config.ttc_stopped_speed)
    if np.any(checked):
        gh, nh, th, kh = cg[checked], cn[checked], ct[checked], ck[checked]
        sel = _first_per_pair(gh, nh, th * len(offsets) + kh, n_count)
        gh, nh, th, kh = gh[sel], nh[sel], th[sel], kh[sel]
        obj_step = th + np.asarray(offsets)[kh]
        angle = relative_angle(states[gh, th, :3], data.centers[nh, obj_step])
        cond = lane_or_offroad[gh, th] | in_intersection[gh, th]
        fail = (angle < ahead_rad) | (cond & ~(angle > behind_rad))
        ttc[gh[fail]] = 0.0
        tmin = np.full(g_count, np.inf)
        np.minimum.at(tmin, gh[fail], th[fail].astype(np.float64))
        ttc_time = np.where(np.isfinite(tmin), tmin * dt, np.nan)

    comfort = comfort_score(states, dt, config.comfort)

    if has_map:
        dac = np.where(non_drivable.any(axis=1), 0.0, 1.0)
        ddc = _ddc(centers, oncoming, config)
        s0 = data.map_index.project_route(centers[:, 0])
        s1 = data.map_index.project_route(centers[:, -1])
        progress = np.clip(s1 - s0, 0.0, None)
        mult = nc * dac * (ddc if config.ddc_multiplicative else 1.0)
        masked = progress * mult
        if reference_progress is None or not np.isfinite(reference_progress):
            norm = np.full(g_count, masked.max())
        else:
            norm = np.maximum(float(reference_progress), masked)
        with np.errstate(invalid="ignore", divide="ignore"):
            ep = np.where(norm > config.progress_threshold, masked / np.where(norm > 0, norm, 1.0),
                          np.where(mult == 0.0, 0.0, 1.0))
        weights = config.ep_weight + config.ttc_weight + config.comfort_weight + config.ddc_weight
        weighted = (config.ep_weight * ep + config.ttc_weight * ttc + config.comfort_weight * comfort
                    + config.ddc_weight * ddc) / weights
        pdms = mult * weighted
    else:
        dac = ddc = ep = progress = pdms = masked = np.full(g_count, np.nan)

    return PDMResult(
        nc=nc,
        dac=dac,
        ddc=ddc,
        ttc=ttc,
        ep=ep,
        comfort=comfort,
        pdms=pdms,
        progress=progress,
        collision=collision,
        at_fault_collision=nc < 1.0,
        collision_time=collision_time,
        colliding_agent_id=colliding_id,
        map_available=has_map,
        at_fault_time=at_fault_time,
        ttc_time=ttc_time,
        masked_progress=masked,
    )


def reference_for(problem: ScoringProblem, config: PDMConfig = PDMConfig()) -> "ReferenceResult | None":
    """The PDM-Closed-like reference of ``problem`` (:func:`rewards.reference_planner.plan_reference`), cached per
    problem object and config; None without map."""
    from rewards.reference_planner import plan_reference

    data = _problem_data(problem, config.collision_stopped_speed, max(config.ttc_offsets))
    if config not in data.references:
        data.references[config] = plan_reference(problem, config)
    return data.references[config]


def score_group(
    problem: ScoringProblem,
    candidates: np.ndarray,
    config: PDMConfig = PDMConfig(),
    reference: "None | str | ReferenceResult" = "auto",
) -> PDMResult:
    """Simulate and score a group of candidates (``simulate_candidates`` + ``score_states``).

    Args:
        problem: the decision time.
        candidates: ``(G, 8, 3)`` ego-frame rear-axle poses [m, m, rad] at 0.5 s.
        config: scorer configuration.
        reference: ``"auto"``: EP is normalised against the PDM-Closed-like reference (planned once per problem and
            cached); a :class:`~rewards.reference_planner.ReferenceResult`: against that one; ``None``: among the
            candidates of the group only.
    """
    states = simulate_candidates(problem.ego, candidates, config)
    ref_progress = None
    if isinstance(reference, str):
        if reference != "auto":
            raise ValueError(f"reference: expected None, 'auto' or a ReferenceResult, got {reference!r}")
        ref = reference_for(problem, config) if problem.map is not None else None
        ref_progress = None if ref is None else ref.masked_progress
    elif reference is not None:
        ref_progress = float(reference.masked_progress)
    return score_states(problem, states, config, reference_progress=ref_progress)


class PDMScorer:
    """Configured scorer: ``PDMScorer(config).score_group(problem, candidates)``."""

    def __init__(self, config: PDMConfig = PDMConfig(), reference: "None | str" = "auto"):
        self.config = config
        self.reference = reference

    def score_group(self, problem: ScoringProblem, candidates: np.ndarray, reference: Any = "default") -> PDMResult:
        """See :func:`score_group`; ``reference`` defaults to the scorer's setting."""
        ref = self.reference if isinstance(reference, str) and reference == "default" else reference
        return score_group(problem, candidates, self.config, reference=ref)

    def score_states(self, problem: ScoringProblem, states: np.ndarray,
                     reference_progress: float | None = None) -> PDMResult:
        """See :func:`score_states`."""
        return score_states(problem, states, self.config, reference_progress)
