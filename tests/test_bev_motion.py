"""Motion in the observation (issue #29): velocity marks in the BEV (:attr:`envs.render.BEVConfig.motion_horizons`),
the named presets (:data:`envs.render.MOTION_PRESETS`), the default image left pixel-identical, and the option
reaching the env observation, the SFT rows, the Hydra agent config and the readability benchmark."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pytest

from envs.observation import ObservationConfig, build_observation
from envs.render import MOTION_PRESETS, BEVConfig, BEVRenderer, with_motion
from envs.scenes.scene import AgentClass
from rewards.geometry import rotate_vectors
from tests.test_render import EGO_POSE, T, make_scene

MOTION_ONLY = dict(mode="semantic", semantic_layers=("vehicles", "motion"), motion_horizons=(1.0, 2.0))

# sha256[:16] of default BEVs of SYNTHETIC bank scenes (seed 7; frames 0, 50, 100), rendered before the motion option
# existed (opencv 5.1.0, numpy 2.4.6): (policy observation, semantic default, anti-aliased RGB default).
DEFAULT_HASHES = {
    (0, 0): ("8059ddca6f56c779", "58c47d8e070a0852", "f4843a2f0f1b8c78"),
    (0, 50): ("4594c6b3da80c746", "afb51971ebb37f5a", "7d8862032cdf9d7a"),
    (1, 100): ("89dce6294c88835d", "dc164d5d6687538b", "c676d9e54f9cea6a"),
    (2, 50): ("2aea4886fa5f0d9e", "be53a3b87f35086e", "eb44692e1270b693"),
}


def _hash(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()[:16]


def _moving_scene(speed: float = 5.0):
    """The render tests' road (ego stationary at EGO_POSE): a vehicle 10 m ahead on the next lane driving along the
    road at ``speed`` [m/s] and a stopped vehicle 10 m behind on the ego lane."""
    xs = 10.0 + speed * 0.1 * np.arange(T)
    moving = np.stack([xs, np.full(T, 3.5), np.zeros(T)], axis=1)
    scene = make_scene([(moving, 4.5, 2.0, AgentClass.VEHICLE), (-10.0, 0.0, 0.0, 4.5, 2.0, AgentClass.VEHICLE)])
    velocities = np.zeros((2, T, 2))
    velocities[0] = rotate_vectors(np.array([speed, 0.0]), EGO_POSE[2])  # world frame, broadcast over T
    return dataclasses.replace(scene, agent_velocities=velocities)


def test_default_bev_is_pixel_identical_to_before_the_option():
    from envs.scenes.sources import open_source

    assert BEVConfig().motion_horizons == () and ObservationConfig().bev.motion_horizons == ()
    assert with_motion(BEVConfig(), "none") == BEVConfig()
    source = open_source("bank", num_scenes=3, seed=7)
    for (i, t), expected in DEFAULT_HASHES.items():
        scene = source[i]
        got = (_hash(build_observation(scene, t)["bev"]), _hash(BEVRenderer(BEVConfig(mode="semantic")).render(scene, t)),
               _hash(BEVRenderer(BEVConfig()).render(scene, t)))
        assert got == expected, (i, t)


def test_velocity_mark_lies_ahead_of_a_moving_agent_and_a_stopped_one_has_none():
    scene = _moving_scene()
    renderer = BEVRenderer(BEVConfig(**MOTION_ONLY))
    t = 5
    image = renderer.render(scene, t)
    marks = np.argwhere(image[..., 1] > 0)  # (row, col)
    assert len(marks)
    ego_xy = renderer.pixel_to_ego(marks[:, ::-1].astype(float))  # (M, 2) [m] ego frame
    x_now = 10.0 + 5.0 * 0.1 * t
    # Everything is on the moving vehicle's lane (y = 3.5 +- half its width), ahead of its centre, reaching its
    # +2 s outline (front edge at x_now + 10 + 2.25 m); nothing near the stopped vehicle or the stationary ego.
    assert np.all(np.abs(ego_xy[:, 1] - 3.5) <= 1.0 + 0.5)
    assert ego_xy[:, 0].min() >= x_now - 0.5
    assert ego_xy[:, 0].max() == pytest.approx(x_now + 10.0 + 2.25, abs=0.75)
    # The +1 s outline: its rear edge crosses the lane at x_now + 5 - 2.25.
    rear_1s = np.abs(ego_xy[:, 0] - (x_now + 5.0 - 2.25)) <= 0.5
    assert np.ptp(ego_xy[rear_1s, 1]) >= 1.5
    # The mark moves with the agent's velocity: twice the speed, twice as far.
    fast = BEVRenderer(BEVConfig(**MOTION_ONLY)).render(_moving_scene(speed=8.0), 0)
    far = renderer.pixel_to_ego(np.argwhere(fast[..., 1] > 0)[:, ::-1].astype(float))
    assert far[:, 0].max() == pytest.approx(10.0 + 16.0 + 2.25, abs=0.75)
    # Stopped agents (and a stopped ego) get none: a scene with every agent stopped draws no mark.
    still = BEVRenderer(BEVConfig(**MOTION_ONLY)).render(_moving_scene(speed=0.0), t)
    assert not still[..., 1].any()
    # Only frame t is read: changing later velocities does not change the image.
    later = scene.agent_velocities.copy()
    later[:, t + 1:] *= 3.0
    assert np.array_equal(renderer.render(dataclasses.replace(scene, agent_velocities=later), t), image)


def test_the_ego_mark_follows_the_ego_velocity_and_rgb_draws_in_the_agent_colour():
    scene = _moving_scene()
    ego_v = np.tile(rotate_vectors(np.array([6.0, 0.0]), EGO_POSE[2]), (T, 1))
    scene = dataclasses.replace(scene, ego_velocities=ego_v)
    sem = BEVRenderer(BEVConfig(mode="semantic", semantic_layers=("ego", "motion"), motion_horizons=(1.0,)))
    image = sem.render(scene, 3)
    ego_box = sem.pixel_to_ego(np.argwhere(image[..., 0] > 0)[:, ::-1].astype(float))
    marks = sem.pixel_to_ego(np.argwhere(image[..., 1] > 0)[:, ::-1].astype(float))
    near_ego = marks[np.abs(marks[:, 1]) <= 1.5]
    assert near_ego[:, 0].max() == pytest.approx(ego_box[:, 0].max() + 6.0, abs=0.75)  # the front edge, 6 m on
    no_ego = BEVRenderer(BEVConfig(mode="semantic", semantic_layers=("ego", "motion"), motion_horizons=(1.0,),
                                   draw_ego_motion=False)).render(scene, 3)
    no_ego_marks = sem.pixel_to_ego(np.argwhere(no_ego[..., 1] > 0)[:, ::-1].astype(float))
    assert np.all(np.abs(no_ego_marks[:, 1] - 3.5) <= 1.5)  # the moving vehicle's only
    cfg = BEVConfig(antialias=False)
    plain = BEVRenderer(cfg).render(scene, 3)
    marked = BEVRenderer(with_motion(cfg, "velocity")).render(scene, 3)
    changed = np.any(marked != plain, axis=-1)
    colours = {tuple(c) for c in marked[changed].tolist()}
    assert colours <= {cfg.class_colors[AgentClass.VEHICLE], cfg.ego_color}, colours


def test_bad_motion_settings_name_the_field():
    with pytest.raises(ValueError, match="BEVConfig.motion_horizons"):
        BEVConfig(motion_horizons=(1.0, -2.0))
    with pytest.raises(ValueError, match="BEVConfig.motion_horizons"):
        BEVConfig(motion_horizons=(float("nan"),))
    with pytest.raises(ValueError, match="BEVConfig.motion_min_speed"):
        BEVConfig(motion_min_speed=-1.0)
    with pytest.raises(ValueError, match="motion: expected one of"):
        with_motion(BEVConfig(), "optical_flow")
    assert BEVConfig(motion_horizons=[2, 1]).motion_horizons == (1.0, 2.0)
    assert set(MOTION_PRESETS) >= {"none", "velocity", "trails"}


def test_motion_reaches_the_env_observation_and_the_sft_rows():
    from agents.sft.data import SampleConfig, build_sample_table, cache_key
    from envs.replay_env import EnvConfig, ReplayEnv
    from envs.scenes.bank import ScenarioBank

    bev = with_motion(BEVConfig(antialias=False), "velocity")
    bank = ScenarioBank(2, seed=5)
    env = ReplayEnv(bank, config=EnvConfig(bev=bev, scene_order="sequential"))
    obs, info = env.reset(seed=0)
    scene, t = env.scene, env.t
    assert env.observation_space["bev"].shape == bev.shape
    observation = ObservationConfig(bev=bev)
    assert np.array_equal(obs["bev"], build_observation(scene, t, config=observation)["bev"])
    assert not np.array_equal(obs["bev"], build_observation(scene, t)["bev"])  # the marks are drawn
    env.close()

    samples = SampleConfig(expert_frames_per_scene=1, observation=observation)
    rows = build_sample_table([bank[0]], [], samples, progress=False)
    assert rows
    for row in rows:
        expected = build_observation(bank[0], row["frame"], config=observation)["bev"]
        assert np.array_equal(np.asarray(row["bev"], dtype=np.uint8), expected)
    assert cache_key([], [], samples) != cache_key([], [], SampleConfig(expert_frames_per_scene=1))


def test_agent_motion_on_the_command_line_reaches_the_vla_env_config(tmp_path):
    from hydra import compose, initialize_config_module

    from experiments.builders import env_config
    from experiments.pipeline import Context
    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        default = typed_config(compose(config_name="config", overrides=[]))
        moving = typed_config(compose(config_name="config", overrides=["agent.motion=velocity"]))
        with pytest.raises((ValueError, SystemExit), match="agent.motion"):
            typed_config(compose(config_name="config", overrides=["agent.motion=flow"]))
    assert env_config(Context(tmp_path, default)).observation.bev == BEVConfig(antialias=False)
    assert env_config(Context(tmp_path, moving)).observation.bev.motion_horizons == (1.0, 2.0)


def test_readability_benchmark_says_which_observation_it_measured():
    from agents.sft.data import SampleConfig
    from benchmarks.bench_readability import build_parser, observation_line, sample_config

    assert sample_config("none") == SampleConfig()
    assert sample_config("velocity").observation.bev.motion_horizons == (1.0, 2.0)
    assert "motion=velocity" in observation_line("velocity") and "[1.0, 2.0] s" in observation_line("velocity")
    assert "motion=none" in observation_line("none")
    assert build_parser().parse_args(["--motion", "none,velocity"]).motion == "none,velocity"


def test_filled_marks_are_drawn_under_the_boxes_in_a_faded_colour():
    scene = _moving_scene()
    cfg = BEVConfig(antialias=False, draw_ego_motion=False)
    outline = BEVRenderer(dataclasses.replace(cfg, motion_horizons=(1.0, 2.0))).render(scene, 5)
    filled = BEVRenderer(dataclasses.replace(cfg, motion_horizons=(1.0, 2.0), motion_fill=0.35)).render(scene, 5)
    shade = BEVRenderer(cfg)._blend(cfg.class_colors[AgentClass.VEHICLE], 0.35)
    inside = np.all(filled == shade, axis=-1)
    assert inside.sum() > 2 * np.all(outline == shade, axis=-1).sum() + 20  # areas, not 1 px outlines
    renderer = BEVRenderer(cfg)
    xy = renderer.pixel_to_ego(np.argwhere(inside)[:, ::-1].astype(float))
    assert np.all(xy[:, 0] > 10.0 + 2.5)  # ahead of the moving vehicle's centre at t = 5 (12.5 m)
    plain = renderer.render(scene, 5)
    box = np.all(plain == cfg.class_colors[AgentClass.VEHICLE], axis=-1)
    assert np.array_equal(np.all(filled == cfg.class_colors[AgentClass.VEHICLE], axis=-1) & box, box)  # boxes on top
    with pytest.raises(ValueError, match="BEVConfig.motion_fill"):
        BEVConfig(motion_fill=1.5)
