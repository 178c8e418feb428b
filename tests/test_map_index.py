"""Tests of rewards.map_index: strict point-in-polygon agreement with shapely, route projection, caching."""

import numpy as np
import shapely

from rewards.map_index import MapIndex, map_index_for
from rewards.types import MapGeometry

RNG = np.random.default_rng(7)
ANG = np.linspace(0, 2 * np.pi, 15)[:-1]
STAR = np.stack([(10 + 5 * RNG.random(14)) * np.cos(ANG), (10 + 5 * RNG.random(14)) * np.sin(ANG)], 1)
L_SHAPE = np.array([[0, 0], [30, 0], [30, 6], [8, 6], [8, 25], [0, 25.0]])
ROAD = np.array([[-20, -3.5], [60, -3.5], [60, 3.5], [-20, 3.5]])
LANE_A = np.array([[-20, -3.5], [60, -3.5], [60, 0], [-20, 0.0]])
LANE_B = np.array([[-20, 0], [60, 0], [60, 3.5], [-20, 3.5]])
CURVED = np.concatenate([
    np.stack([40 + 12 * np.cos(np.linspace(0, 2.5, 20)), 12 * np.sin(np.linspace(0, 2.5, 20))], 1),
    np.stack([40 + 8 * np.cos(np.linspace(2.5, 0, 20)), 8 * np.sin(np.linspace(2.5, 0, 20))], 1),
])
INTER = np.array([[5, -6], [12, -6], [12, 6], [5, 6.0]])


def _geometry():
    return MapGeometry(
        drivable_areas=(ROAD, STAR, L_SHAPE),
        lane_polygons=(LANE_A, LANE_B, CURVED),
        lane_ids=np.array([11, 12, 13]),
        route_lane_ids=(11, 13),
        route=np.array([[-20, -1.75], [20, -1.75], [45, 10.0], [45, 30.0]]),
        intersections=(INTER,),
    )


def _columns(geom):
    return list(geom.drivable_areas) + list(geom.intersections) + list(geom.lane_polygons) + list(geom.intersections)


def _points(polys, rng):
    uniform = rng.uniform([-25, -20], [65, 30], size=(30000, 2))
    verts = np.concatenate(polys)
    edges = []
    for p in polys:
        a, b = p, np.roll(p, -1, axis=0)
        f = rng.random((len(p), 4))[..., None]
        on = a[:, None] + f * (b - a)[:, None]
        normal = np.stack([-(b - a)[:, 1], (b - a)[:, 0]], -1) / np.linalg.norm(b - a, axis=1, keepdims=True)
        for eps in (1e-6, -1e-6, 1e-3, -1e-3):
            edges.append((on + eps * normal[:, None]).reshape(-1, 2))
    return np.concatenate([uniform, verts, verts + rng.normal(scale=1e-6, size=verts.shape)] + edges)


def test_contains_agrees_with_shapely_strict_contains():
    geom = _geometry()
    index = MapIndex.build(geom)
    cols = _columns(geom)
    pts = _points(cols, np.random.default_rng(0))
    got = index.contains(pts)
    want = np.stack([shapely.contains_xy(shapely.Polygon(p), pts[:, 0], pts[:, 1]) for p in cols], 1)
    assert got.shape == (len(pts), index.num_polygons) == want.shape
    assert np.array_equal(got, want), np.argwhere(got != want)[:5]


def test_boundary_points_are_outside_and_internal_diagonals_inside():
    geom = _geometry()
    index = MapIndex.build(geom)
    lanes = index.lane_columns
    on_edge = np.array([[10.0, 0.0], [10.0, -3.5], [-20.0, -1.0], [60.0, -3.5]])  # edges / vertices of LANE_A
    assert not index.contains(on_edge)[:, lanes][:, 0].any()
    # LANE_A's triangulation has a diagonal between opposite corners: its midpoint is strictly inside
    assert index.contains(np.array([[20.0, -1.75]]))[0, lanes][0]
    # a point on the shared edge of the two lanes is in neither lane but inside the road
    res = index.contains(np.array([[0.0, 0.0]]))[0]
    assert not res[lanes][:2].any() and res[index.drivable_columns][0]


def test_contains_keeps_leading_shape_and_handles_far_points():
    index = MapIndex.build(_geometry())
    pts = np.array([[[1e6, 1e6], [0.0, -1.0]], [[-1e6, 3.0], [20.0, 1.0]]])
    out = index.contains(pts)
    assert out.shape == (2, 2, index.num_polygons)
    assert not out[0, 0].any() and not out[1, 0].any()
    assert out[0, 1, 0] and out[1, 1, 0]


def test_route_projection_matches_shapely_project():
    geom = _geometry()
    index = MapIndex.build(geom)
    line = shapely.LineString(geom.route)
    pts = np.random.default_rng(3).uniform([-40, -20], [70, 50], size=(500, 2))
    want = shapely.line_locate_point(line, shapely.points(pts))
    np.testing.assert_allclose(index.project_route(pts), want, atol=1e-9)
    np.testing.assert_allclose(index.project_route(np.array([[-30.0, 0.0], [45.0, 40.0]])), [0.0, line.length])


def test_on_route_flags_and_cache():
    geom = _geometry()
    index = map_index_for(geom)
    assert index is map_index_for(geom)
    assert index.lane_on_route.tolist() == [True, False, True]
    assert (index.num_drivable, index.num_lanes, index.num_intersections) == (4, 3, 1)


def test_contains_on_sliver_triangulations_agrees_with_shapely():
    """A long strip with a vertex every metre on both sides triangulates into slivers hundreds of metres long that
    cross many grid cells (the index's per-cell clipped boxes skip them); results stay exact."""
    xs = np.arange(-150.0, 151.0)
    strip = np.concatenate([np.stack([xs, np.full_like(xs, -1.75)], 1), np.stack([xs[::-1], np.full_like(xs, 1.75)], 1)])
    geom = MapGeometry(drivable_areas=(strip,), lane_polygons=(strip,), lane_ids=np.array([1]), route_lane_ids=(1,),
                       route=np.array([[-150.0, 0.0], [150.0, 0.0]]))
    index = MapIndex.build(geom)
    rng = np.random.default_rng(11)
    on_edges = np.stack([rng.uniform(-150, 150, 2000), rng.choice([-1.75, 1.75], 2000)], 1)
    pts = np.concatenate([rng.uniform([-155, -3], [155, 3], size=(20000, 2)), strip, on_edges,
                          on_edges + rng.normal(scale=1e-7, size=on_edges.shape),
                          index._tri_v.mean(axis=1), 0.5 * (index._tri_v[:, 0] + index._tri_v[:, 1])])
    want = shapely.contains_xy(shapely.Polygon(strip), pts[:, 0], pts[:, 1])
    got = index.contains(pts)
    assert np.array_equal(got[:, 0], want) and np.array_equal(got[:, 1], want)


def test_bank_lane_polygons_without_collinear_vertices_give_the_same_lookups():
    """envs.scenes.scene.Lane drops exactly collinear polygon vertices (rewards.geometry.drop_collinear_vertices): on a
    bank junction map the index answers exactly as with the full 1 m-sampled polygons, on random points, on every
    original vertex and on every original edge midpoint, with a far smaller triangulation."""
    import dataclasses

    from envs.scenes.layouts import get_layout
    from envs.sim.scoring import map_geometry_from_scene_map
    from rewards.geometry import offset_polyline

    layout = get_layout("junction_2x1")
    scene_map = layout.scene_map(["S_in0", "S_in0>N_out0", "N_out0"], 10)
    lean = map_geometry_from_scene_map(scene_map)
    full_lanes = tuple(np.concatenate([offset_polyline(lane.centerline, 0.5 * lane.width),
                                       offset_polyline(lane.centerline, -0.5 * lane.width)[::-1]])
                       for lane in scene_map.lanes)
    full = dataclasses.replace(lean, lane_polygons=full_lanes)
    a, b = MapIndex.build(lean), MapIndex.build(full)
    assert sum(map(len, lean.lane_polygons)) < 0.2 * sum(map(len, full_lanes))
    vertices = np.concatenate(full_lanes)
    edges = np.concatenate([0.5 * (p + np.roll(p, -1, axis=0)) for p in full_lanes])
    pts = np.concatenate([RNG.uniform(vertices.min(0) - 3, vertices.max(0) + 3, size=(20000, 2)), vertices, edges])
    np.testing.assert_array_equal(a.contains(pts), b.contains(pts))
