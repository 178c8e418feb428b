"""Tests of the synthetic scenario bank (envs.scenes.bank), its road layouts (envs.scenes.layouts) and rewards.geometry.boxes_overlap.

Avoidability check (documented in envs.scenes.bank.core): from 2 s before contact, braking at a constant 6 m/s^2 along the
ego's logged path must be collision-free against every agent's log; for ``head_on_drift`` the check is steering
back to the route centreline over 1.5 s at the logged speed instead (braking alone leaves the ego in the
oncoming lane).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import shapely

from envs.scenes.bank import ACCIDENT_TYPES, COLLISION_WINDOW, SCENARIO_TYPES, VARIANTS, ScenarioBank, generate_scene
from envs.scenes.bank.motion import brake_after, smoothstep, track_poses
from envs.scenes.layouts import (
    LAYOUT_NAMES,
    Path,
    get_layout,
    on_route_lane_ids,
    polyline_of_lanes,
    pose_at,
    route_polyline,
)
from envs.scenes.scene import AgentClass, Scene
from rewards.geometry import box_corners, boxes_overlap, vehicle_corners

SEEDS = range(20)


@functools.lru_cache(maxsize=None)
def scenes_of(scenario_type: str, outcome: str | None = None) -> tuple[Scene, ...]:
    """The type's scenes of :data:`SEEDS` (``outcome``: the outcome-varied mode's wanted outcome)."""
    return tuple(generate_scene(scenario_type, seed, outcome=outcome) for seed in SEEDS)


OUTCOME_MODES = [None, "near_miss", "benign"]
"""The validity checks run over the default scenes and over the varied mode's near-miss and benign draws."""


def ego_corners(scene: Scene, poses: np.ndarray | None = None) -> np.ndarray:
    """(T, 4, 2) ego box corners for rear-axle ``poses`` (default: the log)."""
    return vehicle_corners(scene.ego_poses if poses is None else poses, scene.ego_params)


def agent_corners(scene: Scene) -> np.ndarray:
    """(N, T, 4, 2) agent box corners."""
    return box_corners(scene.agent_poses, scene.agent_sizes[:, None, 0], scene.agent_sizes[:, None, 1])


def ego_overlaps(scene: Scene, poses: np.ndarray | None = None) -> np.ndarray:
    """(N, T) bool: ego box overlaps agent box (invalid agent frames masked out)."""
    return boxes_overlap(ego_corners(scene, poses)[None], agent_corners(scene)) & scene.agent_valid


def drivable(scene: Scene):
    return shapely.union_all([shapely.Polygon(p) for p in scene.map.drivable_areas])


# ------------------------------------------------------------------------------------------------ geometry
def test_boxes_overlap_as_used_by_the_bank():
    """The bank's contact test is rewards.geometry.boxes_overlap (closed SAT, as the scorer uses)."""
    a = box_corners(np.array([0.0, 0.0, 0.0]), 4.0, 2.0)
    inside = box_corners(np.array([3.99, 0.5, 0.0]), 4.0, 2.0)
    apart = box_corners(np.array([0.0, 2.01, 0.0]), 4.0, 2.0)
    # a diamond whose corner just reaches into / stops just short of the right edge of `a`
    diag = np.sqrt(2.0)
    diamond_in = box_corners(np.array([2.0 + diag - 0.01, 0.0, np.pi / 4]), 2.0, 2.0)
    diamond_out = box_corners(np.array([2.0 + diag + 0.01, 0.0, np.pi / 4]), 2.0, 2.0)
    got = boxes_overlap(a[None], np.stack([inside, apart, diamond_in, diamond_out]))
    assert got.tolist() == [True, False, True, False]
    # a rotated box whose corners are all outside `a` but whose edge cuts a's corner
    cut = box_corners(np.array([2.9, 2.9, np.pi / 4]), 4.0, 2.0)
    assert boxes_overlap(a, cut) and boxes_overlap(cut, a)
    assert boxes_overlap(np.zeros((3, 1, 4, 2)) + a, np.zeros((5, 4, 2)) + inside).shape == (3, 5)


# ------------------------------------------------------------------------------------------------- layouts
@pytest.mark.parametrize("name", LAYOUT_NAMES)
def test_layout_lanes_lie_in_the_drivable_area(name):
    layout = get_layout(name)
    area = shapely.union_all([shapely.Polygon(p) for p in layout.drivable_areas]).buffer(1e-6)
    ids = [lane.lane_id for lane in layout.lanes]
    assert ids == list(range(1, len(ids) + 1)) and sorted(layout.lane_ids.values()) == ids
    for lane in layout.lanes:
        assert area.contains(shapely.LineString(lane.centerline)), f"{name}: lane {lane.lane_id} leaves the road"
        spacing = np.linalg.norm(np.diff(lane.centerline, axis=0), axis=1)
        assert spacing.max() <= 1.01 and lane.width == 3.5
    for walkway in layout.walkways:  # sidewalks are off the road
        assert not area.intersects(shapely.LineString(walkway).buffer(0.3))
    assert get_layout(name) is layout  # cached


def test_junction_connectors_and_lights():
    layout = get_layout("junction_2x2")
    left = layout.lane("S_in0>W_out0")
    assert left.in_intersection and not layout.lane("S_in0").in_intersection
    # a left turn ends heading west; a right turn's centreline radius is half a lane plus the 6 m curb radius
    end_heading = Path.from_points(left.centerline).headings[-1]
    assert np.cos(end_heading) < -0.999 and np.allclose(left.centerline[-1], [-13.0, 1.75])
    right = Path.from_points(layout.lane("S_in1>E_out1").centerline)
    assert right.curvature().max() == pytest.approx(1.0 / 7.75, rel=0.02)
    scene_map = layout.scene_map(["S_in0", "S_in0>W_out0", "W_out0"], 101)
    assert scene_map is layout.scene_map(("S_in0", "S_in0>W_out0", "W_out0"), 101)
    states = {light.lane_id: int(light.states[0]) for light in scene_map.traffic_lights}
    assert states[layout.lane_ids["S_in0>W_out0"]] == 1 and states[layout.lane_ids["E_in0>W_out0"]] == 3
    assert len(scene_map.traffic_lights) == sum(">" in n for n in layout.lane_ids)
    route = route_polyline(scene_map, layout.route_ids(["S_in0", "S_in0>W_out0", "W_out0"]))
    assert np.array_equal(route, scene_map.route)
    # on-route lanes are NAVSIM's: every lane of the route's road segments (parallel same-direction lanes too)
    on_route = {name for name, i in layout.lane_ids.items() if i in scene_map.route_lane_ids}
    assert on_route == {"S_in0", "S_in1", "S_in0>W_out0", "W_out0", "W_out1"}
    with pytest.raises(ValueError, match="not connected"):
        polyline_of_lanes([layout.lane("S_in0"), layout.lane("N_out1")])
    with pytest.raises(ValueError, match="unknown layout"):
        get_layout("roundabout")


def test_path_placement_and_projection():
    pts = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])
    pose = pose_at(pts, np.array([5.0, 15.0, 25.0, -2.0]))
    assert np.allclose(pose[0], [5.0, 0.0, 0.0])
    assert np.allclose(pose[1, :2], [10.0, 5.0]) and np.isclose(pose[1, 2], np.pi / 2)
    assert np.allclose(pose[2, :2], [10.0, 15.0])  # beyond the end: continues straight
    assert np.allclose(pose[3, :2], [-2.0, 0.0])
    path = Path.from_points(get_layout("junction_1x1").lane("S_in0>W_out0").centerline)
    s = np.linspace(0.0, path.length, 17)
    p = path.poses(s, lateral=0.7)
    s_back, d_back = path.project(p[:, :2])
    assert np.allclose(s_back, s, atol=0.05) and np.allclose(d_back, 0.7, atol=0.02)


# ------------------------------------------------------------------------------------------- generation
def test_unknown_type_variant_and_seed_errors():
    with pytest.raises(ValueError, match="rear_end") as err:
        generate_scene("alien_invasion", 0)
    assert all(t in str(err.value) for t in SCENARIO_TYPES)
    with pytest.raises(ValueError, match="variant"):
        generate_scene("normal", 0, variant="flying")
    with pytest.raises(ValueError, match="seed"):
        generate_scene("normal", -1)
    with pytest.raises(ValueError, match="known types"):
        ScenarioBank(5, scenario_types=["rear_end", "nope"])


def _arrays(scene: Scene) -> list[np.ndarray]:
    return [scene.ego_poses, scene.ego_velocities, scene.agent_ids, scene.agent_classes, scene.agent_sizes,
            scene.agent_poses, scene.agent_velocities, scene.agent_valid]


@pytest.mark.parametrize("scenario_type", SCENARIO_TYPES)
def test_determinism(scenario_type):
    a, b = generate_scene(scenario_type, 123), generate_scene(scenario_type, 123)
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(b)))
    assert a.meta.collision_frame == b.meta.collision_frame and dict(a.meta.extra) == dict(b.meta.extra)
    c = generate_scene(scenario_type, 124)
    assert not np.array_equal(a.ego_poses, c.ego_poses)
    # re-creating from meta.extra (seed and variant) gives the same scene
    d = generate_scene(scenario_type, a.meta.extra["seed"], variant=a.meta.extra["variant"])
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(a), _arrays(d)))


@pytest.mark.parametrize("scenario_type", ACCIDENT_TYPES)
def test_accident_contact_is_first_overlap(scenario_type):
    for scene in scenes_of(scenario_type):
        k, agent_id = scene.meta.collision_frame, scene.meta.colliding_agent_id
        assert k is not None and agent_id is not None, scene.scene_id
        assert COLLISION_WINDOW[0] <= k <= COLLISION_WINDOW[1], (scene.scene_id, k)
        hits = ego_overlaps(scene)
        assert hits[scene.agent_index(agent_id), k], f"{scene.scene_id}: no overlap at collision frame {k}"
        assert not hits[:, :k].any(), f"{scene.scene_id}: overlap before frame {k}"
        assert scene.meta.extra["risk_agent_class"] in ("vehicle", "pedestrian", "cyclist")


@pytest.mark.parametrize("variant", VARIANTS["normal"])
def test_normal_scenes_never_overlap(variant):
    scenes = [generate_scene("normal", seed, variant=variant) for seed in range(4)]
    scenes += [s for s in scenes_of("normal") if s.meta.extra["variant"] == variant]
    for scene in scenes:
        assert scene.meta.collision_frame is None and scene.meta.colliding_agent_id is None
        assert not ego_overlaps(scene).any(), scene.scene_id


@pytest.mark.parametrize("outcome", OUTCOME_MODES)
@pytest.mark.parametrize("scenario_type", SCENARIO_TYPES)
def test_expert_log_stays_on_the_drivable_area_until_contact(scenario_type, outcome):
    """DAC of the logged ego: every box corner inside the drivable area (the scorer's map lookup) at every frame
    before the contact (after it the log has no physics)."""
    from envs.sim.scoring import map_geometry_from_scene_map
    from rewards.map_index import map_index_for

    scenes = list(scenes_of(scenario_type, outcome))
    if scenario_type == "normal" and outcome is None:  # every normal variant, junction turns on every layout included
        scenes += [generate_scene("normal", seed, variant=v) for v in VARIANTS["normal"] for seed in range(8)]
    for scene in scenes:
        index = map_index_for(map_geometry_from_scene_map(scene.map))
        end = scene.meta.collision_frame if scene.meta.is_accident else scene.num_frames
        corners = vehicle_corners(scene.ego_poses[:end], scene.ego_params)
        inside = index.contains(corners.reshape(-1, 2))[:, index.drivable_columns].any(axis=1)
        assert inside.all(), f"{scene.scene_id}: ego corner off the drivable area at frame {np.argmin(inside) // 4}"


@pytest.mark.parametrize("outcome", OUTCOME_MODES)
@pytest.mark.parametrize("scenario_type", SCENARIO_TYPES)
def test_agents_do_not_overlap_each_other_and_stay_plausible(scenario_type, outcome):
    for scene in scenes_of(scenario_type, outcome):
        c = agent_corners(scene)
        pair = boxes_overlap(c[:, None], c[None, :]).any(axis=-1)
        np.fill_diagonal(pair, False)
        assert not pair.any(), scene.scene_id
        area = drivable(scene)
        for n in range(scene.num_agents):
            if scene.agent_ids[n] == scene.meta.colliding_agent_id:
                continue
            if scene.agent_ids[n] == scene.meta.extra.get("hazard_agent_id") and scene.agent_classes[n] in (
                AgentClass.PEDESTRIAN, AgentClass.CYCLIST
            ):  # a near-miss / benign scene's crossing VRU walks / rides the crosswalk or kerb to kerb, as a colliding one
                continue
            xy = scene.agent_poses[n, :, :2]
            inside = shapely.contains_xy(area, xy[:, 0], xy[:, 1])
            if scene.agent_classes[n] in (AgentClass.VEHICLE, AgentClass.CYCLIST):
                assert inside.all(), f"{scene.scene_id}: vehicle/cyclist {scene.agent_ids[n]} off the road"
            elif scene.agent_classes[n] == AgentClass.PEDESTRIAN:
                assert not inside.any(), f"{scene.scene_id}: background pedestrian {scene.agent_ids[n]} on the road"
        speeds = np.linalg.norm(scene.agent_velocities, axis=-1)
        assert speeds.max() < 17.0


@pytest.mark.parametrize("outcome", OUTCOME_MODES)
@pytest.mark.parametrize("scenario_type", SCENARIO_TYPES)
def test_ego_kinematics_and_route(scenario_type, outcome):
    for scene in scenes_of(scenario_type, outcome):
        speed = scene.ego_speeds
        accel = np.diff(speed) / scene.dt
        yaw_rate = np.diff(np.unwrap(scene.ego_poses[:, 2])) / scene.dt
        assert speed.max() <= 14.0 and speed[0] > 3.0, (scene.scene_id, speed.max(), speed[0])
        assert -4.05 <= accel.min() and accel.max() <= 2.5, (scene.scene_id, accel.min(), accel.max())
        assert np.abs(yaw_rate).max() < 1.0, scene.scene_id
        # velocities agree with the poses (finite differences)
        assert np.allclose(scene.ego_velocities[1:-1], (scene.ego_poses[2:, :2] - scene.ego_poses[:-2, :2]) / 0.2)
        # the ego's rear axle stays on its route (head-on drift: until the drift starts)
        route = Path.from_points(scene.map.route)
        _, d = route.project(scene.ego_poses[:, :2])
        end = scene.meta.extra.get("drift_start_frame", scene.num_frames)
        assert np.abs(d[:end]).max() < 0.3, scene.scene_id


@pytest.mark.parametrize("outcome", OUTCOME_MODES)
@pytest.mark.parametrize("scenario_type", SCENARIO_TYPES)
def test_meta_and_map(scenario_type, outcome):
    for scene in scenes_of(scenario_type, outcome)[:5]:
        assert scene.meta.source == "synthetic" and scene.meta.scenario_type == scenario_type
        assert scene.scene_id.startswith(f"synthetic/{scenario_type}/")
        assert scene.num_frames == 101 and scene.dt == pytest.approx(0.1)
        extra = scene.meta.extra
        # classic layouts, or a road-family layout whose family and parameters are recorded (tests/test_bank_roads.py)
        known = extra["layout"] in LAYOUT_NAMES or extra["layout"].startswith(f"{extra.get('road_family')}[")
        assert known and extra["variant"] in VARIANTS[scenario_type] and extra["conflict"]
        assert 3 <= scene.num_agents <= 16 and scene.agent_valid.all()
        layout = get_layout(extra["layout"])
        assert set(layout.route_ids(extra["ego_route"])) <= set(scene.map.route_lane_ids)
        assert scene.map.route_lane_ids == on_route_lane_ids(layout, extra["ego_route"])
        assert scene.map is get_layout(extra["layout"]).scene_map(extra["ego_route"], 101)


def _braked(scene: Scene, frame: int, decel: float) -> np.ndarray:
    """Rear-axle poses of the ego braking at ``decel`` along its own logged path from ``frame`` on."""
    path = Path.from_points(scene.ego_poses[:, :2])
    s_log = path.project(scene.ego_poses[:, :2])[0]
    return path.poses(brake_after(s_log, frame, decel))


def _steered_back(scene: Scene, frame: int, duration: float) -> np.ndarray:
    """Rear-axle poses of the ego returning to its route centreline over ``duration`` from ``frame`` on, keeping
    the speed it had at the collision frame (the log's post-contact braking is not part of the manoeuvre)."""
    route = Path.from_points(scene.map.route)
    s, d = route.project(scene.ego_poses[:, :2])
    k = scene.meta.collision_frame
    s = np.where(np.arange(len(s)) <= k, s, s[k] + (s[k] - s[k - 1]) * (np.arange(len(s)) - k))
    t = (np.arange(scene.num_frames) - frame) * scene.dt
    lateral = np.where(t <= 0, d, d[frame] * (1.0 - smoothstep(t / duration)))
    return track_poses(route, s, lateral)


@pytest.mark.parametrize("scenario_type", ACCIDENT_TYPES)
def test_accident_is_avoidable_from_two_seconds_before(scenario_type):
    for scene in scenes_of(scenario_type):
        k = scene.meta.collision_frame
        if scenario_type == "head_on_drift":
            poses = _steered_back(scene, k - 20, 1.5)
        else:
            poses = _braked(scene, k - 20, 6.0)
            # the braked ego stops before reaching the logged contact position
            assert np.linalg.norm(poses[-1, :2] - poses[k - 20, :2]) < np.linalg.norm(
                scene.ego_poses[k, :2] - scene.ego_poses[k - 20, :2]
            )
        assert not ego_overlaps(scene, poses).any(), f"{scene.scene_id}: the avoidance manoeuvre still collides"


# ------------------------------------------------------------------------------------------------- bank
def test_bank_is_deterministic_balanced_and_indexable():
    bank = ScenarioBank(60, seed=5, normal_fraction=0.3)
    types = [bank.scenario_type(i) for i in range(60)]
    counts = {t: types.count(t) for t in SCENARIO_TYPES}
    assert counts["normal"] in (18, 19)  # 0.3 * 60, up to one
    accident_counts = [counts[t] for t in ACCIDENT_TYPES]
    assert max(accident_counts) - min(accident_counts) <= 1
    scene = bank[17]
    assert scene.scene_id == f"synthetic/{types[17]}/s5-000017" == bank.scene_id(17)
    assert bank.index_of(scene.scene_id) == 17
    other = ScenarioBank(60, seed=6, normal_fraction=0.3)  # ids are unique across bank seeds
    assert not {bank.scene_id(i) for i in range(60)} & {other.scene_id(i) for i in range(60)}
    with pytest.raises(KeyError, match="s5-<index>"):
        bank.index_of(other.scene_id(17))
    same = generate_scene(types[17], bank.scene_seed(17))
    assert np.array_equal(scene.agent_poses, same.agent_poses)
    # index i depends on (seed, i) only, not on the bank size; another seed gives other scenes
    assert ScenarioBank(20, seed=5, normal_fraction=0.3).scenario_type(17) == types[17]
    assert np.array_equal(ScenarioBank(20, seed=5, normal_fraction=0.3)[17].ego_poses, scene.ego_poses)
    assert not np.array_equal(ScenarioBank(60, seed=6)[17].ego_poses, scene.ego_poses)
    assert bank[-1].scene_id.endswith("/s5-000059") and len(bank) == 60
    with pytest.raises(IndexError):
        bank[60]
    small = ScenarioBank(3, seed=1, scenario_types=["cut_in"])
    assert [s.meta.scenario_type for s in small] == ["cut_in"] * 3
    assert all(ScenarioBank(4, scenario_types=["normal"]).scenario_type(i) == "normal" for i in range(4))
    assert "normal" not in {ScenarioBank(30, scenario_types=ACCIDENT_TYPES).scenario_type(i) for i in range(30)}
