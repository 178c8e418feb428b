"""Safety labels, the template grammar and risk detection on hand-built straight-road scenes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from counterfactual.schema import (
    ACTIONS,
    AGENT_CLASSES,
    COMPOUND_ACTIONS,
    CONFLICT_TYPES,
    LATERAL_ACTIONS,
    LONGITUDINAL_ACTIONS,
    NO_ACTION,
    RISK_LEVELS,
    SECTORS,
    SafetyLabel,
    join_action,
    split_action,
)
from counterfactual.accuracy import label_accuracy
from counterfactual.labels import (
    LabelConfig,
    classify_conflict,
    corrective_action,
    derive_label,
    lateral_excursion,
    relate_agent,
    risk_level_of,
    sector_of,
)
from counterfactual.language import VOCABULARY, explain, parse_explanation
from counterfactual.mining import MomentConfig, find_risk_moments, path_ttc_matrix
from envs.scenes.rollout import find_collisions, rollout_to_scene
from counterfactual.projection import path_poses, projection_times, time_to_collision
from envs.scenes.scene import AgentClass, Lane, Scene, SceneMap, SceneMeta
from rewards.geometry import NAVSIM_EGO, VehicleParameters, box_corners, boxes_overlap

DT = 0.1
T = 100
TIMES = np.arange(T) * DT


def straight_map(length: float = 400.0, lane_width: float = 3.5) -> SceneMap:
    """One lane along +x (y = 0); the drivable area is that lane only (so swerving leaves the road)."""
    cl = np.array([[-50.0, 0.0], [length, 0.0]])
    lane = Lane(0, cl, width=lane_width)
    return SceneMap(drivable_areas=(lane.polygon,), lanes=(lane,), route_lane_ids=(0,), route=cl)


def make_scene(
    scene_id: str,
    ego_speed: float,
    agents: list[dict],
    scenario_type: str = "normal",
    with_map: bool = True,
    ego_y: float = 0.0,
) -> Scene:
    """A straight-road scene: ego at constant speed along +x from x=0; agents at constant velocity.

    Each agent: ``{"id", "cls", "xy" (start), "v" (vx, vy), "size" (l, w)}``; heading along its velocity (or 0);
    optional ``"brake": (start time [s], deceleration [m/s^2])`` slows it down along its direction to a stop.
    """
    ego = np.stack([ego_speed * TIMES, np.full(T, ego_y), np.zeros(T)], axis=1)
    ego_v = np.tile([ego_speed, 0.0], (T, 1))
    n = len(agents)
    poses = np.zeros((n, T, 3))
    vels = np.zeros((n, T, 2))
    for i, a in enumerate(agents):
        v = np.asarray(a["v"], dtype=float)
        speed = float(np.hypot(*v))
        direction = v / speed if speed > 0 else np.zeros(2)
        tb, decel = a.get("brake", (np.inf, 0.0))
        sp = np.clip(speed - decel * np.maximum(TIMES - tb, 0.0), 0.0, None)  # (T,) speed profile
        dist = np.concatenate([[0.0], np.cumsum(0.5 * (sp[1:] + sp[:-1]) * DT)])
        poses[i, :, :2] = np.asarray(a["xy"], dtype=float) + dist[:, None] * direction
        poses[i, :, 2] = a.get("yaw", math.atan2(v[1], v[0]) if speed > 0 else 0.0)
        vels[i] = sp[:, None] * direction
    return Scene(
        scene_id=scene_id,
        dt=DT,
        ego_poses=ego,
        ego_velocities=ego_v,
        agent_ids=np.array([a["id"] for a in agents], dtype=np.int64),
        agent_classes=np.array([int(AgentClass.parse(a["cls"])) for a in agents], dtype=np.int8),
        agent_sizes=np.array([a.get("size", (4.5, 1.9)) for a in agents], dtype=float).reshape(n, 2),
        agent_poses=poses,
        agent_velocities=vels,
        agent_valid=np.ones((n, T), dtype=bool),
        map=straight_map() if with_map else None,
        meta=SceneMeta(source="synthetic", scenario_type=scenario_type, extra={"seed": 7}),
    )


def rear_end_scene(with_map: bool = True) -> Scene:
    """Ego 12 m/s; lead car in the lane 40 m ahead at 5 m/s (closing 7 m/s): contact at ~frame 48."""
    return make_scene("hand/rear_end", 12.0, [{"id": 7, "cls": "vehicle", "xy": (40.0, 0.0), "v": (5.0, 0.0)}],
                      "rear_end", with_map)


def pedestrian_scene(with_map: bool = True) -> Scene:
    """Ego 10 m/s; a pedestrian crossing from the right at 1.5 m/s reaches the ego's path ~3 s in."""
    return make_scene("hand/pedestrian", 10.0,
                      [{"id": 3, "cls": "pedestrian", "xy": (35.0, -5.0), "v": (0.0, 1.5), "size": (0.6, 0.6)}],
                      "pedestrian_occluded", with_map)


# ------------------------------------------------------------------------------------------------ projection
def test_boxes_overlap_and_projected_ttc():
    a = box_corners(np.array([0.0, 0.0, 0.0]), 4.0, 2.0)
    assert boxes_overlap(a, box_corners(np.array([3.9, 0.0, 0.3]), 4.0, 2.0))
    assert not boxes_overlap(a, box_corners(np.array([4.1, 0.0, 0.0]), 4.0, 2.0))
    assert not boxes_overlap(a, box_corners(np.array([0.0, 2.5, np.pi / 2]), 1.0, 1.0))
    # closing at 5 m/s from a 10 m gap (centres 14 m apart, boxes 4 m long): contact after 2.0 s
    box = VehicleParameters(length=4.0, width=2.0, wheelbase=2.5, rear_axle_to_center=0.0)
    taus = projection_times(5.0, 0.1)
    log = np.stack([np.arange(100.0) * 1.0, np.zeros(100), np.zeros(100)], axis=1)  # a straight path, 1 m per frame
    track = path_poses(log, np.array([0]), np.array([10.0]), taus)[0]
    ttc = time_to_collision(track, box, [[14.0, 0, 0], [14.0, 5.0, 0]], [[5, 0], [5, 0]], [[4.0, 2.0], [4.0, 2.0]], taus)
    assert ttc[0] == pytest.approx(2.1, abs=0.11) and np.isinf(ttc[1])


def turning_scene(oncoming_start_y: float) -> Scene:
    """The ego turns left at 10 m/s on a 15 m radius (frames 20-43), then drives north along x ~ 35; a car drives
    south at 10 m/s in the oncoming lane of the new road (x = 31.4), starting at ``oncoming_start_y``."""
    x = y = h = 0.0
    poses = []
    w, t_end = 10.0 / 15.0, 2.0 + (math.pi / 2) / (10.0 / 15.0)
    for k in range(T):
        poses.append((x, y, h))
        for j in range(10):  # 0.01 s integration
            om = w if 2.0 <= k * DT + j * DT / 10 < t_end else 0.0
            x, y, h = x + 10.0 * math.cos(h) * DT / 10, y + 10.0 * math.sin(h) * DT / 10, h + om * DT / 10
    poses = np.array(poses)
    ego_v = 10.0 * np.stack([np.cos(poses[:, 2]), np.sin(poses[:, 2])], axis=1)
    agent = np.stack([np.full(T, poses[-1, 0] - 3.5), oncoming_start_y - 10.0 * TIMES, np.full(T, -np.pi / 2)], axis=1)
    return Scene(
        scene_id="hand/turn", dt=DT, ego_poses=poses, ego_velocities=ego_v, agent_ids=np.array([9]),
        agent_classes=np.array([int(AgentClass.VEHICLE)], dtype=np.int8), agent_sizes=np.array([[4.5, 1.9]]),
        agent_poses=agent[None], agent_velocities=np.tile([0.0, -10.0], (1, T, 1)), agent_valid=np.ones((1, T), bool),
        map=None, meta=SceneMeta(source="synthetic", scenario_type="normal"),
    )


def test_path_projection_follows_the_turn_and_finds_no_false_near_miss():
    scene = turning_scene(70.0)
    taus = projection_times(1.5, 0.1)
    # at constant speed along its own log, the projection is the log itself
    track = path_poses(scene.ego_poses, np.array([30]), np.array([10.0]), taus)[0]
    np.testing.assert_allclose(track[::5], scene.ego_poses[30:46:5], atol=5e-3)  # chords vs the arc
    # a constant-yaw-rate projection keeps turning into the oncoming lane and "sees" the car there ...
    t, v, w = 36, 10.0, np.gradient(np.unwrap(scene.ego_poses[:, 2]), DT)[36]
    x0, y0, h0 = scene.ego_poses[t]
    cyr = np.stack([x0 + v / w * (np.sin(h0 + w * taus) - np.sin(h0)), y0 - v / w * (np.cos(h0 + w * taus) - np.cos(h0)),
                    h0 + w * taus], axis=1)
    agent = (scene.agent_poses[:, t], scene.agent_velocities[:, t], scene.agent_sizes)
    assert time_to_collision(cyr, NAVSIM_EGO, *agent, taus)[0] < 1.5
    # ... the ego's own path does not: no near-miss in this normal scene
    ttc, _ = path_ttc_matrix(scene, 1.5)
    assert np.all(np.isinf(ttc)) and find_risk_moments(scene, MomentConfig()) == []
    # the same car 30 m earlier does meet the turning ego: a collision, found
    assert [m.kind for m in find_risk_moments(turning_scene(40.0), MomentConfig())] == ["collision"]


# ------------------------------------------------------------------------------------------------ rules
def test_sector_and_risk_level_rules():
    assert [sector_of(b) for b in (0, 44, 46, -46, 134, 136, -170, 180)] == [
        "front", "front", "left", "right", "left", "rear", "rear", "rear"]
    assert risk_level_of(math.inf, 20.0) == "none"
    assert risk_level_of(1.0, 0.5) == "high"
    assert risk_level_of(2.0, 3.0) == "medium" and risk_level_of(2.0, 9.0) == "high"
    assert risk_level_of(4.0, 3.0) == "low" and risk_level_of(4.0, 9.0) == "medium"



def test_risk_level_boundaries_are_closed_with_a_float_tolerance():
    # issue #25: a contact in exactly 3.0 s was "low" (strict < 3.0; and times summed from 0.1 s steps carry float
    # error, 3 * 0.1 * 10 = 3.0000000000000004). Schema 2.1: closed windows, T <= 1.5 s high, T <= 3.0 s medium,
    # each within LabelConfig.time_tolerance (1e-6 s)
    assert 3 * 0.1 * 10 == 3.0000000000000004 and LabelConfig().time_tolerance == 1e-6
    cases = {  # T [s]: (level at 3 m/s closing, level at 8 m/s closing: the fast-closing raise)
        1.4: ("high", "high"),
        1.5: ("high", "high"),
        15 * 0.1: ("high", "high"),
        1.5000001: ("high", "high"),
        1.51: ("medium", "high"),
        2.9999999: ("medium", "high"),
        3.0: ("medium", "high"),
        3.0000000000000004: ("medium", "high"),
        3.0000001: ("medium", "high"),
        3.01: ("low", "medium"),
        4.9: ("low", "medium"),
    }
    for ttc, (slow, fast) in cases.items():
        assert (risk_level_of(ttc, 3.0), risk_level_of(ttc, 8.0)) == (slow, fast), ttc
    assert risk_level_of(3.00001, 3.0) == "low"  # the tolerance is for float error only (1e-6 s), not 0.1 s
    # the logged contact 3 s ahead of a collision the projection cannot see yet (the lead car brakes later)
    braking = make_scene("hand/braking", 12.0, [{"id": 7, "cls": "vehicle", "xy": (20.0, 0.0), "v": (12.0, 0.0),
                                                  "brake": (2.0, 6.0)}], "rear_end")
    (_, crash), = find_collisions(braking)
    neg = np.stack([12.0 * np.arange(1, 9) * 0.5, np.zeros(8), np.zeros(8)], axis=1)
    label = derive_label(braking, crash - 30, 7, crash, neg, None)
    assert label.ttc_s > 3.0 and label.time_to_contact_s == pytest.approx(3.0)
    assert label.risk_level == "medium"  # schema 2.0: "low"


def test_lateral_excursion_separates_lane_changes_from_curves():
    s = np.linspace(0, 30, 31)
    straight = np.stack([s, 0 * s, 0 * s], axis=1)
    assert lateral_excursion(straight) == pytest.approx(0.0)
    yaw = s / 50.0  # arc of radius 50 m: 9 m of sideways drift, all explained by turning
    arc = np.stack([50 * np.sin(yaw), 50 * (1 - np.cos(yaw)), yaw], axis=1)
    assert lateral_excursion(arc) < 0.05
    lat = 3.5 * (1 - np.cos(np.pi * s / 30)) / 2  # a full lane change to the left
    change = np.stack([s, lat, np.arctan(np.gradient(lat, s))], axis=1)
    assert lateral_excursion(change) == pytest.approx(3.5, abs=0.3)


def test_conflict_classification():
    c = LabelConfig()
    assert classify_conflict("pedestrian", 90, "front", 0, 0, 0) == ("pedestrian", "geometry")
    assert classify_conflict("static", 0, "front", 0, 0, 0) == ("static_obstacle", "geometry")
    assert classify_conflict("vehicle", 2, "front", 0.2, 0.1, 0)[0] == "rear_end"
    assert classify_conflict("vehicle", 10, "front", 3.2, 0.2, 0)[0] == "cut_in"
    assert classify_conflict("vehicle", 5, "left", 0.1, 3.0, 0)[0] == "merge"
    assert classify_conflict("vehicle", 5, "rear", 3.0, 0.0, 0)[0] == "rear_end"
    assert classify_conflict("vehicle", 90, "right", 0, 0, 0)[0] == "crossing"
    assert classify_conflict("vehicle", 178, "front", 0, 0.5, 5)[0] == "head_on"
    assert classify_conflict("vehicle", 178, "front", 0, 5, 60)[0] == "left_turn"
    # ambiguous heading (near 45 deg): the scenario hint breaks the tie, and says so
    assert classify_conflict("vehicle", 47, "front", 3.0, 0.0, 0, "cut_in", c) == ("cut_in", "scenario_hint")
    assert classify_conflict("vehicle", 47, "front", 3.0, 0.0, 0, None, c) == ("crossing", "geometry")
    assert classify_conflict("vehicle", 5, "front", 2.0, 1.8, 0, "merge_conflict", c) == ("merge", "scenario_hint")
    # unambiguous geometry ignores the hint
    assert classify_conflict("vehicle", 90, "front", 3.0, 0.0, 0, "cut_in", c) == ("crossing", "geometry")
    assert classify_conflict("vehicle", 5, "front", 3.0, 0.0, 0, "merge_conflict", c) == ("cut_in", "geometry")


def test_corrective_action_rules():
    t = np.arange(1, 9)[:, None] * 0.5
    neg = np.concatenate([10 * t, 0 * t, 0 * t], axis=1)
    brake = np.concatenate([np.minimum(10 * t - 2 * t**2, 12.5), 0 * t, 0 * t], axis=1)
    left = neg.copy()
    left[:, 1] = np.linspace(0.2, 3.0, 8)
    assert corrective_action(neg, None, "rear_end") == (NO_ACTION, pytest.approx(math.nan, nan_ok=True),
                                                         pytest.approx(math.nan, nan_ok=True))
    assert corrective_action(neg, brake, "rear_end")[0] == "brake"
    assert corrective_action(neg, brake, "pedestrian")[0] == "yield"
    action, lat, _ = corrective_action(neg, left, "rear_end")
    assert action == "swerve_left" and lat == pytest.approx(3.0)
    assert corrective_action(neg, neg * [1.5, 1, 1], "crossing")[0] == "accelerate"
    assert corrective_action(neg, neg + [0.5, 0.1, 0], "crossing")[0] == "keep_lane"
    # schema 2.1: 0.3 m sideways is past the 0.25 m swerve threshold (schema 2.0, 1 m: keep_lane)
    assert corrective_action(neg, neg + [0.5, 0.3, 0], "crossing")[0] == "swerve_left"


# ------------------------------------------------------------------------------------------------ hand-built scenes
def test_rear_end_scene_label_fields():
    scene = rear_end_scene()
    (agent, frame), = find_collisions(scene)
    assert agent == 7 and 45 <= frame <= 50
    t = frame - 20  # 2 s before contact
    rel = relate_agent(scene, t, 7)
    neg = np.stack([12.0 * np.arange(1, 9) * 0.5, np.zeros(8), np.zeros(8)], axis=1)
    brake = np.stack([np.minimum(12 * np.arange(1, 9) * 0.5 - 3 * (np.arange(1, 9) * 0.5) ** 2, 24.0),
                      np.zeros(8), np.zeros(8)], axis=1)
    label = derive_label(scene, t, 7, frame, neg, brake, seed=3)
    assert label.risk_agent_class == "vehicle" and label.sector == "front"
    ego_front_gap = 40 + 5 * t * DT - (12 * t * DT + 1.461)
    assert label.distance_m == pytest.approx(ego_front_gap, abs=1e-6)
    assert label.bearing_deg == pytest.approx(0.0, abs=1e-6)
    assert label.closing_speed_mps == pytest.approx(7.0, abs=1e-6)
    assert label.ttc_s == pytest.approx(2.0, abs=0.1) and label.risk_level == "medium"
    assert label.time_to_contact_s == pytest.approx(2.0) and label.time_kind == "contact"
    assert label.conflict_type == "rear_end" and label.conflict_source == "geometry"
    assert label.action == "brake" and label.progress_change_m < -2
    parsed = parse_explanation(label.explanation)
    for name in ("risk_agent_class", "sector", "risk_level", "action", "conflict_type"):
        assert parsed[name] == getattr(label, name), (name, label.explanation)
    assert parsed["time_kind"] == "contact" and parsed["time_s"] == pytest.approx(2.0)


def test_pedestrian_scene_label_fields():
    scene = pedestrian_scene()
    (agent, frame), = find_collisions(scene)
    assert agent == 3
    t = frame - 10  # 1 s before contact
    neg = np.stack([10.0 * np.arange(1, 9) * 0.5, np.zeros(8), np.zeros(8)], axis=1)
    stop = np.stack([np.minimum(10 * np.arange(1, 9) * 0.5 - 3 * (np.arange(1, 9) * 0.5) ** 2, 10.0),
                     np.zeros(8), np.zeros(8)], axis=1)
    label = derive_label(scene, t, 3, frame, neg, stop, seed=0)
    assert label.risk_agent_class == "pedestrian" and label.conflict_type == "pedestrian"
    assert label.sector == "front" and label.bearing_deg < 0  # ahead, to the right of the heading
    assert label.relative_heading_deg == pytest.approx(90.0)
    assert label.ttc_s <= 1.5 and label.risk_level == "high"
    assert label.action == "yield"
    assert "pedestrian" in label.explanation or "person on foot" in label.explanation
    # a pedestrian still beside the road, far off: right sector at close range
    early = derive_label(scene, frame - 29, 3, frame, neg, None)
    assert early.action == NO_ACTION and early.risk_level in ("low", "medium", "high")
    # hindsight contact time raises the level when the CV projection sees nothing
    assert risk_level_of(min(math.inf, 1.0), 0.0) == "high"


def test_moments_on_hand_built_scenes():
    cfg = MomentConfig(lead_times=(1.0, 2.0, 3.0))
    (m,) = find_risk_moments(rear_end_scene(), cfg)
    assert m.kind == "collision" and m.agent_id == 7 and m.detected_by == "geometry"
    assert m.decision_frames == tuple(m.contact_frame - k for k in (30, 20, 10)) and m.lead_times == (3.0, 2.0, 1.0)
    # following at the same speed 20 m behind a car, a parked car on a parallel road: no moment
    calm = make_scene("hand/calm", 10.0, [{"id": 1, "cls": "vehicle", "xy": (25.0, 0.0), "v": (10.0, 0.0)},
                                          {"id": 2, "cls": "vehicle", "xy": (30.0, 8.0), "v": (0.0, 0.0)}])
    assert find_risk_moments(calm, cfg) == []
    # a crossing car that brakes hard and stops 1.1 m short of the ego's path: near-miss, not a collision
    near = make_scene("hand/near", 10.0, [{"id": 5, "cls": "vehicle", "xy": (40.0, -31.5), "v": (0.0, 10.0),
                                           "brake": (1.7, 5.0)}])
    moments = find_risk_moments(near, cfg)
    assert find_collisions(near) == [] and [m.kind for m in moments] == ["near_miss"]
    assert moments[0].min_ttc < 1.5 and moments[0].agent_id == 5


def test_meta_only_collision_is_mined_and_marked():
    s = make_scene("hand/meta", 10.0, [{"id": 4, "cls": "vehicle", "xy": (30.0, 6.0), "v": (10.0, 0.0)}])
    from dataclasses import replace

    s = replace(s, meta=SceneMeta("synthetic", "cut_in", colliding_agent_id=4, collision_frame=50))
    (m,) = find_risk_moments(s, MomentConfig())
    assert m.detected_by == "meta" and m.contact_frame == 50
    assert find_risk_moments(s, MomentConfig(use_meta=False)) == []


def test_decision_frames_respect_log_bounds():
    scene = rear_end_scene()
    (m,) = find_risk_moments(scene, MomentConfig(lead_times=(1.0, 6.0), min_history=0.5))
    assert m.lead_times == (1.0,) and 6.0 in m.dropped_leads


def test_rollout_scene_detects_collision_and_extrapolates():
    base = rear_end_scene()
    (_, base_contact), = find_collisions(base)
    start, R = 20, 35
    poses = base.ego_poses[start : start + R]
    roll = rollout_to_scene(base, start, poses, base.ego_velocities[start : start + R], origin={"kind": "bank"})
    assert roll.meta.source == "rollout" and roll.num_frames == T
    assert roll.meta.colliding_agent_id == 7 and roll.meta.collision_frame == base_contact
    assert roll.meta.extra["recorded_frames"] == R and roll.meta.extra["base_scene_id"] == base.scene_id
    # decisions are mined only from the rollout's start on (the 3 s lead would need frame base_contact - 30 < 20)
    (m,) = find_risk_moments(roll, MomentConfig(lead_times=(1.0, 3.0)))
    assert m.lead_times == (1.0,) and 3.0 in m.dropped_leads
    # a recording that stops (and is extrapolated at constant velocity) before the contact records no collision
    short = rollout_to_scene(base, start, base.ego_poses[start : start + 10], base.ego_velocities[start : start + 10])
    assert short.meta.collision_frame is None and short.meta.extra["ego_extrapolated"]
    np.testing.assert_allclose(short.ego_poses[30:, 0], base.ego_poses[29, 0] + 1.2 * np.arange(1, T - 29))
    np.testing.assert_array_equal(short.ego_poses[:start], base.ego_poses[:start])
    with pytest.raises(ValueError, match="start_frame"):
        rollout_to_scene(base, T, poses, base.ego_velocities[:R])


# ------------------------------------------------------------------------------------------------ grammar
def _fields(cls, sec, risk, conflict, action):
    return dict(risk_agent_class=cls, sector=sec, risk_level=risk, conflict_type=conflict, action=action,
                distance_m=12.3, ttc_s=math.inf if risk == "none" else 1.4)


def test_explanation_mentions_and_parses_every_combination():
    combos = list(itertools.product(AGENT_CLASSES, SECTORS, RISK_LEVELS, CONFLICT_TYPES, ACTIONS + (NO_ACTION,)))
    for k, combo in enumerate(combos):
        f = _fields(*combo)
        text = explain(f, seed=k)
        parsed = parse_explanation(text)
        assert {n: parsed[n] for n in VOCABULARY} == {n: f[n] for n in VOCABULARY}, text


def test_explanation_is_deterministic_per_seed_and_varies_across_seeds():
    f = _fields("cyclist", "right", "high", "cyclist", "yield")
    assert explain(f, 11) == explain(f, 11)
    assert len({explain(f, s) for s in range(40)}) >= 10


def test_explain_rejects_unknown_values_and_label_validation():
    with pytest.raises(ValueError, match="sector"):
        explain(_fields("vehicle", "above", "high", "rear_end", "brake"))
    with pytest.raises(ValueError, match="risk_level"):
        SafetyLabel(1, "vehicle", "front", 1.0, 0.0, 0.0, 1.0, 1.0, math.inf, "extreme", "rear_end", "geometry",
                    "brake", 0.0, -3.0)


def test_label_accuracy():
    truth = [_fields("vehicle", "front", "high", "rear_end", "brake"), _fields("pedestrian", "right", "low",
                                                                               "pedestrian", NO_ACTION)]
    pred = [parse_explanation(explain(truth[0], 1)), {"risk_agent_class": "pedestrian", "sector": "left",
                                                      "risk_level": "medium", "conflict_type": "pedestrian"}]
    acc = label_accuracy(pred, truth)
    assert acc["risk_agent_class"] == 1.0 and acc["sector"] == 0.5 and acc["risk_level"] == 0.5
    assert acc["action"] == 1.0  # the no-action record is not scored for the action
    assert acc["all_fields"] == 0.5 and acc["risk_level_within_one"] == 1.0


# ------------------------------------------------------------------------------------------------ honest labels
def test_risk_none_never_comes_with_an_evasive_action():
    with pytest.raises(ValueError, match="evasive"):
        SafetyLabel(1, "vehicle", "front", 10.0, 0.0, 0.0, 1.0, math.inf, math.inf, "none", "rear_end", "geometry",
                    "brake", 0.0, -3.0)
    SafetyLabel(1, "vehicle", "front", 10.0, 0.0, 0.0, 1.0, math.inf, math.inf, "none", "rear_end", "geometry",
                "keep_lane", 0.0, 0.0)  # nothing to evade: fine
    # a collision 3 s ahead that the projection cannot see yet (lead car far, same speed now) is still a risk
    scene = rear_end_scene()
    (_, frame), = find_collisions(scene)
    neg = np.stack([12.0 * np.arange(1, 9) * 0.5, np.zeros(8), np.zeros(8)], axis=1)
    brake = neg * [0.5, 1, 1]
    label = derive_label(scene, frame - 30, 7, frame, neg, brake)
    assert label.risk_level != "none" and label.action == "brake"
    # a near-miss moment is never "no risk" either, even where the projection from t sees nothing
    near = derive_label(scene, 5, 7, frame, neg, brake, config=LabelConfig(cv_horizon=2.0), kind="near_miss")
    assert math.isinf(near.ttc_s) and near.risk_level == "low" and near.time_kind == "none"


def test_explanation_says_which_time_it_states():
    # the lead car drives at the ego's speed, then brakes hard: the projection from 3 s before the crash sees nothing
    braking = make_scene("hand/braking", 12.0, [{"id": 7, "cls": "vehicle", "xy": (20.0, 0.0), "v": (12.0, 0.0),
                                                  "brake": (2.0, 6.0)}], "rear_end")
    (_, crash), = find_collisions(braking)
    neg = np.stack([12.0 * np.arange(1, 9) * 0.5, np.zeros(8), np.zeros(8)], axis=1)
    collision = derive_label(braking, crash - 30, 7, crash, neg, None, seed=4)
    parsed = parse_explanation(collision.explanation)
    assert parsed["time_kind"] == "contact" and parsed["time_s"] == pytest.approx(3.0)  # hindsight contact
    assert not abs(collision.ttc_s - 3.0) <= 0.25  # the projection from t says otherwise; it is not what is stated
    scene = rear_end_scene()
    (_, frame), = find_collisions(scene)
    near = derive_label(scene, frame - 10, 7, frame, neg, None, seed=4, kind="near_miss")
    parsed = parse_explanation(near.explanation)
    assert near.time_kind == "projected_ttc" and parsed["time_kind"] == "projected_ttc"
    assert parsed["time_s"] == pytest.approx(round(near.ttc_s, 1)) and math.isinf(near.time_to_contact_s)
    assert parse_explanation("A car ahead, 3 m away, in a rear-end conflict with a high risk; brake.")["time_kind"] == "none"
    with pytest.raises(ValueError, match="time_kind"):
        SafetyLabel(1, "vehicle", "front", 10.0, 0.0, 0.0, 1.0, math.inf, 2.0, "high", "rear_end", "geometry",
                    "brake", 0.0, -3.0, time_kind="projected_ttc")


def test_short_hard_braking_is_labelled_brake_or_yield():
    # a slow ego (4 m/s, a right turn at a 1 s lead) that halves its speed for a moment to let a cyclist pass: its
    # progress shrinks by less than the progress margin (max(2 m, 15 %)), but the speed drops by 2 m/s: it yields
    t = np.arange(1, 9) * 0.5
    neg = np.stack([4.0 * t, 0 * t, 0 * t], axis=1)
    speeds = np.array([2.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    dip = np.stack([np.cumsum(speeds * 0.5), 0 * t, 0 * t], axis=1)
    action, _, progress_change = corrective_action(neg, dip, "cyclist")
    assert action == "yield" and -2.4 < progress_change < 0
    assert corrective_action(neg, dip, "pedestrian")[0] == "yield"
    assert corrective_action(neg, dip, "rear_end")[0] == "brake"
    # without the speed rule it would have been "keep_lane"
    assert corrective_action(neg, dip, "cyclist", LabelConfig(brake_speed_drop=np.inf))[0] == "keep_lane"
    assert corrective_action(neg, neg * [0.97, 1, 1], "pedestrian")[0] == "keep_lane"


# ------------------------------------------------------------------------------------------------ compound actions
def test_split_and_join_action_cover_the_action_vocabulary():
    assert set(ACTIONS) == set(LONGITUDINAL_ACTIONS) | set(LATERAL_ACTIONS) | {"keep_lane"} | set(COMPOUND_ACTIONS)
    assert len(COMPOUND_ACTIONS) == 6 and "brake_swerve_left" in ACTIONS and "accelerate_swerve_right" in ACTIONS
    for action in ACTIONS:
        assert join_action(*split_action(action)) == action
    assert split_action("keep_lane") == (None, None) and split_action("yield") == ("yield", None)
    assert split_action("swerve_right") == (None, "swerve_right")
    assert split_action("yield_swerve_left") == ("yield", "swerve_left")
    for bad in (NO_ACTION, "swerve_left_brake", "brake_keep_lane"):
        with pytest.raises(ValueError):
            split_action(bad)
    with pytest.raises(ValueError, match="lateral"):
        join_action("brake", "keep_lane")
    # risk "none" still only with a passive action: a compound action is an evasive one
    with pytest.raises(ValueError, match="evasive"):
        SafetyLabel(1, "vehicle", "front", 10.0, 0.0, 0.0, 1.0, math.inf, math.inf, "none", "rear_end", "geometry",
                    "brake_swerve_left", 0.5, -3.0)


def _arc(radius: float, speed: float = 10.0) -> np.ndarray:
    """``(8, 3)`` ego-frame poses every 0.5 s on a left arc of ``radius`` [m] (inf: straight) at ``speed`` [m/s]."""
    s = speed * np.arange(1, 9) * 0.5
    if math.isinf(radius):
        return np.stack([s, 0 * s, 0 * s], axis=1)
    a = s / radius
    return np.stack([radius * np.sin(a), radius * (1 - np.cos(a)), a], axis=1)


@pytest.mark.parametrize("radius", [math.inf, 60.0, -60.0])
def test_lateral_evasions_name_the_shift_and_the_speed_change(radius):
    # issue #25: with a 1 m swerve threshold, the search's 0.5 m shifts and the braking shifts (lateral_brake) were
    # labelled yield / brake / keep_lane. The search's own candidates, on a straight and a curved negative: the
    # action names the lateral part (from the offset's sign) and the longitudinal one (from the speed change)
    from counterfactual.search import generate_candidates

    neg = _arc(radius)
    if radius < 0:  # a right curve
        neg = neg * [1, -1, -1]
    cands = generate_candidates(neg, 10.0)
    seen = set()
    for traj, spec in zip(cands.trajectories[1:], cands.specs[1:]):
        for conflict, slow in (("rear_end", "brake"), ("pedestrian", "yield")):
            action, lateral, _ = corrective_action(neg, traj, conflict)
            lon, lat = split_action(action)
            if spec.family in ("lateral", "lateral_brake"):
                assert lateral == pytest.approx(spec.lateral_offset, abs=0.02), spec
                assert lat == ("swerve_left" if spec.lateral_offset > 0 else "swerve_right"), (spec, action)
                assert lon == (slow if spec.family == "lateral_brake" else None), (spec, action)
                seen.add((abs(spec.lateral_offset), spec.family, action))
            else:  # re-timed along the negative's path: no lateral part, every one of them changes speed
                assert abs(lateral) < 1e-6 and lat is None and lon is not None, (spec, action)
    for mag in (0.5, 1.0, 1.5):
        assert {a for m, f, a in seen if m == mag and f == "lateral"} == {"swerve_left", "swerve_right"}
        assert {a for m, f, a in seen if m == mag and f == "lateral_brake"} == {
            "brake_swerve_left", "brake_swerve_right", "yield_swerve_left", "yield_swerve_right"}


def test_compound_actions_from_hand_built_positives():
    t = np.arange(1, 9)[:, None] * 0.5
    neg = np.concatenate([10 * t, 0 * t, 0 * t], axis=1)
    brake_x = np.minimum(10 * t - 2 * t**2, 12.5)
    shift = 0.5 * np.minimum(t / 1.5, 1.0)  # 0.5 m to the side within 1.5 s
    for sign, side in ((1.0, "left"), (-1.0, "right")):
        slow_shift = np.concatenate([brake_x, sign * shift, 0 * t], axis=1)
        assert corrective_action(neg, slow_shift, "rear_end")[0] == f"brake_swerve_{side}"
        assert corrective_action(neg, slow_shift, "crossing")[0] == f"yield_swerve_{side}"
        fast_shift = np.concatenate([15 * t, sign * shift, 0 * t], axis=1)
        assert corrective_action(neg, fast_shift, "crossing")[0] == f"accelerate_swerve_{side}"
        pure_shift = np.concatenate([10 * t, sign * shift, 0 * t], axis=1)
        assert corrective_action(neg, pure_shift, "crossing")[0] == f"swerve_{side}"
    pure_brake = np.concatenate([brake_x, 0 * t, 0 * t], axis=1)
    assert corrective_action(neg, pure_brake, "rear_end")[0] == "brake"
    assert corrective_action(neg, pure_brake, "merge")[0] == "yield"
    # under the threshold (0.25 m, equal to the search's keep-lane tolerance) a lateral wobble is no swerve
    assert LabelConfig().swerve_threshold == 0.25
    wobble = np.concatenate([brake_x, 0.2 * np.ones_like(t), 0 * t], axis=1)
    assert corrective_action(neg, wobble, "rear_end")[0] == "brake"


def test_every_action_round_trips_through_the_explanation():
    for action in ACTIONS + (NO_ACTION,):
        f = _fields("vehicle", "left", "high", "crossing", action)
        texts = {explain(f, seed) for seed in range(60)}
        assert len(texts) > 10
        for text in texts:
            assert parse_explanation(text)["action"] == action, text
    # a compound action is said as "<longitudinal phrase> and <lateral phrase>", any synonym of each
    for f in ({"action": "brake_swerve_left"}, {"action": "yield_swerve_right"}):
        said = {explain(_fields("vehicle", "front", "medium", "crossing", f["action"]), s) for s in range(80)}
        assert any("slow down and steer left" in t or "give way and swerve right" in t for t in said)

    def action_of(clause: str) -> str | None:
        return parse_explanation(f"A car ahead, 9 m away, in a crossing conflict with a high risk; best action: {clause}.")["action"]

    assert action_of("slow down and steer left") == "brake_swerve_left"
    assert action_of("give way and swerve right") == "yield_swerve_right"
    assert action_of("speed up and steer right") == "accelerate_swerve_right"
    assert action_of("steer left") == "swerve_left" and action_of("brake") == "brake"
    assert action_of("stay in lane and slow down") == "brake"  # keeping the lane is the absence of a lateral part
    assert action_of("keep the lane") == "keep_lane"
    # ambiguous within one part -> None
    for clause in ("brake and accelerate", "steer left and steer right", "keep the lane and swerve left",
                   "slow down and give way and steer left", "no safe alternative is known, so brake", "wait"):
        assert action_of(clause) is None, clause


def test_no_vocabulary_phrase_occurs_inside_another_category():
    from counterfactual.language import COMPOUND_PHRASES, _pattern

    phrases = {(name, p) for name, values in VOCABULARY.items() for syn in values.values() for p in syn}
    phrases |= {("action", p) for syn in COMPOUND_PHRASES.values() for p in syn}
    for name, phrase in phrases:
        for other, text in phrases:
            if other != name:
                assert not _pattern(phrase).search(text), (phrase, text)
