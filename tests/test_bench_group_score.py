"""benchmarks/bench_group_score.py: the group score's degenerate check (the log's trajectory against slower ones)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_group_score import TERMS, score_states, slowed, table
from envs.scenes.bank import ScenarioBank


def test_slowed_keeps_the_path_and_scales_the_time():
    traj = np.stack([np.arange(1, 9) * 2.0, np.zeros(8), np.zeros(8)], axis=-1)  # 4 m/s straight
    assert np.allclose(slowed(traj, 1.0), traj)
    assert np.allclose(slowed(traj, 0.0), 0.0)
    half = slowed(traj, 0.5)
    assert np.allclose(half[:, 0], np.arange(1, 9) * 1.0) and np.allclose(half[:, 1:], 0.0)  # 2 m/s, same line


def test_group_score_of_slowed_logs_by_outcome():
    """On the logged drive's own decisions: the log's trajectory never beats itself, its plan collides exactly where
    the logged drive crashes, and stopping scores below it on scenes without a hazard."""
    fractions = [1.0, 0.5, 0.0]
    states = score_states(ScenarioBank(12, seed=5, outcomes="varied"), fractions)
    assert {"normal", "collision"} <= set(states)
    for outcome, rows in states.items():
        a = np.stack(rows)
        assert a.shape[1:] == (3, len(TERMS))
        if outcome == "collision":
            assert a[:, 0, 1].mean() > 0.5  # the logged plan collides in most of its decisions
        else:
            assert a[:, 0, 1].max() == 0.0  # a safe log's plan never collides
    normal = np.stack(states["normal"])
    assert normal[:, 2, 0].mean() < normal[:, 0, 0].mean() - 0.3  # stopping on a clear road costs
    text = table(states, fractions)
    row = next(line for line in text.splitlines() if line.startswith("| normal |") and "| 1 |" in line)
    assert [c.strip() for c in row.strip("|").split("|")][4] == "0"  # the log never beats itself
    with pytest.raises(ValueError, match="include 1"):
        table(states, [0.5, 0.0, 0.3])


def test_the_group_scores_best_response_closed_loop():
    """The best response executes one of its candidates (the log's own action when fraction 1 is the only one), and
    on scenes where the log crashes it collides less than log replay while still driving."""
    from agents.base import policy_input
    from agents.baselines import LogReplayPolicy
    from benchmarks.bench_group_score import GroupScoreBestResponse, closed_loop_rows, closed_loop_table
    from envs.replay_env import EnvConfig, ReplayEnv

    bank = ScenarioBank(6, seed=5, outcomes="collision")
    env = ReplayEnv(bank, "closed_loop", EnvConfig(bev=None))
    obs, info = env.reset(seed=0, options={"scene_index": 0})
    inp = policy_input(env, obs, info, True)
    only_log = GroupScoreBestResponse(env, [1.0])
    assert np.allclose(only_log.act(inp), LogReplayPolicy(env.config.pdm).act(inp), atol=1e-5)
    best = GroupScoreBestResponse(env, [1.0, 0.5, 0.0])
    action = best.act(inp)
    assert best.chosen and best.chosen[0] in (1.0, 0.5, 0.0)
    assert np.allclose(action, slowed(LogReplayPolicy(env.config.pdm).act(inp), best.chosen[0]), atol=1e-5)
    with pytest.raises(ValueError, match="fractions"):
        GroupScoreBestResponse(env, [])

    rows = closed_loop_rows(bank, [1.0, 0.8, 0.5, 0.0], EnvConfig(bev=None))
    log, response = rows["log replay"], rows["group-score best response"]
    assert len(log) == len(response) == len(bank)
    assert sum(e["collision"] for e in log) >= 4  # the collision bank's logs crash
    assert sum(e["collision"] for e in response) < sum(e["collision"] for e in log)
    assert np.mean([e["route_completion"] for e in response]) > 0.3  # it drives, not only stops
    assert all(e["fraction"] == 1.0 for e in log) and all(0.0 <= e["fraction"] <= 1.0 for e in response)
    assert "| group-score best response | all | 6 |" in closed_loop_table(rows)


def test_the_best_response_against_forecast_futures():
    """``score_group``'s forecast: the identity leaves every term as the logged futures give it; the benchmark's
    futures forecast the hazard, the background or every agent (and refuse an unknown name); against constant-velocity
    futures the best response no longer sees the logged crash coming in every scene."""
    from benchmarks.bench_group_score import FUTURES, GroupScoreBestResponse, closed_loop_rows, forecast_for
    from envs.replay_env import EnvConfig, ReplayEnv
    from envs.scenes.scene import designated_hazard

    bank = ScenarioBank(6, seed=5, outcomes="collision")
    env = ReplayEnv(bank, "closed_loop", EnvConfig(bev=None))
    index = next(i for i in range(len(bank)) if designated_hazard(bank[i]) is not None)
    env.reset(seed=0, options={"scene_index": index})
    candidates = np.stack([slowed(env.logged_action(), f) for f in (1.0, 0.5, 0.0)])
    logged = env.score_group(candidates)
    same = env.score_group(candidates, lambda problem: problem)
    assert all(np.array_equal(logged[k], same[k], equal_nan=True) for k in logged)
    problem = env.current_problem()
    hazard = designated_hazard(env.scene)
    assert hazard is not None and forecast_for("log", env.scene, env.config.pdm) is None
    for futures in ("cv", "cv_hazard", "cv_background", "ctra", "ctra_hazard"):
        forecast = forecast_for(futures, env.scene, env.config.pdm)(problem)
        assert sorted(forecast.agents.ids) == sorted(problem.agents.ids[problem.agents.valid[:, 0]])
        h = list(forecast.agents.ids).index(hazard)
        logged_row = list(problem.agents.ids).index(hazard)
        hazard_logged = np.array_equal(forecast.agents.poses[h], problem.agents.poses[logged_row])
        assert hazard_logged == (futures == "cv_background")
    with pytest.raises(ValueError, match="futures"):
        GroupScoreBestResponse(env, [1.0], "oracle")
    assert set(FUTURES) >= {"learned", "worst"}

    # several forecasts: each candidate keeps its lowest reward over them (the worst case)
    fractions = [1.0, 0.5, 0.0]
    cv = forecast_for("cv", env.scene, env.config.pdm)
    alone = env.best_response(fractions)
    listed = env.best_response(fractions, [lambda problem: problem])
    assert np.array_equal(listed.pop("trajectory"), alone.pop("trajectory")) and listed == alone
    both = env.best_response(fractions, [lambda problem: problem, cv])
    under = [env.score_group(np.stack([slowed(env.logged_action(), f) for f in fractions]), f)["reward"]
             for f in (None, cv)]
    worst = np.minimum(*under)
    assert both["reward"] == pytest.approx(worst.max()) and both["fraction"] == fractions[int(np.argmax(worst))]
    with pytest.raises(ValueError, match="empty"):
        env.best_response(fractions, [])

    rows = closed_loop_rows(bank, [1.0, 0.8, 0.5, 0.0], EnvConfig(bev=None), futures=("log", "cv"))
    assert set(rows) == {"log replay", "group-score best response", "group-score best response (cv futures)"}
    crashes = {row: sum(e["collision"] for e in eps) for row, eps in rows.items()}
    assert crashes["group-score best response"] < crashes["group-score best response (cv futures)"]


def test_recent_motion_reads_the_past_only():
    """The turn rate and acceleration are those of the log over the window before the frame: a frame without that
    much past gives none, and changing the log after the frame changes nothing."""
    from envs.sim.scoring import MOTION_WINDOW, recent_motion

    scene = ScenarioBank(4, seed=5, outcomes="varied")[1]
    k = int(round(MOTION_WINDOW / scene.dt))
    assert recent_motion(scene, k - 1) == {}
    frame = scene.agent_poses.shape[1] // 2
    motion = recent_motion(scene, frame)
    observed = scene.agent_valid[:, frame] & scene.agent_valid[:, frame - k]
    assert set(motion) == {int(i) for i, ok in zip(scene.agent_ids, observed) if ok} and motion
    row = int(np.flatnonzero(observed)[0])
    speed = np.hypot(*scene.agent_velocities[row, [frame - k, frame]].T)
    w, a = motion[int(scene.agent_ids[row])]
    assert a == pytest.approx((speed[1] - speed[0]) / (k * scene.dt))
    import dataclasses

    poses = scene.agent_poses.copy()
    poses[:, frame + 1:, 2] += 1.0
    assert recent_motion(dataclasses.replace(scene, agent_poses=poses), frame) == motion
