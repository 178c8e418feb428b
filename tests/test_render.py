"""Tests of the BEV renderer (the envs/render/ package) on small hand-built scenes."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from envs.render import SEMANTIC_LAYERS, BEVConfig, BEVRenderer, caption, contact_sheet, logged_future, write_png
from envs.scenes.scene import AgentClass, Lane, Scene, SceneMap, SceneMeta, TrafficLight, TrafficLightState
from rewards.geometry import local_to_world

EGO_POSE = np.array([120.0, -40.0, 0.7])  # stationary ego, a non-trivial world pose so the transform matters
T = 30
ALL_LAYERS = SEMANTIC_LAYERS


def make_scene(agents=(), *, with_map=True, valid=None, ego_poses=None, collide_with=None, light_states=None):
    """A scene with a stationary ego at EGO_POSE and agents given in the ego frame.

    Args:
        agents: tuples ``(x, y, yaw, length, width, class)`` in the ego frame [m, m, rad, m, m, AgentClass], or
            ``(poses (T, 3), length, width, class)`` for moving agents (ego-frame poses per frame).
        valid: optional ``(N, T)`` validity mask (default all valid).
        light_states: optional ``(T,)`` states of one traffic light 20 m ahead on the ego lane.
    """
    ego = np.tile(EGO_POSE, (T, 1)) if ego_poses is None else ego_poses
    poses, sizes, classes = [], [], []
    for a in agents:
        if len(a) == 4:
            p_ego, length, width, cls = a
        else:
            x, y, yaw, length, width, cls = a
            p_ego = np.tile([x, y, yaw], (T, 1))
        poses.append(local_to_world(np.asarray(p_ego, float), EGO_POSE))
        sizes.append((length, width))
        classes.append(int(cls))
    n = len(poses)
    scene_map = None
    if with_map:
        # A straight road along the ego heading: lanes at y = 0 (ego lane) and y = 3.5 [ego frame], 7 m wide.
        xs = np.linspace(-100.0, 100.0, 21)
        lanes = []
        for lane_id, y in ((1, 0.0), (2, 3.5)):
            lanes.append(Lane(lane_id, local_to_world(np.stack([xs, np.full_like(xs, y)], 1), EGO_POSE)))
        road = local_to_world(np.array([[-100.0, -1.75], [100.0, -1.75], [100.0, 5.25], [-100.0, 5.25]]), EGO_POSE)
        lights = ()
        if light_states is not None:
            stop = local_to_world(np.array([20.0, 0.0]), EGO_POSE)
            lights = (TrafficLight(1, stop, light_states),)
        scene_map = SceneMap(
            drivable_areas=(road,),
            lanes=tuple(lanes),
            route_lane_ids=(1,),
            route=lanes[0].centerline,
            traffic_lights=lights,
        )
    return Scene(
        scene_id="test/render/0",
        dt=0.1,
        ego_poses=ego,
        ego_velocities=np.zeros((T, 2)),
        agent_ids=np.arange(n, dtype=np.int64) + 7,
        agent_classes=np.array(classes, dtype=np.int8),
        agent_sizes=np.array(sizes, dtype=float).reshape(n, 2),
        agent_poses=np.array(poses, dtype=float).reshape(n, T, 3),
        agent_velocities=np.zeros((n, T, 2)),
        agent_valid=np.ones((n, T), bool) if valid is None else valid,
        map=scene_map,
        meta=SceneMeta(
            "synthetic",
            "test",
            colliding_agent_id=None if collide_with is None else collide_with + 7,
            collision_frame=None if collide_with is None else T - 1,
        ),
    )


def semantic(layers=ALL_LAYERS, **kw) -> BEVRenderer:
    return BEVRenderer(BEVConfig(mode="semantic", semantic_layers=tuple(layers), **kw))


def channel(image: np.ndarray, name: str, layers=ALL_LAYERS) -> np.ndarray:
    return image[..., list(layers).index(name)]


def footprint(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row_min, row_max, col_min, col_max) of the non-zero pixels."""
    rc = np.argwhere(mask)
    assert len(rc), "nothing drawn"
    return int(rc[:, 0].min()), int(rc[:, 0].max()), int(rc[:, 1].min()), int(rc[:, 1].max())


# ---------------------------------------------------------------------- shapes and modes


def test_rgb_and_semantic_shapes_dtypes_values():
    scene = make_scene([(10, 3.5, 0, 4.5, 2, AgentClass.VEHICLE)], light_states=np.full(T, 3))
    rgb = BEVRenderer(BEVConfig(height=96, width=160)).render(scene, 12)
    assert rgb.shape == (96, 160, 3) and rgb.dtype == np.uint8
    sem = BEVRenderer(BEVConfig(height=96, width=160, mode="semantic")).render(scene, 12)
    assert sem.shape == (96, 160, 9) and sem.dtype == np.uint8
    assert sem.flags["C_CONTIGUOUS"]
    assert set(np.unique(sem).tolist()) == {0, 255}
    assert BEVConfig(mode="semantic").shape == (128, 128, 9)
    # Every default layer has something in it for this scene, except those with nothing to show.
    layers = BEVConfig().semantic_layers
    drawn = {name for i, name in enumerate(layers) if sem[..., i].any()}
    assert drawn == {"drivable", "lanes", "route", "red_lights", "ego", "vehicles", "history"}


def test_default_view_geometry():
    cfg = BEVConfig()
    assert (cfg.height, cfg.width, cfg.meters_per_pixel) == (128, 128, 0.5)
    assert cfg.ego_pixel == (63.5, 95.5)
    assert cfg.view_extent == (-16.0, 48.0, -32.0, 32.0)


# ---------------------------------------------------------------------- placement and orientation


def test_agent_lands_at_expected_pixels():
    # 10 m ahead, 3.5 m left, aligned with the ego, 4.5 m x 2 m: centre pixel (u, v) = (56.5, 75.5);
    # pixel centres inside the box: columns 55..58, rows 71..80.
    scene = make_scene([(10.0, 3.5, 0.0, 4.5, 2.0, AgentClass.VEHICLE)])
    r = semantic()
    np.testing.assert_allclose(r.ego_to_pixel(np.array([10.0, 3.5])), [56.5, 75.5])
    veh = channel(r.render(scene, 0), "vehicles")
    r0, r1, c0, c1 = footprint(veh)
    assert abs(r0 - 71) <= 1 and abs(r1 - 80) <= 1 and abs(c0 - 55) <= 1 and abs(c1 - 58) <= 1
    assert veh[72:80, 56:58].all()
    assert 30 <= np.count_nonzero(veh) <= 66  # about 4.5 m * 2 m / 0.25 m^2 = 36 px, edges included

    rgb = BEVRenderer(BEVConfig(draw_headings=False)).render(scene, 0)
    vehicle = BEVConfig().class_colors[AgentClass.VEHICLE]
    assert tuple(rgb[75, 56]) == vehicle
    is_vehicle = np.all(rgb == np.array(vehicle, np.uint8), axis=-1)
    vr0, vr1, vc0, vc1 = footprint(is_vehicle)
    assert 70 <= vr0 and vr1 <= 81 and 54 <= vc0 and vc1 <= 59  # no vehicle colour anywhere else


def test_left_is_left_and_ahead_is_up():
    scene = make_scene(
        [
            (0.0, 12.0, 0.0, 2.0, 2.0, AgentClass.VEHICLE),  # left of the ego
            (20.0, 0.0, 0.0, 2.0, 2.0, AgentClass.PEDESTRIAN),  # ahead of the ego
            (-8.0, -10.0, 0.0, 1.0, 1.0, AgentClass.STATIC),  # behind and to the right
        ]
    )
    r = semantic()
    img = r.render(scene, 0)
    u0, v0 = BEVConfig().ego_pixel
    rows, cols = np.nonzero(channel(img, "vehicles"))
    assert cols.max() < u0 - 15 and abs(rows.mean() - v0) < 3
    rows, cols = np.nonzero(channel(img, "pedestrians_cyclists"))
    assert rows.max() < v0 - 30 and abs(cols.mean() - u0) < 3
    rows, cols = np.nonzero(channel(img, "static"))
    assert rows.min() > v0 + 10 and cols.min() > u0 + 15
    # The ego box: centre rear_axle_to_center ahead of the rear axle, length along the image's vertical.
    r0, r1, c0, c1 = footprint(channel(img, "ego"))
    assert r1 - r0 > c1 - c0
    centre_v = v0 - scene.ego_params.rear_axle_to_center / 0.5
    assert abs(0.5 * (r0 + r1) - centre_v) <= 1 and abs(0.5 * (c0 + c1) - u0) <= 1


def test_box_heading_rotates_footprint():
    # A 6 m x 2 m vehicle heading left (yaw +90 deg in the ego frame) lies across the image.
    scene = make_scene([(15.0, 0.0, np.pi / 2, 6.0, 2.0, AgentClass.VEHICLE)])
    r0, r1, c0, c1 = footprint(channel(semantic().render(scene, 0), "vehicles"))
    assert (c1 - c0) > 2 * (r1 - r0)


def test_world_to_pixel_matches_ego_to_pixel_and_inverse():
    scene = make_scene()
    r = BEVRenderer()
    ego_pts = np.array([[10.0, 3.5], [-4.0, -7.0], [0.0, 0.0]])
    world = local_to_world(ego_pts, EGO_POSE)
    np.testing.assert_allclose(r.world_to_pixel(scene, 3, world), r.ego_to_pixel(ego_pts), atol=1e-9)
    np.testing.assert_allclose(r.pixel_to_ego(r.ego_to_pixel(ego_pts)), ego_pts, atol=1e-12)
    np.testing.assert_allclose(r.ego_to_pixel(np.zeros(2)), BEVConfig().ego_pixel)


def test_moving_ego_frame_follows_frame_t():
    # The ego drives along its heading at 1 m/frame; a parked car at world-fixed position appears closer later.
    ego = np.tile(EGO_POSE, (T, 1))
    ego[:, :2] = local_to_world(np.stack([np.arange(T, dtype=float), np.zeros(T)], 1), EGO_POSE)
    scene = make_scene([(30.0, 0.0, 0.0, 4.0, 2.0, AgentClass.VEHICLE)], ego_poses=ego)
    r = semantic()
    rows0 = np.nonzero(channel(r.render(scene, 0), "vehicles"))[0].mean()
    rows10 = np.nonzero(channel(r.render(scene, 10), "vehicles"))[0].mean()
    assert rows10 - rows0 == pytest.approx(10 / 0.5, abs=1)


def test_culling_keeps_partly_visible_boxes_and_drops_far_ones():
    # The view ends 48 m ahead; a 4.5 m car centred 49 m ahead pokes 1.25 m (2-3 rows) into the image.
    scene = make_scene(
        [(49.0, 0.0, 0.0, 4.5, 2.0, AgentClass.VEHICLE), (500.0, 0.0, 0.0, 4.5, 2.0, AgentClass.VEHICLE)]
    )
    veh = channel(semantic().render(scene, 0), "vehicles")
    r0, r1, _, _ = footprint(veh)
    assert r0 == 0 and 1 <= r1 <= 3


# ---------------------------------------------------------------------- map layers


def test_map_layers_drawn_in_place():
    scene = make_scene()
    img = semantic().render(scene, 0)
    r = BEVRenderer()
    drivable = channel(img, "drivable")
    # Road spans y in [-1.75, 5.25] m: 1 m left of the ego is road, 4 m right is not.
    u, v = np.rint(r.ego_to_pixel(np.array([[20.0, 1.0], [20.0, -4.0]]))).astype(int)
    assert drivable[u[1], u[0]] == 255 and drivable[v[1], v[0]] == 0
    # Lanes at y = 0 and y = 3.5 m: vertical lines at columns ~63.5 and ~56.5.
    lanes = channel(img, "lanes")
    lit_cols = np.nonzero(lanes[10])[0]
    assert set(lit_cols.tolist()) <= {55, 56, 57, 58, 62, 63, 64, 65}
    assert any(c in lit_cols for c in (63, 64)) and any(c in lit_cols for c in (56, 57))
    # Route follows lane 1 (y = 0) only.
    route_cols = np.nonzero(channel(img, "route")[10])[0]
    assert route_cols.min() >= 61 and route_cols.max() <= 66


def test_lane_direction_chevrons_point_along_the_lane():
    scene = make_scene()
    cfg = BEVConfig(mode="semantic", semantic_layers=("lanes",), meters_per_pixel=0.1, height=200, width=200,
                    lane_arrow_size=2.0)
    lanes = BEVRenderer(cfg).render(scene, 0)[..., 0]
    # Right of the centerline (column 99.5) only the right arms of lane 1's chevrons are lit; each arm runs back
    # (down the image) as it leaves the centerline.
    count, labels = cv2.connectedComponents((lanes[:, 102:115] > 0).astype(np.uint8))
    assert count - 1 == 3  # the view spans x in [-5, 15] m; chevron centres sit at x = -5, 5, 15 m
    for k in range(1, count):
        rows, cols = np.nonzero(labels == k)
        assert np.polyfit(cols, rows, 1)[0] > 0.5, k
    assert lanes[:, 99:101].any(axis=1).sum() > 190  # the centerline itself, top to bottom


def test_traffic_light_state_at_t():
    states = np.full(T, int(TrafficLightState.GREEN), np.uint8)
    states[10:20] = TrafficLightState.RED
    scene = make_scene(light_states=states)
    r = semantic()
    u, v = np.rint(BEVRenderer().ego_to_pixel(np.array([20.0, 0.0]))).astype(int)
    assert channel(r.render(scene, 15), "red_lights")[v - 1:v + 2, u - 1:u + 2].any()
    assert not channel(r.render(scene, 5), "red_lights").any()
    rgb_red = BEVRenderer(BEVConfig(antialias=False)).render(scene, 15)
    rgb_green = BEVRenderer(BEVConfig(antialias=False)).render(scene, 5)
    cfg = BEVConfig()
    assert (rgb_red == np.array(cfg.light_colors[TrafficLightState.RED], np.uint8)).all(-1).any()
    assert (rgb_green == np.array(cfg.light_colors[TrafficLightState.GREEN], np.uint8)).all(-1).any()
    assert not (rgb_green == np.array(cfg.light_colors[TrafficLightState.RED], np.uint8)).all(-1).any()


def test_map_none_renders_agents_only():
    scene = make_scene([(10.0, -3.0, 0.0, 4.5, 2.0, AgentClass.CYCLIST)], with_map=False)
    img = semantic().render(scene, 4)
    for name in ("drivable", "lanes", "route", "red_lights"):
        assert not channel(img, name).any(), name
    assert channel(img, "pedestrians_cyclists").any() and channel(img, "ego").any()
    rgb = BEVRenderer().render(scene, 4)
    assert rgb.shape == (128, 128, 3)
    assert tuple(rgb[0, 0]) == BEVConfig().background_color


def test_map_cache_is_per_map_and_stable():
    r = BEVRenderer()
    a, b = make_scene(), make_scene()
    first = r.render(a, 0)
    np.testing.assert_array_equal(first, r.render(a, 0))
    np.testing.assert_array_equal(first, r.render(b, 0))
    assert len(r._maps) == 2
    del a
    import gc

    gc.collect()
    assert len(r._maps) == 1


# ---------------------------------------------------------------------- history


def test_history_only_for_valid_past_frames():
    # Agent moving ahead at 1 m/frame at y = 8 m: x = 5 + f. At t = 20 (step 5, 4 samples) the past boxes are at
    # frames 0, 5, 10, 15 -> x = 5, 10, 15, 20; frame 5 is invalid, and the agent is invalid at t itself.
    frames = np.arange(T, dtype=float)
    poses = np.stack([5.0 + frames, np.full(T, 8.0), np.zeros(T)], 1)
    valid = np.ones((1, T), bool)
    valid[0, 5] = False
    valid[0, 20] = False
    scene = make_scene([(poses, 2.0, 2.0, AgentClass.VEHICLE)], valid=valid)
    r = semantic(history_length=4, history_step=5, draw_ego_history=False)
    img = r.render(scene, 20)
    hist = channel(img, "history")
    assert not channel(img, "vehicles").any()  # invalid at t
    px = BEVRenderer()
    for x, expected in ((5.0, True), (10.0, False), (15.0, True), (20.0, True), (25.0, False)):
        u, v = np.rint(px.ego_to_pixel(np.array([x, 8.0]))).astype(int)
        assert bool(hist[v, u]) is expected, (x, expected)
    # No history before the log starts, and none with history_length = 0.
    assert not channel(r.render(scene, 3), "history").any()
    assert not channel(semantic(history_length=0).render(scene, 20), "history").any()


def test_ego_history_and_rgb_fading():
    ego = np.tile(EGO_POSE, (T, 1))
    ego[:, :2] = local_to_world(np.stack([np.arange(T, dtype=float), np.zeros(T)], 1), EGO_POSE)
    scene = make_scene(ego_poses=ego, with_map=False)
    hist = channel(semantic().render(scene, 20), "history")
    # Ego was 5, 10, 15, 20 m behind: its past box centres (rear axle + 1.461 m) lie below the ego.
    u, v = np.rint(BEVRenderer().ego_to_pixel(np.array([-10.0 + 1.461, 0.0]))).astype(int)
    assert hist[v, u] == 255
    assert not channel(semantic(draw_ego_history=False).render(scene, 20), "history").any()
    rgb = BEVRenderer(BEVConfig(antialias=False)).render(scene, 20)
    # Past box centres at -3.54 (frame 15), -8.54 (10), -13.54 (5) m; x = -5.5 m lies only in frame 15's box and
    # x = -13.5 m only in frame 5's.
    px = BEVRenderer()
    newest = rgb[int(np.rint(px.ego_to_pixel(np.array([-5.5, 0.0]))[1])), u]
    oldest = rgb[int(np.rint(px.ego_to_pixel(np.array([-13.5, 0.0]))[1])), u]
    ego_green = np.array(BEVConfig().ego_color)
    # Newer past boxes are closer to the ego colour than older ones; both differ from the ego colour.
    assert np.abs(newest.astype(int) - ego_green).sum() < np.abs(oldest.astype(int) - ego_green).sum()
    assert np.abs(newest.astype(int) - ego_green).sum() > 30
    # Fading depends on the age of a sample, not on how many samples exist: at t = 5 only frame 0 is in the past.
    early = BEVRenderer(BEVConfig(antialias=False)).render(scene, 5)
    np.testing.assert_array_equal(early[int(np.rint(px.ego_to_pixel(np.array([-5.5, 0.0]))[1])), u], newest)


# ---------------------------------------------------------------------- trajectories


def test_trajectories_drawn_at_expected_pixels():
    scene = make_scene(with_map=False)
    r = semantic()
    x = np.arange(1, 9) * 2.0
    left = np.stack([x, 0.08 * x**2, np.zeros(8)], 1)  # curving left, ends at (16, 20.48)
    img = r.render(scene, 0, trajectories=left)
    traj = channel(img, "trajectories")
    px = BEVRenderer()
    for p in left[:, :2]:
        u, v = np.rint(px.ego_to_pixel(p)).astype(int)
        assert traj[v - 1:v + 2, u - 1:u + 2].any(), p
    mirrored = np.rint(px.ego_to_pixel(np.array([16.0, -20.48]))).astype(int)
    assert not traj[mirrored[1] - 2:mirrored[1] + 3, mirrored[0] - 2:mirrored[0] + 3].any()
    # Starts at the ego rear axle.
    u0, v0 = BEVConfig().ego_pixel
    assert traj[int(v0) - 1:int(v0) + 2, int(u0) - 1:int(u0) + 2].any()
    # Nothing lies behind the ego.
    assert not traj[int(v0) + 3:].any()


def test_trajectory_group_colors_rgb():
    scene = make_scene(with_map=False)
    x = np.arange(1, 9) * 4.0
    group = np.stack([np.stack([x, np.full(8, y), np.zeros(8)], 1) for y in (-20.0, 20.0)])
    colors = [(255, 0, 0), (0, 0, 255)]
    rgb = BEVRenderer(BEVConfig(antialias=False)).render(scene, 0, group, colors)
    right = BEVRenderer().ego_to_pixel(np.array([20.0, -20.0]))
    left = BEVRenderer().ego_to_pixel(np.array([20.0, 20.0]))
    assert tuple(rgb[int(np.rint(right[1])), int(np.rint(right[0]))]) == (255, 0, 0)
    assert tuple(rgb[int(np.rint(left[1])), int(np.rint(left[0]))]) == (0, 0, 255)


def test_logged_future_is_ego_frame_navsim_poses():
    ego = np.tile(EGO_POSE, (T, 1))
    ego[:, :2] = local_to_world(np.stack([np.arange(T, dtype=float), np.zeros(T)], 1), EGO_POSE)
    scene = make_scene(ego_poses=ego, with_map=False)
    fut = logged_future(scene, 0)
    assert fut.shape == (5, 3)  # frames 5, 10, ..., 25 exist; 30+ do not
    np.testing.assert_allclose(fut[:, 0], [5, 10, 15, 20, 25], atol=1e-9)
    np.testing.assert_allclose(fut[:, 1:], 0, atol=1e-9)
    assert logged_future(scene, T - 1).shape == (0, 3)


# ---------------------------------------------------------------------- colours


def test_colliding_agent_highlight_is_opt_in():
    scene = make_scene([(10.0, 0.0, 0.0, 4.0, 2.0, AgentClass.VEHICLE)], collide_with=0)
    red = (255, 40, 40)
    plain = BEVRenderer(BEVConfig(draw_headings=False)).render(scene, 0)
    lit = BEVRenderer(BEVConfig(draw_headings=False, colliding_agent_color=red)).render(scene, 0)
    v = int(np.rint(BEVRenderer().ego_to_pixel(np.array([10.0, 0.0]))[1]))
    assert tuple(plain[v, 63]) == BEVConfig().class_colors[0]
    assert tuple(lit[v, 63]) == red


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize("t", [-1, T, 2.0, True, "3"])
def test_bad_frame_index(t):
    with pytest.raises(ValueError, match=r"^t:"):
        BEVRenderer().render(make_scene(), t)


@pytest.mark.parametrize(
    "traj, match",
    [
        (np.zeros((8, 2)), "trajectories: expected shape"),
        (np.zeros((2, 3, 8, 3)), "trajectories: expected shape"),
        (np.zeros((0, 3)), "trajectories: expected shape"),
        (np.full((8, 3), np.nan), "trajectories: non-finite"),
    ],
)
def test_bad_trajectories(traj, match):
    with pytest.raises(ValueError, match=match):
        BEVRenderer().render(make_scene(), 0, traj)


def test_bad_trajectory_colors_and_missing_channel():
    scene = make_scene()
    traj = np.zeros((2, 8, 3))
    with pytest.raises(ValueError, match="trajectory_colors: expected 2"):
        BEVRenderer().render(scene, 0, traj, [(1, 2, 3)])
    with pytest.raises(ValueError, match=r"trajectory_colors\[0\]"):
        BEVRenderer().render(scene, 0, traj, [(1, 2, 300), (0, 0, 0)])
    with pytest.raises(ValueError, match="trajectory_colors: given without"):
        BEVRenderer().render(scene, 0, None, [(1, 2, 3)])
    with pytest.raises(ValueError, match="semantic_layers has no 'trajectories'"):
        BEVRenderer(BEVConfig(mode="semantic")).render(scene, 0, traj)
    with pytest.raises(ValueError, match="scene: expected Scene"):
        BEVRenderer().render("scene", 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"height": 0}, "BEVConfig.height"),
        ({"width": 100.5}, "BEVConfig.width"),
        ({"meters_per_pixel": -0.5}, "BEVConfig.meters_per_pixel"),
        ({"meters_per_pixel": float("nan")}, "BEVConfig.meters_per_pixel"),
        ({"ego_row_fraction": 1.5}, "BEVConfig.ego_row_fraction"),
        ({"mode": "bgr"}, "BEVConfig.mode"),
        ({"semantic_layers": ("drivable", "cars")}, "BEVConfig.semantic_layers"),
        ({"semantic_layers": ("ego", "ego")}, "BEVConfig.semantic_layers"),
        ({"history_step": 0}, "BEVConfig.history_step"),
        ({"ego_color": (0, 0, 256)}, "BEVConfig.ego_color"),
        ({"class_colors": ((0, 0, 0),)}, "BEVConfig.class_colors"),
        ({"route_thickness": 0}, "BEVConfig.route_thickness"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BEVConfig(**kwargs)


# ---------------------------------------------------------------------- CLI helpers


def test_png_writing_caption_and_contact_sheet(tmp_path):
    img = BEVRenderer().render(make_scene([(10.0, 0.0, 0.0, 4.0, 2.0, AgentClass.VEHICLE)]), 0)
    tile = caption(img, ["scene", "t=0 synthetic"])
    assert tile.shape == (128 + 32, 128, 3)
    np.testing.assert_array_equal(tile[32:], img)
    sheet = contact_sheet([tile] * 5, columns=3, pad=4)
    assert sheet.shape == (2 * (160 + 4) + 4, 3 * (128 + 4) + 4, 3)
    path = str(tmp_path / "x.png")
    write_png(path, sheet)
    back = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, sheet)
    assert os.listdir(tmp_path) == ["x.png"]  # no temp file left behind
    # Tiles of different sizes share the largest cell, top-left aligned.
    mixed = contact_sheet([tile, img], columns=2, pad=0, fill=7)
    assert mixed.shape == (160, 256, 3)
    np.testing.assert_array_equal(mixed[:128, 128:], img)
    assert (mixed[128:, 128:] == 7).all()
    with pytest.raises(ValueError, match=r"tiles\[1\]"):
        contact_sheet([tile, img[..., 0]], columns=2)
    # Captions wrap to the image width instead of running off it.
    narrow = caption(img[:, :64], ["synthetic/red_light_runner_left/000002"])
    assert narrow.shape[0] - 128 >= 2 * 16


def test_cli_writes_pngs_of_synthetic_scenes(tmp_path, capsys):
    from envs.scenes.bank import ScenarioBank
    from envs.render import main

    out = tmp_path / "render"
    assert main(["--out", str(out), "--num-scenes", "2", "--seed", "3", "--types", "rear_end", "--size", "64",
                 "--mpp", "1.0"]) == 0
    printed = capsys.readouterr().out.split()
    bank = ScenarioBank(2, seed=3, scenario_types=["rear_end"])
    expected = []
    for i in range(2):
        scene = bank[i]
        # 2 s (20 frames at 10 Hz) before contact and at contact; the middle of the log for a scene without one.
        key = scene.meta.collision_frame if scene.meta.is_accident else scene.num_frames // 2
        for t in sorted({max(0, key - int(round(2.0 / scene.dt))), key}):
            expected.append(str(out / f"{scene.scene_id.replace('/', '_')}_t{t:03d}.png"))
    assert printed == expected + [str(out / "contact_sheet.png")]
    for path in printed:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] >= 64
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in printed)  # no temp files
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--types", "no_such_type"])
