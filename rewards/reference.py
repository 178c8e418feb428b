"""Reference (oracle) PDM scorer: NAVSIM v1.1's rules, one candidate and one time step at a time, with shapely.

This module is the *slow, obvious* twin of :func:`rewards.pdm.score_states`. It is written directly from
``docs/navsim-pdm.md`` and the public NAVSIM v1.1 source it summarises, and is used only by the tests (as the
oracle the vectorized scorer must agree with) and by ``benchmarks/bench_scorer.py``. Readability beats speed here:
every rule is a plain loop over candidates, time steps and objects, and every geometric test is a shapely predicate
on a ``Polygon`` / ``LineString`` / ``Point``.

Sources (NAVSIM tag v1.1, ``navsim/planning/simulation/planner/pdm_planner/``):

* ``scoring/pdm_scorer.py``: ``_calculate_ego_area``, ``_calculate_no_at_fault_collision``,
  ``_calculate_drivable_area_compliance``, ``_calculate_driving_direction_compliance``, ``_calculate_progress``,
  ``_calculate_ttc``, ``_aggregate_scores``;
* ``scoring/pdm_scorer_utils.py``: ``get_collision_type``;
* ``scoring/pdm_comfort_metrics.py``: ``ego_is_comfortable`` (re-implemented below with ``scipy.signal.savgol_filter``,
  independently of ``rewards.comfort``);
* ``utils/pdm_array_representation.py``: ``state_array_to_coords_array`` (corner order FL, RL, RR, FR, centre);
* ``observation/pdm_occupancy_map.py``: ``points_in_polygons`` (``contains``: a point on a boundary is outside) and
  ``is_in_layer`` (``within``: strict as well);
* nuPlan devkit v1.2 ``planning/simulation/observation/idm/utils.py``: ``get_agent_relative_angle``,
  ``is_agent_ahead`` (30 deg), ``is_agent_behind`` (150 deg), ``is_track_stopped`` (0.05 m/s).

Mapping of NAVSIM's inputs onto :class:`~rewards.types.ScoringProblem`:

* drivable-area polygons (NAVSIM: roadblock, intersection, car-park layers) = ``MapGeometry.drivable_areas``; each
  polygon is tested on its own, as NAVSIM does (a corner exactly on the seam of two adjacent polygons is outside
  both), not their union;
* lane polygons (lane and lane-connector layers) = ``MapGeometry.lane_polygons``; on-route lanes are those whose id is
  in ``MapGeometry.route_lane_ids``;
* the intersection layer (TTC's "rear axle in an intersection") = ``MapGeometry.intersections``;
* objects at step ``s`` = the agents with ``AgentsFuture.valid[:, s]``; the "record kept per object id" (NAVSIM's
  ``unique_objects``, the object as first seen) is the object's first valid step in the window;
* without a map (``problem.map is None``) the ego-area flags (multiple lanes, non-drivable, in intersection) are False
  ("unknown") for NC and TTC, and DAC, DDC, progress, EP and PDMS are NaN.

Deliberate deviations from NAVSIM (all at measure-zero configurations):

* the relative angle ``arccos(dot)`` clips ``dot`` to ``[-1, 1]``; NAVSIM gets NaN (so "neither ahead nor behind")
  when rounding pushes it to ``1 + 1e-16`` for an object exactly on the ego's axis. An object whose centroid coincides
  with the rear axle has no angle: neither ahead nor behind, as in NAVSIM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import savgol_filter
from shapely.geometry import LineString, Point, Polygon

from rewards.config import PDMConfig
from rewards.geometry import box_corners, rear_axle_to_center
from rewards.pdm import PDMResult
from rewards.types import ScoringProblem, checked_group

# State columns (NAVSIM ``StateIndex``): rear-axle x, y, heading (world), vx, vy, ax, ay (body frame).
_X, _Y, _YAW, _VX, _VY, _AX, _AY = range(7)
_NUM_COLUMNS = 7


# ----------------------------------------------------------------------------------------------------------- inputs
def _validate_states(states: np.ndarray, config: PDMConfig) -> np.ndarray:
    """``states`` as float64 ``(G, T, 7)``, ``G >= 1``, ``T = config.num_sim_steps``; ``ValueError`` otherwise."""
    return checked_group("states", states, (config.num_sim_steps, _NUM_COLUMNS))

def _validate_problem(problem: ScoringProblem, config: PDMConfig) -> None:
    """The agents' window must cover the horizon plus the largest TTC offset."""
    if not isinstance(problem, ScoringProblem):
        raise ValueError(f"problem: expected ScoringProblem, got {type(problem).__name__}")
    need = config.num_observation_steps
    have = problem.agents.num_steps
    if have < need:
        raise ValueError(
            f"problem.agents: expected at least {need} steps (poses shape (N, >={need}, 3)), "
            f"got poses shape {problem.agents.poses.shape}"
        )


# ------------------------------------------------------------------------------------------------- small geometry
def _relative_angle(ego_x: float, ego_y: float, ego_yaw: float, px: float, py: float) -> float:
    """Angle [rad] between the ego heading and the vector from the ego point to ``(px, py)``.

    nuPlan ``get_agent_relative_angle``: ``arccos(heading_vector . unit(agent - ego))``; NaN when the points coincide.
    """
    dx, dy = px - ego_x, py - ego_y
    norm = math.hypot(dx, dy)
    if norm == 0.0:
        return math.nan
    dot = (math.cos(ego_yaw) * dx + math.sin(ego_yaw) * dy) / norm
    return math.acos(min(1.0, max(-1.0, dot)))


def _is_ahead(angle: float, config: PDMConfig) -> bool:
    """nuPlan ``is_agent_ahead``: relative angle below ``ttc_ahead_angle_deg`` (NaN: False)."""
    return angle < math.radians(config.ttc_ahead_angle_deg)


def _is_behind(angle: float, config: PDMConfig) -> bool:
    """nuPlan ``is_agent_behind``: relative angle above ``behind_angle_deg`` (NaN: False)."""
    return angle > math.radians(config.behind_angle_deg)


@dataclass
class _Map:
    """Shapely versions of the map polygons (built once per call)."""

    drivable: list[Polygon]
    lanes: list[Polygon]
    route_lanes: list[Polygon]
    intersections: list[Polygon]
    route: LineString


def _build_map(problem: ScoringProblem) -> _Map | None:
    m = problem.map
    if m is None:
        return None
    route_ids = set(m.route_lane_ids)
    lanes = [Polygon(p) for p in m.lane_polygons]
    return _Map(
        drivable=[Polygon(p) for p in m.drivable_areas],
        lanes=lanes,
        route_lanes=[poly for poly, lane_id in zip(lanes, m.lane_ids) if int(lane_id) in route_ids],
        intersections=[Polygon(p) for p in m.intersections],
        route=LineString(m.route),
    )


@dataclass
class _Objects:
    """Shapely boxes of the other objects per step, and their "first seen" records."""

    ids: list[int]
    is_static: list[bool]
    first_speed: list[float]
    polygons: list[list[Polygon | None]] = field(default_factory=list)
    """``polygons[s][n]``: box of object ``n`` at step ``s`` (None where not valid)."""

    def at(self, step: int) -> list[tuple[int, Polygon]]:
        """``(object index, polygon)`` of the objects present at ``step``."""
        return [(n, poly) for n, poly in enumerate(self.polygons[step]) if poly is not None]


def _build_objects(problem: ScoringProblem, num_steps: int) -> _Objects:
    a = problem.agents
    first_speed = []
    for n in range(a.num_agents):
        valid_steps = np.flatnonzero(a.valid[n])
        first = int(valid_steps[0]) if len(valid_steps) else 0
        first_speed.append(float(np.hypot(*a.velocities[n, first])))
    objects = _Objects(
        ids=[int(i) for i in a.ids], is_static=[bool(s) for s in a.is_static], first_speed=first_speed
    )
    corners = box_corners(a.poses, a.sizes[:, None, 0], a.sizes[:, None, 1])  # (N, S, 4, 2)
    for s in range(num_steps):
        objects.polygons.append([Polygon(corners[n, s]) if a.valid[n, s] else None for n in range(a.num_agents)])
    return objects


# ------------------------------------------------------------------------------------------------------ ego areas
@dataclass
class _EgoStep:
    """Ego geometry at one step of one candidate."""

    corners: np.ndarray  # (4, 2) FL, RL, RR, FR [m]
    center: np.ndarray  # (2,) box centre [m]
    polygon: Polygon
    multiple_lanes: bool
    non_drivable: bool
    oncoming: bool
    rear_axle_in_intersection: bool


def _ego_step(state: np.ndarray, center_pose: np.ndarray, corners: np.ndarray, shapes: _Map | None) -> _EgoStep:
    """Ego box and the ego-area flags (NAVSIM ``_calculate_ego_area``) for one state ``(7,)``, given its box-centre
    pose ``(3,)`` and corners ``(4, 2)``."""
    polygon = Polygon(corners)
    if shapes is None:
        return _EgoStep(corners, center_pose[:2], polygon, False, False, False, False)
    corner_points = [Point(c) for c in corners]
    # multiple lanes: more than one lane polygon holds a corner, and no lane polygon holds all four corners.
    corners_per_lane = [sum(lane.contains(p) for p in corner_points) for lane in shapes.lanes]
    lanes_touched = sum(count > 0 for count in corners_per_lane)
    multiple_lanes = lanes_touched > 1 and all(count != 4 for count in corners_per_lane)
    # non-drivable: some corner lies in no drivable-area polygon.
    non_drivable = not all(any(area.contains(p) for area in shapes.drivable) for p in corner_points)
    # oncoming: the box centre lies in no on-route lane polygon.
    center_point = Point(center_pose[:2])
    oncoming = not any(lane.contains(center_point) for lane in shapes.route_lanes)
    # TTC's intersection test: rear axle strictly within an intersection polygon (``is_in_layer``, "within").
    rear_axle = Point(state[_X], state[_Y])
    in_intersection = any(rear_axle.within(area) for area in shapes.intersections)
    return _EgoStep(corners, center_pose[:2], polygon, multiple_lanes, non_drivable, oncoming, in_intersection)


# ---------------------------------------------------------------------------------------------------------- metrics
@dataclass
class _Collisions:
    """Outcome of the NC loop for one candidate."""

    nc: float = 1.0
    at_fault_step: int | None = None
    at_fault_object: int | None = None
    first_contact_step: int | None = None
    first_contact_object: int | None = None


def _no_at_fault_collision(
    states: np.ndarray, ego_steps: list[_EgoStep], objects: _Objects, config: PDMConfig
) -> _Collisions:
    """NAVSIM ``_calculate_no_at_fault_collision`` + ``get_collision_type`` for one candidate ``(T, 7)``."""
    out = _Collisions()
    not_at_fault: set[int] = set()
    for t, ego in enumerate(ego_steps):
        state = states[t]
        for n, obj_poly in objects.at(t):
            if not ego.polygon.intersects(obj_poly):
                continue
            if out.first_contact_step is None:
                out.first_contact_step, out.first_contact_object = t, n
            if n in not_at_fault:
                continue
            # --- classify (pdm_scorer_utils.get_collision_type)
            ego_speed = math.hypot(state[_VX], state[_VY])
            centroid = obj_poly.centroid
            angle = _relative_angle(state[_X], state[_Y], state[_YAW], centroid.x, centroid.y)
            front_edge = LineString([ego.corners[0], ego.corners[3]])  # front-left -> front-right
            if ego_speed <= config.collision_stopped_speed:
                kind = "stopped_ego"
            elif objects.is_static[n] or objects.first_speed[n] <= config.collision_stopped_speed:
                kind = "stopped_track"
            elif _is_behind(angle, config):
                kind = "active_rear"
            elif front_edge.intersects(obj_poly):
                kind = "active_front"
            else:
                kind = "active_lateral"
            at_fault = kind in ("stopped_track", "active_front") or (
                kind == "active_lateral" and (ego.multiple_lanes or ego.non_drivable)
            )
            if at_fault:
                score = config.static_collision_score if objects.is_static[n] else 0.0
                out.nc = min(out.nc, score)
                if out.at_fault_step is None:
                    out.at_fault_step, out.at_fault_object = t, n
            else:
                not_at_fault.add(n)
    return out


def _drivable_area_compliance(ego_steps: list[_EgoStep]) -> float:
    """NAVSIM ``_calculate_drivable_area_compliance``: 0 if any step is non-drivable, else 1."""
    return 0.0 if any(step.non_drivable for step in ego_steps) else 1.0


def _driving_direction_compliance(ego_steps: list[_EgoStep], config: PDMConfig) -> float:
    """NAVSIM ``_calculate_driving_direction_compliance``: largest oncoming progress over 1 s windows -> 1/0.5/0."""
    oncoming_progress = [0.0]
    for prev, cur in zip(ego_steps[:-1], ego_steps[1:]):
        moved = float(np.hypot(*(cur.center - prev.center)))
        oncoming_progress.append(moved if cur.oncoming else 0.0)
    horizon = int(config.ddc_horizon / config.sim_dt)  # NAVSIM truncates: int(1.0 / 0.1) = 10
    worst = 0.0
    for t in range(len(oncoming_progress)):
        window = oncoming_progress[max(0, t - horizon) : t + 1]
        worst = max(worst, sum(window))
    if worst < config.ddc_compliance_threshold:
        return 1.0
    if worst < config.ddc_violation_threshold:
        return 0.5
    return 0.0


def _raw_progress(ego_steps: list[_EgoStep], shapes: _Map) -> float:
    """NAVSIM ``_calculate_progress``: projection of the last minus the first box centre on the route, >= 0 [m]."""
    start = shapes.route.project(Point(ego_steps[0].center))
    end = shapes.route.project(Point(ego_steps[-1].center))
    return max(0.0, end - start)


def _time_to_collision(
    states: np.ndarray, ego_steps: list[_EgoStep], objects: _Objects, config: PDMConfig
) -> tuple[float, int | None]:
    """NAVSIM ``_calculate_ttc`` for one candidate: ``(TTC score, first failing step or None)``."""
    ttc, fail_step = 1.0, None
    remembered: set[int] = set()
    for t, ego in enumerate(ego_steps):
        state = states[t]
        speed = math.hypot(state[_VX], state[_VY])
        # Projection moves along the heading with the speed magnitude (whatever the sign of the motion).
        velocity = speed * np.array([math.cos(state[_YAW]), math.sin(state[_YAW])])
        for k in config.ttc_offsets:
            projected = Polygon(ego.corners + velocity * (k * config.sim_dt))
            for n, obj_poly in objects.at(t + k):
                if not projected.intersects(obj_poly):
                    continue
                if n in remembered or speed < config.ttc_stopped_speed:
                    continue
                centroid = obj_poly.centroid
                angle = _relative_angle(state[_X], state[_Y], state[_YAW], centroid.x, centroid.y)
                risky_area = ego.multiple_lanes or ego.non_drivable or ego.rear_axle_in_intersection
                if _is_ahead(angle, config) or (risky_area and not _is_behind(angle, config)):
                    ttc = 0.0
                    fail_step = t if fail_step is None else min(fail_step, t)
                else:
                    remembered.add(n)
    return ttc, fail_step


def _smoothed(values: np.ndarray, window: int, polyorder: int, deriv: int = 0, dt: float = 1.0) -> np.ndarray:
    """Savitzky-Golay filter over the last axis with the window capped at the series length (NAVSIM's ``min``)."""
    return savgol_filter(values, window_length=min(window, len(values)), polyorder=polyorder, deriv=deriv, delta=dt)


def _comfortable(states: np.ndarray, config: PDMConfig) -> float:
    """NAVSIM ``ego_is_comfortable`` for one candidate ``(T, 7)``: 1 if all six bounds hold at every step, else 0.

    Rebuilt from ``pdm_comfort_metrics.py`` (v1.1): accelerations are smoothed with a quadratic S-G filter whose
    window is the whole series; jerks smooth the acceleration with window 8 then differentiate with an S-G filter
    (window = whole series, order 2); yaw rate and yaw acceleration differentiate the unwrapped heading with window 5
    (orders 2 and 3). Every quantity is rounded to 8 decimals; bounds are strict.
    """
    b = config.comfort
    n, dt = len(states), config.sim_dt
    ax, ay = states[:, _AX], states[:, _AY]
    magnitude = np.hypot(ax, ay)
    # Heading unwrap as NAVSIM's _phase_unwrap: cumulative whole turns removed.
    heading = states[:, _YAW]
    turns = np.concatenate([[0.0], np.cumsum(np.round(np.diff(heading) / (2.0 * np.pi)))])
    heading = heading - 2.0 * np.pi * turns

    lon_accel = np.round(_smoothed(ax, n, 2), 8)
    lat_accel = np.round(_smoothed(ay, n, 2), 8)
    jerk = np.round(_smoothed(np.round(_smoothed(magnitude, 8, 2), 8), n, 2, deriv=1, dt=dt), 8)
    lon_jerk = np.round(_smoothed(np.round(_smoothed(ax, 8, 2), 8), n, 2, deriv=1, dt=dt), 8)
    yaw_rate = np.round(_smoothed(heading, 5, 2, deriv=1, dt=dt), 8)
    yaw_accel = np.round(_smoothed(heading, 5, 3, deriv=2, dt=dt), 8)

    checks = [
        np.all((lon_accel > b.min_lon_accel) & (lon_accel < b.max_lon_accel)),
        np.all(np.abs(lat_accel) < b.max_abs_lat_accel),
        np.all(np.abs(jerk) < b.max_abs_jerk),
        np.all(np.abs(lon_jerk) < b.max_abs_lon_jerk),
        np.all(np.abs(yaw_rate) < b.max_abs_yaw_rate),
        np.all(np.abs(yaw_accel) < b.max_abs_yaw_accel),
    ]
    return 1.0 if all(checks) else 0.0


# -------------------------------------------------------------------------------------------------------- aggregate
def _ego_progress(masked: np.ndarray, multiplier: np.ndarray, largest: np.ndarray, config: PDMConfig) -> np.ndarray:
    """NAVSIM ``_aggregate_scores``' EP: ``masked / largest`` if ``largest > threshold``, else 1 (0 where masked)."""
    ep = np.empty_like(masked)
    for i in range(len(masked)):
        if largest[i] > config.progress_threshold:
            ep[i] = masked[i] / largest[i]
        else:
            ep[i] = 0.0 if multiplier[i] == 0.0 else 1.0
    return ep


def score_states_reference(
    problem: ScoringProblem,
    states: np.ndarray,
    config: PDMConfig = PDMConfig(),
    reference_progress: float | None = None,
) -> PDMResult:
    """Score simulated ego states with NAVSIM v1.1's PDM rules, one candidate and one step at a time.

    Args:
        problem: ego state, other objects' future boxes (``>= config.num_observation_steps`` steps) and map.
        states: ``(G, T, 7)`` simulated states, ``T = config.num_sim_steps`` (41): rear-axle x, y, yaw [m, m, rad]
            in the world frame, vx, vy [m/s], ax, ay [m/s^2] in the body frame (``rewards.tracking`` columns).
        config: weights and thresholds.
        reference_progress: masked progress [m] of the reference planner (PDM-Closed) scored together with each
            candidate: EP normalises each candidate by ``max(its masked progress, reference_progress)``, as NAVSIM's
            two-proposal ``pdm_score``. None: normalise by the largest masked progress among the G candidates.

    Returns:
        A :class:`~rewards.pdm.PDMResult` with ``(G,)`` arrays.

    Raises:
        ValueError: on a wrong ``states`` shape, an empty group, NaN/inf, or too short an agents window.
    """
    states = _validate_states(states, config)
    _validate_problem(problem, config)
    if reference_progress is not None and not (np.isfinite(reference_progress) and reference_progress >= 0):
        raise ValueError(f"reference_progress: must be a finite number >= 0 [m], got {reference_progress!r}")
    shapes = _build_map(problem)
    objects = _build_objects(problem, problem.agents.num_steps)
    num_candidates = states.shape[0]

    nc = np.ones(num_candidates)
    dac = np.full(num_candidates, np.nan)
    ddc = np.full(num_candidates, np.nan)
    progress = np.full(num_candidates, np.nan)
    ttc = np.ones(num_candidates)
    comfort = np.ones(num_candidates)
    collision = np.zeros(num_candidates, dtype=bool)
    at_fault = np.zeros(num_candidates, dtype=bool)
    collision_time = np.full(num_candidates, np.nan)
    colliding_id = np.full(num_candidates, -1, dtype=np.int64)
    ttc_time = np.full(num_candidates, np.nan)
    at_fault_time = np.full(num_candidates, np.nan)

    for g in range(num_candidates):
        params = problem.ego.params
        center_poses = rear_axle_to_center(states[g, :, :3], params)  # (T, 3)
        corners = box_corners(center_poses, params.length, params.width)  # (T, 4, 2)
        ego_steps = [_ego_step(states[g, t], center_poses[t], corners[t], shapes) for t in range(len(states[g]))]
        hits = _no_at_fault_collision(states[g], ego_steps, objects, config)
        nc[g] = hits.nc
        collision[g] = hits.first_contact_step is not None
        at_fault[g] = hits.at_fault_step is not None
        if hits.at_fault_step is not None:
            at_fault_time[g] = hits.at_fault_step * config.sim_dt
        if hits.first_contact_step is not None:
            collision_time[g] = hits.first_contact_step * config.sim_dt
            colliding_id[g] = objects.ids[hits.first_contact_object]
        ttc[g], fail_step = _time_to_collision(states[g], ego_steps, objects, config)
        if fail_step is not None:
            ttc_time[g] = fail_step * config.sim_dt
        comfort[g] = _comfortable(states[g], config)
        if shapes is not None:
            dac[g] = _drivable_area_compliance(ego_steps)
            ddc[g] = _driving_direction_compliance(ego_steps, config)
            progress[g] = _raw_progress(ego_steps, shapes)

    if shapes is None:
        ep = np.full(num_candidates, np.nan)
        pdms = np.full(num_candidates, np.nan)
        masked = np.full(num_candidates, np.nan)
    else:
        multiplier = nc * dac * (ddc if config.ddc_multiplicative else 1.0)
        masked = progress * multiplier
        if reference_progress is None:
            largest = np.full(num_candidates, masked.max())
        else:
            largest = np.maximum(masked, float(reference_progress))
        ep = _ego_progress(masked, multiplier, largest, config)
        # EPDMS-like preset: DDC multiplies *instead of* being averaged (PDMConfig.ddc_multiplicative), so its weight
        # leaves the weighted average; it also masks progress, as NAVSIM v2 masks EP with every multiplicative metric.
        ddc_weight = config.averaged_ddc_weight
        weights = config.ep_weight + config.ttc_weight + config.comfort_weight + ddc_weight
        weighted = config.ep_weight * ep + config.ttc_weight * ttc + config.comfort_weight * comfort + ddc_weight * ddc
        pdms = multiplier * weighted / weights

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
        at_fault_collision=at_fault,
        collision_time=collision_time,
        colliding_agent_id=colliding_id,
        map_available=shapes is not None,
        at_fault_time=at_fault_time,
        ttc_time=ttc_time,
        masked_progress=masked,
    )
