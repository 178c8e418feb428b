"""Accident builders on the straight road and the merge layout (synthetic; NHTSA pre-crash typologies as used by
DeepAccident): rear-end, cut-in, occluded pedestrian, head-on drift and merge conflict.

Each builder draws its parameters from ``rng`` over its typology's ranges (:mod:`envs.scenes.bank.ranges`, shared
with the CARLA scenarios) and returns a :class:`~envs.scenes.bank.core.Core`, or raises
:class:`~envs.scenes.bank.core.Retry` when a draw fails a check (see :func:`~envs.scenes.bank.core.finish_accident`).
Arc lengths along the straight road's lanes equal ``x + 250`` for eastbound and ``250 - x`` for westbound lanes.
"""

from __future__ import annotations

import math

import numpy as np

from envs.scenes.bank.actors import Actor, EgoTrack, first_overlap, sample_size
from envs.scenes.bank.core import Core, OutcomeFamily, Retry, finish_accident, target_frame, time_shift_family
from envs.scenes.bank.motion import DT, frame_times, ped_start_time, ramp_profile, smoothstep, solve_time
from envs.scenes.bank.ranges import CUT_IN, HEAD_ON_DRIFT, MERGE_CONFLICT, PEDESTRIAN_OCCLUDED, REAR_END
from envs.scenes.bank.roads import (
    TYPOLOGY_FAMILIES,
    RoadFrame,
    Roads,
    eastbound_routes,
    lanes_per_direction,
    merge_offset,
    merging_lane,
)
from envs.scenes.layouts import LANE_WIDTH, Layout, Path, get_layout
from envs.scenes.scene import AgentClass
from rewards.geometry import NAVSIM_EGO

EGO_FRONT = NAVSIM_EGO.rear_axle_to_center + 0.5 * NAVSIM_EGO.length
"""Rear axle to front bumper of the ego [m]."""
HALF_ROAD = 250.0
"""Half length of the straight road and the merge layout [m]."""


def _road(rng: np.random.Generator, roads: Roads | None, typology: str, classic: str = "straight", **needs) -> Layout:
    """The classic layout ``classic`` (``roads`` None: no draw from ``rng``) or a family layout the typology runs on."""
    if roads is None:
        return get_layout(classic)
    return roads.pick(rng, TYPOLOGY_FAMILIES[typology], **needs)


def _static(cls: AgentClass, size: tuple[float, float], x: float, y: float, heading: float, role: str,
            frame: RoadFrame | None = None) -> Actor:
    """A stationary agent with its box centre at ``(x, y)`` [m] (road-frame point when ``frame`` is given) facing
    ``heading`` [rad] (relative to the road there, with ``frame``)."""
    if frame is not None and frame.centre is not None:
        (x, y), heading = frame.point(x, y), heading + frame.heading(x)
    d = np.array([math.cos(heading), math.sin(heading)])
    path = Path.from_points(np.array([[x, y] - d, [x, y] + d]))
    return Actor(cls, size[0], size[1], path, np.full(len(frame_times()), 1.0), role=role)


def _following_gap_time(v_ego: float, v0: float, accel: float, v_end: float, gap: float) -> float:
    """Time [s] for an ego at constant ``v_ego`` to close a bumper ``gap`` [m] on a leader that changes speed
    from ``v0`` to ``v_end`` at ``accel`` [m/s^2] from time 0 (Retry if it never closes within 15 s)."""
    tau = solve_time(lambda t: v_ego * t - ramp_profile(t, 0.0, v0, 0.0, accel, v_end), gap)
    if tau is None:
        raise Retry
    return tau


def rear_end(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """The ego keeps its speed while the lead ahead in its lane brakes hard (to a stop or a crawl)."""
    t = frame_times()
    layout = _road(rng, roads, "rear_end")
    if roads is None:
        route: tuple[str, ...] = (str(rng.choice(["E0", "E1"])),)
    else:
        lanes = eastbound_routes(layout)
        route = lanes[int(rng.integers(len(lanes)))]
    path = layout.path(route)
    r = REAR_END
    v_e = r.v_ego.draw(rng)
    v_l0 = v_e - r.lead_slower.draw(rng)
    a_l = r.lead_decel.draw(rng)
    v_end = 0.0 if rng.random() < r.p_stop else r.crawl_fraction.draw(rng, v_l0)
    gap = max(r.min_gap, r.gap_headway.draw(rng) * v_e)  # bumper gap when the lead starts braking [m]
    tau = _following_gap_time(v_e, v_l0, a_l, v_end, gap)
    t_c = (target_frame(rng, 51, 61) - rng.uniform(0.0, 1.0)) * DT
    t_b = t_c - tau
    if t_b < 1.0:
        raise Retry
    s0 = rng.uniform(80.0, 140.0)
    ego = EgoTrack(path, s0 + v_e * t)
    length, width = sample_size(rng, AgentClass.VEHICLE)
    s_lead_tb = s0 + v_e * t_b + EGO_FRONT + gap + 0.5 * length
    lead = Actor(
        AgentClass.VEHICLE, length, width, path, ramp_profile(t, s_lead_tb - v_l0 * t_b, v_l0, t_b, a_l, v_end), role="risk"
    )
    s_tb = s_lead_tb - v_l0 * t_b

    def released(rng: np.random.Generator):
        """The lead brakes to a floor speed and drives on (from ``t_1``), ``p`` [m] further ahead."""
        v_low = r.release_floor.draw(rng, v_l0)
        a_up, v_rel = r.release_accel.draw(rng), v_e + r.release_speed_gain.draw(rng)
        t_1 = t_b + (v_l0 - v_low) / a_l
        s = ramp_profile(t, s_tb, v_l0, t_b, a_l, v_low) + ramp_profile(t, 0.0, 0.0, t_1, a_up, v_rel - v_low)
        return lambda p: Actor(AgentClass.VEHICLE, length, width, path, s + p, role="risk")

    family = OutcomeFamily("brake_gap_m", gap, ego, released, ((0.5 - gap, 45.0),))
    ego, lead, k, avoid = finish_accident(ego, lead, [])
    return Core(
        layout.name, route, ego, [lead], variant, f"rear_end: lead brakes at {a_l:.1f} m/s^2 to {v_end:.1f} m/s",
        k, avoid, {"lead_brake_frame": int(round(t_b / DT))}, family,
    )


def cut_in(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """A slower vehicle changes into the ego lane just ahead (optionally braking after it); the ego keeps its speed."""
    t = frame_times()
    r = CUT_IN
    layout = _road(rng, roads, "cut_in", min_lanes=2)
    lanes = eastbound_routes(layout)
    i = 0 if roads is None else int(rng.integers(len(lanes) - 1))  # the pair (i, i + 1) of adjacent lanes
    from_left = rng.random() < r.p_from_left
    ego_route, cut_route = (lanes[i + 1], lanes[i]) if from_left else (lanes[i], lanes[i + 1])
    frame = RoadFrame(layout)
    v_e = r.v_ego.draw(rng)
    v_c = max(v_e - r.cutter_slower.draw(rng), r.min_cutter_speed)
    brake = rng.random() < r.p_brake
    a_c = r.cutter_decel.draw(rng) if brake else 0.0
    v_c_end = max(v_c - r.brake_speed_drop, r.min_end_speed) if brake else v_c
    duration = r.lane_change_time.draw(rng)  # lane change [s]
    gap_end = r.gap_end.draw(rng)  # bumper gap when the lane change ends [m]
    tau = _following_gap_time(v_e, v_c, a_c, v_c_end, gap_end)
    t_c = (target_frame(rng, 51, 61) - rng.uniform(0.0, 1.0)) * DT
    t_end = t_c - tau
    t_start = t_end - duration
    if t_start < 1.0:
        raise Retry
    s0 = rng.uniform(80.0, 140.0)
    ego = EgoTrack(layout.path(ego_route), s0 + v_e * t)
    length, width = sample_size(rng, AgentClass.VEHICLE)
    s_end = frame.transfer(ego.path, s0 + v_e * t_end + EGO_FRONT + gap_end + 0.5 * length, layout.path(cut_route))
    shift = -LANE_WIDTH if from_left else LANE_WIDTH  # towards the ego lane (left positive)
    cutter = Actor(
        AgentClass.VEHICLE, length, width, layout.path(cut_route),
        ramp_profile(t, s_end - v_c * t_end, v_c, t_end, a_c, v_c_end),
        lateral=shift * smoothstep((t - t_start) / duration), role="risk",
    )

    c_path, c_lateral = cutter.path, cutter.lateral

    def released(rng: np.random.Generator):
        """The cutter speeds up (no braking) from the end of its lane change, ``p`` [m] further ahead."""
        a_up, v_rel = r.release_accel.draw(rng), v_e + r.release_speed_gain.draw(rng)
        s = ramp_profile(t, s_end - v_c * t_end, v_c, t_end, a_up, v_rel)
        return lambda p: Actor(AgentClass.VEHICLE, length, width, c_path, s + p, c_lateral, role="risk")

    # (reacting expert: the ego brakes once the lane change projects a conflict, so the cutter may end its lane
    # change up to 8 m further back, where the logged ego would have been hit)
    family = OutcomeFamily("cut_in_gap_m", gap_end, ego, released, ((0.3 - gap_end, 30.0),),
                           ((-8.0 - gap_end, 30.0),))
    ego, cutter, k, avoid = finish_accident(ego, cutter, [])
    side = "left" if from_left else "right"
    return Core(
        layout.name, ego_route, ego, [cutter], variant,
        f"cut_in: vehicle from the {side} lane cuts in {gap_end:.1f} m ahead at {v_c:.1f} m/s", k, avoid,
        {"cut_in_side": side}, family,
    )


def pedestrian_occluded(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """A pedestrian steps onto the road from behind a parked vehicle; the ego keeps its speed."""
    t = frame_times()
    layout = _road(rng, roads, "pedestrian_occluded", parking=True)
    lanes, frame = eastbound_routes(layout), RoadFrame(layout)
    n = len(lanes)
    outer = rng.random() < 0.75
    lane_index = n - 1 if outer or n == 1 else (n - 2 if roads is None else int(rng.integers(n - 1)))
    y_lane = -(lane_index + 0.5) * LANE_WIDTH
    r = PEDESTRIAN_OCCLUDED
    v_e = r.v_ego.draw(rng)
    x_p = rng.uniform(-40.0, 40.0)
    if layout.family in ("merge", "ramp", "lane_drop"):  # the south parking strip starts past the merge
        x_p += float(layout.params["X"]) + 90.0
    t_c = (target_frame(rng, 54, 61) - rng.uniform(0.0, 1.0)) * DT
    path = layout.path(lanes[lane_index])
    ego = EgoTrack(path, frame.lane_s(path, x_p, y_lane) - NAVSIM_EGO.rear_axle_to_center + v_e * (t - t_c))
    child = rng.random() < r.p_child
    p_len, p_wid = sample_size(rng, AgentClass.PEDESTRIAN)
    v_p = r.v_child.draw(rng) if child else r.v_adult.draw(rng)
    a_p = r.accel.draw(rng)
    x_ped = x_p + rng.uniform(-0.5, 0.5)
    y0 = -(n * LANE_WIDTH + 3.0)  # kerb between parking strip and sidewalk
    jitter = r.arrival_jitter.draw(rng)
    t_start = ped_start_time(y_lane - y0, v_p, a_p, t_c + jitter)
    if t_start < 0.5:
        raise Retry
    ped = Actor(
        AgentClass.PEDESTRIAN, p_len, p_wid, Path.from_points(np.array([frame.point(x_ped, y0), frame.point(x_ped, -y0)])),
        ramp_profile(t, 0.0, 0.0, t_start, a_p, v_p), role="risk",
    )
    occ_size = sample_size(rng, AgentClass.VEHICLE, str(rng.choice(["suv", "van", "truck"])))
    x_occ = x_ped - 0.5 * p_wid - r.occluder_gap.draw(rng) - 0.5 * occ_size[0]
    occluder = _static(AgentClass.VEHICLE, occ_size, x_occ, -n * LANE_WIDTH - 0.15 - 0.5 * occ_size[1], 0.0, "prop", frame)
    family = time_shift_family("arrival_offset_s", jitter, ego, ped, ((0.0, 4.0), (0.0, -4.0)))
    ego, ped, k, avoid = finish_accident(ego, ped, [occluder])
    return Core(
        layout.name, lanes[lane_index], ego, [ped, occluder], variant,
        f"pedestrian_occluded: {'child runs' if child else 'pedestrian walks'} out from behind a parked vehicle",
        k, avoid, {"pedestrian_start_frame": int(round(t_start / DT))}, family,
    )


def head_on_drift(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """The ego drifts left out of its lane into an oncoming vehicle (its route stays in its own lane)."""
    t = frame_times()
    layout = _road(rng, roads, "head_on_drift")
    frame, route = RoadFrame(layout), eastbound_routes(layout)[0]
    r = HEAD_ON_DRIFT
    v_e, v_o = r.v_ego.draw(rng), r.v_oncoming.draw(rng)
    k_meet = target_frame(rng, 52, 61)
    t_meet = k_meet * DT
    full = r.final_drift.draw(rng)  # final drift [m]
    d_meet = rng.uniform(r.contact_drift.lo, min(full, r.contact_drift.hi))  # drift at contact [m]
    tau_d = r.drift_time.draw(rng)  # drift duration [s]
    t_d0 = t_meet - math.acos(1.0 - 2.0 * d_meet / full) / math.pi * tau_d
    if t_d0 < 1.0:
        raise Retry
    ego = EgoTrack(layout.path(route), rng.uniform(80.0, 140.0) + v_e * t, lateral=full * smoothstep((t - t_d0) / tau_d))
    length, width = sample_size(rng, AgentClass.VEHICLE)
    front_x = frame.x_of(ego.corners()[k_meet]).max()
    x_meet = front_x + 0.5 * length - r.overlap.draw(rng)
    w0 = layout.path(["W0"])
    oncoming = Actor(
        AgentClass.VEHICLE, length, width, w0, frame.lane_s(w0, x_meet, 0.5 * LANE_WIDTH, westbound=True)
        + v_o * (t - t_meet), role="risk"
    )
    # outcome-varied bank: the oncoming vehicle passes earlier, while the ego has drifted less
    family = time_shift_family("oncoming_time_shift_s", 0.0, ego, oncoming, ((0.0, -5.0),))
    ego, oncoming, k, avoid = finish_accident(ego, oncoming, [], check="steer_back")
    return Core(
        layout.name, route, ego, [oncoming], variant,
        f"head_on_drift: ego drifts {d_meet:.1f} m into the oncoming lane", k, avoid,
        {"drift_start_frame": int(round(t_d0 / DT))}, family,
    )


def merge_conflict(rng: np.random.Generator, variant: str, roads: Roads | None = None) -> Core:
    """At the on-ramp: ``ego_merges`` (the ego merges into a main-road vehicle beside it) or
    ``ramp_vehicle_merges`` (a slower ramp vehicle merges just ahead of the ego on the main road); on the families,
    the merging lane may also be a ``lane_drop``'s ending lane."""
    t = frame_times()
    r = MERGE_CONFLICT
    layout = _road(rng, roads, "merge_conflict", "merge")
    up, down = eastbound_routes(layout)[-1]
    merging, dx = merging_lane(layout), merge_offset(layout)
    length, width = sample_size(rng, AgentClass.VEHICLE)
    t_c = (target_frame(rng, 54, 61) - rng.uniform(0.0, 1.0)) * DT
    if variant == "ego_merges":
        route, other = (merging, down), (up, down)
        v_e = r.v_ego.draw(rng)
        path = layout.path(route)
        x_star = rng.uniform(0.0, 15.0) + dx  # ego box centre x at t_c [m]
        s_star = float(np.interp(x_star - NAVSIM_EGO.rear_axle_to_center, path.points[:, 0], path.s))
        ego = EgoTrack(path, s_star + v_e * (t - t_c))
        v_m = rng.uniform(v_e + r.main_speed_offset.lo, v_e + r.main_speed_offset.hi)
        x_m = x_star + r.main_lead.draw(rng)
        risk = Actor(AgentClass.VEHICLE, length, width, layout.path(other), x_m + HALF_ROAD + v_m * (t - t_c), role="risk")
        # The side-swipe starts a variable time before the centres align: shift both (constant-speed) motions in
        # time so that the first contact lands on a target frame.
        k0 = first_overlap(ego.corners(), risk.corners())
        if k0 is None:
            raise Retry
        shift = (target_frame(rng, 52, 60) - k0) * DT
        ego = EgoTrack(path, ego.s - v_e * shift)
        risk = Actor(AgentClass.VEHICLE, length, width, risk.path, risk.s - v_m * shift, role="risk")
        conflict = "merge_conflict: ego merges from the ramp into a main-road vehicle"
        family = time_shift_family("main_vehicle_time_shift_s", 0.0, ego, risk, ((0.0, 4.0), (0.0, -4.0)))
    else:
        route, other = (up, down), (merging, down)
        v_e = r.v_ego.draw(rng)
        path = layout.path(route)
        x_front = rng.uniform(8.0, 30.0) + dx  # ego front x at t_c [m]
        ego = EgoTrack(path, x_front - EGO_FRONT + HALF_ROAD + v_e * (t - t_c))
        v_r = v_e - r.ramp_slower.draw(rng)
        r_path = layout.path(other)
        x_r = x_front + 0.5 * length - r.ramp_overlap.draw(rng)
        s_r = float(np.interp(x_r, r_path.points[:, 0], r_path.s))
        risk = Actor(AgentClass.VEHICLE, length, width, r_path, s_r + v_r * (t - t_c), role="risk")
        conflict = "merge_conflict: a slower ramp vehicle merges just ahead of the ego"
        # outcome-varied bank: the ramp vehicle arrives later and merges behind the ego
        family = time_shift_family("ramp_vehicle_time_shift_s", 0.0, ego, risk, ((0.0, 4.0),))
    ego, risk, k, avoid = finish_accident(ego, risk, [])
    return Core(layout.name, route, ego, [risk], variant, conflict, k, avoid, family=family)
