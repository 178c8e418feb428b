"""The BEV rasteriser: :class:`BEVRenderer` draws a :class:`~envs.scenes.scene.Scene` in the ego frame as a
:class:`~envs.render.config.BEVConfig` says: ``"rgb"`` ``uint8 (H, W, 3)`` (RGB order) or ``"semantic"``
``uint8 (H, W, C)`` (0/255 channels). Image conventions (pixel coordinates, ego position, units): the
:mod:`envs.render` package docstring.

Speed
-----
By default the static map layers (drivable area, route, lanes) come from a raster of each map drawn once and
warped into the ego frame every frame (:attr:`BEVConfig.map_raster`; ``False`` draws them as vectors every frame,
the exact drawing); agent boxes come from world corners computed once per scene. A 128 px frame of a bank scene
renders about 3x faster than with the map drawn as vectors (``python -m benchmarks.bench_render`` prints both).
"""

from __future__ import annotations

import functools
import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np

from envs.render.config import RGB, BEVConfig, _check_color
from envs.scenes.scene import AgentClass, Scene, SceneMap, TrafficLightState
from rewards.geometry import (box_corners, polyline_arclength, rear_axle_to_center, vehicle_corners,
                              world_to_local)

_SHIFT = 4
"""Fractional bits of the fixed-point pixel coordinates handed to OpenCV (1/16 px precision)."""
_ONE = 1 << _SHIFT


@dataclass
class _MapGeometry:
    """A scene map flattened into world-frame point arrays, built once per map.

    ``*_points`` are ``(P, 2)`` [m] concatenations; ``*_splits`` are the start indices of each polyline/polygon
    after the first (for ``np.split``), so a frame needs one transform per group.
    """

    drivable_points: np.ndarray
    drivable_splits: np.ndarray
    lane_points: np.ndarray
    """Lane centerlines followed by the chevrons (3 points each)."""
    lane_splits: np.ndarray
    route_points: np.ndarray
    light_points: np.ndarray
    """``(L * 2, 2)`` stop-line end points, two per light."""
    light_states: np.ndarray
    """``(L, T)`` uint8 state codes."""
    light_groups: dict[int, list[tuple[Any, np.ndarray]]] = field(default_factory=dict)
    """Frame t -> ``[(colour, light indices)]``: the stop lines to draw at t grouped by colour (filled on use)."""


def _chevrons(centerline: np.ndarray, spacing: float, size: float) -> list[np.ndarray]:
    """Direction chevrons ``(3, 2)`` [m] placed every ``spacing`` along a centerline ``(K, 2)``, tip forward."""
    s = polyline_arclength(centerline)
    if s[-1] < 0.5 * spacing:
        stations = np.array([0.5 * s[-1]])
    else:
        stations = np.arange(0.5 * spacing, s[-1], spacing)
    x = np.interp(stations, s, centerline[:, 0])
    y = np.interp(stations, s, centerline[:, 1])
    seg = np.clip(np.searchsorted(s, stations, side="right") - 1, 0, len(centerline) - 2)
    d = centerline[seg + 1] - centerline[seg]
    h = np.arctan2(d[:, 1], d[:, 0])
    out = []
    for xi, yi, hi in zip(x, y, h):
        back_l = hi + np.pi - 0.6
        back_r = hi + np.pi + 0.6
        tip = np.array([xi + 0.5 * size * np.cos(hi), yi + 0.5 * size * np.sin(hi)])
        out.append(
            np.array(
                [
                    tip + size * np.array([np.cos(back_l), np.sin(back_l)]),
                    tip,
                    tip + size * np.array([np.cos(back_r), np.sin(back_r)]),
                ]
            )
        )
    return out


def _stop_line(scene_map: SceneMap, lane_id: int, point: np.ndarray) -> np.ndarray:
    """``(2, 2)`` [m] ends of the stop line through ``point``, across lane ``lane_id`` (its width)."""
    lane = scene_map.lane(lane_id)
    cl = lane.centerline
    a, b = cl[:-1], cl[1:]
    ab = b - a
    tt = np.clip(np.sum((point - a) * ab, axis=1) / np.sum(ab * ab, axis=1), 0.0, 1.0)
    dist = np.linalg.norm(a + tt[:, None] * ab - point, axis=1)
    d = ab[int(np.argmin(dist))]
    normal = np.array([-d[1], d[0]]) / np.linalg.norm(d)
    return np.stack([point + 0.5 * lane.width * normal, point - 0.5 * lane.width * normal])


@functools.lru_cache(maxsize=1024)
def _blend_rgb(color: RGB, base: RGB, w: float) -> RGB:
    return tuple(int(round(w * c + (1.0 - w) * b)) for c, b in zip(color, base))  # type: ignore[return-value]


def _to_int32(fixed: np.ndarray) -> np.ndarray:
    """Float fixed-point pixel coordinates to int32, clipped far outside any view (keeps int32 and OpenCV safe)."""
    np.clip(fixed, -(1 << 28), 1 << 28, out=fixed)
    return np.rint(fixed).astype(np.int32)


def _line_width(thickness: int) -> int:
    """Width [px] of an OpenCV ``LINE_8`` line of ``thickness``: 1 for 1, else the odd ``2 * ceil(thickness / 2)
    + 1`` (measured across angles: 2 -> 3, 3 and 4 -> 5, 5 and 6 -> 7, ...)."""
    return 1 if thickness == 1 else 2 * ((thickness + 1) // 2) + 1


def _scaled_thickness(thickness: int, scale: int) -> int:
    """The ``LINE_8`` thickness whose line is ``scale`` times as wide as one of ``thickness`` (one pixel wider when
    that width is even: OpenCV's widths are odd)."""
    if scale == 1:
        return thickness
    width = scale * _line_width(thickness)
    return width - 1 if width % 2 else width


def _four_connect(mask: np.ndarray) -> None:
    """Make the 1 px lines of a 0/1 ``uint8 (H, W)`` mask 4-connected, in place: where two lit pixels touch only at a
    corner, light the pixel beside the upper one (toward the lower one's column).

    An 8-connected 1 px line is only ``cos(angle)`` px thick across its direction (0.71 px at 45 deg); resampled
    on a rotated grid (the raster warp) it breaks into dashes. A 4-connected line is at least 1 px thick in every
    direction, so its nearest-neighbour resampling stays connected.
    """
    upper_left, lower_right = mask[:-1, :-1], mask[1:, 1:]
    upper_right, lower_left = mask[:-1, 1:], mask[1:, :-1]
    upper_right |= upper_left & lower_right & ~(upper_right | lower_left) & 1  # down-right diagonal steps
    upper_left |= upper_right & lower_left & ~(upper_left | lower_right) & 1  # down-left diagonal steps


def _concat(parts: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, 2)), np.zeros(0, dtype=np.int64)
    lengths = np.array([len(p) for p in parts])
    return np.concatenate(parts, axis=0), np.cumsum(lengths)[:-1]


@dataclass
class _MapRaster:
    """The static layers of one map drawn once in a world-aligned raster (see :attr:`BEVConfig.map_raster`).

    Raster pixel ``(col, row)`` has its centre at world ``(x0 + col * mpp, y0 + row * mpp)`` (rows grow with
    world y, so the raster is a mirror image; the warp undoes it).
    """

    image: np.ndarray
    """``"rgb"``: ``uint8 (Hr, Wr, 3)``, background, drivable area, route and lanes composited in drawing order;
    ``"semantic"``: ``uint8 (Hr, Wr)``, one bit per static layer (:attr:`BEVRenderer._static_bits`)."""
    x0: float
    """World x of the centre of column 0 [m]."""
    y0: float
    """World y of the centre of row 0 [m]."""
    mpp: float
    """Raster resolution [m/px]."""

    @property
    def pixels(self) -> int:
        """``Hr * Wr`` [px]."""
        return int(self.image.shape[0] * self.image.shape[1])


class _WeakLRU:
    """Values keyed by the identity of weakly referenced objects, least recently used first, with a total size
    budget: an entry goes when its key object is collected or when newer entries need its room."""

    def __init__(self, budget: int) -> None:
        self.budget = int(budget)
        self.size = 0
        self._entries: OrderedDict[int, tuple[weakref.ref, Any, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Any, default: Any = None) -> Any:
        entry = self._entries.get(id(key))
        if entry is None or entry[0]() is not key:
            return default
        self._entries.move_to_end(id(key))
        return entry[1]

    def put(self, key: Any, value: Any, size: int = 0) -> None:
        """Store ``value`` of ``size`` (<= budget) for ``key``, dropping the least recently used entries to fit."""
        self._drop(id(key))
        while self._entries and self.size + size > self.budget:
            self._drop(next(iter(self._entries)))
        ident = id(key)
        self_ref = weakref.ref(self)

        def forget(_: weakref.ref, ident: int = ident) -> None:
            cache = self_ref()
            if cache is not None:
                cache._drop(ident)

        self._entries[ident] = (weakref.ref(key, forget), value, int(size))
        self.size += int(size)

    def _drop(self, ident: int) -> None:
        entry = self._entries.pop(ident, None)
        if entry is not None:
            self.size -= entry[2]


@dataclass
class _AgentDrawing:
    """A scene's agents prepared for drawing; valid for scenes sharing its agent arrays and meta."""

    sizes: np.ndarray
    """The scene's ``agent_sizes`` it was made from (identity checked)."""
    classes: np.ndarray
    """The scene's ``agent_classes`` (identity checked)."""
    meta: Any
    """The scene's ``meta`` (identity checked: the colliding-agent highlight depends on it)."""
    points: np.ndarray
    """``(N, T, 6, 2)`` [m] world-frame box corners at every frame (``rewards.geometry.box_corners`` order: FL,
    RL, RR, FR), then the box centre and the middle of its front edge (the heading tick)."""
    reach: np.ndarray
    """``(N, 1, 2)`` fixed-point pixels: half the box diagonal plus half the image and a 2 px margin; a box is
    culled when its centre is farther than this from the image centre along u or v."""
    colors: list[RGB]
    """RGB colour per agent (class colour, or the colliding-agent highlight)."""
    history_colors: list[list[Any]]
    """``[age][n]``: colour of agent n's past box ``age`` samples back (RGB: faded; semantic: 255)."""
    layers: list[int | None]
    """Semantic channel of each agent's box at t (None: not drawn); all None in RGB mode."""

    def belongs_to(self, scene: Scene) -> bool:
        return self.sizes is scene.agent_sizes and self.classes is scene.agent_classes and self.meta is scene.meta


_NO_RASTER = object()
"""Cache marker of a map drawn as vectors (its raster would exceed the budget)."""

class BEVRenderer:
    """Rasterises scenes in the ego frame; image conventions: the :mod:`envs.render` package
    docstring.

    Per-map and per-scene work is cached, weakly keyed (an entry goes when its map or scene does):

    * map geometry flattened into point arrays, once per :class:`~envs.scenes.scene.SceneMap`;
    * with :attr:`BEVConfig.map_raster`, the static map layers drawn once per map in a world-aligned raster of
      ``meters_per_pixel / map_raster_scale`` [m/px] covering the map's bounding box; each frame warps it into
      the ego frame (nearest neighbour, or bilinear for anti-aliased RGB). A map whose raster would exceed
      :attr:`BEVConfig.map_raster_max_pixels` (or the whole cache budget) is drawn as vectors; the rasters kept
      total at most :attr:`BEVConfig.map_raster_cache_pixels`, least recently used dropped first;
    * agent box corners in the world frame, once per logged agent-pose array (shared by closed-loop views of a
      scene, whose agents replay the log).

    The renderer holds no per-frame state; one instance may render any number of scenes.
    """

    def __init__(self, config: BEVConfig | None = None) -> None:
        config = BEVConfig() if config is None else config
        if not isinstance(config, BEVConfig):
            raise ValueError(f"config: expected BEVConfig, got {type(config).__name__}")
        self.config = config
        self._maps: "weakref.WeakKeyDictionary[SceneMap, _MapGeometry]" = weakref.WeakKeyDictionary()
        self._semantic = config.mode == "semantic"
        self._line_type = cv2.LINE_AA if (config.antialias and not self._semantic) else cv2.LINE_8
        u0, v0 = config.ego_pixel
        self._u0, self._v0 = u0, v0
        self._inv_mpp = 1.0 / config.meters_per_pixel
        self._channel = {name: i for i, name in enumerate(config.semantic_layers)} if self._semantic else {}
        self._background = np.empty((config.height, config.width, 3), dtype=np.uint8)
        self._background[...] = np.array(config.background_color, dtype=np.uint8)
        # Static map layers this config draws, and their bits in a semantic raster.
        static = ["drivable"] + (["route"] if config.draw_route else []) + (["lanes"] if config.draw_lanes else [])
        if self._semantic:
            static = [name for name in static if name in self._channel]
        self._static_bits = {name: 1 << i for i, name in enumerate(static)}
        self._rasters = _WeakLRU(config.map_raster_cache_pixels)
        self._agent_cache = _WeakLRU(1 << 62)  # no size budget: entries go with their scenes
        # Bilinear warps keep anti-aliased RGB edges smooth; nearest keeps hard edges (and exact 0/255 bits).
        self._warp_flags = cv2.WARP_INVERSE_MAP | (
            cv2.INTER_LINEAR if self._line_type == cv2.LINE_AA else cv2.INTER_NEAREST
        )
        self._ego_boxes: dict[tuple[float, float, float], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._ego_history_colors = [255 if self._semantic else self._blend(config.ego_color, self._fade(age)) if age
                                    else None for age in range(config.history_length + 1)]
        self._centre_fixed = _ONE * (0.5 * np.array([config.width, config.height]) - 0.5)  # image centre (u, v)

    # ------------------------------------------------------------------ coordinates
    def ego_to_pixel(self, points: np.ndarray) -> np.ndarray:
        """Ego-frame points ``(..., 2)`` [m] (x ahead, y left) to pixel coordinates ``(..., 2)`` ``(u, v)``
        (column, row; float, integer values are pixel centres)."""
        p = np.asarray(points, dtype=np.float64)
        if p.ndim < 1 or p.shape[-1] < 2:
            raise ValueError(f"points: expected shape (..., 2), got {p.shape}")
        out = np.empty(p.shape[:-1] + (2,))
        out[..., 0] = self._u0 - p[..., 1] * self._inv_mpp
        out[..., 1] = self._v0 - p[..., 0] * self._inv_mpp
        return out

    def pixel_to_ego(self, pixels: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`ego_to_pixel`: pixel coordinates ``(..., 2)`` ``(u, v)`` to ego-frame points [m]."""
        p = np.asarray(pixels, dtype=np.float64)
        if p.ndim < 1 or p.shape[-1] != 2:
            raise ValueError(f"pixels: expected shape (..., 2), got {p.shape}")
        mpp = self.config.meters_per_pixel
        return np.stack([(self._v0 - p[..., 1]) * mpp, (self._u0 - p[..., 0]) * mpp], axis=-1)

    def world_to_pixel(self, scene: Scene, t: int, points: np.ndarray) -> np.ndarray:
        """World-frame points ``(..., 2)`` [m] to pixel coordinates ``(..., 2)`` in the image of frame ``t``."""
        t = self._check_t(scene, t)
        p = np.asarray(points, dtype=np.float64)
        if p.ndim < 1 or p.shape[-1] != 2:
            raise ValueError(f"points: expected shape (..., 2), got {p.shape}")
        return self.ego_to_pixel(scene.world_to_ego(p, t))

    def _fixed(self, ego_points: np.ndarray) -> np.ndarray:
        """Ego-frame points ``(..., 2)`` to int32 fixed-point pixel coordinates (``_SHIFT`` fractional bits)."""
        return _to_int32(self.ego_to_pixel(ego_points) * _ONE)

    def _world_to_fixed(self, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(A (2, 2), b (2,))``: world points ``p (..., 2)`` [m] map to fixed-point pixel coordinates
        ``p @ A.T + b`` (float, ``_SHIFT`` fractional bits) in the image of the ego rear-axle pose ``origin (3,)``
        (world frame): :meth:`ego_to_pixel` after ``world_to_local``, as one affine map."""
        x, y, yaw = origin.tolist()
        c, s = math.cos(yaw), math.sin(yaw)
        g = _ONE * self._inv_mpp
        A = np.array([[g * s, -g * c], [-g * c, -g * s]])
        b = np.array([_ONE * self._u0 - g * (s * x - c * y), _ONE * self._v0 + g * (c * x + s * y)])
        return A, b

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_t(scene: Scene, t: Any) -> int:
        if not isinstance(scene, Scene):
            raise ValueError(f"scene: expected Scene, got {type(scene).__name__}")
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ValueError(f"t: expected an int frame index, got {t!r}")
        if not 0 <= int(t) < scene.num_frames:
            raise ValueError(f"t: frame {t} outside [0, {scene.num_frames}) of scene {scene.scene_id}")
        return int(t)

    def _check_trajectories(self, trajectories: Any, trajectory_colors: Any) -> tuple[np.ndarray, list[RGB]] | None:
        if trajectories is None:
            if trajectory_colors is not None:
                raise ValueError("trajectory_colors: given without trajectories")
            return None
        traj = np.asarray(trajectories, dtype=np.float64)
        if traj.ndim == 2:
            traj = traj[None]
        if traj.ndim != 3 or traj.shape[-1] != 3 or traj.shape[1] < 1:
            raise ValueError(
                f"trajectories: expected shape (K, 3) or (G, K, 3) ego-frame poses (NAVSIM: K = 8), got "
                f"{np.shape(trajectories)}"
            )
        if not np.all(np.isfinite(traj)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(traj))[0])
            raise ValueError(f"trajectories: non-finite value at index {bad}")
        if self._semantic and "trajectories" not in self._channel:
            raise ValueError(
                "trajectories: given, but BEVConfig.semantic_layers has no 'trajectories' channel to draw them in"
            )
        if trajectory_colors is None:
            pal = self.config.trajectory_colors
            colors = [pal[g % len(pal)] for g in range(len(traj))]
        else:
            if len(trajectory_colors) != len(traj):
                raise ValueError(
                    f"trajectory_colors: expected {len(traj)} colours (one per trajectory), got {len(trajectory_colors)}"
                )
            colors = [_check_color(f"trajectory_colors[{g}]", np.asarray(c).tolist()) for g, c in enumerate(trajectory_colors)]
        return traj, colors

    # ------------------------------------------------------------------ map cache
    def _map_geometry(self, scene_map: SceneMap) -> _MapGeometry:
        geo = self._maps.get(scene_map)
        if geo is not None:
            return geo
        cfg = self.config
        drivable, drivable_splits = _concat(list(scene_map.drivable_areas))
        lane_parts: list[np.ndarray] = [lane.centerline for lane in scene_map.lanes]
        for lane in scene_map.lanes:
            lane_parts.extend(_chevrons(lane.centerline, cfg.lane_arrow_spacing, cfg.lane_arrow_size))
        lanes, lane_splits = _concat(lane_parts)
        lights = [_stop_line(scene_map, tl.lane_id, tl.stop_point) for tl in scene_map.traffic_lights]
        light_points = np.concatenate(lights, axis=0) if lights else np.zeros((0, 2))
        states = (
            np.stack([tl.states for tl in scene_map.traffic_lights])
            if scene_map.traffic_lights
            else np.zeros((0, 0), dtype=np.uint8)
        )
        geo = _MapGeometry(drivable, drivable_splits, lanes, lane_splits, scene_map.route.copy(), light_points, states)
        self._maps[scene_map] = geo
        return geo

    # ------------------------------------------------------------------ caches
    def _map_raster(self, scene_map: SceneMap, geo: _MapGeometry) -> _MapRaster | None:
        """The map's static-layer raster (built on first use), or None when the map is drawn as vectors."""
        hit = self._rasters.get(scene_map)
        if hit is None:
            raster = self._build_raster(geo)
            hit = _NO_RASTER if raster is None else raster
            self._rasters.put(scene_map, hit, 0 if raster is None else raster.pixels)
        return None if hit is _NO_RASTER else hit

    def _build_raster(self, geo: _MapGeometry) -> _MapRaster | None:
        """Draw the static layers of ``geo`` into a world-aligned raster over their bounding box (plus the line
        thickness), or None when it would exceed the pixel budget or nothing static is drawn."""
        cfg = self.config
        bits = self._static_bits
        if not bits:
            return None
        k = cfg.map_raster_scale
        mpp = cfg.meters_per_pixel / k
        parts = [geo.drivable_points]
        thickness = 1
        if "route" in bits:
            parts.append(geo.route_points)
            thickness = max(thickness, cfg.route_thickness)
        if "lanes" in bits:
            parts.append(geo.lane_points)
            thickness = max(thickness, cfg.lane_thickness)
        points = np.concatenate(parts)
        lo = points.min(axis=0) - (thickness + 2) * k * mpp
        hi = points.max(axis=0) + (thickness + 2) * k * mpp
        cols, rows = (np.ceil((hi - lo) / mpp).astype(np.int64) + 1).tolist()
        if cols * rows > min(cfg.map_raster_max_pixels, cfg.map_raster_cache_pixels):
            return None
        to_raster = _ONE / mpp

        def to_fixed(world: np.ndarray) -> np.ndarray:
            return _to_int32((world - lo) * to_raster)

        if self._semantic:
            # Each layer drawn with its bit as the value in a buffer of its own, then the buffers OR-ed together.
            layers = {name: np.zeros((rows, cols), dtype=np.uint8) for name in bits}
            self._draw_static(lambda name: (layers.get(name), bits.get(name)), geo, to_fixed, k, (cols, rows))
            image, *others = layers.values()
            for other in others:
                cv2.bitwise_or(image, other, dst=image)
        else:
            image = np.empty((rows, cols, 3), dtype=np.uint8)
            cv2.rectangle(image, (0, 0), (cols - 1, rows - 1), cfg.background_color, -1)  # ~40x a numpy broadcast
            self._draw_static(lambda name: (image, None), geo, to_fixed, k, (cols, rows))
        return _MapRaster(image, float(lo[0]), float(lo[1]), mpp)

    def _agents(self, scene: Scene) -> _AgentDrawing:
        """The scene's agents prepared for drawing (world corners, colours, channels), cached per (read-only)
        agent-pose array: closed-loop views of a scene share it (a writeable array, which no validated scene has,
        is prepared afresh every time)."""
        entry = self._agent_cache.get(scene.agent_poses)
        if entry is None or not entry.belongs_to(scene) or scene.agent_poses.flags.writeable:
            cfg = self.config
            sizes = scene.agent_sizes
            poses = scene.agent_poses
            corners = box_corners(poses, sizes[:, None, 0], sizes[:, None, 1])  # (N, T, 4, 2)
            front = poses[..., :2] + 0.5 * sizes[:, None, :1] * np.stack([np.cos(poses[..., 2]),
                                                                           np.sin(poses[..., 2])], axis=-1)
            points = np.concatenate([corners, poses[:, :, None, :2], front[:, :, None]], axis=2)
            half_image = 0.5 * np.array([cfg.width, cfg.height]) + 2.0  # [px]
            reach = _ONE * (0.5 * np.hypot(sizes[:, 0], sizes[:, 1])[:, None, None] * self._inv_mpp + half_image)
            colors = [self._agent_color(scene, n) for n in range(scene.num_agents)]
            ages = range(cfg.history_length + 1)
            if self._semantic:
                history_colors = [[255] * scene.num_agents for _ in ages]
                names = {AgentClass.VEHICLE: "vehicles", AgentClass.STATIC: "static"}
                layers = [self._channel.get(names.get(int(c), "pedestrians_cyclists")) for c in scene.agent_classes]
            else:
                history_colors = [[self._blend(c, self._fade(age)) for c in colors] if age else [] for age in ages]
                layers = [None] * scene.num_agents
            entry = _AgentDrawing(sizes, scene.agent_classes, scene.meta, points, reach, colors, history_colors,
                                  layers)
            self._agent_cache.put(scene.agent_poses, entry)
        return entry

    def _ego_box(self, scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ego box, cached per ego geometry: fixed-point ``(4, 2)`` corners at frame t and ``(2, 2)`` heading
        tick (box centre to front middle), both constant in the ego frame, and ``(4, 2)`` [m] corners relative
        to the rear axle in the vehicle frame (:func:`~rewards.geometry.vehicle_corners` at the origin)."""
        params = scene.ego_params
        key = (params.length, params.width, params.rear_axle_to_center)
        box = self._ego_boxes.get(key)
        if box is None:
            center = np.array([params.rear_axle_to_center, 0.0, 0.0])  # box-centre pose in the ego frame
            corners = self._fixed(box_corners(center, params.length, params.width))
            tick = self._fixed(np.array([[params.rear_axle_to_center, 0.0],
                                         [params.rear_axle_to_center + 0.5 * params.length, 0.0]]))
            box = self._ego_boxes[key] = (corners, tick, vehicle_corners(np.zeros(3), params))
        return box

    # ------------------------------------------------------------------ rendering
    def render(
        self,
        scene: Scene,
        t: int,
        trajectories: np.ndarray | None = None,
        trajectory_colors: Sequence[RGB] | None = None,
    ) -> np.ndarray:
        """Rasterise ``scene`` at frame ``t`` in the ego frame of frame ``t``.

        Args:
            scene: the scene.
            t: frame index in ``[0, scene.num_frames)``.
            trajectories: optional candidate trajectories ``(K, 3)`` or ``(G, K, 3)``: rear-axle poses
                ``(x, y, yaw)`` [m, m, rad] in the ego frame at ``t`` (NAVSIM: K = 8 poses at 0.5 s), drawn as
                polylines starting at the ego rear axle.
            trajectory_colors: optional RGB colour per trajectory (``G`` triples); RGB mode only matters.

        Returns:
            ``uint8 (H, W, C)`` image (:attr:`BEVConfig.shape`).

        Only frames ``<= t`` of the scene are read (the ego and agents at ``t`` and their history), never the
        future, so closed-loop views whose later frames are stale render correctly.

        Raises:
            ValueError: naming ``scene``, ``t``, ``trajectories`` or ``trajectory_colors`` when one is invalid.
        """
        t = self._check_t(scene, t)
        traj = self._check_trajectories(trajectories, trajectory_colors)
        cfg = self.config
        H, W = cfg.height, cfg.width
        origin = scene.ego_poses[t]
        if self._semantic:
            canvas = np.zeros((len(cfg.semantic_layers), H, W), dtype=np.uint8)
        else:
            canvas = None if scene.map is not None and cfg.map_raster else self._background.copy()

        if scene.map is not None:
            canvas = self._draw_map(canvas, scene.map, origin, t)
        assert canvas is not None
        if cfg.motion_horizons and cfg.motion_fill > 0:
            self._draw_motion(canvas, scene, t, origin, fill=True)
        self._draw_boxes(canvas, scene, t, origin)
        if cfg.motion_horizons:
            self._draw_motion(canvas, scene, t, origin)
        if traj is not None:
            self._draw_trajectories(canvas, *traj)

        if self._semantic:
            # (C, H, W) planes -> (H, W, C); cv2.merge interleaves ~2x faster than a numpy transposed copy.
            return cv2.merge(list(canvas)) if len(canvas) > 1 else np.ascontiguousarray(canvas.transpose(1, 2, 0))
        return canvas

    def _layer(self, canvas: np.ndarray, name: str) -> tuple[np.ndarray | None, Any]:
        """Target image and colour for a drawing: the RGB canvas, or the semantic channel (None if not selected)."""
        if not self._semantic:
            return canvas, None
        c = self._channel.get(name)
        return (canvas[c], 255) if c is not None else (None, 255)

    @staticmethod
    def _visible(pix: np.ndarray, splits: np.ndarray, margin: int, size: tuple[int, int]) -> list[np.ndarray]:
        """Split fixed-point pixel points into polylines and keep those whose bounding box meets the image of
        ``size = (width, height)`` [px]."""
        if len(pix) == 0:
            return []
        starts = np.concatenate([[0], splits])
        lo = np.minimum.reduceat(pix, starts, axis=0)
        hi = np.maximum.reduceat(pix, starts, axis=0)
        m = margin * _ONE
        keep = (
            (hi[:, 0] >= -m) & (lo[:, 0] <= (size[0] + margin) * _ONE)
            & (hi[:, 1] >= -m) & (lo[:, 1] <= (size[1] + margin) * _ONE)
        )
        ends = np.append(splits, len(pix))
        return [pix[starts[i]:ends[i]] for i in np.flatnonzero(keep)]

    def _draw_map(self, canvas: np.ndarray | None, scene_map: SceneMap, origin: np.ndarray, t: int) -> np.ndarray:
        """Draw the map layers of frame ``t`` (ego rear-axle pose ``origin``) and return the canvas (an RGB canvas
        of None is made here: the raster warp writes every pixel)."""
        cfg = self.config
        geo = self._map_geometry(scene_map)
        raster = self._map_raster(scene_map, geo) if cfg.map_raster else None
        if raster is not None:
            canvas = self._warp_static(canvas, raster, origin)
        else:
            if canvas is None:
                canvas = self._background.copy()
            target = canvas
            self._draw_static(lambda name: self._layer(target, name), geo,
                              lambda world: self._fixed(world_to_local(world, origin)), None, (cfg.width, cfg.height))
        self._draw_lights(canvas, geo, origin, t)
        return canvas

    def _draw_static(self, layer: Any, geo: _MapGeometry, to_fixed: Any, raster_scale: int | None,
                     size: tuple[int, int]) -> None:
        """Draw the static map layers (drivable area, route, lanes with chevrons, in that order).

        Args:
            layer: ``name -> (image or None, colour or None)``: where to draw a layer (None: skip it) and its colour
                (None: the config's RGB colour).
            geo: the flattened map.
            to_fixed: world points ``(P, 2)`` [m] -> int32 fixed-point pixel coordinates ``(P, 2)`` of the target.
            raster_scale: None when drawing the view itself; when drawing a map raster, its
                :attr:`BEVConfig.map_raster_scale`: line widths are scaled by it, and 1 px lines are drawn
                4-connected (an 8-connected 1 px line is only ``cos(45 deg)`` px thick across a diagonal and can
                break into dashes once warped; a 4-connected one is at least 1 px thick in every direction).
            size: ``(width, height)`` of the target [px], for culling.
        """
        cfg = self.config
        lt = self._line_type

        def polylines(img: np.ndarray, lines: list[np.ndarray], color: Any, thickness: int) -> None:
            """Draw lines ``thickness`` px thick in the view (scaled in a raster; 4-connected if 1 px there)."""
            if raster_scale is None:
                cv2.polylines(img, lines, False, color, thickness, lt, _SHIFT)
                return
            scaled = _scaled_thickness(thickness, raster_scale)
            if scaled > 1 or lt != cv2.LINE_8:
                cv2.polylines(img, lines, False, color, scaled, lt, _SHIFT)
                return
            # OpenCV draws fractional-coordinate lines 8-connected whatever the line type; make them 4-connected.
            mask = np.zeros(img.shape[:2], dtype=np.uint8)
            cv2.polylines(mask, lines, False, 1, 1, cv2.LINE_8, _SHIFT)
            _four_connect(mask)
            img[mask.view(bool)] = color

        img, color = layer("drivable")
        if img is not None:
            color = cfg.drivable_color if color is None else color
            for poly in self._visible(to_fixed(geo.drivable_points), geo.drivable_splits, 2, size):
                cv2.fillPoly(img, [poly], color, lt, _SHIFT)

        if cfg.draw_route:
            img, color = layer("route")
            if img is not None:
                polylines(img, [to_fixed(geo.route_points)], cfg.route_color if color is None else color,
                          cfg.route_thickness)

        if cfg.draw_lanes and len(geo.lane_points):
            img, color = layer("lanes")
            if img is not None:
                lines = self._visible(to_fixed(geo.lane_points), geo.lane_splits, 2, size)
                if lines:
                    polylines(img, lines, cfg.lane_color if color is None else color, cfg.lane_thickness)

    def _warp_static(self, canvas: np.ndarray | None, raster: _MapRaster, origin: np.ndarray) -> np.ndarray:
        """Warp the map raster into the view of the ego rear-axle pose ``origin (3,)`` (world frame): RGB returns a
        new canvas; semantic writes the static channels of ``canvas (C, H, W)`` (exactly 0 or 255)."""
        cfg = self.config
        c, s = math.cos(origin[2]), math.sin(origin[2])
        k = cfg.meters_per_pixel / raster.mpp
        u0, v0 = self._u0, self._v0
        # Inverse map, view pixel (u, v) -> raster (col, row): the ego-frame point ((v0 - v) mpp, (u0 - u) mpp)
        # rotated and shifted into the world frame, then scaled into the raster.
        M = np.array([
            [s * k, -c * k, (origin[0] - raster.x0) / raster.mpp + k * (c * v0 - s * u0)],
            [-c * k, -s * k, (origin[1] - raster.y0) / raster.mpp + k * (s * v0 + c * u0)],
        ])
        size = (cfg.width, cfg.height)
        if not self._semantic:
            return cv2.warpAffine(raster.image, M, size, flags=self._warp_flags, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=cfg.background_color)
        assert canvas is not None
        packed = cv2.warpAffine(raster.image, M, size, flags=cv2.WARP_INVERSE_MAP | cv2.INTER_NEAREST,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        for name, bit in self._static_bits.items():
            channel = canvas[self._channel[name]]
            np.bitwise_and(packed, bit, out=channel)
            np.minimum(channel, 1, out=channel)
            channel *= 255
        return canvas

    def _draw_lights(self, canvas: np.ndarray, geo: _MapGeometry, origin: np.ndarray, t: int) -> None:
        """Traffic-light stop lines coloured by their state at ``t`` (semantic: RED and YELLOW ones only), one
        ``cv2.polylines`` call per state; where stop lines of different states overlap, the later state in
        :class:`~envs.scenes.scene.TrafficLightState` (RED last) is on top."""
        cfg = self.config
        if not (cfg.draw_traffic_lights and len(geo.light_points)):
            return
        img, _ = self._layer(canvas, "red_lights")
        if img is None:
            return
        groups = geo.light_groups.get(t)
        if groups is None:
            states = geo.light_states[:, t]
            if self._semantic:
                red = np.flatnonzero((states == TrafficLightState.RED) | (states == TrafficLightState.YELLOW))
                groups = [(255, red)] if len(red) else []
            else:
                groups = [(cfg.light_colors[state], np.flatnonzero(states == state))
                          for state in np.unique(states).tolist()]
            geo.light_groups[t] = groups
        if not groups:
            return
        A, b = self._world_to_fixed(origin)
        pix = _to_int32(geo.light_points @ A.T + b).reshape(-1, 2, 2)
        for color, lights in groups:
            cv2.polylines(img, list(pix[lights]), False, color, cfg.light_thickness, self._line_type, _SHIFT)

    def _history_frames(self, t: int) -> list[int]:
        """Past frames to draw, oldest first."""
        cfg = self.config
        frames = [t - k * cfg.history_step for k in range(cfg.history_length, 0, -1)]
        return [f for f in frames if f >= 0]

    def _draw_boxes(self, canvas: np.ndarray, scene: Scene, t: int, origin: np.ndarray) -> None:
        """History boxes (oldest first), agent boxes at ``t``, the ego box and (RGB) heading ticks."""
        cfg = self.config
        lt = self._line_type
        fill = cv2.fillConvexPoly
        past = self._history_frames(t)
        frames = past + [t]
        A, b = self._world_to_fixed(origin)

        # Agents at all drawn frames: cached world points, one affine map to fixed-point pixels; boxes whose centre
        # is farther from the image than half their diagonal (+2 px) are not drawn.
        N = scene.num_agents
        if N:
            agents = self._agents(scene)
            world = agents.points[:, frames]  # (N, S, 6, 2)
            pix = (world.reshape(-1, 2) @ A.T + b).reshape(world.shape)
            off_centre = np.abs(pix[:, :, 4] - self._centre_fixed)  # (N, S, 2)
            valid = scene.agent_valid[:, frames] & (off_centre <= agents.reach).all(axis=-1)
            # Culled boxes are never drawn, so their (possibly huge) coordinates need no clipping.
            fixed = np.rint(pix).astype(np.int32)
            corners = fixed[:, :, :4]  # (N, S, 4, 2)
            # Which agents to draw per frame, as Python lists (one conversion instead of a search per frame).
            drawn = [[n for n, ok in enumerate(row) if ok] for row in valid.T.tolist()]  # (S,) lists of rows
        ego_box, ego_tick, ego_offsets = self._ego_box(scene)

        # History, oldest first (newer boxes drawn on top).
        if past and (cfg.draw_ego_history or N):
            img, color = self._layer(canvas, "history")
            if img is not None:
                if cfg.draw_ego_history:
                    # Past ego boxes: rear-axle-relative corners rotated by each past yaw, then to pixels.
                    poses = scene.ego_poses[past]  # (P, 3) world frame
                    c, s = np.cos(poses[:, 2]), np.sin(poses[:, 2])
                    rot = np.empty((len(past), 2, 2))
                    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1] = c, -s, s, c
                    ego_corners = ego_offsets @ (A @ rot).transpose(0, 2, 1) + (poses[:, :2] @ A.T + b)[:, None]
                    ego_corners = np.rint(ego_corners).astype(np.int32)  # (P, 4, 2); within 2 s of the ego
                for s_, frame in enumerate(past):
                    age = (t - frame) // cfg.history_step
                    if cfg.draw_ego_history:
                        fill(img, ego_corners[s_], self._ego_history_colors[age], lt, _SHIFT)
                    if N:
                        colors = agents.history_colors[age]
                        at_s = corners[:, s_]
                        for n in drawn[s_]:
                            fill(img, at_s[n], colors[n], lt, _SHIFT)

        # Agents valid at t.
        now = drawn[-1] if N else []
        if now:
            at_t = corners[:, -1]
            for n in now:
                if self._semantic:
                    channel = agents.layers[n]
                    if channel is not None:
                        fill(canvas[channel], at_t[n], 255, lt, _SHIFT)
                else:
                    fill(canvas, at_t[n], agents.colors[n], lt, _SHIFT)

        # Ego.
        img, color = self._layer(canvas, "ego")
        if img is not None:
            fill(img, ego_box, cfg.ego_color if color is None else color, lt, _SHIFT)
        if cfg.draw_headings and not self._semantic:
            # Box centre to the middle of the front edge.
            ticks = list(fixed[now, -1, 4:]) if now else []
            ticks.append(ego_tick)
            cv2.polylines(canvas, ticks, False, cfg.heading_color, 1, lt, _SHIFT)

    def _draw_motion(self, canvas: np.ndarray, scene: Scene, t: int, origin: np.ndarray, fill: bool = False) -> None:
        """Velocity marks (:attr:`BEVConfig.motion_horizons`): for every agent valid at ``t`` and the ego (with
        ``draw_ego_motion``) moving at least ``motion_min_speed``, the outline of its box shifted by ``horizon *
        velocity`` for each horizon, and a line from the box centre to the last outline's centre (``fill``: the
        shifted boxes filled with :attr:`BEVConfig.motion_fill` of the colour instead, farthest first). Reads frame
        ``t`` only (world-frame velocities ``scene.agent_velocities[:, t]`` / ``scene.ego_velocities[t]`` [m/s])."""
        cfg = self.config
        img, sem_color = self._layer(canvas, "motion")
        if img is None:
            return
        lt = self._line_type
        horizons = np.asarray(cfg.motion_horizons)[:, None, None]  # (K, 1, 1) [s]
        A, b = self._world_to_fixed(origin)
        marks: list[tuple[np.ndarray, Any]] = []  # (world points (5, 2): box corners + centre, velocity, colour)
        if scene.num_agents:
            agents = self._agents(scene)
            velocity = scene.agent_velocities[:, t]  # (N, 2) world frame [m/s]
            moving = scene.agent_valid[:, t] & (np.hypot(velocity[:, 0], velocity[:, 1]) >= cfg.motion_min_speed)
            for n in np.flatnonzero(moving).tolist():
                marks.append((agents.points[n, t, :5], velocity[n],
                               sem_color if self._semantic else agents.colors[n]))
        if cfg.draw_ego_motion:
            velocity = scene.ego_velocities[t]
            if math.hypot(velocity[0], velocity[1]) >= cfg.motion_min_speed:
                params = scene.ego_params
                world = np.vstack([vehicle_corners(origin, params), rear_axle_to_center(origin, params)[None, :2]])
                marks.append((world, velocity, sem_color if self._semantic else cfg.ego_color))
        for points, velocity, color in marks:
            ghosts = points[None] + horizons * velocity  # (K, 5, 2) world [m]
            pix = _to_int32(ghosts.reshape(-1, 2) @ A.T + b).reshape(ghosts.shape)
            if fill:
                shade = color if self._semantic else self._blend(color, cfg.motion_fill)
                for corners in pix[::-1, :4]:
                    cv2.fillConvexPoly(img, corners, shade, lt, _SHIFT)
                continue
            centre = _to_int32(points[4] @ A.T + b)
            cv2.polylines(img, list(pix[:, :4]), True, color, 1, lt, _SHIFT)
            cv2.polylines(img, [np.stack([centre, pix[-1, 4]])], False, color, 1, lt, _SHIFT)

    def _agent_color(self, scene: Scene, n: int) -> RGB:
        cfg = self.config
        if cfg.colliding_agent_color is not None and scene.meta.colliding_agent_id is not None:
            if int(scene.agent_ids[n]) == scene.meta.colliding_agent_id:
                return cfg.colliding_agent_color
        return cfg.class_colors[int(scene.agent_classes[n])]

    def _fade(self, age: int) -> float:
        """Blend weight of the history sample ``age`` steps back (1: newest, ``history_length``: oldest)."""
        newest, oldest = self.config.history_fade
        L = self.config.history_length
        return newest if L == 1 else newest + (oldest - newest) * (age - 1) / (L - 1)

    def _blend(self, color: RGB, w: float) -> RGB:
        """``w * color + (1 - w) * drivable_color``, rounded (cached: few distinct values per config)."""
        return _blend_rgb(color, self.config.drivable_color, w)

    def _draw_trajectories(self, canvas: np.ndarray, traj: np.ndarray, colors: list[RGB]) -> None:
        cfg = self.config
        lt = self._line_type
        img, sem_color = self._layer(canvas, "trajectories")
        assert img is not None  # checked in _check_trajectories
        pts = np.concatenate([np.zeros((len(traj), 1, 2)), traj[..., :2]], axis=1)  # start at the rear axle
        pix = self._fixed(pts)
        r = cfg.trajectory_point_radius
        for g in range(len(traj)):
            color = sem_color if self._semantic else colors[g]
            cv2.polylines(img, [pix[g]], False, color, cfg.trajectory_thickness, lt, _SHIFT)
            if r > 0:
                for p in pix[g, 1:]:
                    cv2.circle(img, (int(p[0]), int(p[1])), r * _ONE, color, -1, lt, _SHIFT)
