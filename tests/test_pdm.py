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
