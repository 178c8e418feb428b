"""CarlaEnv on the in-process stand-in: Gymnasium/SB3 contracts, scripted typologies, scoring, recordings, the
"carla" source and origin, fault injection with zero leaked actors, cameras, workers, and env=carla in the pipeline."""

from __future__ import annotations

import dataclasses
import re
import time
import warnings

import gymnasium
import numpy as np
import pytest

from agents.base import policy_input
from agents.baselines import StandStillPolicy
from envs import CARLA_ENV_ID
from envs.carla import standin
from envs.carla.connection import (CarlaConnection, CarlaConnectionError, CarlaError, CarlaMapError, CarlaSpawnError,
                                   CarlaVersionError)
from envs.carla.env import CameraConfig, CarlaEnv, CarlaEnvConfig, carla_env_fns
from envs.carla.recording import read_recording
from envs.scenes.layouts import get_layout
from envs.render import BEVConfig
from envs.sim.reward import REWARD_TERMS
from envs.scenes.sources import open_source, resolve

SMALL_BEV = BEVConfig(height=48, width=48, meters_per_pixel=1.0)
"""48 px keeps the tests fast (above NatureCNN's 36 px minimum)."""
PORTS = iter(range(2400, 2600))


def _config(port: int, town: str = "Standin_straight", **kw) -> CarlaEnvConfig:
    """A fast stand-in configuration: short episodes (contact at 5 s), no reference planning, short timeouts."""
    base = dict(backend="standin", hosts=(f"127.0.0.1:{port}",), town=town, bev=None, reference=None,
                num_background=2, episode_time=7.0, map_radius=40.0, record_after_end=0.0, client_timeout=0.05, tick_timeout=0.05, sensor_timeout=0.05,
                reconnect_attempts=1, reconnect_wait=0.0, traffic_manager_port=8000 + port)
    base.update(kw)
    return CarlaEnvConfig(**base)


@pytest.fixture
def world():
    """``(server, config)`` of a fresh stand-in server on its own port (shut down after the test)."""
    def make(town: str = "Standin_straight", **kw):
        port = next(PORTS)
        server = standin.serve("127.0.0.1", port, town=town, **{k: kw.pop(k) for k in ("version", "nullrhi")
                                                                if k in kw})
        return server, _config(port, town, **kw)

    yield make
    standin.shutdown_all()


def _run(env: CarlaEnv, policy=None, seed: int = 0, options=None):
    """One episode; returns the last ``(obs, info)`` and the number of steps."""
    obs, info = env.reset(seed=seed, options=options)
    steps, done = 0, False
    while not done:
        action = env.logged_action() if policy is None else policy.act(policy_input(env, obs, info, True))
        obs, _, terminated, truncated, info = env.step(action)
        steps += 1
        done = terminated or truncated
    return obs, info, steps


# ----------------------------------------------------------------------------------------------------- contracts
def test_registered_id_passes_gymnasium_and_sb3_check_env(world):
    from gymnasium.utils.env_checker import check_env as gym_check
    from stable_baselines3.common.env_checker import check_env as sb3_check

    _, cfg = world()
    env = gymnasium.make(CARLA_ENV_ID, config=dataclasses.replace(  # (a minimal episode: the checkers reset 18 times)
        cfg, bev=SMALL_BEV, scenario_types=("rear_end",), warmup_time=0.0, num_background=0, map_radius=20.0))
    allowed = ("Your observation history has an unconventional shape",
               "We recommend you to use a symmetric and normalized Box action space")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check(env.unwrapped)  # with the render check: one more env per listed render mode (rgb_array)
        sb3_check(env.unwrapped, warn=True)
    assert not [str(w.message) for w in caught if not str(w.message).startswith(allowed)]
    env.close()


def test_every_typology_collides_with_the_non_reacting_expert_near_the_nominal_contact(world):
    """The bank's typologies placed on CARLA waypoints: following the scenario's nominal plan (the expert that does
    not react) hits the risk agent within 0.6 s of the nominal contact (5 s: 2 s warm-up + 3 s lead)."""
    for town, types in (("Standin_straight", ("rear_end", "cut_in", "pedestrian_occluded", "head_on_drift")),
                        ("Standin_junction_2x2", ("red_light_runner_left", "red_light_runner_right",
                                                  "unprotected_left_turn", "right_turn_vru"))):
        server, cfg = world(town, num_background=0, map_radius=20.0)
        env = CarlaEnv(cfg)
        for st in types:
            _, info, _ = _run(env, options={"scenario_type": st})
            scene = env.last_recording
            risk = env._episode.adversaries[0][1].id  # noqa: SLF001  (the plan's risk actor)
            assert info["termination_reason"] == "collision" and info["collision"], st
            assert abs(scene.meta.collision_frame - 50) <= 6, (st, scene.meta.collision_frame)
            assert scene.meta.colliding_agent_id == info["colliding_agent"] == risk, st
            assert info["rewards"]["terminal_collision"] == -1.0
            assert info["driving_metrics"]["infraction_penalty"] < 1.0
        env.close()
        assert server.user_actors() == []


def test_normal_driving_runs_to_the_time_limit_with_full_route_completion(world):
    _, cfg = world()
    env = CarlaEnv(cfg)
    _, info, steps = _run(env, options={"scenario_type": "normal"})
    assert info["termination_reason"] == "time_limit" and steps == 10  # (7 s - 2 s warm-up) / 0.5 s
    assert info["driving_metrics"]["route_completion"] > 0.95 and info["driving_metrics"]["driving_score"] > 0.95
    env.close()


def test_a_braking_policy_avoids_the_rear_end(world):
    _, cfg = world()
    env = CarlaEnv(dataclasses.replace(cfg, scenario_types=("rear_end",)))
    _, info, _ = _run(env, StandStillPolicy())
    assert info["termination_reason"] == "time_limit" and not info["collision"]
    assert env.last_recording.meta.collision_frame is None
    env.close()


def _episode_return(env: CarlaEnv, policy=None, options=None) -> tuple[float, dict]:
    obs, info = env.reset(seed=0, options=options)
    total, done = 0.0, False
    while not done:
        action = env.logged_action() if policy is None else policy.act(policy_input(env, obs, info, True))
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        done = terminated or truncated
    return total, info


def test_progress_reward_in_carla_pays_the_route_and_makes_a_crash_worth_less_than_stopping(world):
    """``reward.kind="progress"`` (as the replay env): following the plan on a normal scene earns about its route
    completion; the expert that rear-ends returns at most ``-w_terminal_collision``; braking to a stop earns >= 0."""
    from envs.sim.reward import RewardConfig

    _, cfg = world()
    env = CarlaEnv(dataclasses.replace(cfg, reward=RewardConfig(kind="progress", w_terminal_collision=1.0)))
    ret, info = _episode_return(env, options={"scenario_type": "normal"})
    assert info["termination_reason"] == "time_limit"
    assert ret == pytest.approx(info["driving_metrics"]["route_completion"], abs=0.1) and ret > 0.9
    crash, info = _episode_return(env, options={"scenario_type": "rear_end"})
    assert info["termination_reason"] == "collision" and crash <= -1.0
    stop, info = _episode_return(env, StandStillPolicy(), options={"scenario_type": "rear_end"})
    assert info["termination_reason"] == "time_limit" and 0.0 <= stop < ret
    env.close()


def test_score_group_matches_the_step_reward_and_never_touches_the_server(world):
    from envs.sim.reward import RewardConfig

    server, cfg = world()  # the score as the step reward, so that it equals the group's reward term
    env = CarlaEnv(dataclasses.replace(cfg, reference="auto", scenario_types=("rear_end",),
                                       reward=RewardConfig(kind="score")))
    obs, info = env.reset(seed=3)
    assert set(info["rewards"]) == set(REWARD_TERMS) | {"terminal_collision", "route_progress", "soft_factor"}
    action = env.logged_action()
    frame = server.frame
    group = env.score_group(np.stack([action, np.zeros_like(action)]))
    assert server.frame == frame and group["reward"].shape == (2,)
    inp = policy_input(env, obs, info, privileged=True)
    assert inp.t == env.t == 20 and inp.scene.meta.source == "carla"
    assert inp.problem.agents.valid.all()  # constant-velocity forecasts over the whole scoring window
    _, reward, _, _, info = env.step(action)
    for name in REWARD_TERMS:
        assert np.isclose(info["rewards"][name], group[name][0], equal_nan=True), name
    assert reward == pytest.approx(group["reward"][0])
    env.close()


# -------------------------------------------------------------------------------------------------- recordings
def test_recordings_reload_through_the_carla_origin_and_source(world, tmp_path):
    from counterfactual.miner import MinerConfig, mine_scene
    from envs.replay_env import EnvConfig, ReplayEnv

    _, cfg = world()
    env = CarlaEnv(dataclasses.replace(cfg, record_dir=str(tmp_path), scenario_types=("cut_in",), record_after_end=4.0))
    _, info, _ = _run(env)
    env.close()
    scene = env.last_recording
    assert scene.meta.source == "carla" and info["origin"]["kind"] == "carla"
    again = resolve(info["origin"])
    for name in ("ego_poses", "ego_velocities", "agent_ids", "agent_poses", "agent_valid", "agent_sizes"):
        assert np.array_equal(getattr(again, name), getattr(scene, name)), name
    assert again.meta.collision_frame == scene.meta.collision_frame and again.map.route_lane_ids
    assert np.array_equal(read_recording(info["recording"]).map.route, scene.map.route)
    # CARLA's left-handed frame is mirrored back: during the warm-up the ego drives on a lane of the right-handed
    # layout in that lane's direction, and every map lane lies on a layout lane.
    layout = get_layout("straight")
    for pose in scene.ego_poses[:20]:
        lane = min(layout.lanes, key=lambda ln: np.min(np.linalg.norm(ln.centerline - pose[:2], axis=1)))
        d = lane.centerline[-1] - lane.centerline[0]
        assert np.min(np.linalg.norm(lane.centerline - pose[:2], axis=1)) < 0.6
        assert abs(np.angle(np.exp(1j * (pose[2] - np.arctan2(d[1], d[0]))))) < 0.02
    for lane in scene.map.lanes:
        assert min(np.min(np.linalg.norm(lane.centerline[:, None] - ref.centerline[None], axis=-1), axis=1).max()
                   for ref in layout.lanes) < 0.05
    source = open_source("carla", root=str(tmp_path))
    assert len(source) == 1 and source.scene_ids == [scene.scene_id]
    assert resolve(source.origin(0)).scene_id == scene.scene_id
    replay = ReplayEnv(source, "closed_loop", EnvConfig(bev=None, reference=None))
    replay.reset(seed=0)
    replay.step(replay.logged_action())
    mined = mine_scene(scene, MinerConfig(), source.origin(0))
    assert mined.pairs and all(p.observation_ref["origin"]["kind"] == "carla" for p in mined.pairs)


# ------------------------------------------------------------------------------------------------------ faults
def test_tick_timeout_ends_the_episode_cleanly_and_the_next_reset_reconnects(world):
    server, cfg = world()
    env = CarlaEnv(cfg)
    env.reset(seed=0, options={"scenario_type": "rear_end"})
    spawned = len(server.user_actors())
    server.fail_ticks(1)
    obs, reward, terminated, truncated, info = env.step(env.logged_action())
    assert truncated and not terminated and info["termination_reason"] == "carla_error"
    assert "time-out of 50ms" in info["carla_error"] and env.observation_space.contains(obs)
    assert env.last_recording.meta.extra["termination_reason"] == "carla_error"
    env.reset(seed=1, options={"scenario_type": "rear_end"})
    assert env.connection.connections == 2
    assert len(server.user_actors()) == spawned  # the aborted episode's actors were destroyed on reconnect
    assert set(server.tick_timeouts) == {cfg.tick_timeout}  # every tick had the configured timeout
    env.close()
    assert server.user_actors() == [] and server.settings.synchronous_mode is False
    assert server.destroyed_while_listening == 0  # sensors were stopped before their destruction


def test_late_sensor_events_land_on_the_step_of_the_collision(world):
    """CARLA's streaming thread may call the sensor listeners after ``tick()`` returned the frame: with the stand-in
    delivering every sensor datum 50 ms late (from a thread), the rear-end collision still ends the same step at the
    same frame as with immediate delivery (reading the events right after the tick finds none yet)."""
    def episode(late: float | None):
        server, cfg = world()
        if late is not None:
            server.deliver_late(late)
        env = CarlaEnv(dataclasses.replace(cfg, sensor_timeout=2.0))
        env.reset(seed=0, options={"scenario_type": "rear_end"})
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, info = env.step(env.logged_action())
            steps, done = steps + 1, terminated or truncated
        meta = env.last_recording.meta
        env.close()
        assert server.user_actors() == []
        return (steps, info["termination_reason"], info["collision"], meta.extra["end_frame"], meta.collision_frame,
                meta.extra["lane_invasions"])

    on_time = episode(None)
    assert on_time[1] == "collision" and on_time[2] is True
    assert episode(0.05) == on_time


def test_a_frame_whose_sensor_data_never_arrive_ends_the_episode(world):
    server, cfg = world()
    env = CarlaEnv(cfg)
    env.reset(seed=0, options={"scenario_type": "rear_end"})
    server.mute_sensors("sensor.other.imu")
    _, _, terminated, truncated, info = env.step(env.logged_action())
    assert truncated and not terminated and info["termination_reason"] == "carla_error"
    assert re.fullmatch(r"sensor failure: sensor\.other\.imu \(actor \d+\) sent no data for frame \d+ within "
                        r"sensor_timeout=0\.05 s, so the frame's collision and lane-invasion events may be missing "
                        r"\(latest frame received: \d+\); is the server overloaded, or its streaming port \(RPC port "
                        r"\+ 1\) unreachable\?", info["carla_error"])
    env.close()
    assert server.user_actors() == []


def test_server_loss_mid_episode_then_restart(world):
    server, cfg = world()
    env = CarlaEnv(cfg)
    env.reset(seed=0)
    server.crash()
    _, _, terminated, truncated, info = env.step(env.logged_action())
    assert truncated and "carla_error" in info
    attempts: list[int] = []  # connection attempts of this reset (reconnect_attempts=1: exactly one, no waiting)
    connect = CarlaConnection.connect
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CarlaConnection, "connect", lambda self: (attempts.append(1), connect(self))[1])
        with pytest.raises(CarlaConnectionError, match=r"127\.0\.0\.1:\d+.*docker compose up carla"):
            env.reset(seed=1)
    assert attempts == [1] * cfg.reconnect_attempts  # fails after the configured attempts, never loops
    server.restart()  # a fresh server process: default (asynchronous) settings, no actors
    env.reset(seed=1)
    assert server.settings.synchronous_mode is True  # re-applied after the restart
    env.step(env.logged_action())
    env.close()
    assert server.user_actors() == []


def test_hung_then_resumed_server_has_its_orphans_destroyed(world):
    server, cfg = world()
    env = CarlaEnv(cfg)
    env.reset(seed=0)
    server.hang()
    assert env.step(env.logged_action())[3]
    server.resume()
    env.reset(seed=1)
    env.close()
    assert server.user_actors() == []


def test_spawn_failures_retry_then_fail_without_leaks(world):
    server, cfg = world()
    env = CarlaEnv(cfg)
    server.fail_spawns(1)  # the first placement's ego spawn fails; the next placement works
    env.reset(seed=0, options={"scenario_type": "rear_end"})
    env.close()
    server.fail_spawns(10_000)
    env = CarlaEnv(cfg)
    with pytest.raises(CarlaSpawnError, match="could not be spawned"):
        env.reset(seed=0, options={"scenario_type": "rear_end"})
    env.close()
    assert server.user_actors() == []


def test_a_camera_that_never_reports_ends_the_episode(world):
    server, cfg = world()
    env = CarlaEnv(dataclasses.replace(cfg, cameras=(CameraConfig(width=32, height=16),)))
    obs, _ = env.reset(seed=0)
    assert obs["camera_front"].shape == (16, 32, 3) and env.observation_space.contains(obs)
    assert server.settings.no_rendering_mode is False  # cameras need rendering
    server.mute_sensors("sensor.camera.rgb")
    _, _, _, truncated, info = env.step(env.logged_action())
    assert truncated and "camera.rgb 'front'" in info["carla_error"] and "nullrhi" in info["carla_error"]
    env.close()
    assert server.user_actors() == []


def test_cameras_on_a_nullrhi_server_are_a_clear_error(world):
    server, cfg = world(nullrhi=True)
    env = CarlaEnv(dataclasses.replace(cfg, cameras=(CameraConfig(width=32, height=16),)))
    with pytest.raises(CarlaError, match="sent no image"):
        env.reset(seed=0)
    env.close()
    assert server.user_actors() == []


def test_version_mismatch_is_a_clear_error(world):
    _, cfg = world(version="0.9.15")
    env = CarlaEnv(cfg)
    with pytest.raises(CarlaVersionError, match=r"runs 0\.9\.15 but the client library is 0\.9\.16"):
        env.reset(seed=0)
    env.close()


def test_a_slow_first_town_load_runs_under_its_own_timeout(world):
    server, cfg = world()  # serves Standin_straight; the env asks for another town, whose load takes 0.3 s
    server.slow_load(0.3)
    cfg = dataclasses.replace(cfg, town="Standin_junction_1x1", scenario_types=("normal",), load_world_timeout=2.0)
    env = CarlaEnv(cfg)
    env.reset(seed=0)  # 0.3 s > client_timeout (0.05 s): only the load's own timeout lets it through
    assert server.town == "Standin_junction_1x1" and env.connection.client._timeout == cfg.client_timeout  # restored
    env.close()
    server, cfg = world()
    server.slow_load(0.3)
    env = CarlaEnv(dataclasses.replace(cfg, town="Standin_junction_1x1", load_world_timeout=0.1))
    with pytest.raises(CarlaConnectionError, match=r"CARLA server at 127\.0\.0\.1:\d+ did not finish loading town "
                       r"'Standin_junction_1x1' within load_world_timeout=0\.1 s \(failed to connect to newly created "
                       r"map\); a first town load can take minutes: raise CarlaEnvConfig\.load_world_timeout "
                       r"\(env\.load_world_timeout\)"):
        env.reset(seed=0)
    env.close()


def test_an_unknown_town_is_a_configuration_error_listing_the_maps_never_retried(world, monkeypatch):
    _, cfg = world()
    env = CarlaEnv(dataclasses.replace(cfg, town="Town99", reconnect_attempts=3, reconnect_wait=1.0))
    import types

    import envs.carla.staging as staging

    waits: list[float] = []  # the staging module's waits between connection attempts (only its own time.sleep)
    monkeypatch.setattr(staging, "time", types.SimpleNamespace(sleep=waits.append))
    with pytest.raises(CarlaMapError, match=r"^town 'Town99' \(CarlaEnvConfig\.town / env\.town\): map not found on "
                       r"the CARLA server at 127\.0\.0\.1:\d+; available maps: /Game/Carla/Maps/Standin_junction_1x1, "
                       r".*/Game/Carla/Maps/Standin_straight \(a configuration error, not retried\)$"):
        env.reset(seed=0)
    assert waits == []  # not retried (3 attempts would wait 2 x 1 s between them)
    monkeypatch.undo()
    env.close()
    # a server that lists the town but answers load_world with its "map not found" error: the same error
    monkeypatch.setattr(standin.client, "map_names", lambda: ["/Game/Carla/Maps/Town99"])
    conn = CarlaConnection(standin, *cfg.address, client_timeout=0.05, town="Town99")
    with pytest.raises(CarlaMapError, match=r"available maps: /Game/Carla/Maps/Town99 \(a configuration error"):
        conn.connect()


def test_no_server_fails_fast_naming_host_and_compose():
    env = CarlaEnv(_config(2999))
    with pytest.raises(CarlaConnectionError, match=r"127\.0\.0\.1:2999.*docker compose up carla"):
        env.reset(seed=0)


# ----------------------------------------------------------------------------------------------------- workers
def test_config_checks_and_one_server_and_tm_port_per_worker(world):
    with pytest.raises(ValueError, match="worker_index=1: hosts lists 1"):
        CarlaEnvConfig(backend="standin", worker_index=1)
    with pytest.raises(ValueError, match="cannot parse"):
        CarlaEnvConfig(hosts=("a:b:c",))
    with pytest.raises(ValueError, match="must divide"):
        CarlaEnvConfig(fixed_delta_seconds=0.03)
    with pytest.raises(ValueError, match="unknown"):
        CarlaEnvConfig(scenario_types=("merge_conflict",))
    (s0, c0), (s1, c1) = world(), world()
    cfg = dataclasses.replace(c0, hosts=c0.hosts + c1.hosts, num_background=3)
    envs = [fn() for fn in carla_env_fns(cfg)]
    assert [e.connection.tm_port for e in envs] == [cfg.traffic_manager_port, cfg.traffic_manager_port + 1]
    for e in envs:
        e.reset(seed=0, options={"scenario_type": "normal"})
        e.step(e.logged_action())
    for server in (s0, s1):  # each server's background traffic is driven by its own worker's Traffic Manager
        moving = [r for r in server.actors.values() if r.autopilot_port is not None and r.speed > 0.5]
        assert moving
    for e in envs:
        e.close()


# ---------------------------------------------------------------------------------------------------- pipeline
def _compose(tmp_path, *overrides):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        return compose(config_name="config", overrides=["env=carla", "progress=false", "tensorboard=false",
                                                        f"out_dir={tmp_path}", *overrides])


def test_experiments_run_env_carla(tmp_path, world):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from experiments.run import run

    import envs.carla.connection as connection

    probes: list[tuple[str, int]] = []  # the pre-flight probe, before any stage: nothing listens, it fails at once
    check = connection.check_server
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(connection, "check_server", lambda host, port, **kw: (probes.append((host, port)),
                                                                         check(host, port, **kw))[1])
        with pytest.raises(SystemExit, match=r"localhost:1.*docker compose up carla"):
            run(_compose(tmp_path, "env.hosts=[localhost:1]"), tmp_path)
    assert probes == [("localhost", 1)]
    assert not list(tmp_path.rglob("results.json")) and not list(tmp_path.rglob("*.ckpt"))  # no stage ran
    server, c = world()
    ctx = run(_compose(tmp_path, f"env.hosts=[{c.hosts[0]}]", "env.backend=standin", "env.town=Standin_straight",
                       "env.num_episodes=1", "env.eval_num_episodes=1", "env.episode_time=7.0",
                       "env.scenario_types=[rear_end]", "env.policy=constant_velocity", "env.tick_timeout=0.5",
                       f"env.traffic_manager_port={c.traffic_manager_port}", "render.enabled=false",
                       "mine.lead_times=[2.0]", "stages=[collect,mine]", "tensorboard=true"), tmp_path)
    assert ctx.outputs["mine"]["num_pairs_train"] >= 1
    train, held = (sorted((tmp_path / "carla" / split).glob("*.npz")) for split in ("train", "eval"))
    assert len(train) == len(held) == 1 and train[0].name != held[0].name  # held out: another seed, another scene
    text = ctx.outputs["collect"]["description"]
    assert "1 training episodes (seeds 0..0), 1 held-out episodes (seeds 1000..1000" in text
    assert "0 episode(s) skipped after failures" in text
    assert server.user_actors() == [] and server.settings.synchronous_mode is False
    assert set(server.tick_timeouts) == {0.5}  # env.tick_timeout reached the env
    events = EventAccumulator(str(tmp_path / "tb" / "carla"))
    events.Reload()
    for split in ("train", "eval"):
        value = {tag: [e.value for e in events.Scalars(f"carla/{split}/{tag}")]
                 for tag in ("episode_return", "route_completion", "infractions", "infractions/vehicle", "collision",
                             "skipped")}
        assert value["collision"] == [1.0] and value["infractions"] == [1.0] == value["infractions/vehicle"]
        assert 0.0 < value["route_completion"][0] < 1.0 and value["skipped"] == [0.0]
        assert np.isfinite(value["episode_return"][0]) and value["episode_return"][0] != 0.0


@pytest.mark.parametrize("override, message", [
    ("env.episode_time=2.0", r"env\.episode_time: expected >= 2\.5 s \(the 2 s warm-up plus one 0\.5 s decision\), "
                             r"got 2\.0"),
    ("env.scenario_types=[merge_conflict]", r"env\.scenario_types: unknown \['merge_conflict'\]; known: \['rear_end'"),
    ("env.num_episodes=0", r"env\.num_episodes: expected an int >= 1, got 0"),
    ("env.eval_num_episodes=0", r"env\.eval_num_episodes: expected an int >= 1, got 0"),
    ("env.eval_seed=2", r"env\.eval_seed=2: the held-out episodes' seeds 2\.\.3 overlap the training seeds 0\.\.3"),
    ("env.tick_timeout=0", r"env\.tick_timeout: expected a positive number of seconds, got 0\.0"),
    ("env.load_world_timeout=-5", r"env\.load_world_timeout: expected a positive number of seconds, got -5\.0"),
    ("env.connect_timeout=0", r"env\.connect_timeout: expected a positive number of seconds"),
    ("env.sensor_timeout=0", r"env\.sensor_timeout: expected a positive number of seconds"),
    ("env.traffic_manager_port=0", r"env\.traffic_manager_port: expected an int >= 1, got 0"),
    ("env.traffic_manager_port=65535", r"env\.traffic_manager_port: the 2 workers use ports traffic_manager_port\.\."
                                       r"traffic_manager_port\+1, which must be <= 65535, got 65535"),
    ("env.hosts=[localhost:2000,localhost:70000]", r"env\.hosts: port 70000 of 'localhost:70000' is outside 1\.\.65535"),
    ("env.hosts=[]", r"env\.hosts: expected a non-empty list of 'host:port', got \[\]"),
    ("env.policy=nope", r"env\.policy: expected one of \["),
    ("env.episode_retries=-1", r"env\.episode_retries: expected an int >= 0, got -1"),
    ("env.num_background=-1", r"env\.num_background: expected an int >= 0, got -1"),
    ("env.backend=mock", r"env\.backend: expected one of \['carla', 'standin'\], got 'mock'"),
])
def test_env_carla_fields_are_checked_before_anything_runs(tmp_path, monkeypatch, override, message):
    import envs.carla.connection as connection
    from experiments.run import run

    def no_server_check(*args, **kwargs):
        raise AssertionError("the server check ran before the fields were validated")

    monkeypatch.setattr(connection, "check_server", no_server_check)
    hosts = "env.hosts=[localhost:1,localhost:2]" if "traffic_manager_port=65535" in override else "env.hosts=[localhost:1]"
    with pytest.raises(SystemExit, match=message):
        run(_compose(tmp_path, hosts, override), tmp_path)  # before the server check (nothing listens at :1)
    assert not (tmp_path / "carla").exists()


def test_traffic_manager_port_and_tick_timeout_come_from_the_command_line(tmp_path):
    from experiments.carla import carla_config
    from experiments.run import typed_config

    typed = typed_config(_compose(tmp_path, "env.traffic_manager_port=9100", "env.tick_timeout=7.5",
                                  "env.load_world_timeout=300", "env.sensor_timeout=0.5"))
    config = carla_config(typed.env, tmp_path)
    assert (config.traffic_manager_port, config.tick_timeout, config.load_world_timeout, config.sensor_timeout) == \
        (9100, 7.5, 300.0, 0.5)


def test_a_failing_episode_is_retried_then_skipped_with_a_warning_not_the_end_of_the_run(world, tmp_path):
    from experiments.carla import record_episodes

    server, cfg = world()
    cfg = dataclasses.replace(cfg, record_dir=str(tmp_path / "a"), scenario_types=("rear_end",), episode_time=3.0)
    server.fail_ticks(1)  # the first episode's warm-up tick times out: retried on the same seed
    with pytest.warns(RuntimeWarning, match=r"env=carla: episode 0 \(seed 0\) on 127\.0\.0\.1:\d+ failed \(try 1 of 3\): "
                      r"CARLA server at 127\.0\.0\.1:\d+ failed during the warm-up \(time-out of 50ms.*; retrying \(2 more\)"):
        results = record_episodes(cfg, [0, 1], "constant_velocity", retries=2)
    assert [(r.seed, r.attempts, r.skipped) for r in results] == [(0, 2, False), (1, 1, False)]
    assert len(list((tmp_path / "a").glob("*.npz"))) == 2
    assert server.user_actors() == []
    (s2, c2) = world()
    c2 = dataclasses.replace(c2, record_dir=str(tmp_path / "b"), scenario_types=("rear_end",), episode_time=3.0)
    c2 = dataclasses.replace(c2, hosts=(c2.hosts[0], cfg.hosts[0]))
    standin.shutdown(s2)  # worker 0's server is gone for good: its episodes are skipped, worker 1 records its own
    with pytest.warns(RuntimeWarning) as caught:
        results = record_episodes(c2, [5, 6], "constant_velocity", retries=1)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "failed (try 1 of 2): no CARLA server answers" in messages[0]
    assert re.search(r"episode 0 \(seed 5\) .*failed \(try 2 of 2\): no CARLA server answers at 127\.0\.0\.1:\d+.*; "
                     r"skipping it$", messages[1])
    assert [(r.seed, r.attempts, r.skipped) for r in results] == [(5, 2, True), (6, 1, False)]
    assert len(list((tmp_path / "b").glob("*.npz"))) == 1


def test_two_servers_record_in_parallel_the_recordings_of_the_serial_run(tmp_path):
    import threading

    from experiments.carla import record_episodes

    ports = (next(PORTS), next(PORTS))
    cfg = dataclasses.replace(_config(ports[0]), hosts=tuple(f"127.0.0.1:{p}" for p in ports),
                              scenario_types=("rear_end", "normal"), episode_time=4.0)

    def record(parallel: bool) -> tuple[dict, set]:
        folder = tmp_path / ("parallel" if parallel else "serial")
        for p in ports:  # fresh servers: same actor ids and frames in both runs
            standin.serve("127.0.0.1", p, town="Standin_straight")
        threads = set()
        try:
            results = record_episodes(dataclasses.replace(cfg, record_dir=str(folder)), [0, 1, 2, 3],
                                      "constant_velocity", parallel=parallel,
                                      on_episode=lambda r: threads.add((r.worker, threading.current_thread().name)))
        finally:
            standin.shutdown_all()
        assert [r.worker for r in results] == [0, 1, 0, 1] and not any(r.skipped for r in results)
        files = {}
        for f in sorted(folder.glob("*.npz")):
            with np.load(f) as data:
                files[f.name] = {k: data[k].copy() for k in data.files}
        return files, threads

    serial, serial_threads = record(False)
    parallel, parallel_threads = record(True)
    assert parallel_threads == {(0, "carla-worker-0"), (1, "carla-worker-1")}  # one thread per server
    assert serial_threads == {(0, "MainThread"), (1, "MainThread")}
    assert len(serial) == 4 and sorted(serial) == sorted(parallel)
    assert {name.split("__")[2][:2] for name in serial} == {"w0", "w1"}  # both servers recorded
    for name, arrays in serial.items():
        assert sorted(arrays) == sorted(parallel[name])
        for key, value in arrays.items():
            assert np.array_equal(value, parallel[name][key]), (name, key)
