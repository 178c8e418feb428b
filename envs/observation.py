"""The observation of any ``(scene, t)``: a pure builder shared by the environments and the SFT data builder.

:func:`build_observation` maps a scene (a logged scene, a closed-loop scene view whose ego is simulated, a rollout
scene, a CARLA recording) at frame ``t`` to the observation dict of :func:`envs.spaces.observation_space`; it reads
nothing but its arguments (no environment). :func:`text_prompt` turns an observation into the VLA's text prompt.

Observation (see :mod:`envs.spaces` for bounds)
----------------------------------------------
* ``"bev"``: ``uint8 (H, W, C)`` bird's-eye view of the ego frame at ``t`` (:class:`~envs.render.BEVRenderer`,
  shape from :attr:`ObservationConfig.bev`; absent when it is None). Only frames ``<= t`` are drawn. Motion is in
  the image as the agents' and the ego's past boxes (:attr:`~envs.render.BEVConfig.history_length` every
  ``history_step`` frames) and, on request, as velocity marks (:attr:`~envs.render.BEVConfig.motion_horizons`;
  named presets :data:`envs.render.MOTION_PRESETS`, ``agent.motion=...`` in the pipeline; off by default).
* ``"ego_state"``: ``float32 (3,)`` speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s] at ``t``
  (:class:`EgoKinematics`: backward differences, frames ``<= t`` only), clipped to the space bounds.
* ``"command"``: ``int64`` 0 left, 1 straight, 2 right, from the route ahead (below).
* ``"history"``: ``float32 (history_poses, 3)`` past rear-axle poses in the ego frame at ``t``, oldest first, every
  ``history_interval`` (default 4 poses at 0.5 s: -2.0 .. -0.5 s), x/y clipped to +-200 m.
* with :attr:`ObservationConfig.prompt_state` ``"ego"`` / ``"agents"`` (off by default): ``"ego_velocity"``
  ``float32 (2,)`` [m/s] and, for ``"agents"``, ``"agents"`` ``float32 (prompt_agents, 6)``: the nearest agents
  visible in the BEV at ``t`` with their relative positions [m] and velocities [m/s] (:mod:`envs.prompt_state`),
  which :func:`text_prompt` states in a ``State (...)`` sentence.

Driving command
---------------
The command (``0`` left, ``1`` straight, ``2`` right; :data:`COMMANDS`) comes from the **route ahead**: the ego's
rear axle is projected onto the route centreline (arc length ``s``), and the heading change of the route between
``s`` and ``s + lookahead`` (default 30 m, clamped at the route's end) is compared with a threshold (default 15 deg):
a change above ``+threshold`` (counter-clockwise) is *left*, below ``-threshold`` *right*, else *straight*. The
heading change is measured along the route, not against the ego's heading, so drifting inside a lane does not change
the command; a lane change without a turn is *straight*. With a 30 m window a 90-deg junction turn of ~10 m radius
reads *left*/*right* from about 27 m before its start.

The route is the map's ego route (``SceneMap.route``) when the scene has a map; otherwise (DeepAccident) it is the
ego's **logged** path, which is what a navigation system would have planned for it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from envs.prompt_state import check_prompt_options, ego_velocity, hazard_state, state_text, visible_agents
from envs.render import BEVConfig, BEVRenderer
from envs.scenes.scene import Scene
from envs.spaces import EGO_STATE_HIGH, EGO_STATE_LOW, HISTORY_RANGE
from rewards import kernels
from rewards.geometry import polyline_arclength, rotate_vectors, world_to_local, wrap_angle

COMMANDS = ("left", "straight", "right")
"""Names of the ``command`` observation values, by index."""
LEFT, STRAIGHT, RIGHT = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Route:
    """A route centreline with its arc length, for projections and commands [world frame].

    Attributes:
        points: ``(R, 2)`` [m] in driving order, no repeated consecutive points, R >= 2.
        arclength: ``(R,)`` [m] cumulative, starting at 0.
        headings: ``(R - 1,)`` [rad] segment headings, unwrapped (so differences are real turning angles).
    """

    points: np.ndarray
    arclength: np.ndarray
    headings: np.ndarray

    @classmethod
    def from_points(cls, points: np.ndarray, name: str = "route") -> "Route":
        """Route through ``points (K, 2)`` [m]; points closer than 1 cm to the previous kept point are dropped."""
        pts = np.asarray(points, dtype=np.float64)
        keep = [0]
        for i in range(1, len(pts)):
            if np.linalg.norm(pts[i] - pts[keep[-1]]) > 1e-2:
                keep.append(i)
        pts = pts[keep]
        if len(pts) < 2:
            raise ValueError(f"{name}: needs at least 2 distinct points, got {len(pts)}")
        d = np.diff(pts, axis=0)
        return cls(points=np.ascontiguousarray(pts), arclength=np.ascontiguousarray(polyline_arclength(pts)),
                   headings=np.unwrap(np.arctan2(d[:, 1], d[:, 0])))

    @classmethod
    def from_scene(cls, scene: Scene) -> "Route":
        """The map's ego route, else the ego's logged path; a stationary ego without a map gets a 1 m stub ahead."""
        if scene.map is not None:
            return cls.from_points(scene.map.route, f"scene {scene.scene_id}: map.route")
        path = scene.ego_poses[:, :2]
        if polyline_arclength(path)[-1] < 0.1:
            x, y, yaw = scene.ego_poses[-1]
            path = np.array([[x, y], [x + np.cos(yaw), y + np.sin(yaw)]])
        return cls.from_points(path, f"scene {scene.scene_id}: logged ego path")

    @property
    def length(self) -> float:
        """Total length [m]."""
        return float(self.arclength[-1])

    def project(self, xy: np.ndarray) -> float:
        """Arc length [m] of the point of the route closest to ``xy (2,)`` [m] (first segment on ties; the scorer's
        compiled projection, :func:`rewards.kernels.project_points`)."""
        point = np.asarray(xy, dtype=np.float64).reshape(1, 2)
        key = point.tobytes()
        last = self.__dict__.get("_last_projection")
        if last is not None and last[0] == key:  # the same point again (a step projects the ego's pose 3 times)
            return last[1]
        s = float(kernels.project_points(point, self.points, self.arclength)[0])
        object.__setattr__(self, "_last_projection", (key, s))
        return s

    def heading_at(self, s: float) -> float:
        """Unwrapped heading [rad] of the segment at arc length ``s`` [m] (clamped to the route)."""
        i = min(max(int(np.searchsorted(self.arclength, s, side="right")) - 1, 0), len(self.headings) - 1)
        return float(self.headings[i])


def route_command(route: Route, s: float, lookahead: float = 30.0, threshold: float = np.radians(15.0)) -> int:
    """Driving command from the route ahead of arc length ``s`` (see the module docstring).

    Args:
        route: the route.
        s: arc length [m] of the ego's rear axle projected on the route (:meth:`Route.project`).
        lookahead: window along the route [m].
        threshold: heading change [rad] above which the command is a turn.

    Returns:
        ``LEFT`` (0), ``STRAIGHT`` (1) or ``RIGHT`` (2).
    """
    # Heading at the far end of the window, measured on the segment just before it (robust at the route's end).
    change = route.heading_at(min(s + lookahead, route.length) - 1e-6) - route.heading_at(s)
    if change > threshold:
        return LEFT
    if change < -threshold:
        return RIGHT
    return STRAIGHT


def pose_history(poses: np.ndarray, frame: int, num: int, interval: int) -> np.ndarray:
    """Past ego poses in the ego frame at ``frame``, oldest first.

    Args:
        poses: ``(T, 3)`` rear-axle poses, world frame [m, m, rad].
        frame: the current frame.
        num: how many past poses (the current one, always the origin, is not included).
        interval: frames between them (5 at 10 Hz: 0.5 s).

    Returns:
        ``(num, 3)`` float32 poses at frames ``frame - num*interval, ..., frame - interval`` [m, m, rad]; frames
        before the log's start repeat frame 0.
    """
    frames = np.maximum(frame - interval * np.arange(num, 0, -1), 0)
    return world_to_local(poses[frames], poses[frame]).astype(np.float32)


def ego_status(body_velocity: np.ndarray, body_acceleration: np.ndarray, yaw_rate: float) -> np.ndarray:
    """``(3,)`` float32 (speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s])."""
    return np.array([np.hypot(*body_velocity), body_acceleration[0], yaw_rate], dtype=np.float32)


@dataclass(frozen=True)
class ObservationConfig:
    """What the observation holds; every field is documented, units in brackets."""

    bev: BEVConfig | None = field(default_factory=lambda: BEVConfig(antialias=False))
    """BEV raster (size, resolution, RGB or semantic channels); None drops ``"bev"`` (state-only policies).
    Default: 128 px RGB at 0.5 m/px without anti-aliasing (a policy needs no smoothed edges)."""
    history_poses: int = 4
    """Past poses in ``history``."""
    history_interval: float = 0.5
    """Time between ``history`` poses [s] (a multiple of the scene step)."""
    command_lookahead: float = 30.0
    """Route length ahead used for the command [m]."""
    command_threshold_deg: float = 15.0
    """Route heading change above which the command is a turn [deg]."""
    prompt_state: str = "none"
    """Motion as numbers in the observation and the prompt (:mod:`envs.prompt_state`): ``"none"`` (default:
    observation and prompt unchanged), ``"ego"`` (``"ego_velocity"``) or ``"agents"`` (``"ego_velocity"`` and the
    ``prompt_agents`` nearest agents visible in the BEV, ``"agents"``)."""
    prompt_agents: int = 4
    """Rows of ``"agents"`` with ``prompt_state="agents"``: the nearest visible agents stated [agents]."""
    privileged_hazard: bool = False
    """Add ``"hazard"`` ``float32 (8,)``: the scenario's designated hazard agent's relative motion and closest
    approach (:func:`envs.prompt_state.hazard_state`). PRIVILEGED (the scene's meta names the agent): a diagnostic
    and teacher input, never in the prompt. Default off."""

    def __post_init__(self) -> None:
        if not isinstance(self.privileged_hazard, (bool, np.bool_)):
            raise ValueError(f"ObservationConfig.privileged_hazard: expected a bool, got {self.privileged_hazard!r}")
        if self.bev is not None and not isinstance(self.bev, BEVConfig):
            raise ValueError(f"ObservationConfig.bev: expected a BEVConfig or None, got {type(self.bev).__name__}")
        check_prompt_options("ObservationConfig", self.prompt_state, self.prompt_agents)
        if isinstance(self.history_poses, bool) or not isinstance(self.history_poses, (int, np.integer)) \
                or self.history_poses < 1:
            raise ValueError(f"ObservationConfig.history_poses: expected an int >= 1, got {self.history_poses!r}")
        for name in ("history_interval", "command_lookahead", "command_threshold_deg"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating)) and np.isfinite(value) and value > 0):
                raise ValueError(f"ObservationConfig.{name}: expected a positive number, got {value!r}")


@dataclass(frozen=True, eq=False)
class EgoKinematics:
    """The ego's motion per frame, the ego-state part of the observation (arrays may be updated in place by a
    closed loop, e.g. :class:`envs.sim.simulation.EgoTrack`).

    Attributes:
        poses: ``(T, 3)`` rear-axle poses, world frame [m, m, rad].
        body_velocities: ``(T, 2)`` (longitudinal, lateral) velocity in the ego body frame [m/s].
        body_accelerations: ``(T, 2)`` (longitudinal, lateral) acceleration in the body frame [m/s^2].
        yaw_rates: ``(T,)`` [rad/s].
    """

    poses: np.ndarray
    body_velocities: np.ndarray
    body_accelerations: np.ndarray
    yaw_rates: np.ndarray

    @classmethod
    def from_log(cls, poses: np.ndarray, velocities: np.ndarray, dt: float) -> "EgoKinematics":
        """Kinematics of a logged ego: ``poses (T, 3)`` [m, m, rad], world-frame ``velocities (T, 2)`` [m/s] every
        ``dt`` [s]. **Causal**: the values at frame ``t`` read frames ``<= t`` only (what a sensor at ``t`` knows).
        Accelerations are backward differences of the world velocities, ``(v[t] - v[t-1]) / dt`` rotated into the
        body frame at ``t``; yaw rates are backward differences of the yaw, ``wrap(yaw[t] - yaw[t-1]) / dt``; both
        are **zero at the first frame**. The closed loop (:meth:`envs.sim.simulation.EgoTrack.advance`: yaw rate)
        and the CARLA recorder (:meth:`envs.carla.ticking.EpisodeTicker.record`) use the same differences."""
        poses = np.array(poses, dtype=np.float64)
        velocities = np.array(velocities, dtype=np.float64)
        T = len(poses)
        acc = np.zeros((T, 2))
        yaw_rates = np.zeros(T)
        if T > 1:
            acc[1:] = (velocities[1:] - velocities[:-1]) / dt
            yaw_rates[1:] = wrap_angle(np.diff(poses[:, 2])) / dt
        return cls(
            poses=poses,
            body_velocities=rotate_vectors(velocities, -poses[:, 2]),
            body_accelerations=rotate_vectors(acc, -poses[:, 2]),
            yaw_rates=yaw_rates,
        )

    @classmethod
    def from_scene(cls, scene: Scene) -> "EgoKinematics":
        """:meth:`from_log` of ``scene``'s ego."""
        return cls.from_log(scene.ego_poses, scene.ego_velocities, scene.dt)


@functools.lru_cache(maxsize=8)
def renderer_for(config: BEVConfig) -> BEVRenderer:
    """A shared :class:`BEVRenderer` per (frozen, hashable) :class:`BEVConfig` (renderers cache map geometry)."""
    return BEVRenderer(config)


def build_observation(
    scene: Scene,
    t: int,
    ego: EgoKinematics | None = None,
    config: ObservationConfig = ObservationConfig(),
    route: Route | None = None,
    renderer: BEVRenderer | None = None,
) -> dict[str, Any]:
    """The observation at frame ``t`` of ``scene`` (see the module docstring; pure: reads only its arguments).

    Args:
        scene: the scene to draw; for a closed loop, a view whose ego arrays hold the simulated ego up to ``t``.
        t: frame index.
        ego: the ego's kinematics (default: :meth:`EgoKinematics.from_scene`, i.e. the logged ego).
        config: what the observation holds.
        route: the route for the command (default: :meth:`Route.from_scene`; pass a cached one in loops).
        renderer: BEV renderer (default: :func:`renderer_for` ``(config.bev)``).

    Returns:
        ``{"bev"?: uint8 (H, W, C), "ego_state": float32 (3,), "command": int64, "history": float32 (H_hist, 3)}``,
        plus ``"ego_velocity": float32 (2,)`` and ``"agents": float32 (K, 6)`` as ``config.prompt_state`` asks and
        the privileged ``"hazard": float32 (8,)`` with ``config.privileged_hazard``.
    """
    if not 0 <= int(t) < scene.num_frames:
        raise ValueError(f"t: frame {t} is outside [0, {scene.num_frames}) of scene {scene.scene_id}")
    t = int(t)
    ego = EgoKinematics.from_scene(scene) if ego is None else ego
    route = Route.from_scene(scene) if route is None else route
    step = int(round(config.history_interval / scene.dt))
    if step < 1 or abs(step * scene.dt - config.history_interval) > 1e-6:
        raise ValueError(f"ObservationConfig.history_interval={config.history_interval} s is not a multiple of the "
                         f"step dt={scene.dt} s of scene {scene.scene_id}")
    history = pose_history(ego.poses, t, config.history_poses, step)
    np.minimum(np.maximum(history[:, :2], -HISTORY_RANGE), HISTORY_RANGE, out=history[:, :2])  # np.clip, cheaper
    status = ego_status(ego.body_velocities[t], ego.body_accelerations[t], float(ego.yaw_rates[t]))
    command = route_command(route, route.project(ego.poses[t, :2]), config.command_lookahead,
                            np.radians(config.command_threshold_deg))
    obs: dict[str, Any] = {}
    if config.bev is not None:
        obs["bev"] = (renderer if renderer is not None else renderer_for(config.bev)).render(scene, t)
    obs["ego_state"] = np.minimum(np.maximum(status, EGO_STATE_LOW), EGO_STATE_HIGH)  # np.clip, cheaper
    obs["command"] = np.int64(command)
    obs["history"] = history
    if config.prompt_state != "none":
        obs["ego_velocity"] = ego_velocity(ego.body_velocities[t])
    if config.prompt_state == "agents":
        extent = (config.bev if config.bev is not None else BEVConfig()).view_extent
        obs["agents"] = visible_agents(scene, t, ego.poses[t], ego.body_velocities[t], extent, config.prompt_agents)
    if config.privileged_hazard:
        obs["hazard"] = hazard_state(scene, t, ego.poses[t], ego.body_velocities[t])
    return obs


COMMAND_WORDS = {LEFT: "turn left", STRAIGHT: "go straight", RIGHT: "turn right"}
"""Prompt words of each command."""


def text_prompt(observation: Mapping[str, Any], history_interval: float = 0.5) -> str:
    """The text instruction of an observation for a vision-language-action policy: navigation command, ego state
    and a summary of the pose history (distance travelled and heading change over it), and, when the observation
    holds them (``ObservationConfig.prompt_state``), the ego's velocity and the nearest visible agents' relative
    positions and velocities (:func:`envs.prompt_state.state_text`) before the last sentence. Deterministic.

    Example: ``"Navigation command: go straight. Speed 8.3 m/s, acceleration -0.4 m/s2, yaw rate +0.00 rad/s. Past 2.0 s:
    16.9 m travelled, heading change +0 deg. Plan the next 4 s as 8 waypoints."``

    Args:
        observation: a dict from :func:`build_observation` (``"command"``, ``"ego_state"``, ``"history"``).
        history_interval: time between history poses [s] (:attr:`ObservationConfig.history_interval`).
    """
    speed, accel, yaw_rate = (float(v) for v in observation["ego_state"])
    history = np.asarray(observation["history"], dtype=np.float64)
    travelled = float(np.hypot(*history[0, :2]))
    heading = float(np.degrees(-history[0, 2]))
    span = history_interval * len(history)
    return (f"Navigation command: {COMMAND_WORDS[int(observation['command'])]}. Speed {speed:.1f} m/s, acceleration "
            f"{accel:+.1f} m/s2, yaw rate {yaw_rate:+.2f} rad/s. Past {span:.1f} s: {travelled:.1f} m travelled, "
            f"heading change {heading:+.0f} deg.{state_text(observation)} Plan the next 4 s as 8 waypoints.")
