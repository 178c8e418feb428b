"""Tests of ``envs.sim.scoring``: Scene -> ScoringProblem adapter and the logged (human) trajectory."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from envs.scenes.scene import AgentClass, Lane, Scene, SceneMap, SceneMeta
from envs.sim.scoring import problem_from_scene, trajectory_from_log
from rewards.config import PDMConfig

CONFIG = PDMConfig()


def _road_map(speed_limits=(10.0, 12.0, 8.0)) -> SceneMap:
    """Straight 3-lane road along +x; lanes 1 and 2 are on the route, lane 3 (slowest) is not."""
    lanes = tuple(
        Lane(lane_id=i + 1, centerline=np.array([[-50.0, 3.5 * i], [300.0, 3.5 * i]]), speed_limit=v)
        for i, v in enumerate(speed_limits)
    )
    return SceneMap(
        drivable_areas=(np.array([[-50.0, -1.75], [300.0, -1.75], [300.0, 8.75], [-50.0, 8.75]]),),
        lanes=lanes,
        route_lane_ids=(1, 2),
        route=np.array([[-50.0, 0.0], [300.0, 0.0]]),
        intersections=(np.array([[100.0, -1.75], [110.0, -1.75], [110.0, 8.75], [100.0, 8.75]]),),
    )


def _scene(
    num_frames: int = 80,
    dt: float = 0.1,
    ego_speed: float = 10.0,
    ego_yaw: float = 0.0,
    agent_classes=(AgentClass.VEHICLE, AgentClass.STATIC),
    scene_map: SceneMap | None = None,
) -> Scene:
    """Ego driving straight at ``ego_speed`` along ``ego_yaw``; agent k starts 20 (k+1) m ahead, moving at 5 m/s along
    +x (static objects stay put)."""
    time = np.arange(num_frames) * dt
    direction = np.array([np.cos(ego_yaw), np.sin(ego_yaw)])
    ego_xy = time[:, None] * ego_speed * direction
    ego_poses = np.column_stack([ego_xy, np.full(num_frames, ego_yaw)])
    ego_vel = np.tile(ego_speed * direction, (num_frames, 1))
    n = len(agent_classes)
    poses = np.zeros((n, num_frames, 3))
    vels = np.zeros((n, num_frames, 2))
    for k, cls in enumerate(agent_classes):
        speed = 0.0 if cls == AgentClass.STATIC else 5.0
        poses[k, :, 0] = 20.0 * (k + 1) + speed * time
        vels[k, :, 0] = speed
    return Scene(
        scene_id="test/adapter/0",
        dt=dt,
        ego_poses=ego_poses,
        ego_velocities=ego_vel,
        agent_ids=np.arange(100, 100 + n),
        agent_classes=np.array([int(c) for c in agent_classes]),
        agent_sizes=np.tile([4.0, 2.0], (n, 1)),
        agent_poses=poses,
        agent_velocities=vels,
        agent_valid=np.ones((n, num_frames), dtype=bool),
        map=scene_map,
        meta=SceneMeta(source="synthetic", scenario_type="test"),
    )


def _replace(scene: Scene, **fields) -> Scene:
    values = {name: getattr(scene, name) for name in scene.__dataclass_fields__}
    values.update(fields)
    return Scene(**values)


# --------------------------------------------------------------------------------------------------------- ego state
def test_ego_velocity_is_rotated_into_the_body_frame():
    scene = _scene(ego_yaw=np.pi / 2, ego_speed=7.0)
    ego = problem_from_scene(scene, 10).ego
    np.testing.assert_allclose(ego.pose, scene.ego_poses[10])
    np.testing.assert_allclose(ego.velocity, [7.0, 0.0], atol=1e-12)


def test_ego_acceleration_central_difference_in_body_frame_and_zero_at_log_ends():
    scene = _scene(ego_yaw=np.pi / 2)
    # World velocity along +y growing by 0.2 m/s per frame (2 m/s^2), plus a lateral world x component varying.
    vel = np.array(scene.ego_velocities)
    vel[:, 1] = 5.0 + 0.2 * np.arange(scene.num_frames)
    vel[:, 0] = -0.05 * np.arange(scene.num_frames)  # world -x is the ego's right: lateral -0.5 m/s^2 (left +)
    scene = _replace(scene, ego_velocities=vel)
    ego = problem_from_scene(scene, 20).ego
    # Body x = world +y (longitudinal), body y = world -x (left).
    np.testing.assert_allclose(ego.acceleration, [2.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(problem_from_scene(scene, 0).ego.acceleration, [0.0, 0.0])
    np.testing.assert_allclose(problem_from_scene(scene, scene.num_frames - 1).ego.acceleration, [0.0, 0.0])


# ------------------------------------------------------------------------------------------------------------ agents
def test_agents_window_equals_log_frames_when_dt_matches():
    scene = _scene()
    agents = problem_from_scene(scene, 5).agents
    assert agents.num_steps == CONFIG.num_observation_steps == 50
    np.testing.assert_allclose(agents.poses, scene.agent_poses[:, 5:55])
    np.testing.assert_allclose(agents.velocities, scene.agent_velocities[:, 5:55])
    assert agents.valid.all()
    np.testing.assert_array_equal(agents.ids, [100, 101])
    np.testing.assert_array_equal(agents.is_static, [False, True])
    np.testing.assert_allclose(agents.sizes, [[4.0, 2.0], [4.0, 2.0]])


def test_samples_beyond_the_log_are_invalid_and_extrapolated_at_constant_velocity():
    scene = _scene(num_frames=60)
    agents = problem_from_scene(scene, 30).agents
    # frames 30..59 exist (30 samples); samples 30..49 lie beyond the log.
    assert agents.valid[:, :30].all()
    assert not agents.valid[:, 30:].any()
    x_last = scene.agent_poses[0, -1, 0]
    np.testing.assert_allclose(agents.poses[0, 30:, 0], x_last + 5.0 * 0.1 * np.arange(1, 21))
    assert np.all(np.isfinite(agents.poses))


def test_resampling_a_20hz_log_takes_every_other_frame():
    scene = _scene(num_frames=200, dt=0.05)
    agents = problem_from_scene(scene, 10).agents
    np.testing.assert_allclose(agents.poses, scene.agent_poses[:, 10:110:2], atol=1e-12)
    assert agents.valid.all()


def test_resampling_a_5hz_log_interpolates_linearly_and_unwraps_yaw():
    scene = _scene(num_frames=40, dt=0.2)
    poses = np.array(scene.agent_poses)
    poses[0, :, 2] = np.where(np.arange(40) % 2 == 0, 3.1, -3.1)  # crosses +-pi between frames
    scene = _replace(scene, agent_poses=poses)
    agents = problem_from_scene(scene, 0).agents
    # 0.1 s samples fall on frames (even k) and midway between frames (odd k).
    np.testing.assert_allclose(agents.poses[0, 0::2, 0], poses[0, :25, 0], atol=1e-9)
    np.testing.assert_allclose(agents.poses[0, 1::2, 0], 0.5 * (poses[0, :25, 0] + poses[0, 1:26, 0]), atol=1e-9)
    mid_yaw = agents.poses[0, 1, 2]
    assert abs(abs(mid_yaw) - np.pi) < 1e-9, f"yaw interpolated through 0 instead of pi: {mid_yaw}"


def test_sample_between_a_valid_and_an_invalid_frame_is_invalid():
    scene = _scene(num_frames=40, dt=0.2)
    valid = np.array(scene.agent_valid)
    valid[0, 3] = False
    # frame 3 is sample 6; samples 5 and 7 interpolate with frame 3; sample 4 (frame 2) and 8 (frame 4) are valid.
    agents = problem_from_scene(_replace(scene, agent_valid=valid), 0).agents
    assert list(agents.valid[0, 4:9]) == [True, False, False, False, True]


def test_agents_never_valid_in_the_window_are_dropped():
    scene = _scene()
    valid = np.array(scene.agent_valid)
    valid[1, 10:] = False
    agents = problem_from_scene(_replace(scene, agent_valid=valid), 10).agents
    np.testing.assert_array_equal(agents.ids, [100])


# --------------------------------------------------------------------------------------------------------------- map
def test_map_geometry_copies_the_scene_map_and_takes_the_slowest_route_lane_limit():
    scene_map = _road_map()
    problem = problem_from_scene(_scene(scene_map=scene_map), 0)
    geometry = problem.map
    assert geometry is not None
    assert geometry.speed_limit == 10.0  # route lanes 1 (10 m/s) and 2 (12 m/s); lane 3 (8 m/s) is off-route
    np.testing.assert_array_equal(geometry.lane_ids, [1, 2, 3])
    assert geometry.route_lane_ids == (1, 2)
    np.testing.assert_allclose(geometry.lane_polygons[1], scene_map.lanes[1].polygon)
    np.testing.assert_allclose(geometry.route, scene_map.route)
    assert len(geometry.drivable_areas) == 1 and len(geometry.intersections) == 1


def test_map_geometry_is_cached_per_scene_map_and_released_with_it():
    scene_map = _road_map()
    first = problem_from_scene(_scene(scene_map=scene_map), 0).map
    second = problem_from_scene(_scene(scene_map=scene_map), 3).map
    assert first is second
    other = problem_from_scene(_scene(scene_map=_road_map()), 0).map
    assert other is not first
    from envs.sim import scoring

    before = len(scoring._MAP_CACHE)
    del scene_map, first, second, other
    gc.collect()
    assert len(scoring._MAP_CACHE) < before


def test_scene_without_map_gives_no_map_geometry():
    problem = problem_from_scene(_scene(scene_map=None), 0)
    assert problem.map is None
    assert problem.scene_id == "test/adapter/0" and problem.time_index == 0


@pytest.mark.parametrize("t", [-1, 80, 2.0, "3", None, True])
def test_invalid_frame_index_raises_value_error_naming_t(t):
    with pytest.raises(ValueError, match=r"\bt\b"):
        problem_from_scene(_scene(), t)
    with pytest.raises(ValueError, match=r"\bt\b"):
        trajectory_from_log(_scene(), t)


# -------------------------------------------------------------------------------------------------------- trajectory
def test_trajectory_from_log_is_in_the_ego_frame():
    scene = _scene(ego_yaw=0.7, ego_speed=10.0)
    traj = trajectory_from_log(scene, 12)
    assert traj.shape == (8, 3)
    expected = np.column_stack([5.0 * np.arange(1, 9), np.zeros(8), np.zeros(8)])
    np.testing.assert_allclose(traj, expected, atol=1e-9)


def test_trajectory_from_log_interpolates_a_log_with_coarser_steps():
    scene = _scene(num_frames=30, dt=0.2, ego_speed=4.0)
    # 0.5 s poses fall on 2.5-frame positions at 5 Hz.
    np.testing.assert_allclose(trajectory_from_log(scene, 0)[:, 0], 2.0 * np.arange(1, 9), atol=1e-9)


def test_trajectory_from_log_errors_clearly_when_the_log_is_too_short():
    scene = _scene(num_frames=60)
    trajectory_from_log(scene, 19)  # needs frame 59, the last one
    with pytest.raises(ValueError, match=r"t must be <= 19"):
        trajectory_from_log(scene, 20)
