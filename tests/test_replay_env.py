"""ReplayEnv: Gymnasium/SB3 contracts, closed-loop physics against the log, group scoring, errors, determinism."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium
import numpy as np
import pytest

from envs import REPLAY_ENV_IDS
from envs.scenes.bank import ACCIDENT_TYPES, SCENARIO_TYPES, generate_scene
from envs.observation import LEFT, RIGHT, STRAIGHT, Route, pose_history, route_command
from envs.render import BEVConfig
from envs.sim.reward import RewardConfig
from envs.replay_env import EnvConfig, ReplayEnv
from envs.spaces import ACTION_HIGH, ACTION_LOW, validate_trajectories
from envs.sim.simulation import check_frames, check_frames_numpy, simulate_prefix
from rewards.config import PDMConfig
from rewards.tracking import interpolate_candidates, simulate_candidates, track_poses_with_steering
from rewards.types import EgoState

SMALL_BEV = BEVConfig(height=48, width=48, meters_per_pixel=1.0)
"""A small BEV keeps the tests fast; 48 px is above NatureCNN's 36 px minimum."""
FAST = EnvConfig(bev=SMALL_BEV, reward=RewardConfig(kind="score"))
"""Small BEV (the default reference, "log", is cached per (scene, frame)); the score as the step reward (these tests
check its terms; the progress-first default is tested in tests/test_world_signal.py)."""
REPLAN = 5
"""Frames per closed-loop step (0.5 s at 10 Hz)."""


def _env(mode: str, config: EnvConfig = FAST, **kwargs) -> ReplayEnv:
    kwargs.setdefault("num_scenes", 6)
    return ReplayEnv("bank", mode, config, **kwargs)


def _straight(speed: float, accel: float = 0.0) -> np.ndarray:
    """``(8, 3)`` ego-frame trajectory at constant acceleration [m/s^2] from ``speed`` [m/s], stopping at 0."""
    t = 0.5 * np.arange(1, 9)
    t_stop = np.inf if accel >= 0 else speed / -accel
    tt = np.minimum(t, t_stop)
    traj = np.zeros((8, 3), dtype=np.float32)
    traj[:, 0] = np.clip(speed * tt + 0.5 * accel * tt**2, ACTION_LOW[0, 0], ACTION_HIGH[0, 0])
    return traj


# ---------------------------------------------------------------------------------------------- contracts


CHECK_ENV_ALLOWED = (
    # SB3: the history observation is (4, 3) on purpose (past poses); MultiInputPolicy flattens it.
    "Your observation history has an unconventional shape",
    # SB3: the raw trajectory action space is in metres; NormalizedTrajectoryAction is the [-1, 1] option.
    "We recommend you to use a symmetric and normalized Box action space",
)
"""The only warnings check_env may raise on the registered envs (any other warning fails the test)."""


def _check_env_strict(env, gymnasium_checker: bool = True) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if gymnasium_checker:  # (it asks for the unwrapped env; SB3's checker takes wrappers). The render check
            gym_check(env)     # makes the env again from its spec once per listed render mode and renders it.
        sb3_check(env, warn=True)
    unexpected = [str(w.message) for w in caught if not str(w.message).startswith(CHECK_ENV_ALLOWED)]
    assert not unexpected, unexpected


@pytest.mark.parametrize("env_id", REPLAY_ENV_IDS)
def test_gymnasium_and_sb3_check_env(env_id):
    env = gymnasium.make(env_id, config=FAST, num_scenes=4)
    _check_env_strict(env.unwrapped)
    env.close()


def test_check_env_on_the_normalised_action_wrapper():
    from envs.wrappers import NormalizedTrajectoryAction

    wrapped = NormalizedTrajectoryAction(ReplayEnv("bank", "closed_loop", FAST, num_scenes=4))
    _check_env_strict(wrapped, gymnasium_checker=False)


def test_registered_ids_default_to_the_synthetic_bank():
    for env_id, mode in zip(REPLAY_ENV_IDS, ("open_loop", "closed_loop")):
        env = gymnasium.make(env_id, config=FAST, num_scenes=2)
        _, info = env.reset(seed=0)
        assert env.unwrapped.mode == mode
        assert info["source"] == "synthetic" and info["scene_id"].startswith("synthetic/")
        env.close()


def test_ppo_multi_input_policy_trains_and_predicts_valid_actions():
    import torch
    from stable_baselines3 import PPO

    env = gymnasium.make(REPLAY_ENV_IDS[1], config=dataclasses.replace(FAST, reward_mode="lazy"), num_scenes=4)
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu", verbose=0)
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(total_timesteps=64)
    changed = sum(not torch.equal(a, b) for a, b in zip(before, model.policy.parameters()))
    assert changed > 0, "PPO updated no parameter"  # two rollouts of 32 steps, one gradient pass each
    action, _ = model.predict(env.reset(seed=1)[0], deterministic=True)
    assert action.shape == (8, 3) and env.action_space.contains(action)
    env.close()


# ------------------------------------------------------------------------------------------- closed loop


@pytest.mark.parametrize("scenario_type", ACCIDENT_TYPES)
def test_replaying_the_log_collides_at_the_logged_frame(scenario_type):
    """Closed-loop replay of the logged trajectory (re-expressed from the simulated state every 0.5 s) first overlaps
    the logged colliding agent at a frame f with |f - meta.collision_frame| <= 5 (one re-planning interval).

    Episodes run to the log's end by default (``episode_end_margin`` 0.5 s): the bank puts contacts up to frame 65,
    and the tracker may reach a grazing contact a frame or two late."""
    config = dataclasses.replace(FAST, reward_mode="lazy", bev=None)
    for seed in (0, 1):
        scene = generate_scene(scenario_type, seed=seed)
        env = ReplayEnv([scene], "closed_loop", config)
        _, info = env.reset(seed=0)
        assert scene.meta.collision_frame - info["t"] == 30  # closed_loop_lead_time 3 s
        done = False
        while not done:
            _, reward, terminated, truncated, info = env.step(env.logged_action())
            done = terminated or truncated
        assert info["termination_reason"] == "collision", (seed, info)
        assert info["colliding_agent"] == scene.meta.colliding_agent_id
        assert abs(info["t"] - scene.meta.collision_frame) <= REPLAN, (seed, info["t"], scene.meta.collision_frame)
        assert info["rewards"]["terminal_collision"] == -1.0 and reward == -config.reward.w_terminal_collision


def test_full_brake_avoids_the_rear_end_collision():
    scene = generate_scene("rear_end", seed=3)
    env = ReplayEnv([scene], "closed_loop", FAST)
    obs, _ = env.reset(seed=0)
    done, steps = False, 0
    while not done:
        obs, _, terminated, truncated, info = env.step(_straight(float(obs["ego_state"][0]), accel=-7.0))
        assert not info["collision"], info
        done, steps = terminated or truncated, steps + 1
    assert info["termination_reason"] == "time_limit" and steps >= 2
    assert obs["ego_state"][0] < 0.5  # stopped


def test_constant_speed_into_the_lead_car_collides_and_is_scored_as_collision():
    scene = generate_scene("rear_end", seed=3)
    env = ReplayEnv([scene], "open_loop", FAST)
    obs, _ = env.reset(seed=0)
    _, reward, terminated, _, info = env.step(env.logged_action())
    assert terminated and info["collision"] and info["colliding_agent"] == scene.meta.colliding_agent_id
    assert info["rewards"]["collision"] == -PDMConfig().collision_penalty
    assert reward == pytest.approx(info["rewards"]["pdms"] + info["rewards"]["collision"])


def test_simulate_prefix_equals_the_batch_tracker():
    rng = np.random.default_rng(0)
    cfg = PDMConfig()
    for _ in range(20):
        ego = EgoState(rng.normal(size=3) * [10, 10, 3], np.array([rng.uniform(0, 15), 0.0]),
                       np.array([rng.normal(), 0.0]))
        traj = np.stack([np.cumsum(rng.uniform(0, 4, 8)), np.cumsum(rng.normal(0, 0.5, 8)),
                         np.cumsum(rng.normal(0, 0.1, 8))], axis=1)
        expected = simulate_candidates(ego, traj[None], cfg)[0, 1:6]
        np.testing.assert_allclose(simulate_prefix(ego, traj, cfg, 5)[0], expected, atol=1e-9)


@pytest.mark.parametrize("steering", [0.0, 0.08, -0.3])
def test_simulate_prefix_is_the_start_of_the_scorer_simulation_with_the_same_initial_steering(steering):
    rng = np.random.default_rng(1)
    cfg = PDMConfig()
    for k in (1, 5, 40):
        ego = EgoState(rng.normal(size=3) * [10, 10, 3], np.array([rng.uniform(0, 15), 0.0]),
                       np.array([rng.normal(), 0.0]))
        traj = np.stack([np.cumsum(rng.uniform(0, 4, 8)), np.cumsum(rng.normal(0, 0.5, 8)),
                         np.cumsum(rng.normal(0, 0.1, 8))], axis=1)
        states, steer = simulate_prefix(ego, traj, cfg, k, steering)
        steered = dataclasses.replace(ego, steering_angle=steering)
        full = simulate_candidates(steered, traj[None], cfg)[0]
        np.testing.assert_array_equal(states, full[1 : k + 1])
        # Same thing with the angle carried on the EgoState (steering=None reads it).
        np.testing.assert_array_equal(simulate_prefix(steered, traj, cfg, k)[0], states)
        # The returned angles are the tracker's, state by state.
        poses = interpolate_candidates(steered, traj[None], cfg)
        np.testing.assert_array_equal(steer, track_poses_with_steering(steered, poses, cfg.sim_dt)[1][0, 1 : k + 1])
        assert steer.shape == (k,) and np.all(np.abs(steer) <= np.pi / 3)


def test_check_frames_finds_overlap_and_offroad():
    scene = generate_scene("rear_end", seed=3)
    f = scene.meta.collision_frame
    ids, off = check_frames(scene, scene.ego_poses[[f - 20, f]], np.array([f - 20, f]), None)
    assert ids.tolist() == [-1, scene.meta.colliding_agent_id] and not off.any()
    env = ReplayEnv([scene], "closed_loop", FAST)
    env.reset(seed=0)
    far = scene.ego_poses[[f - 20]] + [0.0, 500.0, 0.0]
    _, off = check_frames(scene, far, np.array([f - 20]), env._context(scene).drivable)
    assert off.tolist() == [True]


def test_compiled_check_frames_equals_the_numpy_checks_bit_for_bit():
    """check_frames (one compiled pass) against its numpy formulation: ego poses jittered around the log of every
    bank scenario type (near misses, overlaps, off-road corners, frames where agents are invalid)."""
    rng = np.random.default_rng(0)
    hits = offs = 0
    for i, scenario in enumerate(SCENARIO_TYPES):
        scene = generate_scene(scenario, seed=i)
        env = ReplayEnv([scene], "closed_loop", FAST)
        env.reset(seed=0)
        drivable = env._context(scene).drivable
        for _ in range(40):
            frames = np.sort(rng.integers(0, scene.num_frames, size=5))
            poses = scene.ego_poses[frames] + rng.normal(0.0, [2.0, 2.0, 0.3], size=(5, 3))
            got = check_frames(scene, poses, frames, drivable)
            want = check_frames_numpy(scene, poses, frames, drivable)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])
            hits += int((got[0] >= 0).sum())
            offs += int(got[1].sum())
            points = poses[:, :2] + rng.normal(0.0, 3.0, size=(5, 2))
            np.testing.assert_array_equal(drivable.contains(points), drivable.contains_numpy(points))
    assert hits > 0 and offs > 0  # both branches exercised


def test_episodes_equal_those_with_the_numpy_frame_checks(monkeypatch):
    """A fixed sequence of closed-loop episodes (default reward, random and log actions) gives the same
    observations, rewards, terminations and infos with the compiled frame checks as with the numpy reference."""
    import envs.sim.metrics as metrics_module
    import envs.sim.simulation as simulation_module
    from envs.wrappers import kinematic_trajectories
    from envs.spaces import clip_trajectories

    def record() -> list:
        env = ReplayEnv("bank", "closed_loop", EnvConfig(bev=SMALL_BEV), num_scenes=6)
        rng = np.random.default_rng(1)
        out = [env.reset(seed=2)]
        for i in range(60):
            if i % 3:
                action = clip_trajectories(kinematic_trajectories(rng.uniform(-1, 1, (8, 2)), 20.0, 0.6))
            else:
                action = env.logged_action()
            step = env.step(action)
            out.append(step)
            if step[2] or step[3]:
                out.append(env.reset())
        return out

    def flat(x):
        if isinstance(x, dict):
            return [(k, flat(v)) for k, v in sorted(x.items())]
        if isinstance(x, (tuple, list)):
            return [flat(v) for v in x]
        if isinstance(x, np.ndarray):
            return (x.dtype.str, x.shape, x.tobytes())
        if isinstance(x, float) and np.isnan(x):
            return "nan"
        return x

    compiled = flat(record())
    monkeypatch.setattr(simulation_module, "check_frames", check_frames_numpy)  # first_event's frame checks
    monkeypatch.setattr(metrics_module, "check_frames", check_frames_numpy)
    assert flat(record()) == compiled


def test_drivable_area_fast_path_equals_the_exact_index():
    from envs.sim.scoring import map_geometry_from_scene_map
    from envs.sim.simulation import DrivableArea

    rng = np.random.default_rng(0)
    for scenario_type in ("cut_in", "unprotected_left_turn", "merge_conflict"):
        geometry = map_geometry_from_scene_map(generate_scene(scenario_type, seed=0).map)
        area = DrivableArea(geometry)
        lo = np.min([p.min(axis=0) for p in geometry.drivable_areas], axis=0)
        hi = np.max([p.max(axis=0) for p in geometry.drivable_areas], axis=0)
        pts = rng.uniform(lo - 5.0, hi + 5.0, size=(4000, 2))
        exact = area.index.contains(pts)[:, area.index.drivable_columns].any(axis=-1)
        assert 0.05 < exact.mean() < 0.95
        np.testing.assert_array_equal(area.contains(pts), exact)


# -------------------------------------------------------------------------------------------- scoring API


def test_score_group_leaves_the_state_unchanged():
    env, twin = _env("closed_loop"), _env("closed_loop")
    env.reset(seed=5)
    twin.reset(seed=5)
    a0 = env.logged_action()
    env.step(a0)
    twin.step(a0)
    obs_before = env._observation()
    t_before, poses_before = env.t, env.ego_poses.copy()
    rng = np.random.default_rng(0)
    group = rng.uniform(ACTION_LOW, ACTION_HIGH, size=(4, 8, 3)).astype(np.float32)
    group[0] = env.logged_action()
    scores = env.score_group(group)
    assert set(scores) >= {"nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms", "collision", "score", "reward",
                           "is_collision", "colliding_agent_id"}
    assert all(v.shape == (4,) for v in scores.values())
    assert env.t == t_before and np.array_equal(env.ego_poses, poses_before)
    for key, value in env._observation().items():
        np.testing.assert_array_equal(value, obs_before[key])
    a1 = env.logged_action()
    out, out_twin = env.step(a1), twin.step(a1)
    for key in out[0]:
        np.testing.assert_array_equal(out[0][key], out_twin[0][key])
    assert out[1:4] == out_twin[1:4] and out[4]["rewards"] == out_twin[4]["rewards"]
    # The step reward is the score_group reward of the same action from the same state.
    assert scores["reward"][0] == pytest.approx(out[4]["rewards"]["pdms"] + out[4]["rewards"]["collision"])


def test_lazy_rewards_equal_eager_rewards():
    eager, lazy = _env("closed_loop"), _env("closed_loop", dataclasses.replace(FAST, reward_mode="lazy"))
    eager.reset(seed=2)
    lazy.reset(seed=2)
    rewards = []
    for _ in range(3):
        a = eager.logged_action()
        np.testing.assert_array_equal(a, lazy.logged_action())
        _, r, te, tr, info = eager.step(a)
        _, r_lazy, *_ = lazy.step(a)
        assert r_lazy == info["rewards"]["terminal_collision"]
        rewards.append(info["rewards"]["reward"] - info["rewards"]["terminal_collision"])
        if te or tr:
            break
    lazy.reset()
    lazy.step(lazy.logged_action())  # decisions survive resets until flushed
    flushed = lazy.flush_rewards()
    np.testing.assert_allclose(flushed["reward"][:-1], rewards)
    assert flushed["episode"].tolist() == [0] * len(rewards) + [1]
    assert lazy.flush_rewards() == {}


def test_reference_log_equals_auto_in_open_loop():
    """Open loop scores the logged state, where "log" and "auto" plan the same reference."""
    out = {}
    for reference in ("log", "auto", None):
        env = _env("open_loop", dataclasses.replace(FAST, reference=reference), num_scenes=2)
        env.reset(seed=0)
        slow = env.logged_action() * np.array([0.3, 0.3, 1.0], dtype=np.float32)  # 30 % of the logged progress
        out[reference] = env.score_group(np.stack([slow, env.logged_action()]))["ep"]
    np.testing.assert_array_equal(out["log"], out["auto"])
    assert out["log"][0] < 0.5 and out[None][0] < 0.5  # slow candidate: low EP either way
    assert out[None][1] == 1.0  # without a reference the best of the group gets EP 1


def test_map_free_scenes_report_the_map_free_score_not_pdms():
    scene = dataclasses.replace(generate_scene("cut_in", seed=1), map=None)
    env = ReplayEnv([scene], "open_loop", FAST)
    env.reset(seed=0)
    _, reward, _, _, info = env.step(env.logged_action())
    terms = info["rewards"]
    assert info["score_kind"] == "map_free" and np.isnan(terms["pdms"]) and np.isnan(terms["ep"])
    expected = terms["nc"] * (5 * terms["ttc"] + 2 * terms["comfort"]) / 7
    assert terms["score"] == terms["map_free_score"] == pytest.approx(expected)
    assert reward == pytest.approx(terms["score"] + terms["collision"])


def test_deepaccident_folder_source(tmp_path):
    from envs.scenes.deepaccident import write_scenario

    for i in range(2):
        write_scenario(generate_scene("rear_end", seed=i), tmp_path)
    env = ReplayEnv(str(tmp_path), "closed_loop", FAST)
    obs, info = env.reset(seed=0)
    assert info["score_kind"] == "map_free" and env.scene.map is None
    assert env.observation_space.contains(obs)
    _, _, _, _, info = env.step(env.logged_action())
    assert np.isfinite(info["rewards"]["reward"])


# ------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "action, match",
    [
        (np.zeros((7, 3)), r"action: expected shape \(8, 3\), got \(7, 3\)"),
        (np.zeros((1, 8, 3)), r"action: expected shape \(8, 3\), got \(1, 8, 3\)"),
        (np.where(np.eye(8, 3) > 0, np.nan, 0.0), r"action: NaN or inf at index \(0, 0\)"),
        (np.full((8, 3), np.inf), r"action: NaN or inf at index \(0, 0\)"),
        (_straight(30.0).astype(np.float64) + ([[0, 0, 0]] * 7 + [[0, 0, 4.0]]), r"index \(7, 2\).*outside"),
        ("left", r"action: cannot convert"),
    ],
)
def test_bad_actions_raise(action, match):
    env = _env("open_loop")
    env.reset(seed=0)
    with pytest.raises(ValueError, match=match):
        env.step(action)
    with pytest.raises(ValueError, match="trajectories"):
        env.score_group(np.zeros((8, 3)))


def test_out_of_bounds_action_names_index_and_value():
    a = np.zeros((8, 3))
    a[3, 0] = 81.5
    with pytest.raises(ValueError, match=r"value 81.5 at index \(3, 0\) is outside the action bounds \[-10, 80\]"):
        validate_trajectories(a)


def test_unknown_scene_id_lists_valid_ids():
    env = _env("open_loop", num_scenes=3)
    with pytest.raises(KeyError, match=r"unknown scene_id 'nope'.*3 scenes, e\.g\. 'synthetic/"):
        env.reset(options={"scene_id": "nope"})
    ids = env.source.scene_ids
    _, info = env.reset(options={"scene_id": ids[2]})
    assert info["scene_id"] == ids[2]


def test_empty_and_unreadable_sources_fail_at_construction(tmp_path):
    with pytest.raises(ValueError, match="contains no scenes"):
        ReplayEnv([], "open_loop", FAST)
    missing = tmp_path / "no_such_folder"
    with pytest.raises(ValueError, match=str(missing)):
        ReplayEnv(str(missing), "open_loop", FAST)
    with pytest.raises(ValueError, match=str(tmp_path)):  # a folder without DeepAccident files
        ReplayEnv("deepaccident", "open_loop", FAST, root=str(tmp_path))


def test_step_before_reset_and_after_end_raise():
    env = _env("open_loop")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros((8, 3)))
    env.reset(seed=0)
    env.step(np.zeros((8, 3)))
    with pytest.raises(RuntimeError, match="episode ended"):
        env.step(np.zeros((8, 3)))


# ------------------------------------------------------------------------------------------- determinism


def _rollout(env: ReplayEnv, seed: int, episodes: int) -> list:
    out = []
    for e in range(episodes):
        obs, info = env.reset(seed=seed if e == 0 else None)
        out.append((info["scene_id"], info["t"]))
        done = False
        while not done:
            obs, r, te, tr, info = env.step(_straight(float(obs["ego_state"][0])))
            out.append((r, info["t"], info["collision"], float(obs["bev"].sum())))
            done = te or tr
    return out


def test_same_seed_same_scenes_and_outcomes():
    a = _rollout(_env("closed_loop", dataclasses.replace(FAST, reference=None)), seed=7, episodes=3)
    b = _rollout(_env("closed_loop", dataclasses.replace(FAST, reference=None)), seed=7, episodes=3)
    c = _rollout(_env("closed_loop", dataclasses.replace(FAST, reference=None)), seed=8, episodes=3)
    assert a == b
    assert a != c


def test_scene_order_is_a_seeded_permutation():
    env = _env("open_loop", num_scenes=5)
    ids = [env.reset(seed=3 if i == 0 else None)[1]["scene_id"] for i in range(5)]
    assert sorted(ids) == sorted(env.source.scene_ids)


# ------------------------------------------------------------------------------------------ observations


def test_route_command_left_straight_right():
    s = np.linspace(0.0, 30.0, 31)
    straight = np.stack([s, np.zeros_like(s)], 1)
    arc = np.linspace(0.0, np.pi / 2, 20)
    left = np.concatenate([straight, np.stack([30 + 10 * np.sin(arc), 10 - 10 * np.cos(arc)], 1)[1:]])
    right = left * [1.0, -1.0]
    for points, want in ((straight, STRAIGHT), (left, LEFT), (right, RIGHT)):
        route = Route.from_points(points)
        assert route_command(route, route.project(np.array([10.0, 0.3]))) == want
        assert route_command(route, 0.0, lookahead=5.0) == STRAIGHT  # the turn is beyond the window


def test_history_is_in_the_ego_frame_and_padded_at_the_start():
    poses = np.zeros((30, 3))
    poses[:, 0] = np.arange(30.0)
    poses[:, 2] = np.pi / 2  # moving along +x while heading +y: the past (-x) lies to the ego's left (+y)
    hist = pose_history(poses, 10, 4, 5)  # frames 10 - 20, -15, -10 (padded with frame 0), then frame 5
    np.testing.assert_allclose(hist[:, :2], [[0.0, 10.0], [0.0, 10.0], [0.0, 10.0], [0.0, 5.0]], atol=1e-6)
    assert hist.dtype == np.float32


def test_observation_contents_and_prompt():
    env = _env("closed_loop", dataclasses.replace(FAST, text_prompt=True))
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert obs["bev"].shape == SMALL_BEV.shape and obs["bev"].dtype == np.uint8
    scene, t = env.scene, info["t"]
    assert obs["ego_state"][0] == pytest.approx(np.linalg.norm(scene.ego_velocities[t]), rel=1e-5)
    np.testing.assert_allclose(obs["history"][-1], scene.world_to_ego(scene.ego_poses[t - 5], t), atol=1e-4)
    assert f"{obs['ego_state'][0]:.1f} m/s" in info["prompt"] and "command" in info["prompt"]
    viewer = _env("closed_loop", render_mode="rgb_array")
    viewer.reset(seed=0)
    before = viewer.render()
    viewer.step(viewer.logged_action())
    after = viewer.render()  # now with the action drawn, from the new frame
    assert before.shape == after.shape == (256, 256, 3) and not np.array_equal(before, after)
    state_only = _env("closed_loop", dataclasses.replace(FAST, bev=None))
    obs, _ = state_only.reset(seed=0)
    assert "bev" not in obs and state_only.observation_space.contains(obs)


# --------------------------------------------------------------------------------------- vectorized envs


def _make_small():
    return gymnasium.make(REPLAY_ENV_IDS[1], config=FAST, num_scenes=3)


def test_sb3_vec_envs_and_env_method_score_group():
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    group = np.stack([_straight(5.0), _straight(10.0), _straight(0.0)])
    for make_vec in (DummyVecEnv, lambda fns: SubprocVecEnv(fns, start_method="fork")):  # fork: no re-imports
        vec = make_vec([_make_small, _make_small])
        vec.seed(0)
        obs = vec.reset()
        assert obs["bev"].shape == (2,) + SMALL_BEV.shape
        results = vec.env_method("score_group", group)
        assert len(results) == 2 and all(r["pdms"].shape == (3,) for r in results)
        obs, rewards, dones, infos = vec.step(np.stack([_straight(5.0)] * 2))
        assert rewards.shape == (2,) and "rewards" in infos[0]
        vec.close()


def test_gymnasium_vector_envs():
    for cls in (gymnasium.vector.SyncVectorEnv, gymnasium.vector.AsyncVectorEnv):
        vec = cls([_make_small, _make_small])
        obs, infos = vec.reset(seed=0)
        assert obs["history"].shape == (2, 4, 3)
        obs, rewards, term, trunc, infos = vec.step(np.stack([_straight(5.0)] * 2))
        assert rewards.shape == (2,) and infos["scene_id"].shape == (2,)
        scores = vec.call("score_group", np.stack([_straight(5.0)]))
        assert len(scores) == 2 and scores[0]["reward"].shape == (1,)
        vec.close()


def _crop(scene, end: int, start: int = 0):
    """``scene`` cut to frames ``start .. end`` (a short log, as DeepAccident's, that ends soon after the crash)."""
    f = slice(start, end + 1)
    lights = tuple(dataclasses.replace(tl, states=tl.states[f]) for tl in scene.map.traffic_lights)
    cf = scene.meta.collision_frame
    meta = dataclasses.replace(scene.meta, collision_frame=None if cf is None else cf - start)
    return dataclasses.replace(
        scene, ego_poses=scene.ego_poses[f], ego_velocities=scene.ego_velocities[f],
        agent_poses=scene.agent_poses[:, f], agent_velocities=scene.agent_velocities[:, f],
        agent_valid=scene.agent_valid[:, f], map=dataclasses.replace(scene.map, traffic_lights=lights), meta=meta)


def test_closed_loop_reaches_the_crash_of_a_short_log():
    """A log that ends 2 s after its collision (shorter than the 4 s start margin after it): the episode runs to the
    log's end, log replay collides there, and decisions within 4 s of the end say their logged horizon."""
    full = generate_scene("rear_end", seed=3)
    cf = full.meta.collision_frame
    scene = _crop(full, cf + 20)
    env = ReplayEnv([scene], "closed_loop", dataclasses.replace(FAST, bev=None))
    _, info = env.reset(seed=0)
    assert info["t"] == cf - 30 and info["logged_horizon"] == pytest.approx(4.0)
    horizons = []
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.logged_action())
        horizons.append(info["logged_horizon"])
        done = terminated or truncated
    assert info["termination_reason"] == "collision" and abs(info["t"] - cf) <= REPLAN
    assert min(horizons) < 4.0 and np.isfinite(info["rewards"]["reward"])


def test_a_log_shorter_than_the_start_margin_starts_at_frame_0_and_reaches_the_crash():
    full = generate_scene("rear_end", seed=3)
    cf = full.meta.collision_frame
    scene = _crop(full, cf + 14, start=cf - 25)  # 40 frames (4 s), the crash at frame 25
    env = ReplayEnv([scene], "closed_loop", dataclasses.replace(FAST, bev=None))
    _, info = env.reset(seed=0)
    assert info["t"] == 0
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.logged_action())
        done = terminated or truncated
    assert info["termination_reason"] == "collision" and abs(info["t"] - 25) <= REPLAN
