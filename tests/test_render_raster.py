"""The BEV's map raster (``BEVConfig.map_raster``, the default) against the exact per-frame vector drawing
(``map_raster=False``) on synthetic bank scenes, and the raster cache's bounds.

Scenes: bank junctions (ego turning through them: rotated egos), merges and straight 500 m roads (maps larger
than the view, with the view running off the map's end), each also turned by 0.6 rad about the world origin so
that roads run diagonally through the world-aligned raster. Every 4th frame.

Bounds (measured values in brackets, ``python -m pytest tests/test_render_raster.py -s`` prints them):

* semantic, static layers: the share of the image's pixels that differ is below 1.2 % for drivable [0.58 %] and
  route [0.69 %] and 6 % for lanes [3.9 %: 1 px lines, which a half-pixel shift moves; IoU 0.46]; at most 1.5 % of
  a layer's raster pixels lie more than 1 px from an exact one [drivable 0.011 %, lanes 0.62 %, route 0.006 %] and
  vice versa [0.012 %, 0.003 %, 0 %] (no missing or extra strokes); drivable IoU >= 0.97 [0.980]. Every other
  channel is identical, and every value is exactly 0 or 255.
* RGB: mean absolute difference per channel below 3.5 grey levels without anti-aliasing [2.33, worst frame
  5.52] and 1.5 with it [0.85, worst frame 2.15; raster drawn anti-aliased, warped bilinearly]; no frame above
  3x the bound.
"""

from __future__ import annotations

import dataclasses
import gc

import cv2
import numpy as np
import pytest

from envs.scenes.bank import ScenarioBank
from envs.render import BEVConfig, BEVRenderer
from envs.render.raster import _NO_RASTER
from envs.scenes.scene import Lane, Scene, SceneMap, TrafficLight
from rewards.geometry import local_to_world
from tests.test_render import EGO_POSE, make_scene

STATIC = ("drivable", "lanes", "route")
SCENES = (0, 1, 3, 6, 10)
"""Bank (seed 0) indices: normal junction, merge_conflict, cut_in (straight 500 m road), right_turn_vru and
unprotected_left_turn (the ego turns through a junction)."""
TURN = 0.6
"""World rotation [rad] of the turned copies."""


def turned(scene: Scene, angle: float) -> Scene:
    """``scene`` with its whole world frame rotated by ``angle`` [rad] about the origin (map, ego, agents)."""
    frame = np.array([0.0, 0.0, angle])
    m = scene.map
    assert m is not None
    lanes = tuple(dataclasses.replace(lane, centerline=local_to_world(lane.centerline, frame),
                                      polygon=local_to_world(lane.polygon, frame)) for lane in m.lanes)
    lights = tuple(TrafficLight(tl.lane_id, local_to_world(tl.stop_point, frame), tl.states) for tl in m.traffic_lights)
    scene_map = SceneMap(
        drivable_areas=tuple(local_to_world(p, frame) for p in m.drivable_areas),
        lanes=lanes,
        route_lane_ids=m.route_lane_ids,
        route=local_to_world(m.route, frame),
        intersections=tuple(local_to_world(p, frame) for p in m.intersections),
        traffic_lights=lights,
    )
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return dataclasses.replace(
        scene,
        scene_id=scene.scene_id + "/turned",
        ego_poses=local_to_world(scene.ego_poses, frame),
        ego_velocities=scene.ego_velocities @ rot.T,
        agent_poses=local_to_world(scene.agent_poses, frame),
        agent_velocities=scene.agent_velocities @ rot.T,
        map=scene_map,
    )


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    bank = ScenarioBank(max(SCENES) + 1, seed=0)
    base = [bank[i] for i in SCENES]
    assert {"right_turn_vru", "unprotected_left_turn", "cut_in"} <= {s.meta.scenario_type for s in base}
    return base + [turned(s, TURN) for s in base]


def frames(scene: Scene) -> range:
    return range(0, scene.num_frames, 4)


def pair(config: BEVConfig) -> tuple[BEVRenderer, BEVRenderer]:
    """(raster, exact) renderers of ``config``."""
    return (BEVRenderer(dataclasses.replace(config, map_raster=True)),
            BEVRenderer(dataclasses.replace(config, map_raster=False)))


def test_turned_scene_renders_like_the_original(scenes):
    """The helper itself: turning the world does not change the ego-frame picture (exact drawing, up to the
    rounding of the rotated coordinates)."""
    exact = BEVRenderer(BEVConfig(mode="semantic", map_raster=False))
    a, b = scenes[0], scenes[len(SCENES)]
    for t in (0, 50):
        assert np.mean(exact.render(a, t) != exact.render(b, t)) < 0.002


def test_semantic_raster_matches_the_exact_drawing(scenes):
    config = BEVConfig(mode="semantic")
    fast, exact = pair(config)
    layers = config.semantic_layers
    kernel = np.ones((3, 3), np.uint8)
    # Per layer [px]: differing, raster / exact pixels more than 1 px from the other, raster, exact, both, either.
    stats = {name: np.zeros(7) for name in STATIC}
    total = 0
    for scene in scenes:
        for t in frames(scene):
            f, e = fast.render(scene, t), exact.render(scene, t)
            assert f.shape == e.shape and f.dtype == np.uint8
            assert set(np.unique(f).tolist()) <= {0, 255}
            total += f.shape[0] * f.shape[1]
            for c, name in enumerate(layers):
                if name not in STATIC:
                    np.testing.assert_array_equal(f[..., c], e[..., c], err_msg=f"{scene.scene_id} t={t} {name}")
                    continue
                a, b = f[..., c] > 0, e[..., c] > 0
                near_a = cv2.dilate(a.astype(np.uint8), kernel) > 0
                near_b = cv2.dilate(b.astype(np.uint8), kernel) > 0
                stats[name] += [(a != b).sum(), (a & ~near_b).sum(), (b & ~near_a).sum(), a.sum(), b.sum(),
                                (a & b).sum(), (a | b).sum()]
    for name, (differ, fast_far, exact_far, n_fast, n_exact, inter, union) in stats.items():
        share, far = differ / total, max(fast_far / n_fast, exact_far / n_exact)
        print(f"semantic {name}: {100 * share:.2f} % of the pixels differ, IoU {inter / union:.3f}, "
              f"{100 * fast_far / n_fast:.3f} % of raster / {100 * exact_far / n_exact:.3f} % of exact pixels "
              f"beyond 1 px of the other")
        assert share < (0.06 if name == "lanes" else 0.012), name
        assert far < 0.015, name
    assert stats["drivable"][5] / stats["drivable"][6] >= 0.97


@pytest.mark.parametrize("antialias, bound", [(False, 3.5), (True, 1.5)])
def test_rgb_raster_matches_the_exact_drawing(scenes, antialias, bound):
    fast, exact = pair(BEVConfig(antialias=antialias))
    diffs = []
    for scene in scenes:
        for t in frames(scene):
            f, e = fast.render(scene, t), exact.render(scene, t)
            assert f.shape == e.shape == (128, 128, 3) and f.dtype == np.uint8
            diffs.append(np.abs(f.astype(np.int16) - e).mean())
    print(f"rgb antialias={antialias}: mean |difference| {np.mean(diffs):.2f} (worst frame {np.max(diffs):.2f})")
    assert np.mean(diffs) < bound
    assert np.max(diffs) < 3 * bound


def test_thin_lines_stay_connected_when_warped():
    """1 px lanes at 45 deg to the world-aligned raster, viewed from an ego driving along them: the raster draws
    them 4-connected, so the warped lines have no gaps (8-connected ones break into dashes)."""
    scene = make_scene()  # a straight two-lane road along the ego heading (EGO_POSE yaw 0.7 rad)
    scene = turned(scene, np.pi / 4 - EGO_POSE[2])
    config = BEVConfig(mode="semantic", semantic_layers=("lanes",), meters_per_pixel=0.2, lane_arrow_spacing=1000.0)
    fast, exact = pair(config)
    f, e = fast.render(scene, 0)[..., 0], exact.render(scene, 0)[..., 0]
    # Two lanes crossing the whole image top to bottom: one component each, present in every row.
    assert cv2.connectedComponents((e > 0).astype(np.uint8))[0] - 1 == 2
    assert cv2.connectedComponents((f > 0).astype(np.uint8))[0] - 1 == 2
    assert (f > 0).any(axis=1).all()


# ---------------------------------------------------------------------- cache


def test_raster_is_built_once_per_map_and_released_with_it(scenes):
    r = BEVRenderer(BEVConfig())
    scene = turned(scenes[0], 0.1)  # a map no other test holds
    r.render(scene, 0)
    raster = r._rasters.get(scene.map)
    assert raster is not None and raster is not _NO_RASTER
    r.render(scene, 40)
    assert r._rasters.get(scene.map) is raster and len(r._rasters) == 1
    assert r._rasters.size == raster.pixels == raster.image.shape[0] * raster.image.shape[1]
    del scene
    gc.collect()
    assert len(r._rasters) == 0 and r._rasters.size == 0


def test_raster_cache_budget_drops_least_recently_used(scenes):
    a, b = scenes[0], scenes[1]
    probe = BEVRenderer(BEVConfig())
    probe.render(a, 0)
    probe.render(b, 0)
    pa, pb = probe._rasters.get(a.map).pixels, probe._rasters.get(b.map).pixels
    r = BEVRenderer(BEVConfig(map_raster_cache_pixels=max(pa, pb)))
    r.render(a, 0)
    r.render(b, 0)
    assert r._rasters.get(a.map) is None and r._rasters.get(b.map) is not None
    assert r._rasters.size == pb <= r.config.map_raster_cache_pixels


def test_map_over_the_pixel_budget_is_drawn_as_vectors(scenes):
    scene = scenes[3]  # right_turn_vru: a ~326 m junction map, 0.44 Mpx at 0.5 m/px
    for config in (BEVConfig(map_raster_max_pixels=100_000), BEVConfig(map_raster_cache_pixels=100_000),
                   BEVConfig(mode="semantic", map_raster_max_pixels=0)):
        r = BEVRenderer(config)
        img = r.render(scene, 30)
        assert r._rasters.get(scene.map) is _NO_RASTER and r._rasters.size == 0
        exact = BEVRenderer(dataclasses.replace(config, map_raster=False)).render(scene, 30)
        np.testing.assert_array_equal(img, exact)


def test_view_off_the_map_is_background(scenes):
    """An ego 1 km from the map sees no map at all, as with the exact drawing."""
    scene = scenes[2]
    far = scene.ego_poses.copy()
    far[:, 1] += 1000.0
    away = dataclasses.replace(scene, ego_poses=far)
    for mode in ("rgb", "semantic"):
        fast, exact = pair(BEVConfig(mode=mode, antialias=False))
        np.testing.assert_array_equal(fast.render(away, 10), exact.render(away, 10))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"map_raster_scale": 0}, "BEVConfig.map_raster_scale"),
        ({"map_raster_scale": 2.0}, "BEVConfig.map_raster_scale"),
        ({"map_raster_max_pixels": -1}, "BEVConfig.map_raster_max_pixels"),
        ({"map_raster_cache_pixels": 1.5}, "BEVConfig.map_raster_cache_pixels"),
    ],
)
def test_bad_raster_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BEVConfig(**kwargs)


@pytest.mark.parametrize("scale", [2, 3])
def test_finer_rasters_keep_the_bounds(scenes, scale):
    """Finer rasters (``map_raster_scale`` 2, 3) stay within the RGB bound on the junction turns."""
    fast, exact = pair(BEVConfig(antialias=False, map_raster_scale=scale))
    diffs = [np.abs(fast.render(s, t).astype(np.int16) - exact.render(s, t)).mean()
             for s in (scenes[3], scenes[8]) for t in frames(s)]
    assert np.mean(diffs) < 3.5
