"""Tests of rewards.pdm on hand-built problems: a straight two-lane road (lane 1 on route), objects at constant
velocity."""

import numpy as np
import pytest

from rewards.config import PDMConfig
from rewards.pdm import PDMResult, score_states
from rewards.scorer import PDMScorer, score_group
from rewards.tracking import simulate_candidates
from rewards.types import AgentsFuture, EgoState, MapGeometry, ScoringProblem

T8 = np.arange(1, 9) * 0.5
S = 50
ROAD = np.array([[-100, -3.5], [300, -3.5], [300, 3.5], [-100, 3.5]])
LANE1 = np.array([[-100, -3.5], [300, -3.5], [300, 0], [-100, 0.0]])
LANE2 = np.array([[-100, 0], [300, 0], [300, 3.5], [-100, 3.5]])
RA = 1.461  # rear axle -> centre


def _map():
    return MapGeometry(drivable_areas=(ROAD,), lane_polygons=(LANE1, LANE2), lane_ids=np.array([1, 2]),
                       route_lane_ids=(1,), route=np.array([[-100, -1.75], [300, -1.75]]), speed_limit=15.0)


def _agents(specs):
    """specs: (x, y, vx, length, width, static) box centres at t=0, moving along +x."""
    n = len(specs)
    if n == 0:
        z = np.zeros((0, S))
        return AgentsFuture(ids=np.zeros(0), is_static=np.zeros(0, bool), sizes=np.zeros((0, 2)),
                            poses=np.zeros((0, S, 3)), velocities=np.zeros((0, S, 2)), valid=z.astype(bool))
    t = np.arange(S) * 0.1
    sp = np.asarray([s[:5] for s in specs], dtype=float)
    poses = np.zeros((n, S, 3))
    poses[..., 0] = sp[:, 0, None] + sp[:, 2, None] * t
    poses[..., 1] = sp[:, 1, None]
    vel = np.zeros((n, S, 2))
    vel[..., 0] = sp[:, 2, None]
    return AgentsFuture(ids=np.arange(100, 100 + n), is_static=np.array([bool(s[5]) for s in specs]),
                        sizes=sp[:, 3:5], poses=poses, velocities=vel, valid=np.ones((n, S), bool))


def _problem(v=8.0, y=-1.75, agents=(), with_map=True):
    ego = EgoState(pose=np.array([0.0, y, 0.0]), velocity=np.array([v, 0.0]))
    return ScoringProblem(ego=ego, agents=_agents(list(agents)), map=_map() if with_map else None)


def _straight(v, dy=0.0):
    return np.stack([v * T8, dy * T8 / 4.0, 0 * T8], -1)[None]


def _score(problem, cand, **kw):
    return score_group(problem, cand, reference=kw.pop("reference", None), **kw)


def test_free_driving_scores_one():
    r = _score(_problem(), _straight(8.0))
    assert isinstance(r, PDMResult) and len(r) == 1 and r.map_available
    for name in ("nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms"):
        assert getattr(r, name)[0] == pytest.approx(1.0), name
    assert r.progress[0] == pytest.approx(32.0, abs=1e-3)
    assert not r.collision[0] and np.isnan(r.collision_time[0]) and r.colliding_agent_id[0] == -1


def test_rear_ending_a_moving_car_is_at_fault():
    p = _problem(agents=[(RA + 12.0, -1.75, 3.0, 4.5, 2.0, 0)])
    r = _score(p, _straight(8.0))
    assert r.nc[0] == 0.0 and r.collision[0] and r.at_fault_collision[0]
    assert r.colliding_agent_id[0] == 100 and 0 < r.collision_time[0] < 4.0
    assert r.at_fault_time[0] == r.collision_time[0]
    assert r.ttc[0] == 0.0 and r.pdms[0] == 0.0


def test_being_rear_ended_is_not_at_fault():
    p = _problem(v=4.0, agents=[(RA - 10.0, -1.75, 12.0, 4.5, 2.0, 0)])
    r = _score(p, _straight(4.0))
    assert r.collision[0] and not r.at_fault_collision[0]
    assert r.nc[0] == 1.0
    # NAVSIM quirk (spec section 8): TTC measures the angle from the rear axle at t to the object at t + 0.9 s, so a
    # car closing in fast from behind counts as "ahead" and fails TTC.
    assert r.ttc[0] == 0.0


def test_stopped_ego_hit_is_not_at_fault():
    p = _problem(v=0.0, agents=[(RA - 10.0, -1.75, 8.0, 4.5, 2.0, 0)])
    r = _score(p, np.zeros((1, 8, 3)))
    assert r.collision[0] and r.nc[0] == 1.0


def test_hitting_parked_car_and_cone():
    car = _score(_problem(agents=[(RA + 20.0, -1.75, 0.0, 4.5, 2.0, 0)]), _straight(8.0))
    assert car.nc[0] == 0.0
    cone = _score(_problem(agents=[(RA + 20.0, -1.75, 0.0, 0.5, 0.5, 1)]), _straight(8.0))
    assert cone.nc[0] == 0.5 and cone.at_fault_collision[0]
    assert cone.pdms[0] == pytest.approx(0.5 * (5 * cone.ep[0] + 5 * cone.ttc[0] + 2 * cone.comfort[0]) / 12)


def test_lateral_contact_in_one_lane_vs_straddling():
    # same-speed car alongside on the left, overlapping the ego's left side by 0.1 m
    in_lane = _problem(agents=[(RA, -1.75 + 1.1485 + 1.0 - 0.1, 8.0, 4.5, 2.0, 0)])
    r = _score(in_lane, _straight(8.0))
    assert r.collision[0] and r.nc[0] == 1.0
    straddle = _problem(y=0.0, agents=[(RA, 1.1485 + 1.0 - 0.1, 8.0, 4.5, 2.0, 0)])
    r = _score(straddle, _straight(8.0))
    assert r.collision[0] and r.nc[0] == 0.0


def test_offroad_corner_fails_dac():
    r = _score(_problem(), _straight(8.0, dy=6.0))
    assert r.dac[0] == 0.0 and r.pdms[0] == 0.0 and r.ep[0] == 0.0


def test_ttc_object_ahead_vs_behind_vs_stopped_ego():
    # ego brakes from 5 m/s to a stop 0.5 m behind a parked car: no contact, but the 0.9 s projection hits it
    x = np.where(T8 < 2.0, 5.0 * T8 - 1.25 * T8**2, 5.0)
    brake = np.stack([x, 0 * x, 0 * x], -1)[None]
    parked = (RA + 2.588 + 5.5 + 2.25, -1.75, 0.0, 4.5, 2.0, 0)
    ahead = _score(_problem(v=5.0, agents=[parked]), brake, config=PDMConfig(tracking=False))
    assert ahead.nc[0] == 1.0 and not ahead.collision[0] and ahead.ttc[0] == 0.0
    assert 0.0 < ahead.ttc_time[0] <= 1.0
    far = (RA + 2.588 + 9.0 + 2.25, -1.75, 0.0, 4.5, 2.0, 0)
    assert _score(_problem(v=5.0, agents=[far]), brake, config=PDMConfig(tracking=False)).ttc[0] == 1.0
    behind = _score(_problem(v=10.0, agents=[(RA - 5.0 - 1.0, -1.75, 10.0, 4.5, 2.0, 0)]), _straight(10.0))
    assert behind.ttc[0] == 1.0
    stopped = _score(_problem(v=0.0, agents=[(RA + 5.0 + 1.0, -1.75, 0.0, 4.5, 2.0, 0)]), np.zeros((1, 8, 3)))
    assert stopped.ttc[0] == 1.0


@pytest.mark.parametrize("speed, ddc", [(0.5, 1.0), (3.0, 0.5), (8.0, 0.0)])
def test_ddc_oncoming_progress(speed, ddc):
    # driving in lane 2 (not on the route): each 1 s window sums 11 steps of displacement
    r = _score(_problem(v=speed, y=1.75), _straight(speed))
    assert r.ddc[0] == ddc
    assert r.pdms[0] == pytest.approx((5 * r.ep[0] + 5 * r.ttc[0] + 2 * r.comfort[0]) / 12)
    strict = _score(_problem(v=speed, y=1.75), _straight(speed), config=PDMConfig.epdms_like())
    assert strict.pdms[0] == pytest.approx(ddc * (5 * strict.ep[0] + 5 * strict.ttc[0] + 2 * strict.comfort[0]) / 12)


def test_ep_normalisation_against_reference_progress():
    p = _problem()
    states = simulate_candidates(p.ego, _straight(8.0))
    assert score_states(p, states, reference_progress=64.0).ep[0] == pytest.approx(0.5, abs=1e-4)
    assert score_states(p, states, reference_progress=10.0).ep[0] == 1.0
    slow = _problem(v=1.0)
    s_states = simulate_candidates(slow.ego, _straight(1.0))
    assert score_states(slow, s_states, reference_progress=3.0).ep[0] == 1.0
    # group normalisation when no reference is given
    both = simulate_candidates(p.ego, np.concatenate([_straight(8.0), _straight(4.0)]))
    res = score_states(p, both)
    np.testing.assert_allclose(res.ep, [1.0, res.progress[1] / res.progress[0]])
    assert res.progress[1] < 0.8 * res.progress[0]


def test_comfort_fails_for_harsh_braking():
    x = np.minimum(10.0 * T8 - 5.0 * T8**2, 5.0)  # 10 m/s to 0 in 1 s
    r = _score(_problem(v=10.0), np.stack([x, 0 * x, 0 * x], -1)[None])
    assert r.comfort[0] == 0.0


def test_no_map_reports_unavailable_terms():
    p = _problem(agents=[(RA + 12.0, -1.75, 3.0, 4.5, 2.0, 0)], with_map=False)
    r = score_group(p, np.concatenate([_straight(8.0), _straight(1.0)]))
    assert not r.map_available
    for name in ("dac", "ddc", "ep", "progress", "pdms"):
        assert np.all(np.isnan(getattr(r, name))), name
    assert r.nc.tolist() == [0.0, 1.0] and r.collision.tolist() == [True, False]
    assert np.all(r.comfort == 1.0)


def test_terms_select_and_scorer_wrapper():
    p = _problem(agents=[(RA + 12.0, -1.75, 3.0, 4.5, 2.0, 0)])
    cands = np.concatenate([_straight(8.0), _straight(2.0)])
    r = PDMScorer(PDMConfig(collision_penalty=2.0)).score_group(p, cands)
    terms = r.terms(PDMConfig(collision_penalty=2.0))
    assert set(terms) == {"nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms", "collision"}
    assert terms["collision"].tolist() == [-2.0, 0.0]
    one = r.select(0)
    assert one["nc"] == 0.0 and one["collision"] is True and one["colliding_agent_id"] == 100
    assert isinstance(one["pdms"], float) and one["map_available"] is True
    auto = score_group(p, cands)  # reference="auto"
    np.testing.assert_array_equal(auto.pdms, r.pdms)


def test_score_states_input_errors():
    p = _problem()
    with pytest.raises(ValueError, match=r"states: expected shape \(G, 41, 7\)"):
        score_states(p, np.zeros((2, 40, 7)))
    with pytest.raises(ValueError, match="states: G must be >= 1"):
        score_states(p, np.zeros((0, 41, 7)))
    with pytest.raises(ValueError, match="states: contains NaN"):
        score_states(p, np.full((1, 41, 7), np.nan))
    with pytest.raises(ValueError, match="reference"):
        score_group(p, _straight(8.0), reference="closest")


def test_compiled_ego_boxes_equal_vehicle_corners_bit_for_bit():
    from rewards import kernels
    from rewards.geometry import VehicleParameters, rear_axle_to_center, vehicle_corners

    rng = np.random.default_rng(4)
    states = np.zeros((3, 41, 7))
    states[..., :2] = rng.normal(scale=50.0, size=(3, 41, 2))
    states[..., 2] = rng.uniform(-np.pi, np.pi, size=(3, 41))
    params = VehicleParameters(length=4.5, width=1.9, wheelbase=2.8, rear_axle_to_center=1.3)
    yaw = states[..., 2]
    corners, centers = kernels.ego_boxes(states, np.cos(yaw), np.sin(yaw), params.rear_axle_to_center,
                                         0.5 * params.length, 0.5 * params.width)
    np.testing.assert_array_equal(corners, vehicle_corners(states[..., :3], params))
    np.testing.assert_array_equal(centers, rear_axle_to_center(states[..., :3], params)[..., :2])
    # Corner order FL, RL, RR, FR at heading 0: front = +x, left = +y.
    box = vehicle_corners(np.zeros(3), params)
    np.testing.assert_allclose(box, [[3.55, 0.95], [-0.95, 0.95], [-0.95, -0.95], [3.55, -0.95]], atol=1e-12)


# ---------------------------------------------------------------------------------------------- seams (issue 15)
def test_problem_arrays_are_frozen_copies_so_editing_the_callers_arrays_cannot_stale_the_cache():
    ahead = [(RA + 12.0, -1.75, 3.0, 4.5, 2.0, 0)]
    p = _problem(agents=ahead)
    poses, pose, route = p.agents.poses.copy(), np.array([0.0, -1.75, 0.0]), p.map.route.copy()
    agents = AgentsFuture(ids=p.agents.ids, is_static=p.agents.is_static, sizes=p.agents.sizes, poses=poses,
                          velocities=p.agents.velocities, valid=p.agents.valid)
    geometry = MapGeometry(drivable_areas=(ROAD,), lane_polygons=(LANE1, LANE2), lane_ids=np.array([1, 2]),
                           route_lane_ids=(1,), route=route)
    problem = ScoringProblem(ego=EgoState(pose=pose, velocity=np.array([8.0, 0.0])), agents=agents, map=geometry)
    first = _score(problem, _straight(8.0))
    assert first.collision[0] and first.nc[0] == 0.0
    # The caller edits its own arrays after scoring: the object leaves, the ego and the route move.
    poses[..., 1] += 50.0
    pose[:] = [5.0, 3.0, 1.0]
    route[:] = 0.0
    assert problem.agents.poses[0, 0, 1] == -1.75 and problem.ego.pose.tolist() == [0.0, -1.75, 0.0]
    again = _score(problem, _straight(8.0))
    for name in ("nc", "ttc", "collision", "colliding_agent_id", "pdms", "progress"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name), err_msg=name)
    # ... and nobody writes the problem's arrays in place.
    arrays = [problem.ego.pose, problem.ego.velocity, problem.ego.acceleration, problem.agents.ids,
              problem.agents.is_static, problem.agents.sizes, problem.agents.poses, problem.agents.velocities,
              problem.agents.valid, problem.map.route, problem.map.lane_ids, *problem.map.drivable_areas,
              *problem.map.lane_polygons]
    for arr in arrays:
        with pytest.raises(ValueError, match="read-only"):
            arr[...] = 0


def test_frozen_arrays_are_not_copied_again_but_read_only_views_of_writeable_arrays_are():
    import dataclasses

    p = _problem(agents=[(RA + 12.0, -1.75, 3.0, 4.5, 2.0, 0)])
    # Rebuilding from frozen parts (dataclasses.replace per env step) copies nothing.
    ego = dataclasses.replace(p.ego, steering_angle=0.1)
    agents = dataclasses.replace(p.agents)
    assert ego.pose is p.ego.pose and ego.velocity is p.ego.velocity
    assert all(getattr(agents, f) is getattr(p.agents, f) for f in ("ids", "sizes", "poses", "velocities", "valid"))
    # A read-only view of a writeable array is not frozen: its base can still change, so it is copied.
    base = np.array([1.0, 2.0, 0.5])
    view = base.view()
    view.setflags(write=False)
    ego = EgoState(pose=view, velocity=np.array([8.0, 0.0]))
    base[0] = 99.0
    assert ego.pose.tolist() == [1.0, 2.0, 0.5] and not ego.pose.flags.writeable
    # A converted input (list, other dtype) is owned already: made read-only without a second copy.
    ids = np.array([7, 8], dtype=np.int32)
    agents = AgentsFuture(ids=ids, is_static=[False, True], sizes=np.ones((2, 2)), poses=np.zeros((2, S, 3)),
                          velocities=np.zeros((2, S, 2)), valid=np.ones((2, S), bool))
    assert agents.ids.dtype == np.int64 and agents.ids.flags.owndata and not agents.ids.flags.writeable


def test_a_route_of_fewer_than_two_points_scores_through_the_one_aggregation_with_progress_zero():
    import dataclasses

    p = _problem(agents=[(RA + 12.0, -1.75, 3.0, 4.5, 2.0, 0)])
    cands = np.concatenate([_straight(8.0), _straight(2.0)])
    states = simulate_candidates(p.ego, cands)
    full = score_states(p, states)
    for route in (np.array([[0.0, -1.75]]), np.zeros((0, 2))):
        q = dataclasses.replace(p, map=dataclasses.replace(p.map, route=route))
        r = score_states(q, states)  # raised "attempt to get argmin of an empty sequence" before
        assert r.map_available and np.all(r.progress == 0.0) and np.all(r.masked_progress == 0.0)
        # EP: the normaliser (0) is below the progress threshold: 1 unless masked (candidate 0 collides: NC = 0).
        assert r.ep.tolist() == [0.0, 1.0]
        for name in ("nc", "dac", "ddc", "ttc", "comfort"):
            np.testing.assert_array_equal(getattr(r, name), getattr(full, name), err_msg=name)
        expected = r.nc * r.dac * (5 * r.ep + 5 * r.ttc + 2 * r.comfort) / 12
        np.testing.assert_allclose(r.pdms, expected, rtol=0, atol=1e-15)
        assert score_group(q, cands).pdms.tolist() == r.pdms.tolist()  # no reference without a route: group EP


def test_map_free_score_is_one_function_for_the_env_reward_and_the_search():
    from counterfactual import search
    from envs.sim import reward
    from rewards.pdm import map_free_score

    nc, ttc, comfort = np.array([1.0, 0.5, 1.0, 0.0]), np.array([1.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(map_free_score(nc, ttc, comfort), nc * (5 * ttc + 2 * comfort) / 7)
    progress = np.array([20.0, 10.0, -3.0, 30.0])
    ep = np.array([1.0, 0.25, 0.0, 0.0])  # max(progress, 0) * NC over the group's largest (20)
    np.testing.assert_allclose(map_free_score(nc, ttc, comfort, progress=progress),
                               nc * (5 * ep + 5 * ttc + 2 * comfort) / 12, rtol=0, atol=1e-15)
    short = map_free_score(nc, ttc, comfort, progress=np.full(4, 2.0))  # below the 5 m threshold: EP = 1
    np.testing.assert_allclose(short, nc * (5 + 5 * ttc + 2 * comfort) / 12, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="map_free_score"):
        map_free_score(nc, ttc, comfort, PDMConfig(ttc_weight=0.0, comfort_weight=0.0))
    assert reward.map_free_score is map_free_score
    assert not hasattr(search, "map_free_aggregate")


def test_pdm_does_not_import_the_reference_planner_and_the_scorer_caches_references_per_problem():
    import gc
    import subprocess
    import sys

    code = ("import sys, rewards.pdm; print('rewards.reference_planner' in sys.modules,"
            " 'rewards.scorer' in sys.modules, hasattr(rewards.pdm, 'reference_for'),"
            " hasattr(rewards.pdm, 'score_group'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False", "False"]
    from rewards import scorer

    p = _problem(agents=[(RA + 30.0, -1.75, 3.0, 4.5, 2.0, 0)])
    ref = scorer.reference_for(p)
    assert ref is not None and scorer.reference_for(p) is ref
    assert scorer.reference_for(p, PDMConfig(tracking=False)) is not ref
    assert scorer.reference_for(_problem(with_map=False)) is None
    gc.collect()  # earlier tests' cyclic garbage may hold cached problems: collect it before counting
    count = len(scorer._REFERENCES)
    del p
    gc.collect()
    assert len(scorer._REFERENCES) == count - 1


def test_kernels_are_split_by_subject_and_the_contact_kernel_takes_three_named_groups():
    import inspect

    from rewards import kernels

    where = {"interpolate": "tracking", "simulate_tracked": "tracking", "ego_areas": "map_areas",
             "contains_points": "map_areas", "collisions_and_ttc": "contacts", "object_boxes": "contacts",
             "aggregate": "aggregate", "project_points": "aggregate", "comfort_bounds": "comfort"}
    for name, module in where.items():
        assert getattr(kernels, name).py_func.__module__ == f"rewards.kernels.{module}", name
    assert list(inspect.signature(kernels.collisions_and_ttc.py_func).parameters) == ["ego", "objects", "rules"]
    assert kernels.ContactRules._fields[:3] == ("offsets", "ttc_checked", "zero_k")
