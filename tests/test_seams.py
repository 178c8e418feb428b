"""The seams of the learning stack: spaces, the pure observation builder, the policy interface, the source registry
and origins, the normalised-action wrapper, and the env's input checks."""

from __future__ import annotations

import tracemalloc

import gymnasium
import numpy as np
import pytest

import envs  # noqa: F401  (registers the env ids)
from agents.base import PolicyInput, policy_input
from agents.baselines import LogReplayPolicy, StandStillPolicy
from envs.scenes.bank import generate_scene
from envs.observation import EgoKinematics, ObservationConfig, build_observation, text_prompt
from envs.render import BEVConfig
from envs.replay_env import EnvConfig, ReplayEnv
from envs.scenes.rollout import rollout_to_scene
from envs.scenes.sources import (
    BankIndexOrigin,
    BankOrigin,
    DeepAccidentOrigin,
    RolloutOrigin,
    SourceError,
    UnresolvableOrigin,
    make_source,
    open_source,
    origin_from_dict,
    resolve,
    scene_origin,
)
from envs.spaces import observation_space
from envs.wrappers import NormalizedTrajectoryAction, kinematic_trajectories, normalize_trajectories
from rewards.geometry import rotate_vectors

SMALL_BEV = BEVConfig(height=48, width=48, meters_per_pixel=1.0)


def _assert_obs_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ------------------------------------------------------------------------------------------- observation
@pytest.mark.parametrize("mode", ["open_loop", "closed_loop"])
def test_env_observation_equals_the_pure_builder(mode):
    config = EnvConfig(bev=SMALL_BEV)
    env = ReplayEnv("bank", mode, config, num_scenes=4, seed=3)
    for i in range(4):
        obs, info = env.reset(seed=i, options={"scene_index": i})
        scene, t = env.scene, info["t"]
        _assert_obs_equal(obs, build_observation(scene, t, config=config.observation))
        assert observation_space(config.observation).contains(obs)
    if mode == "closed_loop":  # after simulated steps: the builder on the env's scene view and kinematics
        obs, *_ = env.step(env.logged_action())
        track = env._track
        _assert_obs_equal(obs, build_observation(env.scene_view, env.t, track.kinematics, config.observation))


def test_builder_works_on_any_scene_without_an_env():
    scene = generate_scene("cut_in", seed=5)
    config = ObservationConfig(bev=None, history_poses=6, history_interval=0.3)
    obs = build_observation(scene, 40, config=config)
    assert set(obs) == {"ego_state", "command", "history"} and obs["history"].shape == (6, 3)
    assert observation_space(config).contains(obs)
    # a rollout scene (recorded ego) is just another scene: the observation follows the recorded ego
    poses = scene.ego_poses[30:60].copy()
    poses[:, 1] += 0.5
    roll = rollout_to_scene(scene, 30, poses, scene.ego_velocities[30:60])
    assert build_observation(roll, 45, config=config)["history"][-1, 1] == pytest.approx(
        build_observation(scene, 45, config=config)["history"][-1, 1], abs=1e-5)
    with pytest.raises(ValueError, match="history_interval"):
        build_observation(scene, 40, config=ObservationConfig(bev=None, history_interval=0.25))
    with pytest.raises(ValueError, match="t: frame 500"):
        build_observation(scene, 500, config=config)
    with pytest.raises(ValueError, match="history_poses"):
        ObservationConfig(history_poses=0)


def test_kinematics_from_the_log_match_the_scorer_state():
    from envs.sim.scoring import ego_state_from_scene

    scene = generate_scene("rear_end", seed=2)
    kin = EgoKinematics.from_scene(scene)
    v, dt = scene.ego_velocities, scene.dt
    for t in (0, 30, scene.num_frames - 1):
        ego = ego_state_from_scene(scene, t)
        np.testing.assert_array_equal(kin.body_velocities[t], ego.velocity)
        # The observation's acceleration is causal (backward difference); the scorer's start state keeps the central
        # one (envs.sim.scoring: the simulator may read the log's next frame, a sensor at t may not).
        backward = rotate_vectors((v[t] - v[t - 1]) / dt, -scene.ego_poses[t, 2]) if t else np.zeros(2)
        np.testing.assert_allclose(kin.body_accelerations[t], backward, atol=1e-12)
        if 0 < t < scene.num_frames - 1:
            central = rotate_vectors((v[t + 1] - v[t - 1]) / (2 * dt), -scene.ego_poses[t, 2])
            np.testing.assert_allclose(ego.acceleration, central, atol=1e-12)


def test_text_prompt_states_command_speed_and_history():
    scene = generate_scene("unprotected_left_turn", seed=1)
    obs = build_observation(scene, 30, config=ObservationConfig(bev=None))
    prompt = text_prompt(obs)
    assert prompt == text_prompt(obs)
    assert f"Speed {obs['ego_state'][0]:.1f} m/s" in prompt and "Navigation command:" in prompt
    assert "Past 2.0 s:" in prompt and "m travelled" in prompt


# ------------------------------------------------------------------------------------------------ policies
def test_policy_input_is_privileged_only_on_request():
    env = ReplayEnv("bank", "closed_loop", EnvConfig(bev=None), num_scenes=2)
    obs, info = env.reset(seed=0)
    plain = policy_input(env, obs, info)
    assert not plain.privileged and plain.problem is None and plain.prompt == text_prompt(obs)
    full = policy_input(env, obs, info, privileged=True)
    assert full.privileged and full.scene is env.scene and full.t == env.t
    with pytest.raises(ValueError, match="log_replay: needs a privileged PolicyInput"):
        LogReplayPolicy().act(plain)
    assert not StandStillPolicy.requires_privileged and LogReplayPolicy.requires_privileged
    np.testing.assert_array_equal(StandStillPolicy().act(PolicyInput(obs)), np.zeros((8, 3), np.float32))


# ------------------------------------------------------------------------------------------------- sources
def test_registry_opens_sources_and_names_unknown_ones():
    src = open_source("bank", num_scenes=5, seed=2)
    assert len(src) == 5 and src[0].meta.source == "synthetic"
    with pytest.raises(SourceError, match=r"unknown scene source 'Bank'; registered: \['bank', 'carla', 'deepaccident'"):
        make_source("Bank")
    with pytest.raises(SourceError, match="unknown scene source 'nope'"):
        open_source("nope")
    with pytest.raises(ValueError, match="unknown scene source 'Bank'"):
        ReplayEnv("Bank", "open_loop")


def test_origins_round_trip_and_resolve(tmp_path):
    bank = open_source("bank", num_scenes=6, seed=1)
    for i in range(6):
        origin = bank.origin(i)
        assert isinstance(origin, BankOrigin)
        again = resolve(origin_from_dict(origin.to_dict()))
        np.testing.assert_array_equal(again.ego_poses, bank[i].ego_poses)
        assert again.scene_id == bank[i].scene_id
    idx = BankIndexOrigin(num_scenes=6, seed=1, index=4, scenario_types=None)
    np.testing.assert_array_equal(resolve(idx.to_dict()).agent_poses, bank[4].agent_poses)
    base = bank[0]
    roll = rollout_to_scene(base, 20, base.ego_poses[20:40], base.ego_velocities[20:40], origin=bank.origin(0))
    ro = scene_origin(roll)
    assert isinstance(ro, RolloutOrigin) and isinstance(ro.base, BankOrigin)
    again = resolve({"scene_id": roll.scene_id, "origin": ro.to_dict()})  # an observation reference works too
    np.testing.assert_array_equal(again.ego_poses, roll.ego_poses)
    with pytest.raises(SourceError, match="given in memory"):
        resolve(UnresolvableOrigin(source="carla", scene_id="x"))
    with pytest.raises(SourceError, match="unknown kind 'tape'"):
        origin_from_dict({"kind": "tape"})
    with pytest.raises(SourceError, match=r"unexpected fields \['colour'\]"):
        origin_from_dict({"kind": "bank", "scenario_type": "rear_end", "seed": 1, "colour": 3})


def test_deepaccident_source_origin(tmp_path):
    from envs.scenes.deepaccident import write_scenario

    write_scenario(generate_scene("rear_end", seed=3), tmp_path, "type1_subtype1_accident", "Town01_type001_subtype0001_scenario00001")
    src = make_source(str(tmp_path), split=None, strict=False)
    origin = src.origin(0)
    assert isinstance(origin, DeepAccidentOrigin) and origin.index == 0
    np.testing.assert_array_equal(resolve(origin.to_dict()).agent_poses, src[0].agent_poses)


def test_huge_bank_resets_without_materialising_an_index_list():
    env = gymnasium.make("SafeAlign/Replay-OpenLoop-v0", config=EnvConfig(bev=None), num_scenes=10**9)
    tracemalloc.start()
    try:
        env.reset(seed=0)
        env.reset()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20, f"reset allocated {peak / 2**20:.0f} MiB"
    unwrapped = env.unwrapped
    seen = {unwrapped._next_index() for _ in range(50)}
    assert len(seen) == 50 and all(0 <= i < 10**9 for i in seen)
    assert unwrapped.source.index_of("synthetic/" + unwrapped.source.collection.scenario_type(123456789)
                                     + "/s0-123456789") == 123456789


# ------------------------------------------------------------------------------------------------- env input
@pytest.mark.parametrize("options, match", [
    ({"scene_index": 2.7}, "scene_index must be an integer, got 2.7"),
    ({"scene_index": "3"}, "scene_index must be an integer, got '3'"),
    ({"t": 5.9}, "t must be an integer, got 5.9"),
    ({"t": "abc"}, "t must be an integer, got 'abc'"),
    (5, r"reset options: expected a dict .* got 5 \(int\)"),
    ({"scene_id": 3}, "scene_id must be a string"),
])
def test_reset_options_are_checked_not_converted(options, match):
    env = ReplayEnv("bank", "open_loop", EnvConfig(bev=None), num_scenes=4)
    with pytest.raises(ValueError, match=match):
        env.reset(seed=0, options=options)


def test_config_checks_and_mappings():
    with pytest.raises(ValueError, match="RewardConfig.w_score: expected a finite number, got nan"):
        EnvConfig(reward={"w_score": float("nan")})
    with pytest.raises(ValueError, match="EnvConfig.replan_interval: expected a finite number"):
        EnvConfig(replan_interval=float("inf"))
    env = gymnasium.make("SafeAlign/Replay-ClosedLoop-v0", config={"bev": None}, num_scenes=2)
    obs, _ = env.reset(seed=0)
    assert "bev" not in obs
    with pytest.raises(ValueError, match=r"EnvConfig: unknown fields \['bevv'\]"):
        ReplayEnv("bank", "open_loop", {"bevv": None})
    with pytest.raises(ValueError, match="render_mode='human' is not supported"):
        ReplayEnv("bank", "open_loop", {"bev": None}, num_scenes=2, render_mode="human")


def test_render_modes_lists_only_the_modes_that_work():
    """Every mode in ``metadata["render_modes"]`` constructs and renders (gymnasium's check_env makes the env once
    per listed mode); ``"human"`` is left to gymnasium.make, which wraps the ``rgb_array`` env in HumanRendering."""
    from envs import CARLA_ENV_ID, REPLAY_ENV_IDS
    from envs.carla.env import CarlaEnv

    assert ReplayEnv.metadata["render_modes"] == ["rgb_array"]
    assert CarlaEnv.metadata["render_modes"] == ["rgb_array"]
    for env_id in REPLAY_ENV_IDS:
        for mode in gymnasium.spec(env_id).make(num_scenes=1, config={"bev": None}).metadata["render_modes"]:
            env = gymnasium.make(env_id, render_mode=mode, num_scenes=1, config={"bev": None})
            env.reset(seed=0)
            frame = env.render()
            assert frame.dtype == np.uint8 and frame.shape == (256, 256, 3)
            env.close()
    with pytest.warns(UserWarning, match="HumanRendering"):
        human = gymnasium.make(REPLAY_ENV_IDS[0], render_mode="human", num_scenes=1, config={"bev": None})
    assert human.unwrapped.render_mode == "rgb_array"
    assert CARLA_ENV_ID in gymnasium.registry


@pytest.mark.parametrize("mode", ["open_loop", "closed_loop"])
@pytest.mark.parametrize("reward_mode", ["eager", "lazy"])
def test_info_rewards_have_the_same_keys_after_reset_and_step(mode, reward_mode):
    env = ReplayEnv("bank", mode, EnvConfig(bev=None, reward_mode=reward_mode), num_scenes=2)
    _, info0 = env.reset(seed=0)
    _, _, _, _, info1 = env.step(env.logged_action())
    assert info0["rewards"].keys() == info1["rewards"].keys()
    assert all(np.isnan(v) for v in info0["rewards"].values())
    assert np.isfinite(info1["rewards"]["reward"])


# ------------------------------------------------------------------------------------------------ wrapper
def test_normalised_actions_map_to_valid_trajectories_and_back():
    env = NormalizedTrajectoryAction(ReplayEnv("bank", "closed_loop", EnvConfig(bev=None), num_scenes=2))
    assert env.action_space.shape == (8, 2) and env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    traj = env.action(np.zeros((8, 2)))
    np.testing.assert_allclose(traj[:, 0], 5.0 * np.arange(1, 9), rtol=1e-6)  # 10 m/s straight ahead
    assert np.all(traj[:, 1:] == 0)
    rng = np.random.default_rng(0)
    for _ in range(20):  # every action in the box is a valid trajectory, and normalize inverts it
        a = rng.uniform(-1, 1, (8, 2)).astype(np.float32)
        t = env.action(a)
        assert env.unwrapped.action_space.contains(t)
        np.testing.assert_allclose(env.normalize(t), a, atol=1e-4)
    batch = rng.uniform(-1, 1, (5, 8, 2))
    np.testing.assert_allclose(normalize_trajectories(kinematic_trajectories(batch, 20, 0.6), 20, 0.6), batch,
                               atol=1e-5)
    obs, _ = env.reset(seed=0)
    _, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)
    with pytest.raises(ValueError, match="max_speed"):
        NormalizedTrajectoryAction(env.unwrapped, max_speed=30.0)


def test_a_numba_compilation_is_announced_only_when_it_happens(tmp_path):
    """Cold ``NUMBA_CACHE_DIR``: calling one kernel prints one line naming it (and the cache folder); importing alone
    prints nothing (kernels the process never calls are not counted); the same call with the cache now warm prints
    nothing."""
    import subprocess
    import sys

    env = {**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    call = "import numpy as np, rewards.kernels as k; k.round8(np.ones(3))"

    def stderr(code: str) -> str:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stderr

    assert "compiling" not in stderr("import rewards.kernels")
    cold = stderr(call)
    lines = [line for line in cold.splitlines() if "compiling numba kernel" in line]
    assert len(lines) == 1 and "rewards.kernels.comfort.round8" in lines[0], cold
    assert str(tmp_path / "numba") in lines[0] and "NUMBA_CACHE_DIR" in lines[0]
    assert "compiling" not in stderr(call)  # warm cache: loaded, not compiled