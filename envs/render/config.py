"""The BEV configuration: :class:`BEVConfig` (raster geometry, content and colours; every field is checked on
construction) and :data:`SEMANTIC_LAYERS`, the names of the semantic channels.

Geometry: an ``H x W`` [px] image at ``meters_per_pixel`` [m/px] with the ego rear axle at pixel ``(u0, v0)``
(:attr:`BEVConfig.ego_pixel`), covering the ego-frame rectangle :attr:`BEVConfig.view_extent` [m]; see the
:mod:`envs.render` package docstring for the image conventions. Colours are RGB triples of ints in ``[0, 255]``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.scenes.scene import AgentClass, TrafficLightState

RGB = tuple[int, int, int]

SEMANTIC_LAYERS = (
    "drivable",
    "lanes",
    "route",
    "red_lights",
    "ego",
    "vehicles",
    "pedestrians_cyclists",
    "static",
    "history",
    "trajectories",
    "motion",
)
"""All semantic layer names, in their default channel order.

* ``drivable``: filled drivable-area polygons.
* ``lanes``: lane centerlines and their direction chevrons.
* ``route``: the ego route centreline (thick line).
* ``red_lights``: stop lines of traffic lights that are RED or YELLOW at frame t.
* ``ego``: the ego box.
* ``vehicles``: boxes of VEHICLE agents valid at t.
* ``pedestrians_cyclists``: boxes of PEDESTRIAN and CYCLIST agents valid at t.
* ``static``: boxes of STATIC objects valid at t.
* ``history``: past boxes of agents (and of the ego when ``draw_ego_history``), valid frames only.
* ``trajectories``: candidate trajectory polylines (only when trajectories are passed to ``render``).
* ``motion``: velocity marks of moving agents and the ego (only with :attr:`BEVConfig.motion_horizons`): the box
  outlines at their constant-velocity positions and the line from each box centre to the farthest one.
"""

OPTIONAL_LAYERS = ("trajectories", "motion")
"""Layers left out of the default :attr:`BEVConfig.semantic_layers` (drawn only on request)."""


def _default_layers() -> tuple[str, ...]:
    return tuple(name for name in SEMANTIC_LAYERS if name not in OPTIONAL_LAYERS)


@dataclass(frozen=True)
class BEVConfig:
    """Raster geometry, content and colours of the BEV (image conventions: the :mod:`envs.render` package docstring).

    Colours are RGB triples of ints in ``[0, 255]``; thicknesses are in pixels.
    """

    height: int = 128
    """Image height [px]."""
    width: int = 128
    """Image width [px]."""
    meters_per_pixel: float = 0.5
    """Ground resolution [m/px] (0.5: a 128 px image spans 64 m)."""
    ego_row_fraction: float = 0.75
    """Row of the ego rear axle as a fraction of the height from the top (0.75: three quarters of the view ahead)."""
    mode: str = "rgb"
    """``"rgb"`` (uint8 (H, W, 3), for people and the default policy observation) or ``"semantic"``
    (uint8 (H, W, C), one 0/255 channel per entry of ``semantic_layers``)."""
    semantic_layers: tuple[str, ...] = field(default_factory=_default_layers)
    """Channels of the semantic output, in order; names from :data:`SEMANTIC_LAYERS` (default: all but
    ``"trajectories"`` and ``"motion"``, 9 channels)."""
    history_length: int = 4
    """Number of past samples drawn per agent [frames sampled] (0 disables history)."""
    history_step: int = 5
    """Frames between history samples (5 at 10 Hz: a past box every 0.5 s; the defaults cover 2 s)."""
    draw_ego_history: bool = True
    """Also draw the ego's own past boxes in the history (shows the ego's recent motion)."""
    draw_lanes: bool = True
    """Draw lane centerlines with direction chevrons."""
    draw_route: bool = True
    """Draw the ego route."""
    draw_traffic_lights: bool = True
    """Draw traffic-light stop lines coloured by their state at t."""
    draw_headings: bool = True
    """RGB only: draw a short line from each box centre to its front edge so headings are visible."""
    antialias: bool = True
    """RGB only: anti-aliased lines and edges (``cv2.LINE_AA``); semantic output never uses it."""
    map_raster: bool = True
    """Draw the static map layers (drivable area, route, lanes and their chevrons) by warping a world-frame raster
    of the map, drawn once per :class:`~envs.scenes.scene.SceneMap`, into the ego frame (one ``cv2.warpAffine`` per
    frame: nearest neighbour, or bilinear with ``antialias``) instead of drawing the map's polygons every frame
    (the default because it is several times faster and the images are equivalent: they differ from the exact
    drawing only by sub-pixel shifts of edges and 1 px lines; bounds measured and pinned in
    ``tests/test_render_raster.py``). False: the exact per-frame vector drawing. Traffic lights, agents, history
    and trajectories are always drawn as vectors on top."""
    map_raster_scale: int = 1
    """Resolution of the map raster as a multiple of the BEV's (1: ``meters_per_pixel``, the default; k: k^2
    times the memory, line widths scaled to match). Measured on bank scenes, 1 is the closest to the exact
    drawing with anti-aliasing and keeps OpenCV's line widths; 2 and 3 shift RGB edges slightly less without
    anti-aliasing but 2 draws 1 px lanes 1.5 px wide (OpenCV line widths are odd)."""
    map_raster_max_pixels: int = 1 << 22
    """Largest raster of one map [px] (4.2 Mpx: a 1 km x 1 km map at 0.5 m/px and scale 1; 3 B/px in ``"rgb"``
    mode, 1 B/px in ``"semantic"``); a map whose raster would be larger is drawn as vectors."""
    map_raster_cache_pixels: int = 1 << 24
    """Total pixels of the map rasters one renderer keeps (16.8 Mpx: ~50 MB in ``"rgb"`` mode; a 320 m bank
    junction map takes 0.44 Mpx at 0.5 m/px); least recently used rasters are dropped first, and a raster also
    goes when its map does."""
    lane_arrow_spacing: float = 10.0
    """Distance between direction chevrons along a lane [m]."""
    lane_arrow_size: float = 1.2
    """Half-length of a chevron's arms [m]."""
    lane_thickness: int = 1
    """Lane centerline thickness [px]."""
    route_thickness: int = 3
    """Route line thickness [px]."""
    light_thickness: int = 2
    """Traffic-light stop-line thickness [px]."""
    trajectory_thickness: int = 1
    """Candidate trajectory line thickness [px]."""
    trajectory_point_radius: int = 1
    """Radius of the dots marking each trajectory pose [px] (0: no dots)."""
    background_color: RGB = (18, 18, 22)
    """Off-road background."""
    drivable_color: RGB = (64, 64, 70)
    """Drivable area fill."""
    lane_color: RGB = (125, 125, 135)
    """Lane centerlines and chevrons."""
    route_color: RGB = (40, 100, 120)
    """Ego route."""
    light_colors: tuple[RGB, RGB, RGB, RGB] = ((150, 150, 150), (0, 220, 60), (255, 210, 0), (255, 30, 30))
    """Stop-line colours indexed by :class:`~envs.scenes.scene.TrafficLightState` (UNKNOWN, GREEN, YELLOW, RED)."""
    ego_color: RGB = (40, 220, 110)
    """Ego box."""
    class_colors: tuple[RGB, RGB, RGB, RGB] = ((80, 140, 255), (255, 150, 30), (230, 70, 230), (170, 130, 90))
    """Agent box colours indexed by :class:`~envs.scenes.scene.AgentClass` (VEHICLE, PEDESTRIAN, CYCLIST, STATIC)."""
    heading_color: RGB = (255, 255, 255)
    """Heading ticks (RGB only)."""
    colliding_agent_color: RGB | None = None
    """When set, the agent named by ``scene.meta.colliding_agent_id`` gets this colour (for people looking at
    accidents; leave None for policy observations, it reveals the future)."""
    history_fade: tuple[float, float] = (0.55, 0.15)
    """RGB only: blend weight of the class colour over the drivable colour for the newest and the oldest past box."""
    motion_horizons: tuple[float, ...] = ()
    """Velocity marks (motion in a single image; issue #29): for each horizon [s], the outline of every moving
    agent's box (and the ego's, with ``draw_ego_motion``) where its velocity at t would take it, heading kept
    (constant velocity: ``centre + horizon * velocity``), plus a line from the box centre to the farthest outline's
    centre. Drawn on top of the boxes, in the agent's colour (RGB) or the ``"motion"`` channel (semantic). Empty
    (the default): nothing drawn, the image is unchanged. Reads frame t only (no future)."""
    motion_fill: float = 0.0
    """With ``motion_horizons``: RGB blend weight of the agent's colour over the drivable colour filling its marked
    boxes, drawn under the current boxes (0: outlines only; semantic output fills the ``"motion"`` channel when > 0)."""
    motion_min_speed: float = 0.5
    """Agents (and the ego) slower than this get no velocity mark [m/s]."""
    draw_ego_motion: bool = True
    """With ``motion_horizons``: also mark the ego's own velocity (a time to contact depends on both speeds)."""
    trajectory_colors: tuple[RGB, ...] = (
        (255, 235, 60),
        (0, 230, 230),
        (255, 110, 180),
        (170, 255, 90),
        (255, 170, 90),
        (160, 140, 255),
    )
    """Default colours of candidate trajectories, cycled over the group."""

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 8 <= value <= 4096:
                raise ValueError(f"BEVConfig.{name}: expected an int in [8, 4096] px, got {value!r}")
        mpp = self.meters_per_pixel
        if not (isinstance(mpp, (int, float, np.floating)) and math.isfinite(mpp) and mpp > 0):
            raise ValueError(f"BEVConfig.meters_per_pixel: expected a positive number, got {mpp!r}")
        if not (0.0 < self.ego_row_fraction <= 1.0):
            raise ValueError(f"BEVConfig.ego_row_fraction: expected a value in (0, 1], got {self.ego_row_fraction!r}")
        if self.mode not in ("rgb", "semantic"):
            raise ValueError(f"BEVConfig.mode: expected 'rgb' or 'semantic', got {self.mode!r}")
        layers = tuple(self.semantic_layers)
        unknown = [name for name in layers if name not in SEMANTIC_LAYERS]
        if unknown or not layers or len(set(layers)) != len(layers):
            raise ValueError(
                f"BEVConfig.semantic_layers: expected distinct names from {SEMANTIC_LAYERS}, got {layers!r}"
            )
        object.__setattr__(self, "semantic_layers", layers)
        if not (isinstance(self.history_length, int) and self.history_length >= 0):
            raise ValueError(f"BEVConfig.history_length: expected an int >= 0, got {self.history_length!r}")
        if not (isinstance(self.history_step, int) and self.history_step >= 1):
            raise ValueError(f"BEVConfig.history_step: expected an int >= 1, got {self.history_step!r}")
        for name in ("lane_arrow_spacing", "lane_arrow_size"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"BEVConfig.{name}: expected a positive number of meters, got {value!r}")
        for name in ("lane_thickness", "route_thickness", "light_thickness", "trajectory_thickness"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 1 <= value <= 64):
                raise ValueError(f"BEVConfig.{name}: expected an int in [1, 64] px, got {value!r}")
        if not (isinstance(self.trajectory_point_radius, int) and 0 <= self.trajectory_point_radius <= 64):
            raise ValueError(
                f"BEVConfig.trajectory_point_radius: expected an int in [0, 64] px, got {self.trajectory_point_radius!r}"
            )
        for name in ("background_color", "drivable_color", "lane_color", "route_color", "ego_color", "heading_color"):
            object.__setattr__(self, name, _check_color(f"BEVConfig.{name}", getattr(self, name)))
        if self.colliding_agent_color is not None:
            object.__setattr__(
                self, "colliding_agent_color", _check_color("BEVConfig.colliding_agent_color", self.colliding_agent_color)
            )
        for name, count in (("light_colors", len(TrafficLightState)), ("class_colors", len(AgentClass))):
            colors = getattr(self, name)
            if len(colors) != count:
                raise ValueError(f"BEVConfig.{name}: expected {count} colours, got {len(colors)}")
            object.__setattr__(self, name, tuple(_check_color(f"BEVConfig.{name}[{i}]", c) for i, c in enumerate(colors)))
        if not self.trajectory_colors:
            raise ValueError("BEVConfig.trajectory_colors: needs at least one colour")
        object.__setattr__(
            self,
            "trajectory_colors",
            tuple(_check_color(f"BEVConfig.trajectory_colors[{i}]", c) for i, c in enumerate(self.trajectory_colors)),
        )
        if not (isinstance(self.map_raster_scale, int) and not isinstance(self.map_raster_scale, bool)
                and 1 <= self.map_raster_scale <= 8):
            raise ValueError(f"BEVConfig.map_raster_scale: expected an int in [1, 8], got {self.map_raster_scale!r}")
        for name in ("map_raster_max_pixels", "map_raster_cache_pixels"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0):
                raise ValueError(f"BEVConfig.{name}: expected an int >= 0 [px], got {value!r}")
        fade = self.history_fade
        if len(fade) != 2 or not all(0.0 <= f <= 1.0 for f in fade):
            raise ValueError(f"BEVConfig.history_fade: expected two weights in [0, 1], got {fade!r}")
        horizons = self.motion_horizons
        try:
            ok = all(isinstance(h, (int, float, np.number)) and not isinstance(h, bool) and math.isfinite(h)
                     and 0.0 < h <= 10.0 for h in horizons)
        except TypeError:
            ok = False
        if not ok:
            raise ValueError(f"BEVConfig.motion_horizons: expected a sequence of times in (0, 10] s, got {horizons!r}")
        object.__setattr__(self, "motion_horizons", tuple(sorted(float(h) for h in horizons)))
        if not (isinstance(self.motion_fill, (int, float, np.number)) and 0.0 <= self.motion_fill <= 1.0):
            raise ValueError(f"BEVConfig.motion_fill: expected a blend weight in [0, 1], got {self.motion_fill!r}")
        speed = self.motion_min_speed
        if not (isinstance(speed, (int, float, np.number)) and math.isfinite(speed) and speed >= 0):
            raise ValueError(f"BEVConfig.motion_min_speed: expected a number >= 0 [m/s], got {speed!r}")

    @property
    def num_channels(self) -> int:
        """C: 3 for ``"rgb"``, ``len(semantic_layers)`` for ``"semantic"``."""
        return 3 if self.mode == "rgb" else len(self.semantic_layers)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Output shape ``(H, W, C)``."""
        return (self.height, self.width, self.num_channels)

    @property
    def ego_pixel(self) -> tuple[float, float]:
        """``(u0, v0)``: pixel coordinates (column, row) of the ego rear axle."""
        return (0.5 * self.width - 0.5, self.ego_row_fraction * self.height - 0.5)

    @property
    def view_extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, y_min, y_max)`` [m]: the ego-frame rectangle the image covers (to pixel edges)."""
        u0, v0 = self.ego_pixel
        mpp = self.meters_per_pixel
        x_max = (v0 + 0.5) * mpp
        x_min = (v0 + 0.5 - self.height) * mpp
        y_max = (u0 + 0.5) * mpp
        y_min = (u0 + 0.5 - self.width) * mpp
        return (x_min, x_max, y_min, y_max)


def _check_color(name: str, value: Any) -> RGB:
    """``value`` as an RGB tuple of ints, or ``ValueError`` naming ``name``."""
    try:
        ok = len(value) == 3 and all(int(c) == c and 0 <= c <= 255 for c in value)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected an RGB triple of ints in [0, 255], got {value!r}")
    return (int(value[0]), int(value[1]), int(value[2]))


MOTION_PRESETS: dict[str, dict[str, Any]] = {
    "none": {},
    "velocity": {"motion_horizons": (1.0, 2.0)},
    "velocity3": {"motion_horizons": (1.0, 2.0, 3.0)},
    "velocity_filled": {"motion_horizons": (1.0, 2.0, 3.0), "motion_fill": 0.35},
    "trails": {"history_length": 8, "history_step": 2},
    "velocity+trails": {"motion_horizons": (1.0, 2.0), "history_length": 8, "history_step": 2},
}
"""Named ways to put motion in the BEV (issue #29), as :class:`BEVConfig` field overrides:

* ``none``: the default image: the past boxes of the history trail (4 every 0.5 s) and nothing else;
* ``velocity``: velocity marks at +1 s and +2 s (:attr:`BEVConfig.motion_horizons`);
* ``velocity3``: velocity marks at +1, +2 and +3 s;
* ``velocity_filled``: velocity marks at +1, +2 and +3 s, their boxes filled (a faded future trail,
  :attr:`BEVConfig.motion_fill`);
* ``trails``: a denser, longer past (8 past boxes every 0.2 s: the BEV's analogue of a stack of past frames);
* ``velocity+trails``: both.

Measured readability of each: ``docs/vla.md`` ("Motion in the observation")."""


def with_motion(config: BEVConfig, motion: str) -> BEVConfig:
    """``config`` with the :data:`MOTION_PRESETS` entry ``motion`` applied (``"none"``: ``config`` itself)."""
    if motion not in MOTION_PRESETS:
        raise ValueError(f"motion: expected one of {tuple(MOTION_PRESETS)}, got {motion!r}")
    overrides = MOTION_PRESETS[motion]
    return dataclasses.replace(config, **overrides) if overrides else config
