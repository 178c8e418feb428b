"""NAVSIM v1.1 PDM score of a group of simulated candidates: :func:`score_states` and its result :class:`PDMResult`.

Rules: ``docs/navsim-pdm.md``; source: ``navsim/planning/simulation/planner/pdm_planner/scoring/pdm_scorer.py``
(metrics, aggregation), ``.../scoring/pdm_scorer_utils.py`` (collision classification), ``.../scoring/
pdm_comfort_metrics.py`` (see :mod:`rewards.comfort`), nuPlan ``planning/simulation/observation/idm/utils.py``
(ahead / behind angles, stopped tracks). Simulating candidates and pairing them with the PDM-Closed-like reference
(``navsim/evaluate/pdm_score.py``) is :mod:`rewards.scorer`'s job; this module knows nothing of the reference planner.

Pipeline of :func:`score_states` (``G`` candidates, ``T`` = 41 states, ``N`` objects, ``S`` logged steps); numpy
computes the sines / cosines of the inputs and the per-problem data, the loops are compiled kernels
(:mod:`rewards.kernels`):

1. ego boxes ``(G, T, 4, 2)`` from the rear-axle states (centre = rear axle + ``rear_axle_to_center``)
   (:func:`rewards.kernels.ego_boxes`);
2. ego areas per (g, t) from strict point-in-polygon tests (:mod:`rewards.map_index`), each point against the layers
   it needs: ``multiple_lanes``, ``non_drivable`` (corners), ``oncoming`` (centre in no on-route lane), rear axle in
   an intersection (:func:`rewards.kernels.ego_areas`);
3. ego-object contacts for the TTC offsets ``k`` in (0, 3, 6, 9) (k = 0 is the collision test of NC): a (g, n)
   bounding-box prefilter, a (g, n, t) early-out (centres too far apart for any offset), a (g, n, t, k)
   bounding-circle prefilter, then an exact separating-axis test (:func:`rewards.kernels.collisions_and_ttc`);
4. NC: only the first contact of each (g, n) is classified (a not-at-fault contact makes NAVSIM ignore the object for
   the rest of the candidate; an at-fault one already sets NC and the time), TTC: only the first *checked* hit of
   each (g, n) in (t, k) order matters for the same reason; a pair's loop stops once both are decided;
5. comfort (:func:`rewards.comfort.comfort_score`); DAC, DDC (window sums by cumulative sums), EP (route arc-length
   projection; a route of fewer than 2 points gives progress 0) and the PDMS aggregation
   (:func:`rewards.kernels.aggregate`, the only implementation of the weighted aggregation).

Without a map (``problem.map is None``): DAC, DDC, EP, progress and PDMS are NaN ("unavailable"); NC and TTC are
computed with ``multiple_lanes``, ``non_drivable`` and "in intersection" all False (so a lateral contact is never at
fault and TTC only fails for objects ahead); comfort and the collision flags are unaffected. Such scenes are ranked
by :func:`map_free_score` instead.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np

from rewards import kernels
from rewards.comfort import comfort_score
from rewards.config import PDMConfig
from rewards.map_index import MapIndex, map_index_for
from rewards.tracking import NUM_STATE_COLUMNS, SVX, SVY, SYAW
from rewards.types import AgentsFuture, ScoringProblem, checked_group


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

    def renormalized(self, reference_progress: float | None, config: PDMConfig = PDMConfig()) -> "PDMResult":
        """This result with EP and PDMS normalised against another reference's masked progress [m] (None / NaN:
        among the group), through the same aggregation (:func:`rewards.kernels.ep_and_pdms`); every other field
        is shared. Without a map the result is returned unchanged (EP and PDMS are unavailable)."""
        if not self.map_available:
            return self
        masked = np.ascontiguousarray(self.masked_progress, dtype=np.float64)
        mult = self.nc * self.dac * (self.ddc if config.ddc_multiplicative else 1.0)
        ref = np.nan if reference_progress is None or not np.isfinite(reference_progress) else float(reference_progress)
        ep, pdms = kernels.ep_and_pdms(masked, np.ascontiguousarray(mult, dtype=np.float64),
                                       np.ascontiguousarray(self.ttc, dtype=np.float64),
                                       np.ascontiguousarray(self.comfort, dtype=np.float64),
                                       np.ascontiguousarray(self.ddc, dtype=np.float64), ref, _aggregate_rules(config))
        return replace(self, ep=ep, pdms=pdms)

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


def map_free_score(
    nc: np.ndarray,
    ttc: np.ndarray,
    comfort: np.ndarray,
    config: PDMConfig = PDMConfig(),
    progress: np.ndarray | None = None,
) -> np.ndarray:
    """The map-free score ``(G,)`` in [0, 1]: PDMS without its map-dependent terms (DAC, DDC, route EP).

    ``NC * (w_ep EP + w_ttc TTC + w_c C) / (w_ep + w_ttc + w_c)`` with NAVSIM's weights, where ``EP`` exists only
    when the caller has a progress measure:

    * ``progress`` None (no path to measure progress along; the envs' reward on scenes without a map): the EP term
      and its weight drop out, ``NC * (w_ttc TTC + w_c C) / (w_ttc + w_c)`` = ``NC * (5 TTC + 2 C) / 7``;
    * ``progress (G,)`` [m] along some path (the counterfactual search: along the negative's own path): EP as
      NAVSIM normalises it within a group, ``max(progress, 0) * NC`` divided by the group's largest (EP = 1 for all
      when that is not above ``config.progress_threshold``).

    Args:
        nc, ttc, comfort: ``(G,)`` sub-scores of a :class:`PDMResult`.
        config: weights and ``progress_threshold``.
        progress: optional ``(G,)`` progress [m].

    Raises:
        ValueError: when the weights in use sum to 0.
    """
    nc = np.asarray(nc, dtype=np.float64)
    w_ep = 0.0
    ep = 0.0
    if progress is not None:
        w_ep = float(config.ep_weight)
        masked = np.maximum(np.asarray(progress, dtype=np.float64), 0.0) * nc
        best = masked.max() if len(masked) else 0.0
        ep = masked / best if best > config.progress_threshold else np.ones_like(masked)
    weights = w_ep + config.ttc_weight + config.comfort_weight
    if weights <= 0:
        raise ValueError("map_free_score: PDMConfig weights of the terms in use (ttc_weight + comfort_weight"
                         + (" + ep_weight" if progress is not None else "") + ") must sum to > 0")
    return nc * (w_ep * ep + config.ttc_weight * np.asarray(ttc, dtype=np.float64)
                 + config.comfort_weight * np.asarray(comfort, dtype=np.float64)) / weights


# ----------------------------------------------------------------------------------------------------------------
# Candidate-independent data per problem (cached on a weak-key dictionary).


@dataclass(eq=False)
class _ProblemData:
    """Precomputed per :class:`ScoringProblem`: the objects as the contact kernel reads them, and the map index."""

    objects: kernels.ObjectTracks
    map_index: MapIndex | None


_PROBLEMS: "weakref.WeakKeyDictionary[ScoringProblem, dict]" = weakref.WeakKeyDictionary()
"""Per problem object: ``{(collision_stopped_speed, max TTC offset): _ProblemData}``. Keyed by identity: sound
because a problem's arrays are read-only copies (:mod:`rewards.types`)."""

_OBJECTS: "weakref.WeakKeyDictionary[AgentsFuture, dict]" = weakref.WeakKeyDictionary()
"""Per agents object: ``{(collision_stopped_speed, max TTC offset): ObjectTracks}``. The objects depend on
``problem.agents`` only, so problems that share it (the closed loop's ``dataclasses.replace(problem, ego=...)`` per
simulated state) share them; keyed by identity like :data:`_PROBLEMS`."""


def _problem_data(problem: ScoringProblem, stopped_speed: float, horizon: int) -> _ProblemData:
    per_problem = _PROBLEMS.setdefault(problem, {})
    key = (float(stopped_speed), int(horizon))
    if key in per_problem:
        return per_problem[key]
    per_agents = _OBJECTS.setdefault(problem.agents, {})
    objects = per_agents.get(key)
    if objects is None:
        objects = per_agents[key] = _object_tracks(problem.agents, float(stopped_speed), int(horizon))
    data = _ProblemData(objects=objects, map_index=map_index_for(problem.map) if problem.map is not None else None)
    per_problem[key] = data
    return data


def _object_tracks(ag: AgentsFuture, stopped_speed: float, horizon: int) -> kernels.ObjectTracks:
    """The objects of ``ag`` as the contact kernel reads them (read-only by convention: shared between problems)."""
    n, s = ag.num_agents, ag.num_steps
    centers = np.ascontiguousarray(ag.poses[..., :2])
    valid = np.ascontiguousarray(ag.valid)
    cos_yaw, sin_yaw = np.cos(ag.poses[..., 2]), np.sin(ag.poses[..., 2])
    half = np.ascontiguousarray(0.5 * ag.sizes)
    corners, lo, hi = kernels.object_boxes(centers, cos_yaw, sin_yaw, half, valid)  # box_corners + AABB
    # nuPlan is_track_stopped on PDMObservation.unique_objects: the object as first seen in the observation.
    first = np.argmax(valid, axis=1) if s else np.zeros(n, dtype=int)
    v_first = ag.velocities[np.arange(n), first] if s else np.zeros((n, 2))
    stopped = ag.is_static | (np.hypot(v_first[:, 0], v_first[:, 1]) <= stopped_speed)
    return kernels.ObjectTracks(
        centers=centers,
        cos_yaw=cos_yaw,
        sin_yaw=sin_yaw,
        valid=valid,
        half=half,
        radius=0.5 * np.hypot(ag.sizes[:, 0], ag.sizes[:, 1]),
        lo=lo,
        hi=hi,
        corners=corners,
        stopped=stopped,
        is_static=ag.is_static.copy(),
        drift=kernels.object_drift(centers, valid, int(horizon)),
        ids=ag.ids.copy(),
    )


# ----------------------------------------------------------------------------------------------------------------
# Metric pieces.


def _ego_areas(index: MapIndex, corners: np.ndarray, centers: np.ndarray, states: np.ndarray):
    """``multiple_lanes, non_drivable, oncoming, in_intersection`` each ``(G, T)`` bool (pdm_scorer.py
    ``_calculate_ego_area``; intersection: ``PDMDrivableMap.is_in_layer`` of the rear axle). Compiled:
    :func:`rewards.kernels.ego_areas` (corners tested against the drivable and lane layers only, the centre against
    the lanes, the rear axle against the intersections)."""
    return kernels.ego_areas(corners, centers, states, index.num_drivable, index.num_lanes, index.num_intersections,
                             *index.kernel_arrays())


@lru_cache(maxsize=32)
def _offset_table(ttc_offsets: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, int]:
    """``(offsets (K,) int64, ttc_checked (K,) bool, zero_k)``: the TTC offsets with 0 prepended if missing (offset 0
    is the collision test of NC), which of them TTC checks, and the index of offset 0. Read-only."""
    offsets = tuple(int(k) for k in ttc_offsets)
    if 0 not in offsets:
        offsets = (0,) + offsets
    checked = np.isin(np.arange(len(offsets)), [offsets.index(int(k)) for k in ttc_offsets])
    off = np.asarray(offsets, dtype=np.int64)
    off.setflags(write=False)
    checked.setflags(write=False)
    return off, checked, offsets.index(0)


@lru_cache(maxsize=32)
def _contact_rules(config: PDMConfig) -> kernels.ContactRules:
    """Offsets and thresholds of :func:`rewards.kernels.collisions_and_ttc` for ``config``."""
    offsets, ttc_checked, zero_k = _offset_table(tuple(config.ttc_offsets))
    return kernels.ContactRules(
        offsets=offsets,
        ttc_checked=ttc_checked,
        zero_k=int(zero_k),
        dt=float(config.sim_dt),
        collision_stopped_speed=float(config.collision_stopped_speed),
        ttc_stopped_speed=float(config.ttc_stopped_speed),
        behind_rad=float(np.deg2rad(config.behind_angle_deg)),
        ahead_rad=float(np.deg2rad(config.ttc_ahead_angle_deg)),
        static_score=float(config.static_collision_score),
    )


@lru_cache(maxsize=32)
def _aggregate_rules(config: PDMConfig) -> kernels.AggregateRules:
    """Weights and thresholds of :func:`rewards.kernels.aggregate` for ``config``."""
    return kernels.AggregateRules(
        ddc_horizon=int(config.ddc_horizon / config.sim_dt),
        ddc_compliance=float(config.ddc_compliance_threshold),
        ddc_violation=float(config.ddc_violation_threshold),
        ddc_multiplicative=bool(config.ddc_multiplicative),
        progress_threshold=float(config.progress_threshold),
        w_ep=float(config.ep_weight),
        w_ttc=float(config.ttc_weight),
        w_comfort=float(config.comfort_weight),
        w_ddc=float(config.ddc_weight),
    )


def _validate_states(states: np.ndarray, config: PDMConfig) -> np.ndarray:
    """``states`` as C-contiguous float64 ``(G, num_sim_steps, 7)``; ``ValueError`` naming the argument otherwise."""
    return np.ascontiguousarray(checked_group("states", states, (config.num_sim_steps, NUM_STATE_COLUMNS)))

def _validate_agents_window(problem: ScoringProblem, config: PDMConfig) -> None:
    """``ValueError`` unless ``problem.agents`` covers ``config.num_observation_steps`` steps (the horizon plus the
    largest TTC offset; 50 by default), as :func:`rewards.reference.score_states_reference` requires."""
    need = config.num_observation_steps
    agents = problem.agents
    if agents.num_steps < need:
        raise ValueError(
            f"problem.agents: expected at least {need} steps (poses shape (N, >={need}, 3)), "
            f"got poses shape {agents.poses.shape} (scene {problem.scene_id!r}, frame {problem.time_index})"
        )


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

    Raises:
        ValueError: on a wrong ``states`` shape, an empty group, NaN/inf, or an agents window shorter than
            ``config.num_observation_steps``.
    """
    states = _validate_states(states, config)
    _validate_agents_window(problem, config)
    data = _problem_data(problem, config.collision_stopped_speed, max(config.ttc_offsets))
    params = problem.ego.params
    g_count, t_count = states.shape[:2]
    half_length, half_width = 0.5 * float(params.length), 0.5 * float(params.width)
    yaw = states[..., SYAW]
    cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
    corners, centers = kernels.ego_boxes(states, cos_yaw, sin_yaw, float(params.rear_axle_to_center), half_length,
                                         half_width)
    speed = np.hypot(states[..., SVX], states[..., SVY])
    has_map = data.map_index is not None

    if has_map:
        multiple_lanes, non_drivable, oncoming, in_intersection = _ego_areas(data.map_index, corners, centers, states)
        lane_or_offroad = multiple_lanes | non_drivable
    else:
        lane_or_offroad = in_intersection = np.zeros((g_count, t_count), dtype=bool)
        oncoming = None

    # --- NC (pdm_scorer.py _calculate_no_at_fault_collision, pdm_scorer_utils.get_collision_type) and TTC
    # (pdm_scorer.py _calculate_ttc) from the ego-object contacts; see rewards.kernels.collisions_and_ttc.
    ego = kernels.EgoSweep(
        states=states,
        cos_yaw=cos_yaw,
        sin_yaw=sin_yaw,
        centers=centers,
        corners=corners,
        speed=speed,
        lane_or_offroad=lane_or_offroad,
        in_intersection=in_intersection,
        radius=0.5 * float(np.hypot(params.length, params.width)),
        half_length=half_length,
        half_width=half_width,
    )
    nc, ttc, collision, collision_time, colliding_id, at_fault_time, ttc_time = kernels.collisions_and_ttc(
        ego, data.objects, _contact_rules(config))

    comfort = comfort_score(states, config.sim_dt, config.comfort)

    if has_map:
        # DAC, DDC, EP (progress of the box centre along the route, masked by NC x DAC and normalised by the largest
        # masked progress of the pair / group) and PDMS: rewards.kernels.aggregate.
        index = data.map_index
        ref = float(reference_progress) if reference_progress is not None else np.nan
        dac, ddc, progress, masked, ep, pdms = kernels.aggregate(
            nc, ttc, comfort, non_drivable, oncoming, centers, index._kernel_route, index._kernel_route_s,
            ref if np.isfinite(ref) else np.nan, _aggregate_rules(config))
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


def contacts_at_fault(problem: ScoringProblem, states: np.ndarray, steps: np.ndarray, object_ids: np.ndarray,
                      config: PDMConfig = PDMConfig()) -> np.ndarray:
    """Whether given ego-object contacts are the ego's fault, by the rule of :func:`score_states`' NC (NAVSIM's
    ``get_collision_type``, the compiled :func:`rewards.kernels.contacts_at_fault`; one classification for the score
    and the closed-loop envs' termination).

    Not at fault: the ego is stopped (speed <= ``config.collision_stopped_speed``), or the object is behind the ego
    (relative angle > ``config.behind_angle_deg``), or it touches the ego's side while the ego stays in one lane on
    the drivable area. At fault: a stopped object (as first seen in ``problem``'s window; static objects always), a
    front-bumper contact, or any not-from-behind contact while the ego spans several lanes or leaves the drivable
    area (never without a map).

    Args:
        problem: the scoring problem the contacts are read against (objects' boxes over its window).
        states: ``(M, 7)`` ego states at the contacts (rear-axle world pose, body-frame velocity and acceleration,
            the columns of :mod:`rewards.tracking`).
        steps: ``(M,)`` step of each contact in ``problem``'s window (``0 <= step < agents.num_steps``, at
            ``config.sim_dt``).
        object_ids: ``(M,)`` ids of the objects touched (``problem.agents.ids``).
        config: ``collision_stopped_speed``, ``behind_angle_deg``.

    Returns:
        ``(M,)`` bool.

    Raises:
        ValueError: a wrong ``states`` shape, a step outside the window or an id not in ``problem.agents``.
    """
    states = np.ascontiguousarray(np.asarray(states, dtype=np.float64))
    steps = np.ascontiguousarray(np.asarray(steps, dtype=np.int64))
    object_ids = np.asarray(object_ids, dtype=np.int64)
    m_count = len(steps)
    if states.shape != (m_count, NUM_STATE_COLUMNS) or object_ids.shape != (m_count,):
        raise ValueError(f"contacts_at_fault: expected states ({m_count}, {NUM_STATE_COLUMNS}) and object_ids "
                         f"({m_count},) for {m_count} steps, got {states.shape} and {object_ids.shape}")
    ag = problem.agents
    if m_count and (steps.min() < 0 or steps.max() >= ag.num_steps):
        raise ValueError(f"contacts_at_fault: steps {steps.tolist()} outside the window [0, {ag.num_steps}) of "
                         f"scene {problem.scene_id!r}, frame {problem.time_index}")
    order = np.argsort(ag.ids, kind="stable")
    pos = np.searchsorted(ag.ids[order], object_ids)
    rows = order[np.minimum(pos, max(len(order) - 1, 0))] if len(order) else pos
    if m_count and (not len(order) or np.any(ag.ids[rows] != object_ids)):
        raise ValueError(f"contacts_at_fault: object ids {object_ids.tolist()} not all in problem.agents.ids of "
                         f"scene {problem.scene_id!r}, frame {problem.time_index}")
    data = _problem_data(problem, config.collision_stopped_speed, max(config.ttc_offsets))
    params = problem.ego.params
    yaw = states[None, :, SYAW]
    cos_yaw, sin_yaw = np.cos(yaw), np.sin(yaw)
    corners, centers = kernels.ego_boxes(states[None], cos_yaw, sin_yaw, float(params.rear_axle_to_center),
                                         0.5 * float(params.length), 0.5 * float(params.width))
    if data.map_index is not None:
        multiple_lanes, non_drivable, _, _ = _ego_areas(data.map_index, corners, centers, states[None])
        lane_or_offroad = np.ascontiguousarray((multiple_lanes | non_drivable)[0])
    else:
        lane_or_offroad = np.zeros(m_count, dtype=bool)
    objects = data.objects
    return kernels.contacts_at_fault(
        states, cos_yaw[0], sin_yaw[0], np.ascontiguousarray(corners[0]), np.hypot(states[:, SVX], states[:, SVY]),
        lane_or_offroad, steps, np.ascontiguousarray(rows, dtype=np.int64), objects.centers, objects.stopped,
        objects.corners, float(config.collision_stopped_speed), float(np.deg2rad(config.behind_angle_deg)))
