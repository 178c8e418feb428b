"""No future in the observation: the observation (and the text prompt) at frame ``t`` reads frames ``<= t`` only.

The ego's acceleration and yaw rate (:meth:`envs.observation.EgoKinematics.from_log`) are backward differences, in
the log replay and at the start frame of a closed-loop episode (:class:`envs.sim.simulation.EgoTrack`); the log after
``t`` (ego, agents, traffic lights) is perturbed and every observation key must stay bit-identical. SYNTHETIC bank
scenes (they have a map, so the command reads the map's route; without a map the command reads the ego's logged path,
the navigation plan, by design: :class:`envs.observation.Route`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.observation import EgoKinematics, ObservationConfig, build_observation, text_prompt
from envs.scenes.sources import open_source
from envs.sim.scoring import ego_state_from_scene
from envs.sim.simulation import EgoTrack
from rewards.geometry import rotate_vectors, wrap_angle

CONFIGS = (ObservationConfig(), ObservationConfig(prompt_state="agents"))


@pytest.fixture(scope="module")
def scenes():
    source = open_source("bank", num_scenes=3, seed=11)
    return [source[i] for i in range(3)]


def _future_perturbed(scene, t: int):
    """``scene`` with every logged array after frame ``t`` changed (ego poses incl. yaw, velocities, agents, lights)."""
    future = slice(t + 1, None)
    ego_poses, ego_vels = np.array(scene.ego_poses), np.array(scene.ego_velocities)
    ego_poses[future, :2] += 3.0
    ego_poses[future, 2] = wrap_angle(ego_poses[future, 2] + 0.7)
    ego_vels[future] = -2.0 * ego_vels[future] + 5.0
    poses, vels, valid = (np.array(a) for a in (scene.agent_poses, scene.agent_velocities, scene.agent_valid))
    poses[:, future, :2] += 7.0
    vels[:, future] *= -2.0
    valid[:, future] = ~valid[:, future]
    scene_map = scene.map
    if scene_map is not None and scene_map.traffic_lights:
        lights = []
        for light in scene_map.traffic_lights:
            states = np.array(light.states)
            states[future] = (states[future] + 1) % 3
            lights.append(dataclasses.replace(light, states=states))
        scene_map = dataclasses.replace(scene_map, traffic_lights=tuple(lights))
    return dataclasses.replace(scene, ego_poses=ego_poses, ego_velocities=ego_vels, agent_poses=poses,
                               agent_velocities=vels, agent_valid=valid, map=scene_map)


def _assert_same(after: dict, before: dict, where: str) -> None:
    assert sorted(after) == sorted(before), where
    for key in before:
        np.testing.assert_array_equal(after[key], before[key], err_msg=f"{where}: observation key {key!r}")
    assert text_prompt(after) == text_prompt(before), where


def test_log_observation_reads_no_frame_after_t(scenes):
    for scene in scenes:
        for t in (0, 1, 17, 30, scene.num_frames - 2):
            altered = _future_perturbed(scene, t)
            assert not np.array_equal(altered.ego_velocities[t + 1], scene.ego_velocities[t + 1])
            for config in CONFIGS:
                _assert_same(build_observation(altered, t, config=config), build_observation(scene, t, config=config),
                             f"{scene.scene_id} t={t} prompt_state={config.prompt_state}")


def test_the_present_does_change_it(scenes):
    """The test above can fail: the same perturbation from frame ``t`` on changes the ego state and the prompt."""
    scene, t = scenes[0], 30
    altered = _future_perturbed(scene, t - 1)
    before, after = build_observation(scene, t), build_observation(altered, t)
    assert not np.array_equal(after["ego_state"], before["ego_state"])
    assert text_prompt(after) != text_prompt(before)


def test_kinematics_are_backward_differences():
    """Acceleration = (v[t] - v[t-1]) / dt in the body frame at t, yaw rate = wrap(yaw[t] - yaw[t-1]) / dt; zero at
    frame 0 (a hand-built log: constant turn rate 0.5 rad/s across the +-pi seam, speed rising 1 m/s per frame)."""
    dt, T = 0.1, 6
    yaw = wrap_angle(np.pi - 0.1 + 0.05 * np.arange(T))
    speed = 5.0 + np.arange(T, dtype=float)
    vel = np.stack([speed * np.cos(yaw), speed * np.sin(yaw)], axis=1)
    poses = np.concatenate([np.cumsum(vel * dt, axis=0), yaw[:, None]], axis=1)
    kin = EgoKinematics.from_log(poses, vel, dt)
    np.testing.assert_allclose(kin.yaw_rates, [0.0] + [0.5] * (T - 1), atol=1e-9)
    expected = np.zeros((T, 2))
    expected[1:] = rotate_vectors((vel[1:] - vel[:-1]) / dt, -yaw[1:])
    np.testing.assert_allclose(kin.body_accelerations, expected, atol=1e-9)
    assert kin.body_accelerations[-1, 0] == pytest.approx(10.0, abs=0.3)  # ~ d speed / dt, the last frame too
    np.testing.assert_array_equal(kin.body_accelerations[0], 0.0)


def test_closed_loop_start_observation_is_the_causal_log_one(scenes):
    """The closed loop's first observation (the track's start frame) equals the log's, and reads no frame after it:
    the scorer's start state (central-difference acceleration, :func:`envs.sim.scoring.ego_state_from_scene`) is not
    what the observation states."""
    for scene in scenes:
        for start in (1, 25):
            track = EgoTrack(scene, start, ego_state_from_scene(scene, start))
            obs = build_observation(track.scene_view, track.frame, track.kinematics)
            _assert_same(obs, build_observation(scene, start), f"{scene.scene_id} start={start}")
            altered = _future_perturbed(scene, start)
            moved = EgoTrack(altered, start, ego_state_from_scene(altered, start))
            _assert_same(build_observation(moved.scene_view, moved.frame, moved.kinematics), obs,
                         f"{scene.scene_id} start={start}, log after it perturbed")


def test_replay_env_reset_observation_equals_the_log_one():
    from envs.replay_env import EnvConfig, ReplayEnv

    env = ReplayEnv("bank", "closed_loop", EnvConfig(), num_scenes=2, seed=11)
    for index, t in ((0, 5), (1, 20)):
        obs, info = env.reset(seed=0, options={"scene_index": index, "t": t})
        _assert_same(obs, build_observation(env.source[index], t), f"reset scene {index} t={t}")
