"""Observation pieces of the replay environments that do not need rendering: route, command, ego status, history.

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

from dataclasses import dataclass

import numpy as np

from envs.scene import Scene
from rewards.geometry import polyline_arclength, world_to_local

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
        return cls(points=pts, arclength=polyline_arclength(pts), headings=np.unwrap(np.arctan2(d[:, 1], d[:, 0])))

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
        """Arc length [m] of the point of the route closest to ``xy (2,)`` [m]."""
        a, b = self.points[:-1], self.points[1:]
        ab = b - a
        u = np.clip(np.sum((xy - a) * ab, axis=1) / np.sum(ab * ab, axis=1), 0.0, 1.0)
        dist2 = np.sum((a + u[:, None] * ab - xy) ** 2, axis=1)
        i = int(np.argmin(dist2))
        return float(self.arclength[i] + u[i] * (self.arclength[i + 1] - self.arclength[i]))

    def heading_at(self, s: float) -> float:
        """Unwrapped heading [rad] of the segment at arc length ``s`` [m] (clamped to the route)."""
        i = int(np.clip(np.searchsorted(self.arclength, s, side="right") - 1, 0, len(self.headings) - 1))
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
    frames = np.clip(frame - interval * np.arange(num, 0, -1), 0, None)
    return world_to_local(poses[frames], poses[frame]).astype(np.float32)


def ego_status(body_velocity: np.ndarray, body_acceleration: np.ndarray, yaw_rate: float) -> np.ndarray:
    """``(3,)`` float32 (speed [m/s], longitudinal acceleration [m/s^2], yaw rate [rad/s])."""
    return np.array([np.hypot(*body_velocity), body_acceleration[0], yaw_rate], dtype=np.float32)


def text_prompt(command: int, speed: float) -> str:
    """A short instruction for a vision-language-action policy, e.g. for ``info["prompt"]``.

    Example: ``"You are driving at 8.3 m/s. Navigation command: go straight. Plan the next 4 s as 8 waypoints."``
    """
    words = {LEFT: "turn left", STRAIGHT: "go straight", RIGHT: "turn right"}[int(command)]
    return f"You are driving at {speed:.1f} m/s. Navigation command: {words}. Plan the next 4 s as 8 waypoints."

