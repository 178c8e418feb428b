"""Tests of rewards.reference_planner (PDM-Closed-like reference for EP normalisation)."""

import numpy as np
import pytest

from rewards.config import PDMConfig
from rewards.pdm import score_states
from rewards.scorer import reference_for
from rewards.reference_planner import ReferenceResult, constant_velocity_agents, plan_reference
from rewards.tracking import SVX, SX
from tests.test_pdm import RA, _problem


def test_free_road_reference_drives_on_and_scores_its_progress():
    p = _problem(v=8.0)
    ref = plan_reference(p, PDMConfig())
    assert isinstance(ref, ReferenceResult)
    assert ref.trajectory.shape == (8, 3) and ref.states.shape == (41, 7) and ref.proposal_scores.shape == (15,)
    # best proposal: centreline (offset index 1) with a target speed near the 15 m/s limit
    assert ref.index % 3 == 1 and ref.index // 3 >= 3
    assert ref.masked_progress > 32.0
    again = score_states(p, ref.states[None])
    assert again.masked_progress[0] == ref.masked_progress
    assert np.all(np.abs(ref.trajectory[:, 1]) < 0.05)


def test_reference_stops_behind_a_parked_car():
    p = _problem(v=8.0, agents=[(RA + 30.0, -1.75, 0.0, 4.5, 2.0, 0)])
    ref = plan_reference(p, PDMConfig())
    assert score_states(p, ref.states[None]).nc[0] == 1.0
    assert ref.states[-1, SX] < RA + 30.0 - 2.25 - 2.588
    assert ref.states[-1, SVX] < 4.0


def test_no_map_gives_none_and_cache_is_per_problem():
    assert plan_reference(_problem(with_map=False), PDMConfig()) is None
    p = _problem()
    assert reference_for(p) is reference_for(p)


def test_constant_velocity_forecast():
    p = _problem(agents=[(20.0, -1.75, 5.0, 4.5, 2.0, 0)])
    fc = constant_velocity_agents(p.agents, 0.1)
    np.testing.assert_allclose(fc.poses[0, 10, :2], [25.0, -1.75])
    assert fc.valid.all()


def test_compiled_route_projection_equals_the_numpy_form():
    from rewards.geometry import polyline_arclength
    from rewards.reference_planner import _project, _project_numpy

    rng = np.random.default_rng(3)
    t = np.linspace(0.0, np.pi, 60)
    path = np.stack([20.0 * np.cos(t), 20.0 * np.sin(t)], axis=1)  # a half circle
    path_s = polyline_arclength(path)
    points = np.concatenate([rng.uniform(-30, 30, size=(500, 2)), path, 0.5 * (path[1:] + path[:-1])])
    s, lat = _project(points, path, path_s)
    s_ref, lat_ref = _project_numpy(points, path, path_s)
    np.testing.assert_array_equal(s, s_ref)
    np.testing.assert_array_equal(lat, lat_ref)
    # the centre of the half circle lies left of the counter-clockwise path, 20 m away
    _, lat0 = _project(np.zeros((1, 2)), path, path_s)
    assert lat0[0] == pytest.approx(20.0, abs=0.05)
    # long paths (the kernel prunes chunks of segments): a 600-point wandering road, and one that runs out and back
    # over the same points (exact ties: the first segment wins)
    heading = np.cumsum(rng.normal(0.0, 0.08, 600))
    road = np.cumsum(np.stack([np.cos(heading), np.sin(heading)], axis=1) * 0.7, axis=0)
    line = np.linspace(0.0, 100.0, 201)
    back = np.concatenate([np.stack([line, 0.0 * line], axis=1), np.stack([line[::-1][1:], 0.0 * line[1:]], axis=1)])
    for path in (road, back):
        path_s = polyline_arclength(path)
        lo, hi = path.min(axis=0) - 40.0, path.max(axis=0) + 40.0
        points = np.concatenate([rng.uniform(lo, hi, size=(2000, 2)), path,
                                 path[::7] + rng.normal(0.0, 2.0, (len(path[::7]), 2))])
        s, lat = _project(points, path, path_s)
        s_ref, lat_ref = _project_numpy(points, path, path_s)
        np.testing.assert_array_equal(s, s_ref)
        np.testing.assert_array_equal(lat, lat_ref)


def test_forecast_problem_for_some_agents_keeps_the_others_logged():
    from rewards.reference_planner import forecast_problem

    p = _problem(agents=[(20.0, -1.75, 5.0, 4.5, 2.0, 0), (40.0, 1.75, -3.0, 4.5, 2.0, 0)])
    every = forecast_problem(p)
    np.testing.assert_array_equal(every.agents.poses, constant_velocity_agents(p.agents, 0.1).poses)
    first, second = (int(i) for i in p.agents.ids)
    mixed = forecast_problem(p, agent_ids=[second, 10_000])  # an id the problem lacks is ignored
    assert sorted(mixed.agents.ids) == sorted(p.agents.ids) and mixed.ego is p.ego and mixed.map is p.map
    row = {int(i): k for k, i in enumerate(mixed.agents.ids)}
    np.testing.assert_array_equal(mixed.agents.poses[row[first]], p.agents.poses[0])  # logged, as it was
    np.testing.assert_array_equal(mixed.agents.poses[row[second]], every.agents.poses[1])  # at constant velocity
    none = forecast_problem(p, agent_ids=())
    np.testing.assert_array_equal(none.agents.poses, p.agents.poses)


def test_turning_forecast():
    """Zero rates are the constant-velocity forecast; a positive yaw rate turns the object left with its box; a
    braking object stops and stays."""
    from rewards.reference_planner import forecast_problem, turning_agents

    p = _problem(agents=[(20.0, -1.75, 5.0, 4.5, 2.0, 0), (40.0, 1.75, -3.0, 4.5, 2.0, 0)])
    cv = constant_velocity_agents(p.agents, 0.1)
    still = turning_agents(p.agents, np.zeros(2), np.zeros(2), 0.1)
    np.testing.assert_allclose(still.poses, cv.poses, atol=1e-9)
    np.testing.assert_allclose(still.velocities, cv.velocities, atol=1e-9)
    turned = turning_agents(p.agents, np.array([0.5, 0.0]), np.array([0.0, 1.5]), 0.1)
    assert turned.poses[0, -1, 1] > -1.75 + 1.0 and turned.poses[0, -1, 2] > 0.5 * 0.1 * (p.agents.num_steps - 2)
    np.testing.assert_allclose(np.hypot(*turned.velocities[0].T), 5.0)  # turning keeps the speed
    braking = turning_agents(p.agents, np.zeros(2), np.array([-4.0, 0.0]), 0.1)
    np.testing.assert_allclose(braking.poses[0, -1, 0], 20.0 + 5.0 ** 2 / (2 * 4.0), atol=0.3)  # stops in v^2 / 2a
    assert np.all(braking.velocities[0, -5:] == 0.0)
    mixed = forecast_problem(p, agent_ids=[int(p.agents.ids[1])], motion={int(p.agents.ids[1]): (0.0, -4.0)})
    row = list(mixed.agents.ids).index(int(p.agents.ids[1]))
    assert mixed.agents.velocities[row, -1, 0] == 0.0  # the picked one brakes (it drove -3 m/s: speed 3 -> 0)
    np.testing.assert_array_equal(mixed.agents.poses[1 - row], p.agents.poses[0])  # the other keeps its future
