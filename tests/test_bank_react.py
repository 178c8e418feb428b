"""Tests of the reacting expert of the outcome-varied bank (envs.scenes.bank.react, ``expert="reacting"``): the rule
(a seen, closing hazard makes the ego brake; an unseen or harmless one leaves the log unchanged), the outcome solver
reaching the wanted outcome against the reacting ego on pinned scenes (verified here from the scene arrays), the
logged banks bit-identical, the reacted logs valid and comfortable, and the decision labels following the ego's
motion (SYNTHETIC scenes)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from envs.scenes.bank import ACCIDENT_TYPES, ScenarioBank, generate_scene
from envs.scenes.bank.actors import Actor, EgoTrack
from envs.scenes.bank.motion import DT, frame_times
from envs.scenes.bank.react import REACTION, _conflict_scalar, conflict_time, min_gap_track, react, seen_frames
from envs.scenes.layouts import Path
from envs.scenes.scene import AgentClass
from envs.scenes.sources import open_source, origin_from_dict, resolve
from rewards.geometry import box_corners, box_distance, boxes_overlap, vehicle_corners
from tests.test_bank_outcomes import bank_digest, geometry_outcome

VARIED_BANK_SHA256 = "475da81b57e3a381bd730e7ff853c3251f19362e2930f794f7378866e64f520a"
"""sha256 of ScenarioBank(40, seed=3, outcomes="varied")'s arrays and meta (:func:`bank_digest`) before the reacting
expert existed (the logged expert's varied bank must not move)."""
VARIED_FAMILIES_SHA256 = "bf990655378b3175828ec474d6ad5ac26b0d5a42fa6b9cdf8c5d33474e9acc6c"
"""The same for ScenarioBank(24, seed=3, outcomes="varied", roads="families")."""


def road(length: float = 400.0) -> Path:
    return Path.from_points(np.array([[0.0, 0.0], [length, 0.0]]))


def cruising_ego(v: float = 10.0, s0: float = 50.0) -> EgoTrack:
    return EgoTrack(road(), s0 + v * frame_times())


def test_a_seen_closing_hazard_makes_the_ego_brake():
    """A vehicle stopped in the ego lane 80 m ahead: seen from 50 m, conflict projected 3 s ahead, braking 0.5 s
    later, the ego stops short of it (and then creeps: nothing is projected within 4 s at a crawl), the log before
    the reaction is the plan's bit for bit."""
    ego = cruising_ego()
    lead = Actor(AgentClass.VEHICLE, 4.5, 1.8, road(), np.full(101, 50.0 + 80.0), role="risk")
    reacted, facts = react(ego, lead)
    assert facts.perceived_frame is not None and facts.brake_frame == facts.perceived_frame + 5
    k = facts.brake_frame
    assert np.array_equal(reacted.s[: k + 1], ego.s[: k + 1])
    speed = np.diff(reacted.s) / DT
    assert speed.min() < 0.5 and speed[k - 1] == pytest.approx(10.0)  # brakes (to a stop here)
    accel = np.diff(speed) / DT
    assert accel.min() >= -REACTION.decel - 1e-9 and np.abs(np.diff(accel) / DT).max() <= REACTION.jerk + 1e-6
    gap, _ = min_gap_track(reacted, lead)
    assert gap > 0.5 and min_gap_track(ego, lead)[0] == 0.0  # the plan would have hit it


def test_an_unseen_or_harmless_hazard_leaves_the_log_unchanged():
    ego = cruising_ego()
    # beyond the sight range for the whole log (ahead, driving away faster)
    far = Actor(AgentClass.VEHICLE, 4.5, 1.8, road(), 50.0 + 60.0 + 14.0 * frame_times(), role="risk")
    assert not seen_frames(ego, far).any()
    assert react(ego, far)[0] is ego
    # seen, but on a parallel lane 3.5 m to the left at the same speed: no projected conflict
    beside = Actor(AgentClass.VEHICLE, 4.5, 1.8, road(), 60.0 + 10.0 * frame_times(), lateral=np.full(101, 3.5))
    reacted, facts = react(ego, beside)
    assert reacted is ego and facts.brake_frame is None


def test_an_occluder_delays_perception():
    """A pedestrian steps out from behind a van parked beside the ego lane: the van on the sight line hides it
    until it is out (frame 48 instead of 21), so the ego perceives the conflict later and brakes less."""
    ego = cruising_ego(12.0, 0.0)
    t = frame_times()
    walk = Path.from_points(np.array([[76.0, -3.0], [76.0, 6.0]]))
    ped = Actor(AgentClass.PEDESTRIAN, 0.6, 0.6, walk, np.clip(1.5 * (t - 4.0), 0.0, None), role="risk")
    van = Actor(AgentClass.VEHICLE, 5.5, 2.1, Path.from_points(np.array([[72.0, -2.9], [73.5, -2.9]])),
                np.full(101, 0.75), role="prop")
    assert np.flatnonzero(seen_frames(ego, ped))[0] == 21 and np.flatnonzero(seen_frames(ego, ped, [van]))[0] == 48
    _, open_view = react(ego, ped)
    _, hidden = react(ego, ped, [van])
    assert open_view.perceived_frame == 40 and hidden.perceived_frame == 48  # (walks from frame 40)
    assert hidden.min_speed > open_view.min_speed + 2.0


def test_scalar_and_vector_conflict_times_agree():
    rng = np.random.default_rng(0)
    args = rng.uniform(-20, 20, size=(200, 4))
    args[:20, 2:] = 0.0  # no relative motion
    hx, hy = rng.uniform(1.0, 5.0, size=(2, 200))
    vec = conflict_time(args[:, 0], args[:, 1], args[:, 2], args[:, 3], hx, hy, 3.0)
    scal = [_conflict_scalar(*a, x, y, 3.0) for a, x, y in zip(args, hx, hy)]
    assert np.allclose(vec, scal, rtol=0, atol=1e-12) and np.isfinite(vec).any() and np.isinf(vec).any()


@functools.lru_cache(maxsize=None)
def reacting(scenario_type: str, seed: int, outcome: str):
    return generate_scene(scenario_type, seed, outcome=outcome, expert="reacting")


PINNED = [("rear_end", 0, "near_miss"), ("red_light_runner_left", 0, "near_miss"), ("pedestrian_occluded", 2, "near_miss"),
          ("cut_in", 1, "near_miss"), ("right_turn_vru", 1, "benign"), ("rear_end", 2, "benign")]
"""Pinned scenes whose outcome the solver reaches against an ego that does react."""


@pytest.mark.parametrize("scenario_type,seed,outcome", PINNED)
def test_the_solver_reaches_the_outcome_against_the_reacting_ego(scenario_type, seed, outcome):
    scene = reacting(scenario_type, seed, outcome)
    logged = generate_scene(scenario_type, seed, outcome=outcome)
    extra = scene.meta.extra
    assert extra["outcome"] == outcome == geometry_outcome(scene)[0], extra
    assert extra["min_gap_m"] == pytest.approx(geometry_outcome(scene)[1], abs=2e-3)
    assert extra["expert"] == "reacting" and extra["reaction"]["brake_frame"] is not None
    k = extra["reaction"]["brake_frame"]
    speed = scene.ego_speeds
    assert speed[k : k + 30].min() < speed[k] - 0.5  # it brakes (within 3 s of the onset)
    assert not np.array_equal(scene.ego_poses, logged.ego_poses)
    # no contact with any agent; the stated outcome holds against the reacted log, not the plan
    ego = vehicle_corners(scene.ego_poses, scene.ego_params)
    agents = box_corners(scene.agent_poses, scene.agent_sizes[:, None, 0], scene.agent_sizes[:, None, 1])
    assert not boxes_overlap(ego[None], agents).any()


def test_collision_and_normal_scenes_keep_the_inattentive_logged_ego():
    for t in ("rear_end", "red_light_runner_right", "normal"):
        a = generate_scene(t, 5, outcome="collision" if t != "normal" else "benign")
        b = generate_scene(t, 5, outcome="collision" if t != "normal" else "benign", expert="reacting")
        assert np.array_equal(a.ego_poses, b.ego_poses) and np.array_equal(a.agent_poses, b.agent_poses)
        assert b.meta.extra["expert"] == "reacting" and "reaction" not in b.meta.extra


def test_logged_banks_are_bit_identical():
    assert bank_digest(ScenarioBank(40, seed=3, outcomes="varied")) == VARIED_BANK_SHA256
    assert bank_digest(ScenarioBank(24, seed=3, outcomes="varied", roads="families")) == VARIED_FAMILIES_SHA256
    assert "expert" not in ScenarioBank(4, seed=3, outcomes="varied")[0].meta.extra


def test_min_gap_track_is_box_distance_over_every_frame():
    for scene_args in (("rear_end", 3, "near_miss"), ("right_turn_vru", 2, "benign")):
        core_scene = generate_scene(scene_args[0], scene_args[1], outcome=scene_args[2])
        n = core_scene.agent_index(core_scene.meta.extra["hazard_agent_id"])
        ego = vehicle_corners(core_scene.ego_poses, core_scene.ego_params)
        agent = box_corners(core_scene.agent_poses[n], *core_scene.agent_sizes[n])
        gaps = box_distance(ego, agent)
        assert core_scene.meta.extra["min_gap_m"] == round(float(gaps.min()), 3)


@pytest.mark.parametrize("scenario_type", ACCIDENT_TYPES)
def test_reacted_logs_are_valid(scenario_type):
    """The validity checks of tests/test_bank.py on reacting near-miss / benign scenes: speed, acceleration and yaw
    bounds, on the route, on the drivable area, no contact with anyone."""
    from envs.sim.scoring import map_geometry_from_scene_map
    from rewards.map_index import map_index_for

    for seed in range(4):
        for outcome in ("near_miss", "benign"):
            scene = reacting(scenario_type, seed, outcome)
            speed = scene.ego_speeds
            accel = np.diff(speed) / scene.dt
            assert speed.max() <= 14.0 and speed[0] > 3.0 and speed.min() >= 0.0, scene.scene_id
            assert -4.05 <= accel.min() and accel.max() <= 2.5, (scene.scene_id, accel.min(), accel.max())
            assert np.abs(np.diff(np.unwrap(scene.ego_poses[:, 2])) / scene.dt).max() < 1.0
            route = Path.from_points(scene.map.route)
            _, d = route.project(scene.ego_poses[:, :2])
            end = scene.meta.extra.get("drift_start_frame", scene.num_frames)
            assert np.abs(d[:end]).max() < 0.3, scene.scene_id
            index = map_index_for(map_geometry_from_scene_map(scene.map))
            end = scene.meta.collision_frame if scene.meta.is_accident else scene.num_frames
            corners = vehicle_corners(scene.ego_poses[:end], scene.ego_params)
            assert index.contains(corners.reshape(-1, 2))[:, index.drivable_columns].any(axis=1).all()
            if scene.meta.extra["outcome"] != "collision":
                agents = box_corners(scene.agent_poses, scene.agent_sizes[:, None, 0], scene.agent_sizes[:, None, 1])
                ego = vehicle_corners(scene.ego_poses, scene.ego_params)
                assert not boxes_overlap(ego[None], agents).any(), scene.scene_id


def test_braking_frames_stay_comfortable_where_the_logged_ones_were():
    """The PDM scorer's comfort of the tracked 4 s log, frames around the reaction, reacting vs logged expert."""
    from envs.sim.scoring import problem_from_scene, trajectory_from_log
    from rewards.config import PDMConfig
    from rewards.pdm import score_states
    from rewards.tracking import simulate_candidates

    pdm = PDMConfig()

    def comfort(scene, t):
        problem = problem_from_scene(scene, t, pdm)
        states = simulate_candidates(problem.ego, trajectory_from_log(scene, t, pdm)[None], pdm)
        return float(score_states(problem, states, pdm).comfort[0])

    checked = 0
    for scenario_type, seed, outcome in PINNED[:3]:
        scene, logged = reacting(scenario_type, seed, outcome), generate_scene(scenario_type, seed, outcome=outcome)
        k = scene.meta.extra["reaction"]["brake_frame"]
        for t in range(max(20, k - 10), min(k + 25, 56), 5):
            if comfort(logged, t) == 1.0:
                assert comfort(scene, t) == 1.0, (scene.scene_id, t)
                checked += 1
    assert checked >= 8


def test_decision_labels_follow_the_reacting_ego():
    """A decision frame before the braking onset: the logged future brakes, so the action says so (the logged
    expert's keeps its lane at the same frame)."""
    from counterfactual.frame_labels import frame_label

    scene = reacting("red_light_runner_left", 0, "near_miss")
    logged = generate_scene("red_light_runner_left", 0, outcome="near_miss")
    k = scene.meta.extra["reaction"]["brake_frame"]
    label = frame_label(scene, k)
    assert label.hazard is not None and label.hazard.action.startswith("yield"), label.fields()
    assert frame_label(logged, k).fields()["action"] in ("keep_lane", None)


def test_errors_and_origins():
    with pytest.raises(ValueError, match="expert"):
        ScenarioBank(4, outcomes="varied", expert="careful")
    with pytest.raises(ValueError, match="outcomes='varied'"):
        ScenarioBank(4, expert="reacting")
    with pytest.raises(ValueError, match="expert"):
        generate_scene("cut_in", 0, expert="reacting")
    source = open_source("bank", num_scenes=10, seed=4, outcomes="varied", expert="reacting")
    assert source.collection.expert == "reacting" and "expert='reacting'" in repr(source.collection)
    for i in (1, 6):
        scene = source[i]
        again = resolve(origin_from_dict(source.origin(i).to_dict()))
        assert np.array_equal(again.ego_poses, scene.ego_poses) and again.meta.extra == scene.meta.extra


def test_mine_cli_mines_the_reacting_bank(tmp_path, capsys):
    """``python -m counterfactual.mine --outcomes varied --expert reacting`` mines the reacting bank and prints the
    pairs by scene outcome; ``--expert reacting`` alone is refused."""
    from counterfactual.mine import main

    out = tmp_path / "pairs.parquet"
    assert main(["--num-scenes", "6", "--seed", "5", "--outcomes", "varied", "--expert", "reacting",
                 "--scenario-types", "rear_end,cut_in", "--near-miss-rule", "clearance", "--out", str(out),
                 "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert out.exists() and "pairs by scene outcome" in text
    with pytest.raises(SystemExit, match="needs --outcomes varied"):
        main(["--num-scenes", "2", "--expert", "reacting", "--out", str(tmp_path / "x.parquet")])


def test_bench_react_prints_both_experts(capsys):
    """``python -m benchmarks.bench_react`` (small): one line per step and expert, the counts add up."""
    from benchmarks.bench_react import main

    main(["--what", "actions,safe", "--scenes", "8"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[:2] for ln in lines] == [["actions", "logged"], ["actions", "reacting"], ["safe", "logged"],
                                                ["safe", "reacting"]]
    assert "braking / yielding" in lines[1] and "near-miss window frames" in lines[3]
