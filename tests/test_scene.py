"""Scene model: validation errors name the field; frame conversions are exact inverses."""

from __future__ import annotations

import numpy as np
import pytest

from envs.scenes.scene import (
    AgentClass,
    Lane,
    Scene,
    SceneMap,
    SceneMeta,
    SceneValidationError,
    TrafficLight,
)
from rewards.geometry import (
    box_corners,
    drop_collinear_vertices,
    local_to_world,
    offset_polyline,
    rear_axle_to_center,
    world_to_local,
)

T, N = 12, 2


def _map() -> SceneMap:
    lane = Lane(1, [[0.0, 0.0], [100.0, 0.0]], width=3.5)
    other = Lane(2, [[100.0, 3.5], [0.0, 3.5]], width=3.5)
    return SceneMap(
        drivable_areas=[[[-10, -5], [110, -5], [110, 8], [-10, 8]]],
        lanes=[lane, other],
        route_lane_ids=[1],
        route=lane.centerline,
    )


def _kwargs(**overrides):
    ego = np.zeros((T, 3))
    ego[:, 0] = np.arange(T) * 1.0
    kw = dict(
        scene_id="synthetic/test/0",
        dt=0.1,
        ego_poses=ego,
        ego_velocities=np.tile([10.0, 0.0], (T, 1)),
        agent_ids=[7, 9],
        agent_classes=[AgentClass.VEHICLE, AgentClass.PEDESTRIAN],
        agent_sizes=[[4.5, 2.0], [0.6, 0.6]],
        agent_poses=np.zeros((N, T, 3)) + [[[30.0, 0.0, 0.0]], [[40.0, 5.0, 1.5]]],
        agent_velocities=np.zeros((N, T, 2)),
        agent_valid=np.ones((N, T), bool),
        map=_map(),
        meta=SceneMeta("synthetic", "rear_end", colliding_agent_id=7, collision_frame=10),
    )
    kw.update(overrides)
    return kw


def test_valid_scene_properties():
    scene = Scene(**_kwargs())
    assert scene.num_frames == T and scene.num_agents == N
    assert scene.duration == pytest.approx(1.1)
    assert scene.meta.is_accident
    assert scene.agent_index(9) == 1
    assert scene.agent_poses.flags.writeable is False
    np.testing.assert_allclose(scene.ego_speeds, 10.0)
    assert "synthetic" in repr(scene)


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(ego_poses=np.zeros((T, 2))), "ego_poses"),
        (dict(ego_velocities=np.zeros((T + 1, 2))), "ego_velocities"),
        (dict(agent_poses=np.full((N, T, 3), np.nan)), "agent_poses"),
        (dict(agent_classes=[0, 9]), "agent_classes"),
        (dict(agent_sizes=[[4.5, 2.0], [0.0, 0.6]]), "agent_sizes"),
        (dict(agent_ids=[7, 7]), "agent_ids"),
        (dict(agent_valid=np.ones((N, T - 1), bool)), "agent_valid"),
        (dict(dt=0.0), "dt"),
        (dict(scene_id=""), "scene_id"),
        (dict(meta=SceneMeta("synthetic", "x", collision_frame=T)), "meta.collision_frame"),
        (dict(meta=SceneMeta("synthetic", "x", colliding_agent_id=3)), "meta.colliding_agent_id"),
    ],
)
def test_validation_names_the_field(overrides, field):
    with pytest.raises(SceneValidationError, match=field.replace(".", r"\.")):
        Scene(**_kwargs(**overrides))


def test_nan_ego_pose_reports_index():
    ego = np.zeros((T, 3))
    ego[4, 2] = np.inf
    with pytest.raises(SceneValidationError, match=r"ego_poses: non-finite value .* \(4, 2\)"):
        Scene(**_kwargs(ego_poses=ego))


def test_meta_and_map_validation():
    with pytest.raises(SceneValidationError, match="SceneMeta.source"):
        SceneMeta("internet", "x")
    with pytest.raises(SceneValidationError, match="route_lane_ids"):
        SceneMap(drivable_areas=_map().drivable_areas, lanes=_map().lanes, route_lane_ids=[5], route=[[0, 0], [1, 0]])
    with pytest.raises(SceneValidationError, match=r"Lane\[3\].centerline"):
        Lane(3, [[0.0, 0.0]])
    light = TrafficLight(1, [100.0, 0.0], np.ones(T - 2))
    m = _map()
    bad_map = SceneMap(m.drivable_areas, m.lanes, m.route_lane_ids, m.route, traffic_lights=[light])
    with pytest.raises(SceneValidationError, match=r"traffic_lights\[0\].states"):
        Scene(**_kwargs(map=bad_map))
    assert AgentClass.parse("Cyclist") is AgentClass.CYCLIST
    with pytest.raises(ValueError, match="unknown agent class 'truckk'"):
        AgentClass.parse("truckk")


def test_lane_polygon_derived_from_width():
    lane = Lane(1, [[0.0, 0.0], [10.0, 0.0]], width=4.0)
    xs, ys = lane.polygon[:, 0], lane.polygon[:, 1]
    assert xs.min() == pytest.approx(0.0) and xs.max() == pytest.approx(10.0)
    assert ys.min() == pytest.approx(-2.0) and ys.max() == pytest.approx(2.0)


def test_straight_lane_polygon_keeps_only_its_four_corners_and_the_centerline_every_point():
    centerline = np.stack([np.linspace(-250.0, 250.0, 501), np.full(501, -1.75)], axis=1)
    lane = Lane(1, centerline, width=3.5)
    np.testing.assert_array_equal(lane.polygon, [[-250.0, 0.0], [250.0, 0.0], [250.0, -3.5], [-250.0, -3.5]])
    np.testing.assert_array_equal(lane.centerline, centerline)


def test_curved_lane_polygon_is_the_same_point_set_with_fewer_vertices():
    shapely = pytest.importorskip("shapely")
    ang = np.linspace(0.0, 0.5 * np.pi, 30)
    arc = np.stack([20.0 * np.sin(ang), 20.0 * (1.0 - np.cos(ang))], axis=1)
    centerline = np.concatenate([np.stack([np.linspace(-50.0, -1.0, 50), np.zeros(50)], axis=1), arc])
    lane = Lane(1, centerline, width=3.5)
    full = np.concatenate([offset_polyline(centerline, 1.75), offset_polyline(centerline, -1.75)[::-1]])
    # The straight part's interior vertices (x = -49 .. -1, the last one before the arc included) on both edges.
    assert len(lane.polygon) == len(full) - 2 * 49
    # Every kept vertex is an original one, in order; the boundary covers the same points.
    rows = [int(np.flatnonzero((full == v).all(axis=1))[0]) for v in lane.polygon]
    assert rows == sorted(rows)
    a, b = shapely.Polygon(full), shapely.Polygon(lane.polygon)
    assert a.equals(b) and a.area == pytest.approx(b.area, rel=1e-15)


def test_drop_collinear_vertices_drops_only_exactly_collinear_ones():
    # Diagonal points on y = x exactly (rational check), a vertex 1e-12 m off the line (kept), a back-tracking
    # spike (kept), and a degenerate all-collinear polygon (unchanged).
    square = np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0], [1.0, 2.0], [0.0, 2.0]])
    np.testing.assert_array_equal(drop_collinear_vertices(square), square[[0, 2, 3, 4]])
    off = square.copy()
    off[1, 1] += 1e-12
    np.testing.assert_array_equal(drop_collinear_vertices(off), off)
    thirds = np.array([[0.0, 0.0], [0.1, 0.3], [0.2, 0.6], [0.3, 0.9], [-1.0, 1.0]])  # 0.1 * k is not exact in binary
    kept = drop_collinear_vertices(thirds)
    assert len(kept) >= 3 and all(any((v == w).all() for w in thirds) for v in kept)
    spike = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    np.testing.assert_array_equal(drop_collinear_vertices(spike), spike)
    line = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    np.testing.assert_array_equal(drop_collinear_vertices(line), line)
    with pytest.raises(ValueError, match=r"drop_collinear_vertices.*\(4, 3\)"):
        drop_collinear_vertices(np.zeros((4, 3)))


def test_frame_conversions_roundtrip_and_known_values():
    rng = np.random.default_rng(0)
    ego = np.column_stack([rng.uniform(-50, 50, T), rng.uniform(-50, 50, T), rng.uniform(-np.pi, np.pi, T)])
    scene = Scene(**_kwargs(ego_poses=ego))
    pts = rng.uniform(-30, 30, size=(5, 7, 3))
    for t in (0, 5, T - 1):
        back = scene.ego_to_world(scene.world_to_ego(pts, t), t)
        np.testing.assert_allclose(back[..., :2], pts[..., :2], atol=1e-9)
        np.testing.assert_allclose(np.cos(back[..., 2] - pts[..., 2]), 1.0, atol=1e-12)
    # A point 10 m ahead of an ego facing +y (yaw pi/2) at the origin is at world (0, 10).
    origin = np.array([0.0, 0.0, np.pi / 2])
    np.testing.assert_allclose(local_to_world(np.array([10.0, 0.0]), origin), [0.0, 10.0], atol=1e-12)
    np.testing.assert_allclose(world_to_local(np.array([0.0, 10.0, np.pi / 2]), origin), [10.0, 0.0, 0.0], atol=1e-12)
    with pytest.raises(IndexError, match="frame 99"):
        scene.world_to_ego(pts, 99)


def test_box_corners_order_and_rear_axle_offset():
    corners = box_corners(np.array([0.0, 0.0, 0.0]), 4.0, 2.0)
    np.testing.assert_allclose(corners, [[2, 1], [-2, 1], [-2, -1], [2, -1]])
    center = rear_axle_to_center(np.array([0.0, 0.0, np.pi / 2]))
    np.testing.assert_allclose(center, [0.0, 1.461, np.pi / 2], atol=1e-12)
    scene = Scene(**_kwargs())
    np.testing.assert_allclose(scene.ego_box_centers()[:, 0] - scene.ego_poses[:, 0], 1.461)
    np.testing.assert_allclose(scene.velocities_to_ego(np.array([0.0, 5.0]), 0), [0.0, 5.0], atol=1e-12)
