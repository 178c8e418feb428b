"""The world signal: SP-PDMS does not reward standing still, the safe-progress reference is achievable and safe,
PDMS stays NAVSIM's, and the closed-loop driving metrics follow the leaderboard's arithmetic."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from agents.base import policy_input
from agents.baselines import make_baseline
from envs.scenes.bank import ScenarioBank, generate_scene
from envs.sim.metrics import DrivingMetricsConfig, EpisodeMetrics
from envs.sim.reward import RewardConfig
from envs.observation import Route
from envs.replay_env import EnvConfig, ReplayEnv
from envs.scenes.scene import AgentClass
from envs.sim.scoring import problem_from_scene, trajectory_from_log
from rewards.clearance import min_gaps
from rewards.pdm import score_states
from rewards.scorer import reference_for, safe_progress_for
from rewards.tracking import simulate_candidates

STATE_ONLY = EnvConfig(bev=None, reward=RewardConfig(kind="score"))
"""The SP-PDMS score as the step reward (the progress-first default is tested below)."""


def _mean_step_reward(policy_name: str, env: ReplayEnv, indices) -> float:
    policy = make_baseline(policy_name)
    rewards = []
    for i in indices:
        obs, info = env.reset(seed=4242 + i, options={"scene_index": int(i)})
        done = False
        while not done:
            action = policy.act(policy_input(env, obs, info, policy.requires_privileged))
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            done = terminated or truncated
    return float(np.mean(rewards))


def test_standing_still_earns_less_than_driving_safely_on_accident_and_normal_scenes():
    """Fixed sample, the score reward (SP-PDMS + collision terms), closed loop. The safe oracle drives the reference
    it is measured against; pdm_closed_like (constant-velocity forecasts) crashes in most accident episodes, so it
    is compared on normal scenes only (ranking a crash above waiting would teach the wrong thing)."""
    bank = ScenarioBank(12, seed=1000)
    env = ReplayEnv(bank, "closed_loop", STATE_ONLY)
    accident = [i for i in range(len(bank)) if bank.scenario_type(i) != "normal"][:5]
    normal = [i for i in range(len(bank)) if bank.scenario_type(i) == "normal"][:2]
    assert len(accident) == 5 and len(normal) == 2
    for group in (accident, normal):
        still = _mean_step_reward("stand_still", env, group)
        assert still < _mean_step_reward("safe_oracle", env, group) - 0.2, group
    assert _mean_step_reward("stand_still", env, normal) < _mean_step_reward("pdm_closed_like", env, normal) - 0.2


def test_sp_pdms_takes_ep_from_standing_still_where_pdms_gives_it_away():
    scene = generate_scene("rear_end", seed=3)
    t = scene.meta.collision_frame - 20
    problem = problem_from_scene(scene, t)
    still = np.zeros((1, 8, 3))
    states = simulate_candidates(problem.ego, still)
    faithful = reference_for(problem)
    assert faithful.masked_progress == 0.0  # PDM-Closed-like collides here: NAVSIM's EP is free to give up
    pdms = score_states(problem, states, reference_progress=faithful.masked_progress)
    assert pdms.ep[0] == 1.0
    safe = safe_progress_for(problem)
    assert safe.fallback == "safe" and safe.progress > 10.0
    sp = pdms.renormalized(safe.progress)
    # the all-zeros action brakes to a stop (the tracker still rolls a few metres): it keeps that share of EP only
    assert sp.ep[0] == pytest.approx(pdms.progress[0] / safe.progress) and sp.ep[0] < 0.7
    assert sp.pdms[0] < pdms.pdms[0] - 0.1
    # renormalized == scoring with that reference directly (one aggregation)
    direct = score_states(problem, states, reference_progress=safe.progress)
    np.testing.assert_array_equal(direct.pdms, sp.pdms)
    np.testing.assert_array_equal(direct.ep, sp.ep)


@pytest.mark.parametrize("scenario_type", ["rear_end", "cut_in", "pedestrian_occluded", "normal"])
def test_the_safe_progress_trajectory_is_safe_as_an_action(scenario_type):
    scene = generate_scene(scenario_type, seed=5)
    cf = scene.meta.collision_frame
    problem = problem_from_scene(scene, (cf - 20) if cf is not None else 40)
    safe = safe_progress_for(problem)
    assert safe.fallback == "safe" and safe.trajectory.shape == (8, 3)
    states = simulate_candidates(problem.ego, safe.trajectory[None])
    result = score_states(problem, states)
    assert not result.collision[0] and result.nc[0] == result.ttc[0] == result.dac[0] == result.ddc[0] == 1.0
    assert min_gaps(states[:, :, :3], problem, np.arange(states.shape[1]), 1.0)[0] >= 0.5
    assert result.progress[0] == pytest.approx(safe.progress)


def test_reference_follows_the_ego_once_it_leaves_the_log():
    scene = generate_scene("rear_end", seed=3)
    env = ReplayEnv([scene], "closed_loop", STATE_ONLY)
    env.reset(seed=0)
    logged = env._log_problem(scene, env.t)
    assert env._on_log(logged.ego, env.current_problem().ego)
    for _ in range(3):
        env.step(np.zeros((8, 3), np.float32))  # brake to a stop: the ego leaves the log
    assert not env._on_log(env._log_problem(scene, env.t).ego, env.current_problem().ego)


# --------------------------------------------------------------------------------------------- driving metrics
def test_episode_metrics_arithmetic():
    scene = generate_scene("rear_end", seed=3)
    route = Route.from_scene(scene)
    m = EpisodeMetrics(scene, route, scene.ego_poses[20], None, DrivingMetricsConfig())
    ego = scene.ego_poses[21:41]
    agent = int(scene.agent_ids[scene.agent_classes == AgentClass.VEHICLE][0])
    m.add(ego[:, :2], ego[:, :2], np.zeros(20), np.zeros(20, bool), colliding_agent=agent)
    progress = route.project(ego[-1, :2]) - route.project(scene.ego_poses[20, :2])
    out = m.finish(2 * progress, "log")
    assert out.route_completion == pytest.approx(0.5) and out.infraction_penalty == pytest.approx(0.6)
    assert out.driving_score == pytest.approx(0.3) and out.stopped_share == 1.0 and out.infractions == {"vehicle": 1}
    assert m.finish(0.5, "log").route_completion == 1.0  # nothing to complete
    m.add(ego[-1:, :2], ego[-1:, :2], np.ones(1), np.zeros(1, bool), colliding_agent=agent)
    assert m.finish(2 * progress, "log").infraction_penalty == pytest.approx(0.36)  # two instances: 0.6 x 0.6


def test_driving_metrics_at_episode_end():
    scene = generate_scene("normal", seed=4)
    env = ReplayEnv([scene], "closed_loop", STATE_ONLY)
    for name, check in (("safe_oracle", lambda m: m["route_completion"] > 0.9 and m["reference_kind"] == "log"),
                        ("stand_still", lambda m: m["route_completion"] < 0.2 and m["stopped_share"] > 0.4)):
        policy = make_baseline(name)
        obs, info = env.reset(seed=0)
        assert "driving_metrics" not in info
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(policy_input(env, obs, info, True)))
            done = terminated or truncated
            assert done or "driving_metrics" not in info
        m = info["driving_metrics"]
        assert check(m), (name, m)
        assert m["driving_score"] == pytest.approx(m["route_completion"] * m["infraction_penalty"])


def test_an_accident_log_is_measured_against_the_safe_planner():
    scene = generate_scene("rear_end", seed=3)
    env = ReplayEnv([scene], "closed_loop", dataclasses.replace(STATE_ONLY, reward_mode="lazy"))
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, info = env.step(env.logged_action())
        done = terminated or truncated
    m = info["driving_metrics"]
    assert info["termination_reason"] == "collision"
    assert m["reference_kind"] == "safe_planner" and m["infractions"] == {"vehicle": 1}
    assert m["infraction_penalty"] == pytest.approx(0.6) and m["reference_progress_m"] > 5.0


def test_pdms_stays_navsim_faithful():
    """The reward's score changed, NAVSIM's PDMS did not: with the faithful reference the env's pdms term equals
    score_states against reference_for."""
    scene = generate_scene("cut_in", seed=2)
    env = ReplayEnv([scene], "open_loop", STATE_ONLY)
    env.reset(seed=0)
    action = trajectory_from_log(scene, env.t)
    scored = env.score_group(action[None])
    problem = env.current_problem()
    direct = score_states(problem, simulate_candidates(problem.ego, action[None]),
                          reference_progress=reference_for(problem).masked_progress)
    assert scored["pdms"][0] == direct.pdms[0] and scored["score"][0] == scored["sp_pdms"][0]
    pdms_env = ReplayEnv([scene], "open_loop", dataclasses.replace(STATE_ONLY, reward={"reward_score": "pdms"}))
    pdms_env.reset(seed=0)
    assert pdms_env.score_group(action[None])["score"][0] == direct.pdms[0]
    with pytest.raises(ValueError, match="reward_score"):
        EnvConfig(reward={"reward_score": "progress"})


def test_pdm_closed_like_chooses_among_proposals_as_they_will_be_executed():
    """A right turn at a junction (bank seed 1000, scene 5): PDM-Closed's choice from the proposals' 0.1 s states
    cuts the corner once executed from 8 poses (off road); scoring each proposal as its 8-pose action stays on the
    road. Both select against constant-velocity forecasts only (no logged future)."""
    from agents.baselines import ReferencePlannerPolicy

    bank = ScenarioBank(6, seed=1000)
    assert bank.scenario_type(5) == "normal"
    env = ReplayEnv(bank, "closed_loop", STATE_ONLY)
    endings, dac = {}, {}
    for selection in ("navsim", "action"):
        policy = ReferencePlannerPolicy(selection=selection)
        obs, info = env.reset(seed=4247, options={"scene_index": 5})
        assert env.scene.meta.extra["variant"] == "junction_right"
        done, dacs = False, []
        while not done:
            obs, _, terminated, truncated, info = env.step(policy.act(policy_input(env, obs, info, True)))
            dacs.append(info["rewards"]["dac"])
            done = terminated or truncated
        endings[selection], dac[selection] = info["termination_reason"], float(np.mean(dacs))
    assert endings["navsim"] == "offroad" and dac["navsim"] < 0.8, (endings, dac)
    assert endings["action"] == "time_limit" and dac["action"] == 1.0, (endings, dac)
    with pytest.raises(ValueError, match="selection"):
        ReferencePlannerPolicy(selection="best")


# --------------------------------------------------------------------------------------- progress-first reward
def _returns(policy_name: str, env: ReplayEnv, indices) -> dict[int, tuple[float, str]]:
    """Episode return and termination reason per scene index."""
    policy = make_baseline(policy_name)
    out = {}
    for i in indices:
        obs, info = env.reset(seed=4242 + int(i), options={"scene_index": int(i)})
        policy.reset()
        done, total = False, 0.0
        while not done:
            action = policy.act(policy_input(env, obs, info, policy.requires_privileged))
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            done = terminated or truncated
        out[int(i)] = (total, info["termination_reason"])
    return out


def test_progress_reward_arithmetic():
    from envs.sim.reward import RewardConfig, progress_reward, soft_factor

    cfg = RewardConfig(kind="progress", w_terminal_collision=1.5)
    assert soft_factor(1.0, 1.0, 1.0, cfg) == 1.0 and soft_factor(np.nan, np.nan, np.nan, cfg) == 1.0
    assert soft_factor(0.0, 0.0, 0.5, cfg) == pytest.approx(0.5 * 0.8 * 0.75)
    assert progress_reward(0.1, 0.5, False, 0.3, cfg) == (pytest.approx(0.05), 0.0)
    for earned in (-0.2, 0.0, 0.4, 1.0):  # a crash returns at most -w_terminal_collision, whatever came before
        term, terminal = progress_reward(0.1, 1.0, True, earned, cfg)
        assert earned + term + terminal <= -1.5 + 1e-12
    with pytest.raises(ValueError, match=r"RewardConfig\.kind: expected one of \('score', 'progress'\)"):
        RewardConfig(kind="carl")
    with pytest.raises(ValueError, match=r"RewardConfig\.ttc_penalty: expected a number in \[0, 1\]"):
        RewardConfig(ttc_penalty=2.0)
    with pytest.raises(ValueError, match=r"RewardConfig\.min_speed_penalty: expected a number in \[0, 1\]"):
        RewardConfig(min_speed_penalty=-0.1)


def test_route_completion_arithmetic():
    """RC = min(1, max(0, progress) / reference) - deducted / reference in [0, 1]; 1 below the minimum reference."""
    from envs.sim.metrics import route_completion

    assert route_completion(20.0, 40.0) == pytest.approx(0.5)
    assert route_completion(50.0, 40.0) == 1.0  # past the reference: capped
    assert route_completion(-3.0, 40.0) == 0.0  # behind the start
    assert route_completion(50.0, 40.0, deducted_m=10.0) == pytest.approx(0.75)
    assert route_completion(5.0, 0.5, min_reference_progress=1.0) == 1.0  # nothing to complete


def test_progress_terms_sum_to_the_route_completion():
    """The progress-first reward pays route completion (issue 28: "the fraction of the route, as the driving score's
    route completion counts it"): per episode the steps' ``route_progress`` terms sum to the final RC exactly, so a
    return never exceeds 1 (it reached 1.115 on bank seed 1000's normal scene 13 before, where the safe oracle drives
    77.1 m against the log reference's 69.2 m: progress past the reference was paid). Closed loop, SYNTHETIC bank
    seed 1000: normal scenes where the oracle and constant velocity outrun the log, and two accident scenes."""
    bank = ScenarioBank(14, seed=1000)
    env = ReplayEnv(bank, "closed_loop", EnvConfig(bev=None, reward=RewardConfig(kind="progress")))
    past_reference = 0
    for name in ("safe_oracle", "constant_velocity", "brake_to_stop"):
        policy = make_baseline(name)
        for i in (1, 6, 9, 10, 13):
            obs, info = env.reset(seed=4242 + i, options={"scene_index": i})
            policy.reset()
            done, total, progress = False, 0.0, 0.0
            while not done:
                obs, reward, terminated, truncated, info = env.step(
                    policy.act(policy_input(env, obs, info, policy.requires_privileged)))
                done = terminated or truncated
                total += float(reward)
                progress += info["rewards"]["route_progress"]
            metrics = info["driving_metrics"]
            assert progress == pytest.approx(metrics["route_completion"], abs=1e-9), (name, i)
            assert total <= 1.0 + 1e-9, (name, i, total)
            past_reference += metrics["ego_progress_m"] > metrics["reference_progress_m"] + 1.0
    assert past_reference >= 3  # the cap is exercised


def test_min_speed_infraction_arithmetic():
    """The leaderboard 2.0 minimum-speed ratio over a window (ego mean speed / traffic mean speed over the frames
    with traffic, capped at 1, NaN without moving traffic) and its soft factor ``1 - min_speed_penalty (1 - r)``."""
    from envs.sim.reward import RewardConfig, min_speed_ratio, soft_factor, traffic_speeds

    nan = np.nan
    assert min_speed_ratio(np.array([2.0, 4.0, 9.0]), np.array([8.0, 8.0, nan])) == pytest.approx(3.0 / 8.0)
    assert min_speed_ratio(np.array([12.0, 12.0]), np.array([8.0, 10.0])) == 1.0  # faster than traffic: no infraction
    assert np.isnan(min_speed_ratio(np.zeros(3), np.full(3, nan)))  # no traffic: no infraction
    assert np.isnan(min_speed_ratio(np.zeros(2), np.zeros(2)))  # traffic standing still: no infraction
    assert np.isnan(min_speed_ratio(np.zeros(0), np.zeros(0)))
    with pytest.raises(ValueError, match="min_speed_ratio: ego_speeds"):
        min_speed_ratio(np.zeros(3), np.zeros(2))
    carl, board, off = RewardConfig(), RewardConfig(min_speed_penalty=0.3), RewardConfig(min_speed_penalty=0.0)
    assert carl.min_speed_penalty == 1.0  # the default: CaRL's soft penalty, progress x r
    assert soft_factor(1.0, 1.0, 1.0, carl, 0.25) == pytest.approx(0.25)
    assert soft_factor(1.0, 1.0, 1.0, board, 0.0) == pytest.approx(0.7)  # the leaderboard's coefficient
    assert soft_factor(1.0, 1.0, 1.0, off, 0.0) == 1.0 and soft_factor(1.0, 1.0, 1.0, carl, nan) == 1.0
    assert soft_factor(0.0, 1.0, 1.0, carl, 0.5) == pytest.approx(0.5 * 0.5)

    # traffic: moving vehicles only (a parked car, a pedestrian and invalid frames do not count)
    scene = generate_scene("normal", seed=4)
    speeds = np.hypot(scene.agent_velocities[..., 0], scene.agent_velocities[..., 1])
    moving = (scene.agent_classes == AgentClass.VEHICLE) & (np.where(scene.agent_valid, speeds, 0).max(axis=1) > 0.5)
    assert moving.any()
    t = int(np.flatnonzero(scene.agent_valid[moving].any(axis=0))[0])
    rows = moving & scene.agent_valid[:, t]
    assert traffic_speeds(scene)[t] == pytest.approx(speeds[rows, t].mean())
    parked = dataclasses.replace(scene, agent_velocities=np.where(moving[:, None, None], 0.0, scene.agent_velocities))
    assert np.isnan(traffic_speeds(parked)).all()


def test_progress_reward_orders_driving_safely_over_stopping_over_crashing():
    """``RewardConfig(kind="progress")``, closed loop, a fixed sample of held-out bank scenes: on normal scenes the
    safe oracle and the PDM-Closed-like planner (both about the whole route: on 32 scenes the oracle leads,
    ``benchmarks/bench_degenerate.py --reward-kind progress``) earn far more than braking to a stop, which earns at
    least standing still; on accident scenes every episode that crashes returns less than braking to a stop on the
    same scene (when braking does not crash), and the safe oracle leads on average. Stopping never ends in a
    collision: being run into while braking or stopped is not the ego's fault (issue 28; it ended 3 of 8 normal
    stand-still episodes on 32 scenes before, ``benchmarks/bench_degenerate.py --reward-kind progress``). The
    default reward includes the minimum-speed infraction (``RewardConfig.min_speed_penalty``), which also scales
    down the safe oracle's progress while it waits for a hazard: the crash-below-stop ordering must survive it."""
    from envs.sim.reward import RewardConfig

    bank = ScenarioBank(12, seed=1000)
    env = ReplayEnv(bank, "closed_loop", dataclasses.replace(STATE_ONLY, reward=RewardConfig(kind="progress")))
    accident = [i for i in range(len(bank)) if bank.scenario_type(i) != "normal"][:5]
    normal = [i for i in range(len(bank)) if bank.scenario_type(i) == "normal"][:2]
    runs = {name: _returns(name, env, accident + normal)
            for name in ("safe_oracle", "pdm_closed_like", "brake_to_stop", "stand_still", "log_replay",
                         "constant_velocity")}

    def mean(name, group):
        return float(np.mean([runs[name][i][0] for i in group]))

    assert min(mean("safe_oracle", normal), mean("pdm_closed_like", normal)) > mean("brake_to_stop", normal) + 0.5
    assert mean("safe_oracle", normal) > mean("pdm_closed_like", normal) - 0.05  # both drive the whole route here
    assert mean("brake_to_stop", normal) >= mean("stand_still", normal) - 1e-9
    assert all(runs[name][i][1] != "collision" for name in ("brake_to_stop", "stand_still") for i in runs[name])
    crashes = 0
    for i in accident:
        brake, reason = runs["brake_to_stop"][i]
        for name in ("safe_oracle", "pdm_closed_like", "log_replay", "constant_velocity"):
            ret, why = runs[name][i]
            if why == "collision" and reason != "collision":
                crashes += 1
                assert ret < brake, (name, i, ret, brake)
    assert crashes >= 5  # the log crashes in every accident scene
    assert mean("safe_oracle", accident) > max(mean(n, accident) for n in runs if n != "safe_oracle")


def test_braking_to_a_stop_on_a_clear_road_earns_at_most_035x_the_safe_driver():
    """Issue 28's bound, closed loop, the default progress-first reward, 8 normal scenes of a bank seed used
    nowhere else (6000, ``normal_fraction=1``): braking to a stop returns <= 0.35x the safe oracle (asserted with
    margin: <= 0.32x; measured 0.28x). The minimum-speed infraction does it: with it off (``min_speed_penalty=0``,
    the reward before) the same episodes give 0.37x (32-scene figures: ``benchmarks/bench_degenerate.py``)."""
    from envs.sim.reward import RewardConfig

    bank = ScenarioBank(8, seed=6000, normal_fraction=1.0)
    scenes = list(range(len(bank)))
    assert all(bank.scenario_type(i) == "normal" for i in scenes)
    ratios = {}
    for name, reward in (("default", RewardConfig()), ("off", RewardConfig(min_speed_penalty=0.0))):
        env = ReplayEnv(bank, "closed_loop", EnvConfig(bev=None, reward=reward))
        brake, oracle = _returns("brake_to_stop", env, scenes), _returns("safe_oracle", env, scenes)
        assert all(brake[i][1] != "collision" and oracle[i][1] != "collision" for i in scenes)
        ratios[name] = np.mean([brake[i][0] for i in scenes]) / np.mean([oracle[i][0] for i in scenes])
    assert ratios["default"] <= 0.32, ratios
    assert ratios["off"] > 0.35, ratios  # the bound is the minimum-speed infraction's doing
