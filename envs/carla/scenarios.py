"""Scripted accident scenarios on a CARLA map: the bank's typologies (:mod:`envs.scenes.bank`) placed on real waypoints.

:func:`plan_scenario` draws a scenario's parameters from ``rng`` over the **synthetic bank's ranges**, the very
objects its builders draw from (:mod:`envs.scenes.bank.ranges`: speeds, decelerations, gaps, timings; only the
turning ego's speed, :data:`TURN_EGO_SPEED`, and the ``normal`` cruise, :data:`NORMAL_EGO_SPEED`, are CARLA's own),
searches the map for a place that fits (a straight stretch, a parallel lane, a junction with the right
crossing connector), and returns a :class:`ScenarioPlan` in the right-handed world frame:

* the **ego's nominal plan**: a route through the map and a speed plan along it (cruise at ``v_e``, slowing for
  turns with the bank's lateral-acceleration cap, :func:`envs.scenes.bank.motion.speed_plan`); the ego is spawned on it
  and drives it during the warm-up, and it is what the non-reacting "expert" would drive afterwards
  (``CarlaEnv.logged_action``);
* **adversaries** (vehicles on timed paths tracked by :class:`~envs.carla.controller.TrajectoryController`,
  walkers on timed straight lines, static props), timed so that, if the ego follows its nominal plan, contact
  happens about ``contact_time`` seconds after the episode start (``warmup`` + the policy's lead time, 3 s by
  default, as ``ReplayEnv``'s closed-loop start);
* traffic-light settings (frozen states) for the junction typologies.

Typologies (:data:`SCENARIO_TYPES`; the NHTSA-style labels are the bank's :data:`envs.scenes.bank.generator.CONFLICT_LABELS`):
``rear_end`` (braking lead), ``cut_in``, ``pedestrian_occluded`` (a pedestrian steps out from behind a parked van),
``red_light_runner_left`` / ``_right`` (a crossing vehicle runs its red light), ``unprotected_left_turn`` (oncoming
vehicle while the ego turns left on a green), ``right_turn_vru`` (pedestrian crossing the ego's exit lane after a
right turn), ``head_on_drift`` (the *oncoming* vehicle drifts into the ego's lane: in CARLA the ego is the policy, so
the bank's drifting ego becomes a drifting adversary) and ``normal`` (background traffic only). The bank's
``merge_conflict`` needs an on-ramp and is not placed (clear error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from envs.scenes.bank.generator import CONFLICT_LABELS
from envs.scenes.bank.motion import ped_start_time, ramp_profile, smoothstep, solve_time, speed_caps, speed_plan
from envs.scenes.bank.ranges import (
    CUT_IN,
    EGO_SPEED_PLAN,
    HEAD_ON_DRIFT,
    PEDESTRIAN_OCCLUDED,
    REAR_END,
    RED_LIGHT_RUNNER,
    RIGHT_TURN_VRU,
    UNPROTECTED_LEFT_TURN,
    Range,
)
from envs.carla.controller import TimedPath
from envs.carla.roadmap import choose_branch, plan_route, route_polyline, waypoint_key, waypoint_pose
from envs.scenes.layouts import Path
from rewards.geometry import wrap_angle

SCENARIO_TYPES = ("rear_end", "cut_in", "pedestrian_occluded", "red_light_runner_left", "red_light_runner_right",
                  "unprotected_left_turn", "right_turn_vru", "head_on_drift", "normal")
"""Scenario types :func:`plan_scenario` can place."""
PLAN_DT = 0.1
"""Time step of the nominal plans and timed paths [s]."""
VEHICLE_LENGTH = 4.9
"""Nominal vehicle length used for planning gaps [m] (the spawned blueprint's box may differ slightly)."""
EGO_LENGTH = 4.9
"""Nominal ego length used for planning [m]."""
TURN_EGO_SPEED = Range(6.0, 9.0)
"""The ego's cruise speed in ``unprotected_left_turn`` and ``right_turn_vru`` [m/s] (CARLA's own: the bank's turning
ego cruises at 8-12 m/s, ``UNPROTECTED_LEFT_TURN.v_ego`` / ``RIGHT_TURN_VRU.v_ego``)."""
NORMAL_EGO_SPEED = Range(8.0, 12.0)
"""The ego's cruise speed in ``normal`` episodes [m/s] (CARLA's own; the bank's normal scenes have their variants')."""


class NoPlace(Exception):
    """The drawn parameters do not fit at the candidate place; the planner tries another place / draw."""


class ScenarioPlacementError(ValueError):
    """No place on the map fits a scenario type (the message names the map and the type)."""


@dataclass
class Adversary:
    """A scripted actor of a plan (right-handed world frame).

    Attributes:
        role: ``"risk"`` (the accident's counterpart) or ``"prop"`` (occluder).
        blueprint: CARLA blueprint id.
        kind: ``"vehicle"``, ``"walker"`` or ``"static"`` (a vehicle with physics off).
        spawn: ``(3,)`` box-centre pose at t = 0 [m, m, rad].
        path: vehicles: the timed box-centre path to track.
        speed0: initial speed [m/s].
        walk: walkers: ``(direction (2,), t_start [s], accel [m/s^2], speed [m/s])``.
    """

    role: str
    blueprint: str
    kind: str
    spawn: np.ndarray
    path: TimedPath | None = None
    speed0: float = 0.0
    walk: tuple[np.ndarray, float, float, float] | None = None

    def walker_speed(self, t: float) -> float:
        """Walkers: commanded speed at time ``t`` [m/s]."""
        assert self.walk is not None
        _, t0, accel, v = self.walk
        return float(np.clip((t - t0) * accel, 0.0, v))


@dataclass
class ScenarioPlan:
    """Everything needed to stage one scenario (see the module docstring).

    Attributes:
        scenario_type: one of :data:`SCENARIO_TYPES`.
        params: the drawn parameters (speeds, gaps, times; JSON-able).
        route: ego route waypoints (CARLA), from the spawn point on.
        route_xy: ``(R, 2)`` route polyline [m].
        ego_plan: the ego's nominal timed rear-axle path from t = 0.
        ego_spawn: ``(3,)`` ego box-centre pose at t = 0.
        ego_speed: ``v_e``, the ego's cruise and initial speed [m/s].
        adversaries: scripted actors.
        lights: ``[(route key of the controlled lane, "green" | "red")]`` to set and freeze.
        contact_time: nominal contact time [s] after the episode start (None: ``normal``).
        description: one line for ``meta.extra``.
    """

    scenario_type: str
    params: dict[str, Any]
    route: list[Any]
    route_xy: np.ndarray
    ego_plan: TimedPath
    ego_spawn: np.ndarray
    ego_speed: float
    adversaries: list[Adversary] = field(default_factory=list)
    lights: list[tuple[tuple[int, int, int], str]] = field(default_factory=list)
    contact_time: float | None = None
    description: str = ""

    @property
    def conflict(self) -> str:
        """NHTSA-style pre-crash label (the bank's)."""
        return CONFLICT_LABELS.get(self.scenario_type, CONFLICT_LABELS["normal"])


def plan_scenario(carla: Any, carla_map: Any, scenario_type: str, rng: np.random.Generator, warmup: float,
                  lead: float, duration: float, max_places: int = 60,
                  places: dict[str, list[Any]] | None = None) -> ScenarioPlan:
    """Draw parameters and place ``scenario_type`` on ``carla_map`` (see the module docstring).

    Args:
        carla: the ``carla`` module in use (real or stand-in; for ``LaneType``).
        carla_map: the town's ``carla.Map``.
        scenario_type: one of :data:`SCENARIO_TYPES`.
        rng: random generator (places and parameters).
        warmup: warm-up time before the policy takes over [s].
        lead: nominal time from the policy's first decision to contact [s].
        duration: episode length the route must cover [s].
        max_places: candidate places / draws tried before giving up.
        places: a per-map cache of the candidate places (``{"road": [...], "junction": [...]}``, filled on first
            use; pass the same dict for every episode on the same map).

    Raises:
        ValueError: unknown type.
        ScenarioPlacementError: no place on this map fits (the message names the map and type).
    """
    if scenario_type not in SCENARIO_TYPES:
        raise ValueError(f"scenario_type: unknown {scenario_type!r}; CARLA scenarios: {', '.join(SCENARIO_TYPES)} "
                         "(the bank's merge_conflict needs an on-ramp and is not placed)")
    t_c = warmup + lead
    junction = scenario_type in ("red_light_runner_left", "red_light_runner_right", "unprotected_left_turn",
                                 "right_turn_vru")
    places = {} if places is None else places
    kind = "junction" if junction else "road"
    if kind not in places:
        places[kind] = _junction_entries(carla_map) if junction else _road_starts(carla_map)
    candidates = places[kind]
    if not candidates:
        raise ScenarioPlacementError(f"{carla_map.name}: no {'junction' if junction else 'road'} to place "
                                     f"{scenario_type!r}")
    order = rng.permutation(len(candidates))
    for k in range(max_places):
        cand = candidates[int(order[k % len(order)])]
        try:
            if junction:
                return _JUNCTION_BUILDERS[scenario_type](carla, cand, rng, t_c, duration)
            return _ROAD_BUILDERS[scenario_type](carla, cand, rng, t_c, duration)
        except NoPlace:
            continue
    raise ScenarioPlacementError(f"{carla_map.name}: found no place for {scenario_type!r} in {max_places} tries")


# ------------------------------------------------------------------------------------------------------ places
def _road_starts(carla_map: Any) -> list[Any]:
    return [carla_map.get_waypoint(sp.location) for sp in carla_map.get_spawn_points()]


def _junction_entries(carla_map: Any) -> list[Any]:
    """End waypoints of non-junction lanes that lead into a junction."""
    out = []
    for start, end in carla_map.get_topology():
        if start.is_junction:
            continue
        nxt = end.next(2.0)
        if nxt and any(w.is_junction for w in nxt):
            out.append(end)
    return out


def _walk_back(wp: Any, distance: float, step: float = 2.0) -> Any:
    """The waypoint ``distance`` metres behind ``wp`` along its incoming lanes (the straightest at merges)."""
    travelled = 0.0
    while travelled < distance - 1e-6:
        prev = wp.previous(min(step, distance - travelled))
        if not prev:
            raise NoPlace
        yaw0 = waypoint_pose(wp)[2]
        wp = min(prev, key=lambda w: abs(float(wrap_angle(waypoint_pose(w)[2] - yaw0))))
        travelled += step
    return wp


def _ego_nominal(route: list[Any], v_e: float, rng: np.random.Generator, horizon: float) -> tuple[Path, np.ndarray]:
    """Route path and the nominal rear-axle arc length ``(N,)`` [m] every :data:`PLAN_DT` over ``horizon`` seconds
    (the bank's speed plan, :data:`~envs.scenes.bank.ranges.EGO_SPEED_PLAN`: cruise ``v_e`` [m/s], slowing for
    curves)."""
    plan = EGO_SPEED_PLAN
    path = Path.from_points(route_polyline(route))
    a_down = float(plan.a_down.draw(rng))
    caps = speed_caps(path, v_e, a_lat=float(plan.a_lat.draw(rng)), a_down=plan.caps_brake_fraction * a_down)
    n = int(round(horizon / PLAN_DT)) + 1
    return path, speed_plan(caps, v_e, 0.0, v_e, n, float(plan.a_up.draw(rng)), a_down, dt=PLAN_DT)


def _timed(path: Path, s: np.ndarray, lateral: np.ndarray | None = None) -> TimedPath:
    poses = path.poses(s, lateral)
    return TimedPath(poses[:, :2], PLAN_DT * np.arange(len(s)))


def _time_at(s_profile: np.ndarray, s: float) -> float:
    """First time [s] the arc-length profile reaches ``s``; NoPlace if never."""
    hit = np.flatnonzero(s_profile >= s)
    if len(hit) == 0 or hit[0] == 0:
        raise NoPlace
    k = int(hit[0])
    return float((k - 1 + (s - s_profile[k - 1]) / max(s_profile[k] - s_profile[k - 1], 1e-9)) * PLAN_DT)


def _straight_route(start: Any, length: float, max_turn_deg: float = 12.0) -> list[Any]:
    """A route of ``length`` metres from ``start`` without junctions and heading changes above ``max_turn_deg``."""
    if start.is_junction:
        raise NoPlace
    route = plan_route(start, length)
    if len(route) * 2.0 < length - 2.0 or any(w.is_junction for w in route):
        raise NoPlace
    yaw0 = waypoint_pose(route[0])[2]
    if max(abs(float(wrap_angle(waypoint_pose(w)[2] - yaw0))) for w in route) > math.radians(max_turn_deg):
        raise NoPlace
    return route


def _parallel(carla: Any, route: list[Any], side: str, same_direction: bool) -> np.ndarray:
    """``(R, 2)`` points of the driving lane beside each route waypoint (``side`` "left"/"right"); NoPlace if
    missing."""
    pts = []
    for wp in route:
        other = wp.get_left_lane() if side == "left" else wp.get_right_lane()
        if other is None or (np.sign(other.lane_id) == np.sign(wp.lane_id)) != same_direction \
                or other.lane_type != carla.LaneType.Driving:
            raise NoPlace
        pts.append(waypoint_pose(other)[:2])
    return np.array(pts)


def _base(scenario_type: str, route: list[Any], ego_path: Path, s_ego: np.ndarray, v_e: float,
          params: dict[str, Any], description: str, contact: float | None) -> ScenarioPlan:
    if s_ego[-1] + EGO_LENGTH > ego_path.length:  # the road ends before the plan does
        raise NoPlace
    poses = ego_path.poses(s_ego)
    rac = 0.3 * EGO_LENGTH
    spawn = poses[0].copy()
    spawn[:2] += rac * np.array([math.cos(spawn[2]), math.sin(spawn[2])])
    return ScenarioPlan(scenario_type, {k: _plain(v) for k, v in params.items()}, route, ego_path.points,
                        TimedPath(poses[:, :2], PLAN_DT * np.arange(len(s_ego))), spawn, v_e,
                        contact_time=contact, description=description)


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# ------------------------------------------------------------------------------------------------ road builders
def _rear_end(carla: Any, start: Any, rng: np.random.Generator, t_c: float, duration: float) -> ScenarioPlan:
    """Bank ``rear_end``: the lead ahead in the ego lane brakes hard (to a stop or a crawl)."""
    r = REAR_END
    v_e = float(r.v_ego.draw(rng))
    v_l0 = v_e - float(r.lead_slower.draw(rng))
    a_l = float(r.lead_decel.draw(rng))
    v_end = 0.0 if rng.random() < r.p_stop else float(r.crawl_fraction.draw(rng, v_l0))
    gap = max(r.min_gap, float(r.gap_headway.draw(rng)) * v_e)
    tau = solve_time(lambda t: v_e * t - ramp_profile(t, 0.0, v_l0, 0.0, a_l, v_end), gap)
    if tau is None or t_c - tau < 0.5:
        raise NoPlace
    t_b = t_c - tau
    route = _straight_route(start, v_e * duration + 60.0)
    path, s_ego = _ego_nominal(route, v_e, rng, duration)
    rac = 0.3 * EGO_LENGTH
    front_tb = float(np.interp(t_b, PLAN_DT * np.arange(len(s_ego)), s_ego)) + rac + 0.5 * EGO_LENGTH
    s_lead_tb = front_tb + gap + 0.5 * VEHICLE_LENGTH
    times = PLAN_DT * np.arange(len(s_ego))
    s_lead = ramp_profile(times, s_lead_tb - v_l0 * t_b, v_l0, t_b, a_l, v_end)
    plan = _base("rear_end", route, path, s_ego, v_e,
                 {"v_ego": v_e, "v_lead": v_l0, "lead_decel": a_l, "lead_end_speed": v_end, "gap_at_brake": gap,
                  "lead_brake_time": t_b}, f"lead brakes at {a_l:.1f} m/s^2 to {v_end:.1f} m/s", t_c)
    lead = _timed(path, s_lead)
    plan.adversaries.append(Adversary("risk", "vehicle.tesla.model3", "vehicle", path.poses(s_lead[0]), lead, v_l0))
    return plan


def _cut_in(carla: Any, start: Any, rng: np.random.Generator, t_c: float, duration: float) -> ScenarioPlan:
    """Bank ``cut_in``: a slower vehicle changes into the ego lane just ahead (braking after it half the time)."""
    r = CUT_IN
    side = "left" if rng.random() < r.p_from_left else "right"
    v_e = float(r.v_ego.draw(rng))
    v_c = max(v_e - float(r.cutter_slower.draw(rng)), r.min_cutter_speed)
    brake = rng.random() < r.p_brake
    a_c = float(r.cutter_decel.draw(rng)) if brake else 0.0
    v_c_end = max(v_c - r.brake_speed_drop, r.min_end_speed) if brake else v_c
    change = float(r.lane_change_time.draw(rng))
    gap_end = float(r.gap_end.draw(rng))
    tau = solve_time(lambda t: v_e * t - ramp_profile(t, 0.0, v_c, 0.0, a_c, v_c_end), gap_end)
    if tau is None:
        raise NoPlace
    t_end = t_c - tau
    t_start = t_end - change
    if t_start < 0.5:
        raise NoPlace
    route = _straight_route(start, v_e * duration + 60.0)
    beside = _parallel(carla, route, side, same_direction=True)
    path, s_ego = _ego_nominal(route, v_e, rng, duration)
    times = PLAN_DT * np.arange(len(s_ego))
    rac = 0.3 * EGO_LENGTH
    front_end = float(np.interp(t_end, times, s_ego)) + rac + 0.5 * EGO_LENGTH
    s_end = front_end + gap_end + 0.5 * VEHICLE_LENGTH
    s_cut = ramp_profile(times, s_end - v_c * t_end, v_c, t_end, a_c, v_c_end)
    w = smoothstep((times - t_start) / change)
    other = Path.from_points(beside)
    own, theirs = path.poses(s_cut), other.poses(s_cut)
    pts = (1.0 - w)[:, None] * theirs[:, :2] + w[:, None] * own[:, :2]
    plan = _base("cut_in", route, path, s_ego, v_e,
                 {"v_ego": v_e, "v_cutter": v_c, "cutter_decel": a_c, "lane_change_s": change, "gap_end": gap_end,
                  "cut_in_side": side, "lane_change_start": t_start},
                 f"vehicle from the {side} lane cuts in {gap_end:.1f} m ahead at {v_c:.1f} m/s", t_c)
    plan.adversaries.append(Adversary("risk", "vehicle.audi.a2", "vehicle", theirs[0], TimedPath(pts, times), v_c))
    return plan


def _pedestrian(carla: Any, start: Any, rng: np.random.Generator, t_c: float, duration: float) -> ScenarioPlan:
    """Bank ``pedestrian_occluded``: a pedestrian steps onto the road from behind a parked van."""
    r = PEDESTRIAN_OCCLUDED
    v_e = float(r.v_ego.draw(rng))
    child = rng.random() < r.p_child
    v_p = float(r.v_child.draw(rng)) if child else float(r.v_adult.draw(rng))
    a_p = float(r.accel.draw(rng))
    route = _straight_route(start, v_e * duration + 60.0)
    path, s_ego = _ego_nominal(route, v_e, rng, duration)
    times = PLAN_DT * np.arange(len(s_ego))
    width = float(route[0].lane_width)
    rac = 0.3 * EGO_LENGTH
    s_p = float(np.interp(t_c, times, s_ego)) + rac + float(rng.uniform(0.0, 0.5 * EGO_LENGTH))
    x, y, h = path.poses(s_p)
    right = np.array([math.sin(h), -math.cos(h)])
    offset = 0.5 * width + float(rng.uniform(2.5, 3.5))
    p0 = np.array([x, y]) + offset * right
    t_start = ped_start_time(offset, v_p, a_p, t_c + float(r.arrival_jitter.draw(rng)))
    if t_start < 0.5:
        raise NoPlace
    plan = _base("pedestrian_occluded", route, path, s_ego, v_e,
                 {"v_ego": v_e, "v_pedestrian": v_p, "pedestrian_accel": a_p, "child": bool(child),
                  "pedestrian_start_time": t_start},
                 f"{'child runs' if child else 'pedestrian walks'} out from behind a parked vehicle", t_c)
    heading = h + 0.5 * math.pi
    plan.adversaries.append(Adversary("risk", "walker.pedestrian.0001", "walker", np.array([*p0, heading]),
                                      walk=(-right, t_start, a_p, v_p)))
    occ_len, occ_w = 5.9, 2.0
    s_occ = s_p - float(r.occluder_gap.draw(rng)) - 0.5 * occ_len - 0.4
    ox, oy, oh = path.poses(s_occ)
    occ = np.array([ox, oy]) + (0.5 * width + 0.3 + 0.5 * occ_w) * right
    plan.adversaries.append(Adversary("prop", "vehicle.mercedes.sprinter", "static", np.array([*occ, oh])))
    return plan


def _head_on(carla: Any, start: Any, rng: np.random.Generator, t_c: float, duration: float) -> ScenarioPlan:
    """Bank ``head_on_drift`` with the roles swapped: the oncoming vehicle drifts into the ego lane."""
    r = HEAD_ON_DRIFT
    v_e, v_o = float(r.v_ego.draw(rng)), float(r.v_oncoming.draw(rng))
    full = float(r.final_drift.draw(rng))
    d_meet = float(rng.uniform(r.contact_drift.lo, min(full, r.contact_drift.hi)))
    tau_d = float(r.drift_time.draw(rng))
    t_d0 = t_c - math.acos(1.0 - 2.0 * d_meet / full) / math.pi * tau_d
    if t_d0 < 0.5:
        raise NoPlace
    route = _straight_route(start, v_e * duration + v_o * t_c + 80.0)
    opposite = _parallel(carla, route, "left", same_direction=False)
    path, s_ego = _ego_nominal(route, v_e, rng, duration)
    times = PLAN_DT * np.arange(len(s_ego))
    rac = 0.3 * EGO_LENGTH
    s_meet = float(np.interp(t_c, times, s_ego)) + rac + 0.5 * EGO_LENGTH + 0.5 * VEHICLE_LENGTH \
        - float(r.overlap.draw(rng))
    s_o = s_meet + v_o * (t_c - times)  # its position in the ego route's arc length, moving backwards
    if s_o[0] > path.length - 5.0:
        raise NoPlace
    drift = full * smoothstep((times - t_d0) / tau_d)
    opp = Path.from_points(opposite)
    ego_side = path.poses(s_o)[:, :2]
    their = opp.poses(s_o)[:, :2]
    toward = ego_side - their
    toward /= np.maximum(np.linalg.norm(toward, axis=1, keepdims=True), 1e-9)
    pts = their + drift[:, None] * toward
    plan = _base("head_on_drift", route, path, s_ego, v_e,
                 {"v_ego": v_e, "v_oncoming": v_o, "drift_at_contact": d_meet, "drift_s": tau_d,
                  "drift_start_time": t_d0},
                 f"oncoming vehicle drifts {d_meet:.1f} m into the ego lane", t_c)
    h0 = float(opp.poses(s_o[0])[2]) + math.pi
    plan.adversaries.append(Adversary("risk", "vehicle.nissan.patrol_2021", "vehicle",
                                      np.array([*pts[0], wrap_angle(h0)]), TimedPath(pts, times), v_o))
    return plan


def _normal(carla: Any, start: Any, rng: np.random.Generator, t_c: float, duration: float) -> ScenarioPlan:
    """Background traffic only: the ego cruises along a route."""
    v_e = float(NORMAL_EGO_SPEED.draw(rng))
    if start.is_junction:
        raise NoPlace
    route = plan_route(start, v_e * duration + 60.0, turn=str(rng.choice(["straight", "left", "right"])))
    if len(route) < 10:
        raise NoPlace
    path, s_ego = _ego_nominal(route, v_e, rng, duration)
    return _base("normal", route, path, s_ego, v_e, {"v_ego": v_e}, "normal driving with background traffic", None)


# -------------------------------------------------------------------------------------------- junction builders
def _connector_points(entry: Any, spacing: float = 1.0) -> np.ndarray:
    return route_polyline([entry, *entry.next_until_lane_end(spacing)])


def _crossing(a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """First intersection point of polyline ``a`` with polyline ``b`` (both ``(K, 2)``), or None."""
    for i in range(len(a) - 1):
        p, r = a[i], a[i + 1] - a[i]
        q, s = b[:-1], b[1:] - b[:-1]
        denom = r[0] * s[:, 1] - r[1] * s[:, 0]
        ok = np.abs(denom) > 1e-12
        qp = q - p
        t = np.where(ok, (qp[:, 0] * s[:, 1] - qp[:, 1] * s[:, 0]) / np.where(ok, denom, 1.0), -1.0)
        u = np.where(ok, (qp[:, 0] * r[1] - qp[:, 1] * r[0]) / np.where(ok, denom, 1.0), -1.0)
        hit = np.flatnonzero(ok & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1))
        if len(hit):
            return p + float(t[hit[0]]) * r
    return None


def _junction_setup(entry_end: Any, rng: np.random.Generator, turn: str, v_ego: Range) -> tuple[Any, float]:
    """The ego's connector of ``turn`` after its approach lane's end ``entry_end`` (NoPlace if the junction has none
    turning that way) and its cruise speed drawn from ``v_ego`` [m/s]."""
    branches = [w for w in entry_end.next(2.0) if w.is_junction]
    if not branches:
        raise NoPlace
    conn = choose_branch(entry_end, branches, turn)
    change = float(wrap_angle(waypoint_pose(conn.next_until_lane_end(2.0)[-1])[2] - waypoint_pose(entry_end)[2]))
    want = {"straight": (-0.35, 0.35), "left": (0.9, 2.2), "right": (-2.2, -0.9)}[turn]
    if not want[0] <= change <= want[1]:
        raise NoPlace
    return conn, float(v_ego.draw(rng))


def _straight_crossing(carla: Any, entry_end: Any, conn: Any, relative_heading: float,
                       rng: np.random.Generator) -> tuple[Any, np.ndarray]:
    """A straight connector of the ego connector ``conn``'s junction entering at ``relative_heading`` [rad] to the
    ego's approach heading (right-handed) that crosses the ego's connector: ``(its entry waypoint, crossing point)``,
    drawn among the fitting ones; NoPlace if none."""
    ego_pts = _connector_points(conn)
    h_ego = waypoint_pose(entry_end)[2]
    options = []
    for a, b in conn.get_junction().get_waypoints(carla.LaneType.Driving):
        ha, hb = waypoint_pose(a)[2], waypoint_pose(b)[2]
        if abs(float(wrap_angle(hb - ha))) > 0.35 or abs(float(wrap_angle(ha - h_ego - relative_heading))) > 0.4:
            continue
        p = _crossing(ego_pts, _connector_points(a))
        if p is not None:
            options.append((a, p))
    if not options:
        raise NoPlace
    return options[int(rng.integers(len(options)))]


def _ego_to_conflict(entry_end: Any, conn: Any, turn: str, point: np.ndarray, v_e: float,
                     rng: np.random.Generator, t_c: float, duration: float):
    """Ego route from a start behind the junction such that its nominal box centre reaches ``point`` at ``t_c``.

    Returns ``(route, path, s_ego)`` with ``s_ego`` the nominal rear-axle arc length from t = 0."""
    back = v_e * (t_c + 2.0) + 20.0
    start = _walk_back(entry_end, back)
    long_route = plan_route(start, back + v_e * duration + 60.0, turn=turn)
    keys = [waypoint_key(w) for w in long_route]
    if waypoint_key(conn) not in keys:
        raise NoPlace
    path, s_long = _ego_nominal(long_route, v_e, rng, duration + t_c + 10.0)
    s_point, d = path.project(np.asarray(point)[None])
    if abs(float(d[0])) > 1.0:
        raise NoPlace
    rac = 0.3 * EGO_LENGTH
    t_point = _time_at(s_long, float(s_point[0]) - rac)
    k0 = int(round((t_point - t_c) / PLAN_DT))
    n = int(round(duration / PLAN_DT)) + 1
    if k0 < 0 or k0 + n > len(s_long):
        raise NoPlace
    s0 = float(s_long[k0])
    # the route from the spawn point on: drop the waypoints behind it
    first = max(0, int(np.searchsorted(path.s, s0)) - 1)
    pts = path.points[first:]
    route = long_route[first:] if len(long_route) == len(path.points) else long_route
    sub = Path.from_points(np.concatenate([[path.poses(s0)[:2]], pts[1:]]))
    return route, sub, s_long[k0:k0 + n] - s0


def _timed_through(carla: Any, entry: Any, point: np.ndarray, v: float, t_arrive: float, duration: float,
                   turn: str = "straight") -> tuple[Path, np.ndarray]:
    """A constant-speed path through connector ``entry`` whose point passes ``point`` at ``t_arrive``."""
    conn_pts = _connector_points(entry)
    seg = Path.from_points(conn_pts)
    s_in, d = seg.project(np.asarray(point)[None])
    if abs(float(d[0])) > 1.0:
        raise NoPlace
    back = v * t_arrive - float(s_in[0])
    if back < 5.0:
        raise NoPlace
    start = _walk_back(entry, back)
    route = plan_route(start, back + float(s_in[0]) + v * duration + 40.0, turn=turn)
    path = Path.from_points(route_polyline(route))
    s_hit, dd = path.project(np.asarray(point)[None])
    if abs(float(dd[0])) > 1.0:
        raise NoPlace
    times = PLAN_DT * np.arange(int(round(duration / PLAN_DT)) + 1)
    return path, float(s_hit[0]) + v * (times - t_arrive)


def _red_light_runner(carla: Any, entry_end: Any, rng: np.random.Generator, t_c: float, duration: float,
                      side: str) -> ScenarioPlan:
    """Bank ``red_light_runner_<side>``: the ego crosses on green; a vehicle from ``side`` runs its red light."""
    r = RED_LIGHT_RUNNER
    conn, v_e = _junction_setup(entry_end, rng, "straight", r.v_ego)
    want = -0.5 * math.pi if side == "left" else 0.5 * math.pi  # from the left it drives towards the ego's right
    other, point = _straight_crossing(carla, entry_end, conn, want, rng)
    route, path, s_ego = _ego_to_conflict(entry_end, conn, "straight", point, v_e, rng, t_c, duration)
    v_x = float(r.v_runner.draw(rng))
    t_arrive = t_c + float(r.arrival_jitter.draw(rng))
    r_path, s_r = _timed_through(carla, other, point, v_x, t_arrive, duration)
    plan = _base(f"red_light_runner_{side}", route, path, s_ego, v_e,
                 {"v_ego": v_e, "v_runner": v_x, "runner_arrival": t_arrive},
                 f"crossing vehicle from the {side} runs the red light at {v_x:.1f} m/s", t_c)
    plan.adversaries.append(Adversary("risk", "vehicle.lincoln.mkz_2020", "vehicle", r_path.poses(s_r[0]),
                                      _timed(r_path, s_r), v_x))
    before_other = other.previous(2.0)
    plan.lights = [(waypoint_key(entry_end), "green")]
    if before_other:
        plan.lights.append((waypoint_key(before_other[0]), "red"))
    return plan


def _unprotected_left(carla: Any, entry_end: Any, rng: np.random.Generator, t_c: float,
                      duration: float) -> ScenarioPlan:
    """Bank ``unprotected_left_turn``: the ego turns left on a permissive green across an oncoming vehicle."""
    r = UNPROTECTED_LEFT_TURN
    conn, v_e = _junction_setup(entry_end, rng, "left", TURN_EGO_SPEED)
    other, point = _straight_crossing(carla, entry_end, conn, math.pi, rng)  # the oncoming straight connector
    route, path, s_ego = _ego_to_conflict(entry_end, conn, "left", point, v_e, rng, t_c, duration)
    v_o = float(r.v_oncoming.draw(rng))
    t_arrive = t_c + float(r.arrival_jitter.draw(rng))
    o_path, s_o = _timed_through(carla, other, point, v_o, t_arrive, duration)
    plan = _base("unprotected_left_turn", route, path, s_ego, v_e, {"v_ego": v_e, "v_oncoming": v_o},
                 f"oncoming vehicle at {v_o:.1f} m/s while the ego turns left", t_c)
    plan.adversaries.append(Adversary("risk", "vehicle.tesla.model3", "vehicle", o_path.poses(s_o[0]),
                                      _timed(o_path, s_o), v_o))
    plan.lights = [(waypoint_key(entry_end), "green")]
    before_other = other.previous(2.0)
    if before_other:
        plan.lights.append((waypoint_key(before_other[0]), "green"))
    return plan


def _right_turn_vru(carla: Any, entry_end: Any, rng: np.random.Generator, t_c: float, duration: float) -> ScenarioPlan:
    """Bank ``right_turn_vru`` (pedestrian variant): a pedestrian crosses the ego's exit lane after its right turn."""
    r = RIGHT_TURN_VRU
    conn, v_e = _junction_setup(entry_end, rng, "right", TURN_EGO_SPEED)
    exit_wp = conn.next_until_lane_end(2.0)[-1]
    after = exit_wp.next(float(rng.uniform(3.0, 6.0)))
    if not after:
        raise NoPlace
    x, y, h = waypoint_pose(after[0])
    point = np.array([x, y])
    route, path, s_ego = _ego_to_conflict(entry_end, conn, "right", point, v_e, rng, t_c, duration)
    v_p, a_p = float(r.v_pedestrian.draw(rng)), float(r.pedestrian_accel.draw(rng))
    right = np.array([math.sin(h), -math.cos(h)])
    offset = 0.5 * float(after[0].lane_width) + float(rng.uniform(2.0, 3.0))
    t_start = ped_start_time(offset, v_p, a_p, t_c + float(r.arrival_jitter.draw(rng)))
    if t_start < 0.5:
        raise NoPlace
    plan = _base("right_turn_vru", route, path, s_ego, v_e,
                 {"v_ego": v_e, "v_pedestrian": v_p, "pedestrian_accel": a_p, "pedestrian_start_time": t_start,
                  "variant": "pedestrian"}, "pedestrian crossing the exit lane after the right turn", t_c)
    p0 = point + offset * right
    plan.adversaries.append(Adversary("risk", "walker.pedestrian.0002", "walker", np.array([*p0, h + 0.5 * math.pi]),
                                      walk=(-right, t_start, a_p, v_p)))
    plan.lights = [(waypoint_key(entry_end), "green")]
    return plan


_ROAD_BUILDERS = {"rear_end": _rear_end, "cut_in": _cut_in, "pedestrian_occluded": _pedestrian,
                  "head_on_drift": _head_on, "normal": _normal}
_JUNCTION_BUILDERS = {
    "red_light_runner_left": lambda c, e, r, t, d: _red_light_runner(c, e, r, t, d, "left"),
    "red_light_runner_right": lambda c, e, r, t, d: _red_light_runner(c, e, r, t, d, "right"),
    "unprotected_left_turn": _unprotected_left,
    "right_turn_vru": _right_turn_vru,
}


def route_keys(plan: ScenarioPlan) -> list[tuple[int, int, int]]:
    """OpenDRIVE keys of the plan's route waypoints (for the scene map's on-route lanes)."""
    return [waypoint_key(w) for w in plan.route]


def nominal_poses(plan: ScenarioPlan, times: Sequence[float]) -> np.ndarray:
    """``(len(times), 3)`` nominal ego rear-axle poses at ``times`` [s] (heading from the path direction)."""
    out = []
    for t in times:
        s = plan.ego_plan.arclength_at(float(t))
        p = plan.ego_plan.point_at_s(s)
        q = plan.ego_plan.point_at_s(s + 0.5)
        if np.linalg.norm(q - p) < 1e-6:
            q = p + plan.ego_plan.end_direction()
        out.append([p[0], p[1], math.atan2(q[1] - p[1], q[0] - p[0])])
    return np.array(out)
