"""Edge cases of the NAVSIM v1.1 PDM score (spec section 9 and more), checked on BOTH scorers.

Every case is a hand-built :class:`~rewards.types.ScoringProblem` (a straight two-lane road, agents placed exactly)
with hand-made ``(G, 41, 7)`` states, so each rule is hit on purpose; each test runs against the vectorized
``rewards.pdm.score_states`` and the shapely oracle ``rewards.reference.score_states_reference``.

Layout (world frame = ego frame at t=0, metres): drivable area x in [-100, 300], y in [-3.5, 3.5]; lane 1 (on the
route, driving +x) is y in [-3.5, 0], lane 2 (oncoming, off the route) is y in [0, 3.5]; the route runs along
y = -1.75. The ego (NAVSIM Pacifica: length 5.176, width 2.297, rear axle 1.461 m behind the box centre) starts with
its rear axle at (0, -1.75): box x in [-1.127, 4.049], y in [-2.8985, -0.6015].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rewards.config import PDMConfig
from rewards.geometry import VehicleParameters
from rewards.pdm import score_states
from rewards.reference import score_states_reference
from rewards.types import AgentsFuture, EgoState, MapGeometry, ScoringProblem

CONFIG = PDMConfig()
T = CONFIG.num_sim_steps  # 41 states
S = CONFIG.num_observation_steps  # 50 agent steps
DT = CONFIG.sim_dt
TIME = np.arange(T) * DT
EGO = VehicleParameters()
FRONT = EGO.rear_axle_to_center + EGO.length / 2  # rear axle -> front bumper, 4.049 m
REAR = EGO.length / 2 - EGO.rear_axle_to_center  # rear axle -> rear bumper, 1.127 m
HALF_W = EGO.width / 2
LANE1_Y, LANE2_Y = -1.75, 1.75

IMPLEMENTATIONS = [
    pytest.param(score_states, id="vectorized"),
    pytest.param(score_states_reference, id="reference"),
]


# ------------------------------------------------------------------------------------------------------ builders
def _rect(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])


def road(intersection: tuple[float, float] | None = None) -> MapGeometry:
    """The two-lane road; ``intersection`` = x-range of a junction polygon across the road."""
    return MapGeometry(
        drivable_areas=(_rect(-100, 300, -3.5, 3.5),),
        lane_polygons=(_rect(-100, 300, -3.5, 0.0), _rect(-100, 300, 0.0, 3.5)),
        lane_ids=np.array([1, 2]),
        route_lane_ids=(1,),
        route=np.array([[-100.0, LANE1_Y], [300.0, LANE1_Y]]),
        intersections=() if intersection is None else (_rect(intersection[0], intersection[1], -3.5, 3.5),),
    )


def ego_states(
    x0: float = 0.0,
    y0: float = LANE1_Y,
    yaw: float = 0.0,
    speed: float = 10.0,
    accel: float = 0.0,
) -> np.ndarray:
    """``(41, 7)`` states of an ego driving straight along ``yaw`` from rear axle ``(x0, y0)``."""
    v = speed + accel * TIME
    s = speed * TIME + 0.5 * accel * TIME**2
    out = np.zeros((T, 7))
    out[:, 0] = x0 + s * np.cos(yaw)
    out[:, 1] = y0 + s * np.sin(yaw)
    out[:, 2] = yaw
    out[:, 3] = v
    out[:, 5] = accel
    return out


class Agent:
    """An object moving at constant world velocity ``(vx, vy)`` from box centre ``(x, y)`` (heading ``yaw``)."""

    def __init__(self, agent_id, x, y, vx=0.0, vy=0.0, yaw=0.0, length=4.0, width=2.0, static=False):
        self.id, self.static, self.size = agent_id, static, (length, width)
        t = np.arange(S) * DT
        self.poses = np.column_stack([x + vx * t, y + vy * t, np.full(S, yaw)])
        self.velocities = np.tile([vx, vy], (S, 1)).astype(float)
        self.valid = np.ones(S, dtype=bool)


def problem(*agents: Agent, scene_map: MapGeometry | None | str = "road", ego_speed: float = 10.0) -> ScoringProblem:
    """A scoring problem with the ego at the origin of lane 1 and the given agents."""
    n = len(agents)
    return ScoringProblem(
        ego=EgoState(pose=np.array([0.0, LANE1_Y, 0.0]), velocity=np.array([ego_speed, 0.0])),
        agents=AgentsFuture(
            ids=np.array([a.id for a in agents], dtype=np.int64),
            is_static=np.array([a.static for a in agents], dtype=bool),
            sizes=np.array([a.size for a in agents], dtype=float).reshape(n, 2),
            poses=np.array([a.poses for a in agents]).reshape(n, S, 3),
            velocities=np.array([a.velocities for a in agents]).reshape(n, S, 2),
            valid=np.array([a.valid for a in agents]).reshape(n, S),
        ),
        map=road() if isinstance(scene_map, str) else scene_map,
        scene_id="test/edge",
    )


def score(impl, prob: ScoringProblem, *states: np.ndarray, config: PDMConfig = CONFIG, reference_progress=None):
    return impl(prob, np.stack(states), config, reference_progress=reference_progress)


# ------------------------------------------------------------------------------------------ NC: collision classes
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_rear_ending_a_moving_car_is_at_fault(impl):
    lead = Agent(7, x=FRONT + 2.05 + 2.0, y=LANE1_Y, vx=5.0)  # 2.05 m gap, closing at 5 m/s -> contact at 0.5 s
    r = score(impl, problem(lead), ego_states(speed=10.0))
    assert r.nc[0] == 0.0 and r.collision[0] and r.at_fault_collision[0]
    assert r.colliding_agent_id[0] == 7
    assert r.collision_time[0] == pytest.approx(0.5)
    assert r.pdms[0] == 0.0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_being_rear_ended_is_not_at_fault(impl):
    follower = Agent(8, x=-REAR - 2.05 - 2.0, y=LANE1_Y, vx=10.0)  # closing at 5 m/s from behind
    r = score(impl, problem(follower), ego_states(speed=5.0))
    assert r.nc[0] == 1.0 and r.collision[0] and not r.at_fault_collision[0]
    assert r.colliding_agent_id[0] == 8
    assert r.collision_time[0] == pytest.approx(0.5)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_stopped_ego_hit_head_on_is_not_at_fault(impl):
    oncoming = Agent(9, x=FRONT + 2.05 + 2.0, y=LANE1_Y, vx=-5.0, yaw=np.pi)
    r = score(impl, problem(oncoming, ego_speed=0.0), ego_states(speed=0.0))
    assert r.nc[0] == 1.0 and r.collision[0] and not r.at_fault_collision[0]
    assert r.ttc[0] == 1.0  # TTC is not checked for a stopped ego


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_hitting_a_parked_car_is_at_fault(impl):
    parked = Agent(10, x=FRONT + 2.05 + 2.0, y=LANE1_Y, vx=0.0)
    r = score(impl, problem(parked), ego_states(speed=10.0))
    assert r.nc[0] == 0.0 and r.at_fault_collision[0]
    assert r.collision_time[0] == pytest.approx(0.3)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_hitting_a_cone_scores_half(impl):
    cone = Agent(11, x=FRONT + 2.05 + 0.25, y=LANE1_Y, length=0.5, width=0.5, static=True)
    r = score(impl, problem(cone), ego_states(speed=10.0))
    assert r.nc[0] == 0.5 and r.at_fault_collision[0]
    # PDMS = NC * DAC * (5 EP + 5 TTC + 2 C) / 12 with TTC failed (the cone is ahead) and EP 1 (alone in its group).
    assert r.ttc[0] == 0.0
    assert r.pdms[0] == pytest.approx(0.5 * (5 * 1.0 + 5 * 0.0 + 2 * r.comfort[0]) / 12)


def _side_contact(ego_y: float, first_speed: float | None = None) -> tuple[ScoringProblem, np.ndarray]:
    """An agent abreast of the ego on its left, same forward speed, drifting right into the ego's side at 1 m/s
    (0.35 m gap: first contact at 0.4 s). ``first_speed`` overrides its speed at its first (record) step."""
    agent = Agent(12, x=EGO.rear_axle_to_center, y=ego_y + HALF_W + 1.0 + 0.35, vx=10.0, vy=-1.0)
    if first_speed is not None:
        agent.velocities[0] = [first_speed, 0.0]
    prob = replace(problem(agent), ego=EgoState(pose=np.array([0.0, ego_y, 0.0]), velocity=np.array([10.0, 0.0])))
    return prob, ego_states(y0=ego_y, speed=10.0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_lateral_contact_inside_one_lane_is_not_at_fault(impl):
    prob, states = _side_contact(LANE1_Y)
    r = score(impl, prob, states)
    assert r.collision[0] and r.nc[0] == 1.0 and not r.at_fault_collision[0]
    assert r.collision_time[0] == pytest.approx(0.4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_lateral_contact_straddling_two_lanes_is_at_fault(impl):
    prob, states = _side_contact(0.0)  # ego centred on the lane divider: corners in both lanes
    r = score(impl, prob, states)
    assert r.nc[0] == 0.0 and r.at_fault_collision[0]
    assert r.dac[0] == 1.0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("first_speed, nc", [(0.0, 0.0), (0.05, 0.0), (0.06, 1.0)])
def test_object_stopped_test_uses_its_first_record_and_0_05_threshold(impl, first_speed, nc):
    # The drifting agent's first record says `first_speed` (its later steps move at 10 m/s): <= 0.05 m/s makes the
    # contact a stopped-track collision (at fault) instead of a lateral one in a single lane (not at fault).
    prob, states = _side_contact(LANE1_Y, first_speed=first_speed)
    r = score(impl, prob, states)
    assert r.nc[0] == nc


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("offset, nc", [(1.2, 1.0), (2.19, 0.0)])
def test_rear_contact_needs_the_object_beyond_150_degrees(impl, offset, nc):
    # Ego straddling the lane divider (multiple lanes) is caught up by a 2.5 m wide car from behind, offset
    # laterally: at contact its centroid is 2.6-3.1 m behind the rear axle, so at 155-159 deg for a 1.2 m offset
    # (active rear: not at fault) and at 140-145 deg for 2.19 m (active lateral while in two lanes: at fault).
    follower = Agent(13, x=-REAR - 2.05 - 2.0, y=offset, vx=10.0, width=2.5)
    prob = replace(problem(follower), ego=EgoState(np.array([0.0, 0.0, 0.0]), np.array([5.0, 0.0])))
    r = score(impl, prob, ego_states(y0=0.0, speed=5.0))
    assert r.collision[0] and r.nc[0] == nc


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_only_the_first_contact_with_an_object_is_classified(impl):
    # Rear-ended at 0.5 s (not at fault, remembered); the follower then pushes on into the ego's front half, which
    # would be an active-front collision if it were classified again.
    follower = Agent(8, x=-REAR - 2.05 - 2.0, y=LANE1_Y, vx=15.0)
    r = score(impl, problem(follower), ego_states(speed=5.0))
    assert r.collision[0] and r.nc[0] == 1.0 and not r.at_fault_collision[0]


# --------------------------------------------------------------------------------------------------------------- DAC
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_one_corner_off_road_fails_drivable_area(impl):
    yaw = 0.05  # rear-right corner is the lowest: 1.2765 m below the centre, front-right 1.0177 m
    center = np.array([1.0, -3.5 + 1.2])
    rear_axle = center - EGO.rear_axle_to_center * np.array([np.cos(yaw), np.sin(yaw)])
    r = score(impl, problem(), ego_states(x0=rear_axle[0], y0=rear_axle[1], yaw=yaw, speed=0.0))
    assert r.dac[0] == 0.0 and r.pdms[0] == 0.0
    inside = score(impl, problem(), ego_states(speed=0.0))
    assert inside.dac[0] == 1.0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_corner_exactly_on_the_road_edge_counts_as_outside(impl):
    # Exactly representable geometry: a 5 x 2 m ego whose right side lies on y = -3.5.
    params = VehicleParameters(length=5.0, width=2.0, wheelbase=3.0, rear_axle_to_center=1.5)
    prob = replace(problem(), ego=EgoState(np.array([0.0, -2.5, 0.0]), np.zeros(2), params=params))
    r = score(impl, prob, ego_states(y0=-2.5, speed=0.0))
    assert r.dac[0] == 0.0
    nudged = score(impl, prob, ego_states(y0=-2.5 + 1e-6, speed=0.0))
    assert nudged.dac[0] == 1.0


# --------------------------------------------------------------------------------------------------------------- DDC
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("speed, ddc", [(0.9, 1.0), (3.6, 0.5), (9.0, 0.0)])
def test_oncoming_travel_within_one_second(impl, speed, ddc):
    # Driving in the oncoming lane for the whole horizon: the largest 1 s window sums 11 steps = 1.1 * speed metres
    # (0.99 m, 3.96 m, 9.9 m).
    oncoming = score(impl, problem(scene_map="road"), ego_states(y0=LANE2_Y, speed=speed))
    own_lane = score(impl, problem(scene_map="road"), ego_states(y0=LANE1_Y, speed=speed))
    assert oncoming.ddc[0] == ddc and own_lane.ddc[0] == 1.0
    # v1.1: DDC is reported but weighs 0, so PDMS does not change.
    assert oncoming.pdms[0] == pytest.approx(own_lane.pdms[0])
    assert oncoming.progress[0] == pytest.approx(own_lane.progress[0])
    # With a DDC weight, or the EPDMS-like preset (DDC multiplies), it does.
    weighted = PDMConfig(ddc_weight=2.0)
    on_w = score(impl, problem(), ego_states(y0=LANE2_Y, speed=speed), config=weighted)
    own_w = score(impl, problem(), ego_states(y0=LANE1_Y, speed=speed), config=weighted)
    assert on_w.pdms[0] == pytest.approx(own_w.pdms[0] - 2.0 * (1.0 - ddc) / 14.0)
    preset = PDMConfig.epdms_like()
    on_p = score(impl, problem(), ego_states(y0=LANE2_Y, speed=speed), config=preset)
    own_p = score(impl, problem(), ego_states(y0=LANE1_Y, speed=speed), config=preset)
    assert on_p.pdms[0] == pytest.approx(ddc * own_p.pdms[0])


# --------------------------------------------------------------------------------------------------------------- TTC
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("gap, ttc", [(9.7, 0.0), (9.9, 1.0)])
def test_ttc_with_a_slower_lead_just_inside_and_outside_the_bound(impl, gap, ttc):
    # Closing at 2 m/s: the gap shrinks to gap - 8 m at 4.0 s; the 0.9 s projection closes 1.8 m more, so TTC fails
    # iff gap - 8 <= 1.8. No contact either way.
    lead = Agent(20, x=FRONT + gap + 2.0, y=LANE1_Y, vx=8.0)
    r = score(impl, problem(lead), ego_states(speed=10.0))
    assert r.ttc[0] == ttc
    assert not r.collision[0] and r.nc[0] == 1.0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_ttc_ignores_an_object_closing_from_behind(impl):
    follower = Agent(21, x=-REAR - 1.0 - 2.0, y=LANE1_Y, vx=4.0)  # reaches the projected ego at k=6, from behind
    r = score(impl, problem(follower, ego_speed=1.0), ego_states(speed=1.0))
    assert r.ttc[0] == 1.0
    assert r.collision[0] and r.nc[0] == 1.0  # and rear-ended: not at fault


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_ttc_is_not_checked_for_a_stopped_ego(impl):
    lead = Agent(22, x=FRONT + 1.0 + 2.0, y=LANE1_Y, vx=-0.5, yaw=np.pi)  # creeping towards the ego
    r = score(impl, problem(lead, ego_speed=0.0), ego_states(speed=0.0))
    assert r.ttc[0] == 1.0
    moving = score(impl, problem(lead), ego_states(speed=0.01, accel=0.0))
    assert moving.ttc[0] == 0.0


def _lateral_approach(x_shift: float) -> tuple[ScoringProblem, np.ndarray]:
    """A 1 x 1 m object crossing from the left at 1 m/s towards the path of an ego driving at 2 m/s: it would touch
    the ego's front-left at ~4.5 s, after the 4 s horizon (no contact), and the 0.9 s projection sees it from
    t = 3.6 s on, at about 40 deg from the ego heading: neither ahead (< 30 deg) nor behind (> 150 deg)."""
    agent = Agent(23, x=x_shift + 9.0, y=4.3985, vx=0.0, vy=-1.0, length=1.0, width=1.0)
    prob = problem(agent, scene_map=road(intersection=(5.0, 20.0)))
    prob = replace(prob, ego=EgoState(np.array([x_shift, LANE1_Y, 0.0]), np.array([2.0, 0.0])))
    return prob, ego_states(x0=x_shift, speed=2.0)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_ttc_counts_a_lateral_object_only_inside_an_intersection(impl):
    in_junction = score(impl, *_lateral_approach(0.0))  # rear axle at x 7.2..8 m when it matters: inside [5, 20]
    assert in_junction.ttc[0] == 0.0 and not in_junction.collision[0]
    outside = score(impl, *_lateral_approach(-60.0))
    assert outside.ttc[0] == 1.0


# ----------------------------------------------------------------------------------------------------------- comfort
def _still_states(ax=0.0, ay=0.0, heading=0.0) -> np.ndarray:
    """An ego standing still at the origin (no map, no agents) with hand-set accelerations / heading series."""
    out = np.zeros((T, 7))
    out[:, 2] = heading
    out[:, 5] = ax
    out[:, 6] = ay
    return out


_ALTERNATING = (-1.0) ** np.arange(T)
_PARABOLA = (TIME - 2.0) ** 2
# Jerks go through NAVSIM's window-8 smoothing (even window): for a parabola a (t-2)^2 the smoothed, differentiated
# series peaks at 4.0496 a (probed with scipy), so the bounds sit at a = 2.0669 (|jerk| 8.37) and 1.0199 (4.13).
_COMFORT_CASES = {
    "lon_accel_max": (_still_states(ax=2.39), _still_states(ax=2.41)),
    "lon_accel_min": (_still_states(ax=-4.04), _still_states(ax=-4.06)),
    "lat_accel_left": (_still_states(ay=4.88), _still_states(ay=4.90)),
    "lat_accel_right": (_still_states(ay=-4.88), _still_states(ay=-4.90)),
    # |a| = a (t-2)^2 while ay alternates in sign, so its own (whole-window) fit stays ~1.2 m/s^2.
    "jerk": (_still_states(ay=2.062 * _PARABOLA * _ALTERNATING), _still_states(ay=2.072 * _PARABOLA * _ALTERNATING)),
    "lon_jerk": (_still_states(ax=1.017 * _PARABOLA - 3.0), _still_states(ax=1.022 * _PARABOLA - 3.0)),
    "yaw_rate": (_still_states(heading=0.94 * TIME), _still_states(heading=0.96 * TIME)),
    "yaw_rate_wrapping": (  # the heading crosses +-pi: the unwrap must not see a jump
        _still_states(heading=(np.pi - 1.0 + 0.94 * TIME + np.pi) % (2 * np.pi) - np.pi),
        _still_states(heading=(np.pi - 1.0 + 0.96 * TIME + np.pi) % (2 * np.pi) - np.pi),
    ),
    # yaw rate ramps at 1.92 (1.94) rad/s^2 for 0.4 s then holds 0.768 (0.776) rad/s
    "yaw_accel": tuple(
        _still_states(heading=np.where(TIME < 0.4, 0.5 * b * TIME**2, 0.5 * b * 0.16 + b * 0.4 * (TIME - 0.4)))
        for b in (1.92, 1.94)
    ),
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", sorted(_COMFORT_CASES))
def test_each_comfort_bound_just_inside_and_just_outside(impl, case):
    inside, outside = _COMFORT_CASES[case]
    r = score(impl, problem(scene_map=None, ego_speed=0.0), inside, outside)
    assert list(r.comfort) == [1.0, 0.0]


# ---------------------------------------------------------------------------------------------------------------- EP
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_progress_below_threshold_gives_ep_one_or_zero_when_masked(impl):
    cone = Agent(30, x=FRONT + 1.0 + 0.25, y=LANE2_Y, length=0.5, width=0.5, static=True)
    slow = ego_states(speed=1.0)  # 4 m progress
    into_cone = ego_states(y0=LANE2_Y, speed=1.0)  # hits the cone in lane 2 (NC 0.5), DDC irrelevant
    r = score(impl, problem(cone), slow, into_cone, reference_progress=3.0)
    assert r.progress[0] == pytest.approx(4.0) and r.progress[1] == pytest.approx(4.0)
    assert r.nc[1] == 0.5
    assert list(r.ep) == [1.0, 1.0]  # 0.5 * 4 < 5 m: masked by 0.5 only, not 0
    parked = Agent(31, x=FRONT + 1.0 + 2.0, y=LANE1_Y)
    r = score(impl, problem(parked), slow, reference_progress=3.0)
    assert r.nc[0] == 0.0 and r.ep[0] == 0.0


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_candidate_progressing_more_than_the_reference_gets_ep_one(impl):
    r = score(impl, problem(), ego_states(speed=10.0), ego_states(speed=2.5), reference_progress=20.0)
    assert r.progress == pytest.approx([40.0, 10.0])
    assert r.ep == pytest.approx([1.0, 0.5])  # each candidate is normalised with the reference only
    alone = score(impl, problem(), ego_states(speed=10.0), ego_states(speed=2.5))
    assert alone.ep == pytest.approx([1.0, 0.25])  # no reference: the group's best sets the scale


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_ep_is_masked_by_an_at_fault_collision(impl):
    parked = Agent(32, x=FRONT + 10.0 + 2.0, y=LANE1_Y)
    r = score(impl, problem(parked), ego_states(speed=10.0), reference_progress=20.0)
    assert r.nc[0] == 0.0 and r.progress[0] == pytest.approx(40.0) and r.ep[0] == 0.0 and r.pdms[0] == 0.0


# ------------------------------------------------------------------------------------------------------------ no map
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_without_a_map_nc_ttc_and_comfort_still_work(impl):
    lead = Agent(7, x=FRONT + 2.05 + 2.0, y=LANE1_Y, vx=5.0)
    r = score(impl, problem(lead, scene_map=None), ego_states(speed=10.0), ego_states(speed=1.0))
    assert not r.map_available
    for name in ("dac", "ddc", "ep", "progress", "pdms"):
        assert np.isnan(getattr(r, name)).all(), name
    assert list(r.nc) == [0.0, 1.0] and list(r.ttc) == [0.0, 1.0]
    assert list(r.collision) == [True, False] and list(r.comfort) == [1.0, 1.0]


# -------------------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "states, pattern",
    [
        (np.zeros((0, T, 7)), r"states.*\(0, 41, 7\)"),
        (np.zeros((2, T - 1, 7)), r"states.*\(2, 40, 7\)"),
        (np.zeros((T, 7)), r"states.*\(41, 7\)"),
        (np.zeros((1, T, 6)), r"states.*\(1, 41, 6\)"),
        (np.where(np.arange(7) == 0, np.nan, 0.0) * np.ones((1, T, 7)), r"states.*(NaN|nan)"),
    ],
    ids=["empty-group", "short-horizon", "no-group-axis", "six-columns", "nan"],
)
def test_bad_states_raise_value_error_naming_the_argument_and_shape(impl, states, pattern):
    with pytest.raises(ValueError, match=pattern):
        impl(problem(), states, CONFIG)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_short_agents_window_raises_value_error_naming_problem_agents(impl):
    # The window must cover the 41 states plus the largest TTC offset (9 steps): 50 steps; 49 is one short.
    full = problem(Agent(7, x=30.0, y=LANE1_Y, vx=5.0))
    ag = full.agents
    short = ScoringProblem(
        ego=full.ego,
        agents=AgentsFuture(ids=ag.ids, is_static=ag.is_static, sizes=ag.sizes, poses=ag.poses[:, : S - 1],
                            velocities=ag.velocities[:, : S - 1], valid=ag.valid[:, : S - 1]),
        map=full.map,
    )
    with pytest.raises(ValueError, match=rf"problem\.agents.*{S}.*\(1, {S - 1}, 3\)"):
        impl(short, ego_states()[None], CONFIG)


# ------------------------------------------------------------------------------------------------- EPDMS preset
def _stopped_car_ahead_in_lane_2(speed: float) -> ScoringProblem:
    """A stopped car in the oncoming lane whose rear is ``4.1 * speed`` metres ahead of the ego's front bumper."""
    return problem(Agent(7, x=FRONT + 4.1 * speed + 2.0, y=LANE2_Y))


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("speed, ddc", [(0.9, 1.0), (3.6, 0.5), (9.0, 0.0)])
def test_epdms_preset_ddc_multiplies_instead_of_being_averaged(impl, speed, ddc):
    # EPDMS = NC x DAC x DDC x (5 EP + 5 TTC + 2 C) / 12: a DDC weight does not enter the average when DDC
    # multiplies. A stopped car ahead in the oncoming lane, 4.1 s of travel away, is never hit (NC 1) but enters the
    # 0.9 s TTC projection near the end of the horizon (TTC 0), so the weighted terms differ from 1.
    preset = PDMConfig.epdms_like(ddc_weight=2.0)
    prob = _stopped_car_ahead_in_lane_2(speed)
    r = score(impl, prob, ego_states(y0=LANE2_Y, speed=speed), ego_states(y0=LANE1_Y, speed=speed), config=preset)
    assert list(r.ddc) == [ddc, 1.0] and list(r.nc) == [1.0, 1.0] and list(r.ttc) == [0.0, 1.0]
    expected = r.nc * r.dac * r.ddc * (5.0 * r.ep + 5.0 * r.ttc + 2.0 * r.comfort) / 12.0
    np.testing.assert_allclose(r.pdms, expected, rtol=0, atol=1e-12)
    # The DDC weight changes nothing in the preset.
    plain = score(impl, prob, ego_states(y0=LANE2_Y, speed=speed), ego_states(y0=LANE1_Y, speed=speed),
                  config=PDMConfig.epdms_like())
    np.testing.assert_allclose(r.pdms, plain.pdms, rtol=0, atol=1e-12)


@pytest.mark.parametrize("speed", [0.9, 3.6, 9.0])
def test_epdms_preset_vectorized_and_reference_agree(speed):
    preset = PDMConfig.epdms_like(ddc_weight=2.0)
    prob = _stopped_car_ahead_in_lane_2(speed)
    states = [ego_states(y0=LANE2_Y, speed=speed), ego_states(y0=LANE1_Y, speed=speed),
              ego_states(y0=LANE2_Y, speed=speed, accel=-3.0 * speed / 4.0)]
    fast = score(score_states, prob, *states, config=preset)
    slow = score(score_states_reference, prob, *states, config=preset)
    for name in ("nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=0, atol=1e-12, err_msg=name)


def test_config_rejects_a_preset_whose_averaged_weights_sum_to_zero():
    with pytest.raises(ValueError, match="ddc_weight does not count"):
        PDMConfig.epdms_like(ep_weight=0.0, ttc_weight=0.0, comfort_weight=0.0, ddc_weight=1.0)
    assert PDMConfig(ep_weight=0.0, ttc_weight=0.0, comfort_weight=0.0, ddc_weight=1.0).averaged_ddc_weight == 1.0
