"""Positives verified as executed: each check (a)-(d) alone rejects a hand-built candidate, the clearance margin holds
for every realisation by default, no oncoming lane, braking before swerving, the batched closed-loop following equals
the replay env, box gaps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from counterfactual.search import CandidateSet, CandidateSpec, SearchConfig, _quintic, choose_positive, result_arrays
from counterfactual.verify import CHECKS, VerifyConfig, verify_candidates
from envs.replay_env import EnvConfig, ReplayEnv
from envs.scenes.scene import AgentClass, Lane, Scene, SceneMap, SceneMeta
from envs.sim.scoring import problem_from_scene
from envs.sim.simulation import follow_trajectories
from rewards.config import PDMConfig
from rewards.geometry import box_corners, box_distance, local_to_world, world_to_local
from rewards.scorer import score_group
from rewards.tracking import track_poses_each, track_poses_with_steering, interpolate_candidates

DT, T = 0.1, 100
TIMES = np.arange(1, 9) * 0.5  # pose times of a trajectory [s]
T0 = 10  # decision frame


def road_map() -> SceneMap:
    """Two eastbound lanes (ego's at y = 0, another at y = -3.5), one westbound lane at y = 3.5, a 2.25 m shoulder
    on the right; the route runs along the ego's lane (both eastbound lanes are on route)."""
    e0 = Lane(0, np.array([[-100.0, 0.0], [400.0, 0.0]]))
    e1 = Lane(1, np.array([[-100.0, -3.5], [400.0, -3.5]]))
    w0 = Lane(2, np.array([[400.0, 3.5], [-100.0, 3.5]]))
    area = np.array([[-100.0, -7.5], [400.0, -7.5], [400.0, 5.25], [-100.0, 5.25]])
    return SceneMap(drivable_areas=(area,), lanes=(e0, e1, w0), route_lane_ids=(0, 1), route=e0.centerline)


def road_scene(speed: float, agents: list[dict], scenario_type: str = "normal") -> Scene:
    """The ego drives along y = 0 at ``speed``; agents ``{"xy", "v", "cls", "size", "yaw"}`` at constant velocity."""
    t = np.arange(T) * DT
    n = len(agents)
    poses, vels = np.zeros((n, T, 3)), np.zeros((n, T, 2))
    for i, a in enumerate(agents):
        v = np.asarray(a.get("v", (0.0, 0.0)), dtype=float)
        poses[i, :, :2] = np.asarray(a["xy"], dtype=float) + t[:, None] * v
        poses[i, :, 2] = a.get("yaw", 0.0)
        vels[i] = v
    return Scene(
        scene_id=f"hand/verify/{scenario_type}", dt=DT,
        ego_poses=np.stack([speed * t, 0 * t, 0 * t], axis=1), ego_velocities=np.tile([speed, 0.0], (T, 1)),
        agent_ids=np.arange(1, n + 1, dtype=np.int64),
        agent_classes=np.array([int(AgentClass.parse(a.get("cls", "vehicle"))) for a in agents], dtype=np.int8),
        agent_sizes=np.array([a.get("size", (4.5, 1.9)) for a in agents], dtype=float).reshape(n, 2),
        agent_poses=poses, agent_velocities=vels, agent_valid=np.ones((n, T), dtype=bool), map=road_map(),
        meta=SceneMeta(source="synthetic", scenario_type=scenario_type),
    )


def straight(speed: float) -> np.ndarray:
    return np.stack([speed * TIMES, 0 * TIMES, 0 * TIMES], axis=1)


def lateral(speed: float, offset: float, duration: float) -> np.ndarray:
    traj = straight(speed)
    traj[:, 1] = offset * _quintic(TIMES / duration)
    return traj


def verify(scene: Scene, candidate: np.ndarray, config: VerifyConfig = VerifyConfig()) -> dict[str, bool]:
    problem = problem_from_scene(scene, T0)
    arrays = result_arrays(score_group(problem, candidate[None]))
    v = verify_candidates(scene, problem, candidate[None], arrays, config=config)
    return {name: bool(getattr(v, name)[0]) for name in CHECKS}


def only_fails(result: dict[str, bool], check: str) -> bool:
    return not result[check] and all(ok for name, ok in result.items() if name != check)


# ------------------------------------------------------------------------------------------- each check alone
def test_scorer_check_alone_rejects_late_braking():
    # braking at 6 m/s^2 stops 1.8 m behind a stopped car: no contact, clear by > 0.5 m, but TTC = 0 on the way
    scene = road_scene(10.0, [{"xy": (27.3, 0.0)}])
    brake = np.minimum(10.0 * TIMES - 3.0 * TIMES**2, 50.0 / 6.0)
    result = verify(scene, np.stack([brake, 0 * brake, 0 * brake], axis=1))
    assert only_fails(result, "scorer"), result


def test_raw_pose_check_alone_rejects_what_the_tracker_smooths_away():
    # a 2 m jump to the right at 0.5 s and back: the tracker barely leaves the lane, the raw poses hit a cone
    jump = straight(10.0)
    jump[0, 1] = -2.0
    scene = road_scene(10.0, [{"xy": (16.46, -2.5), "cls": "static", "size": (0.6, 0.6)}])
    result = verify(scene, jump, VerifyConfig(clearance_over=("tracked",)))  # the margin on the scorer's rollout only
    assert only_fails(result, "raw_poses"), result
    # by default the margin also holds for the raw poses: an overlap (a gap of 0 m) fails it too
    result = verify(scene, jump)
    assert not result["raw_poses"] and not result["clearance"] and result["scorer"] and result["closed_loop"], result


def test_closed_loop_check_alone_rejects_what_only_replanning_hits():
    # a fast lane change to the right: the tracked rollout clears a cone in the old lane by 1.2 m, the raw poses by
    # 0.8 m, but re-planning every 0.5 s with the remainder lags further behind and hits it
    scene = road_scene(10.0, [{"xy": (41.5, -1.2), "cls": "static", "size": (0.6, 0.6)}])
    result = verify(scene, lateral(10.0, -3.5, 1.0), VerifyConfig(clearance_over=("tracked",)))
    assert only_fails(result, "closed_loop"), result
    result = verify(scene, lateral(10.0, -3.5, 1.0))  # default: the closed loop's contact fails the margin too
    assert not result["closed_loop"] and not result["clearance"] and result["raw_poses"], result


def test_clearance_check_alone_rejects_a_close_pass():
    # passing a parked cone 0.3 m beside the ego box, in every realisation
    scene = road_scene(10.0, [{"xy": (40.0, 1.1485 + 0.3 + 0.3), "cls": "static", "size": (0.6, 0.6)}])
    result = verify(scene, straight(10.0))
    assert only_fails(result, "clearance"), result
    assert verify(scene, straight(10.0), VerifyConfig(clearance_margin=0.2))["clearance"]


def test_clearance_margin_holds_as_executed_by_default():
    # the 2 m jump of the raw-pose test with the cone 0.2 m beside the raw poses (no overlap) and > 2 m from the
    # tracked rollout and the closed loop: the default margin (every realisation) rejects it, the tracked-only
    # margin (the old default) let it pass
    jump = straight(10.0)
    jump[0, 1] = -2.0
    scene = road_scene(10.0, [{"xy": (16.46, -3.65), "cls": "static", "size": (0.6, 0.6)}])
    problem = problem_from_scene(scene, T0)
    arrays = result_arrays(score_group(problem, jump[None]))
    v = verify_candidates(scene, problem, jump[None], arrays)
    assert VerifyConfig().clearance_over == ("tracked", "raw_poses", "closed_loop")
    assert 0.15 < v.raw_clearance_m[0] < 0.25 and v.clearance_m[0] > 0.5 and v.closed_loop_clearance_m[0] > 0.5
    assert only_fails({name: bool(getattr(v, name)[0]) for name in CHECKS}, "clearance")
    assert verify(scene, jump, VerifyConfig(clearance_over=("tracked",)))["clearance"]
    assert not verify(scene, jump, VerifyConfig(clearance_over=("raw_poses",)))["clearance"]
    assert verify(scene, jump, VerifyConfig(clearance_margin=0.15))["clearance"]


def test_no_oncoming_rejects_a_slow_swerve_that_ddc_allows():
    # at 1.5 m/s a swerve into the westbound lane progresses < 2 m per second there: DDC stays 1, the check does not
    scene = road_scene(1.5, [])
    left = lateral(1.5, 3.0, 2.0)
    problem = problem_from_scene(scene, T0)
    arrays = result_arrays(score_group(problem, np.stack([left, lateral(1.5, -3.0, 2.0)])))
    assert arrays["ddc"][0] == 1.0
    v = verify_candidates(scene, problem, np.stack([left, lateral(1.5, -3.0, 2.0)]), arrays)
    assert not v.no_oncoming[0] and v.no_oncoming[1]  # into the same-direction lane is fine
    assert v.safe[1]


# ------------------------------------------------------------------------------------------- selection
def test_braking_wins_over_an_equally_safe_swerve():
    # a car stopped 45 m ahead of the ego in its lane; the lane on the right is free: braking and a lane change are
    # both verified safe, and the positive is the braking one
    scene = road_scene(10.0, [{"xy": (100.0, 0.0)}])
    specs = (CandidateSpec("log"), CandidateSpec("brake", decel=2.0), CandidateSpec("lateral", lateral_offset=-3.5,
                                                                                     lateral_duration=3.0))
    brake = np.minimum(10.0 * TIMES - 1.0 * TIMES**2, 25.0)
    trajs = np.stack([straight(10.0), np.stack([brake, 0 * brake, 0 * brake], axis=1), lateral(10.0, -3.5, 3.0)])
    problem = problem_from_scene(scene, T0 + 40)
    arrays = result_arrays(score_group(problem, trajs))
    v = verify_candidates(scene, problem, trajs, arrays)
    assert v.safe[1] and v.safe[2], {n: getattr(v, n) for n in CHECKS}
    assert arrays["pdms"][2] > arrays["pdms"][1] + 0.02  # the swerve keeps more progress: the old rule took it
    sel = choose_positive(CandidateSet(trajs, specs), arrays, True, verification=v)
    assert sel.index == 1 and sel.keep_lane[1] and not sel.keep_lane[2]
    # with no safe braking candidate the lateral evasion is taken
    v_brake_unsafe = type(v)(**{**v.__dict__, "clearance": np.array([True, False, True])})
    assert choose_positive(CandidateSet(trajs, specs), arrays, True, verification=v_brake_unsafe).index == 2


def test_no_safe_positive_names_the_execution_checks():
    scene = road_scene(10.0, [{"xy": (40.0, 1.1485 + 0.3 + 0.3), "cls": "static", "size": (0.6, 0.6)}])
    trajs = np.stack([straight(10.0) * [1.0, 1, 1], straight(9.0)])
    problem = problem_from_scene(scene, T0)
    arrays = result_arrays(score_group(problem, trajs))
    arrays["collision"][0] = True  # the "negative"
    v = verify_candidates(scene, problem, trajs, arrays)
    sel = choose_positive(CandidateSet(trajs, (CandidateSpec("log"), CandidateSpec("speed_scale", speed_scale=0.9))),
                          arrays, True, verification=v)
    assert sel.index is None and sel.reason_code == "execution" and "1 fail clearance" in sel.reason


# ------------------------------------------------------------------------------------------- machinery
def test_batched_following_equals_the_replay_env():
    scene = road_scene(10.0, [])
    trajs = np.stack([lateral(10.0, -3.5, 1.5), lateral(10.0, 2.0, 3.0), straight(7.0)])
    problem = problem_from_scene(scene, T0)
    states, steering = follow_trajectories(problem.ego, trajs, PDMConfig())
    env = ReplayEnv([scene], mode="closed_loop", config=EnvConfig(bev=None, reward_mode="lazy", log_end_margin=0.5))
    for g, traj in enumerate(trajs):
        env.reset(options={"scene_id": scene.scene_id, "t": T0})
        world = local_to_world(traj, scene.ego_poses[T0])
        step = world[-1, :2] - world[-2, :2]
        plan = np.concatenate([world, np.concatenate([world[-1, :2] + step * np.arange(1, 9)[:, None],
                                                      np.full((8, 1), world[-1, 2])], axis=1)])
        for k in range(8):
            env.step(world_to_local(plan[k : k + 8], env.ego_poses[env.t]))
        np.testing.assert_allclose(env.ego_poses[T0 + 1 : T0 + 41], states[g, 1:, :3], atol=1e-9)
    assert np.any(np.abs(steering) > 1e-3)  # the steering angle is carried, not reset


def test_batched_tracker_equals_one_at_a_time():
    scene = road_scene(10.0, [])
    problem = problem_from_scene(scene, T0)
    trajs = np.stack([lateral(10.0, -3.5, 1.5), straight(7.0)])
    poses = interpolate_candidates(problem.ego, trajs, PDMConfig())
    init = np.array([[0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 9.0, 0.0, -1.0, 0.0]])
    init[:, :3] = problem.ego.pose
    steer = np.array([0.05, -0.02])
    batch, batch_steer = track_poses_each(init, steer, poses, 0.1, problem.ego.params, 5)
    from dataclasses import replace

    for g in range(2):
        ego = replace(problem.ego, velocity=init[g, 3:5], acceleration=init[g, 5:7], steering_angle=float(steer[g]))
        one, one_steer = track_poses_with_steering(ego, poses[g : g + 1], 0.1, num_steps=5)
        np.testing.assert_array_equal(batch[g], one[0])
        np.testing.assert_array_equal(batch_steer[g], one_steer[0])
    with pytest.raises(ValueError, match="num_steps"):
        track_poses_each(init, steer, poses, 0.1, problem.ego.params, 41)


def test_box_distance():
    a = box_corners(np.array([0.0, 0.0, 0.0]), 4.0, 2.0)
    assert box_distance(a, box_corners(np.array([5.0, 0.0, 0.0]), 4.0, 2.0)) == pytest.approx(1.0)
    assert box_distance(a, box_corners(np.array([0.0, 2.5, 0.0]), 4.0, 2.0)) == pytest.approx(0.5)
    assert box_distance(a, box_corners(np.array([3.0, 0.0, 0.3]), 4.0, 2.0)) == 0.0  # overlap
    # corner to corner: a box rotated 45 deg whose corner points at a's corner (2, 1) from (2 + d, 1 + d)
    d = 1.0
    b = box_corners(np.array([2.0 + d + math.sqrt(2), 1.0 + d + math.sqrt(2), math.pi / 4]), 4.0, 4.0)
    assert box_distance(a, b) == pytest.approx(math.hypot(d, d))


def test_compiled_gaps_equal_the_geometry():
    # min_gaps (compiled, pruned by bounding circles) against box_distance over every pair
    from rewards.clearance import min_gaps

    rng = np.random.default_rng(0)
    scene = road_scene(10.0, [{"xy": tuple(rng.uniform([0, -6], [60, 6])), "yaw": float(rng.uniform(-3, 3)),
                               "size": tuple(rng.uniform([0.5, 0.5], [5, 2.5])), "v": tuple(rng.uniform(-3, 3, 2))}
                              for _ in range(12)])
    problem = problem_from_scene(scene, T0)
    poses = np.concatenate([rng.uniform([0, -5], [60, 5], (40, 3, 2)), rng.uniform(-3, 3, (40, 3, 1))], axis=2)
    steps = np.array([1, 20, 40])
    gaps = min_gaps(poses, problem, steps, reach=100.0)
    from rewards.geometry import vehicle_corners

    ego = vehicle_corners(poses, problem.ego.params)[:, :, None]  # (G, K, 1, 4, 2)
    ag = problem.agents
    boxes = box_corners(ag.poses[:, steps], ag.sizes[:, 0, None], ag.sizes[:, 1, None])  # (N, K, 4, 2)
    brute = box_distance(ego, np.swapaxes(boxes, 0, 1)[None]).min(axis=(1, 2))
    np.testing.assert_allclose(gaps, brute, atol=1e-12)
    assert np.any(gaps == 0.0) and np.any(gaps > 0.0)
    capped = min_gaps(poses, problem, steps, reach=0.5)
    assert np.all(np.isclose(capped, brute, rtol=0, atol=1e-12) | ((brute >= 0.5) & np.isinf(capped)))


def test_verify_config_validation():
    with pytest.raises(ValueError, match="clearance_margin"):
        VerifyConfig(clearance_margin=-0.1)
    with pytest.raises(ValueError, match="clearance_over"):
        VerifyConfig(clearance_over=("tracked", "imagined"))
    with pytest.raises(ValueError, match="keep_lane_tolerance"):
        SearchConfig(keep_lane_tolerance=0.0)
