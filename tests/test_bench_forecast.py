"""benchmarks/bench_forecast.py: the learned forecast of the other agents (features, targets, model, futures)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_forecast import (FEATURES, AgentForecaster, agent_features, constant_velocity_local,
                                       displacement_errors, future_targets, learned_agents, train_forecaster,
                                       training_data)
from envs.sim.scoring import recent_motion
from envs.scenes.bank import ScenarioBank
from envs.sim.scoring import problem_from_scene
from rewards.reference_planner import constant_velocity_agents


@pytest.fixture(scope="module")
def bank():
    return ScenarioBank(16, seed=5, outcomes="varied")


def test_features_and_targets_of_a_scene_frame(bank):
    scene = bank[1]
    problem = problem_from_scene(scene, 20)
    rows, x = agent_features(problem, recent_motion(scene, 20))
    assert x.shape == (len(rows), len(FEATURES)) and len(rows) and np.isfinite(x).all()
    assert np.array_equal(rows, np.flatnonzero(problem.agents.valid[:, 0]))
    speed = np.hypot(*problem.agents.velocities[rows, 0].T)
    np.testing.assert_allclose(x[:, FEATURES.index("speed")], speed)
    y, ok = future_targets(problem, rows, 0.1)
    assert y.shape == (len(rows), 8, 2) and ok.any()
    cv = constant_velocity_local(problem, rows)
    np.testing.assert_allclose(cv[:, -1, 0] ** 2 + cv[:, -1, 1] ** 2, (4.0 * speed) ** 2, rtol=1e-9)
    moving = ok & (speed > 2.0)
    assert np.all(y[moving, -1, 0] > 0.0)  # a moving agent goes forward in its own frame


def test_an_untrained_forecaster_is_constant_velocity_and_files_round_trip(bank, tmp_path):
    scene = bank[2]
    problem = problem_from_scene(scene, 15)
    model = AgentForecaster(16)
    fut = learned_agents(model, problem, recent_motion(scene, 15), 0.1)
    cv = constant_velocity_agents(problem.agents, 0.1)
    np.testing.assert_array_equal(fut.ids, cv.ids)
    np.testing.assert_allclose(fut.poses[..., :2], cv.poses[..., :2], atol=1e-4)
    model.save(tmp_path / "f.pt")
    again = AgentForecaster.load(tmp_path / "f.pt")
    x = np.random.default_rng(0).normal(size=(5, len(FEATURES)))
    np.testing.assert_array_equal(again.predict(x), model.predict(x))
    (tmp_path / "bad.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.pt"):
        AgentForecaster.load(tmp_path / "bad.pt")


def test_a_trained_forecaster_beats_constant_velocity_on_the_hazards_it_was_fitted_on(bank):
    """Fitted on 16 scenes, the learned correction lowers the hazards' 4 s displacement error well below constant
    velocity's on those scenes (the hazards' manoeuvres are what constant velocity misses), and the closed-loop
    best response runs with it."""
    x, y = training_data(bank, progress=False)
    assert x.shape[1] == len(FEATURES) and y.shape == (len(x), 8, 2)
    model = train_forecaster(x, y, steps=600, seed=0)
    errors = displacement_errors(bank, model, progress=False)
    cv, learned = errors["cv"]["hazard"], errors["learned"]["hazard"]
    assert len(cv) == len(learned) > 50
    assert learned[:, -1].mean() < 0.8 * cv[:, -1].mean()
    with pytest.raises(ValueError, match="matching"):
        train_forecaster(x[:3], y[:2])

    from benchmarks.bench_group_score import GroupScoreBestResponse, closed_loop_rows
    from envs.replay_env import EnvConfig, ReplayEnv

    rows = closed_loop_rows([bank[i] for i in range(3)], [1.0, 0.5, 0.0], EnvConfig(bev=None), ("cv", "learned"), model)
    assert len(rows["group-score best response (learned futures)"]) == 3
    env = ReplayEnv([bank[i] for i in range(3)], "closed_loop", EnvConfig(bev=None))
    with pytest.raises(ValueError, match="forecaster"):
        GroupScoreBestResponse(env, [1.0], "learned")
    with pytest.raises(ValueError, match="forecaster"):
        GroupScoreBestResponse(env, [1.0], "cv", model)


def test_the_command_lines(tmp_path, capsys):
    """``bench_forecast`` prints its table and saves the model; ``bench_group_score`` reads it for ``learned`` and
    refuses a forecaster without those futures, or those futures without one."""
    from benchmarks import bench_forecast, bench_group_score

    out = tmp_path / "f.pt"
    assert bench_forecast.main(["--train-scenes", "6", "--eval-seeds", "8400", "--eval-scenes", "3", "--steps", "20",
                                "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "| 8400 (3 scenes, all families) | learned | hazard |" in text and out.exists()
    assert bench_group_score.main(["--closed-loop", "--num-scenes", "2", "--seed", "8400", "--futures", "worst",
                                   "--forecaster", str(out)]) == 0
    assert "(worst futures) | all | 2 |" in capsys.readouterr().out
    for argv in (["--futures", "cv", "--forecaster", str(out)], ["--futures", "learned"]):
        with pytest.raises(SystemExit):
            bench_group_score.main(["--closed-loop", "--num-scenes", "2", *argv])
    with pytest.raises(SystemExit):
        bench_forecast.main(["--eval-seeds", "x"])
