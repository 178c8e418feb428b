"""Closed-loop start steering (``EnvConfig.start_steering``): a mid-turn start keeps turning, the scorer's open-loop
start stays NAVSIM's (straight wheels), and junction-turn episodes that left the road now stay on it.

The pinned episodes are normal junction left turns of ``ScenarioBank(48, seed=5000, normal_fraction=1.0)`` (SYNTHETIC;
a scene's content depends on its index, not on the bank's size) that start inside the turn's arc (radius 11.25 m on
``junction_2x1``): with straight wheels the ego drifts to the outside of the turn and its front-right corner crosses
the curb (``python -m benchmarks.bench_oracle --num-scenes 48 --seeds 5000 --scenario-types normal``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.base import policy_input
from agents.baselines import make_baseline
from envs.replay_env import START_STEERING, EnvConfig, ReplayEnv
from envs.scenes.bank import ScenarioBank
from envs.sim.scoring import logged_steering_angle, problem_from_scene
from rewards.tracking import MAX_STEERING_ANGLE

BANK = ScenarioBank(11, seed=5000, normal_fraction=1.0)
"""The first 11 scenes of the 48-scene bank of the finding (scenes 3, 7 and 10 are ``junction_left`` on
``junction_2x1``)."""
LEFT_TURN_RADIUS = 11.25
"""Arc radius of the ``S_in0>W_out0`` connector of ``junction_2x1`` [m] (the shorter tangent length of
:func:`envs.scenes.layouts._turn`: 3.5 m lanes + the 6 m curb margin + half a lane)."""
RIGHT_TURN_RADIUS = 7.75
"""Arc radius of the ``S_in0>E_out0`` connector of ``junction_1x1`` [m]."""
OFFROAD_BEFORE = {"log_replay": ((3, 54), (7, 57), (10, 57)), "pdm_closed_like": ((3, 54), (7, 57))}
"""(scene index, start frame) of closed-loop episodes that ended off the road with straight wheels at the start."""


def _episode(env: ReplayEnv, policy_name: str, index: int, start: int) -> str:
    """The termination reason of one closed-loop episode of a baseline from frame ``start`` of scene ``index``."""
    policy = make_baseline(policy_name)
    obs, info = env.reset(seed=0, options={"scene_index": index, "t": start})
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(policy.act(policy_input(env, obs, info, True)))
        done = terminated or truncated
    return info["termination_reason"]


def test_logged_steering_angle_is_the_bicycle_steering_of_the_logged_path():
    """Mid-arc of the junction left turn the logged path's steering is ``atan(L / R)``; on the straight approach 0;
    a stopped ego gives 0; never beyond the tracker's limit."""
    scene = BANK[7]
    assert scene.meta.extra["variant"] == "junction_left" and scene.meta.extra["layout"] == "junction_2x1"
    wheelbase = scene.ego_params.wheelbase
    angles = np.array([logged_steering_angle(scene, t) for t in range(scene.num_frames)])
    assert np.all(np.abs(angles) <= MAX_STEERING_ANGLE)
    assert angles[57] == pytest.approx(np.arctan(wheelbase / LEFT_TURN_RADIUS), abs=2e-3)  # 0.268 rad, left: > 0
    assert abs(angles[5]) < 1e-6  # the straight approach
    stopped = dataclasses.replace(scene, ego_poses=np.repeat(scene.ego_poses[57:58], scene.num_frames, axis=0),
                                  ego_velocities=np.zeros_like(scene.ego_velocities))
    assert logged_steering_angle(stopped, 57) == 0.0
    right = BANK[0]  # junction_1x1 right turn: arc radius 7.75 m, steering to the right (< 0)
    assert right.meta.extra["variant"] == "junction_right" and right.meta.extra["layout"] == "junction_1x1"
    right_angles = [logged_steering_angle(right, t) for t in range(right.num_frames)]
    assert min(right_angles) == pytest.approx(-np.arctan(wheelbase / RIGHT_TURN_RADIUS), abs=2e-3)
    assert max(right_angles) <= 1e-6
    cruise = BANK[5]
    assert cruise.meta.extra["variant"] == "cruise"
    assert max(abs(logged_steering_angle(cruise, t)) for t in range(cruise.num_frames)) < 1e-6


def test_start_steering_changes_the_closed_loop_start_only():
    """``"log"``: the closed-loop episode starts from the logged steering angle; the log's scoring problem (the
    scorer's open-loop start, the EP references planned from it) keeps NAVSIM's 0, and open-loop decisions score the
    same as with ``"zero"``."""
    scene, t0 = BANK[7], 57
    expected = logged_steering_angle(scene, t0)
    for mode in ("closed_loop", "open_loop"):
        envs = {s: ReplayEnv(BANK, mode, EnvConfig(bev=None, start_steering=s)) for s in START_STEERING}
        for s, env in envs.items():
            env.reset(seed=0, options={"scene_index": 7, "t": t0})
            steering = env.current_problem().ego.steering_angle
            assert steering == (expected if (mode, s) == ("closed_loop", "log") else 0.0)
            assert env._log_problem(scene, t0).ego.steering_angle == 0.0
        if mode == "open_loop":
            action = envs["zero"].logged_action()
            rewards = [dict(env.step(action)[4]["rewards"]) for env in envs.values()]
            np.testing.assert_equal(rewards[0], rewards[1])
    assert problem_from_scene(scene, t0).ego.steering_angle == 0.0


@pytest.mark.parametrize("policy_name", sorted(OFFROAD_BEFORE))
def test_mid_turn_starts_that_left_the_road_stay_on_it_with_the_logged_steering(policy_name):
    """The pinned junction-turn episodes end off the road with straight wheels at the start (the old behaviour, still
    the ``"zero"`` setting) and not with ``start_steering="log"``."""
    envs = {s: ReplayEnv(BANK, "closed_loop", EnvConfig(bev=None, reward_mode="lazy", start_steering=s))
            for s in START_STEERING}
    for index, start in OFFROAD_BEFORE[policy_name]:
        assert _episode(envs["zero"], policy_name, index, start) == "offroad", (policy_name, index)
        assert _episode(envs["log"], policy_name, index, start) != "offroad", (policy_name, index)


def test_start_steering_is_validated():
    with pytest.raises(ValueError, match="EnvConfig.start_steering: expected one of .*'wheel'"):
        EnvConfig(start_steering="wheel")
