"""Trajectory tracking in CARLA: pure pursuit (steering) + PID (throttle / brake) on a timed path.

The environment's action is a NAVSIM trajectory (8 rear-axle poses at 0.5 s, ego frame). In CARLA it is driven by a
:class:`TrajectoryController` every simulation tick (20 Hz by default) until the next re-plan:

* the action becomes a :class:`TimedPath` in the **right-handed world frame**: the rear-axle pose at the decision
  time (t = 0) followed by the 8 poses at 0.5 s spacing, extended straight beyond 4 s at the last segment's speed;
* **steering (pure pursuit)**: the look-ahead point lies ``L = max(lookahead_min, lookahead_time * v)`` metres along
  the path ahead of the point closest to the rear axle; with ``alpha`` its bearing in the vehicle frame the curvature
  is ``kappa = 2 sin(alpha) / L`` and the front-wheel angle ``delta = atan(kappa * wheelbase)``; CARLA's
  ``steer = -delta / max_steer`` (CARLA's positive steer turns right, :mod:`envs.carla.frames`);
* **speed (PID on speed + position lag)**: the commanded acceleration is
  ``a = kp (v_ref(t + preview) - v) + ki * integral + kpos (s_ref(t) - s)`` where ``v_ref`` is the path's timed
  speed (piecewise constant between poses) and ``s_ref(t) - s`` the arc-length lag behind the timed position (so a
  vehicle behind schedule catches up; no feed-forward of the piecewise speed's jumps, which would brake at every
  pose after a catch-up segment); ``a > 0`` maps to ``throttle = a / accel_max``, ``a < 0`` to ``brake = -a / brake_max``; below
  ``stop_speed`` with a stopping reference the brake holds the car (``brake = 1``).

The same controller drives the scripted adversaries along their timed lane paths (:mod:`envs.carla.scenarios`).
Gains are tuned on the stand-in's vehicle model (:mod:`envs.carla.standin.server`: 4 m/s^2 at full throttle,
8 m/s^2 at full brake, 70 deg full steer); they have not been tuned on a real CARLA server, whose throttle-to-
acceleration map is nonlinear (gears, engine torque curve): set ``ControllerConfig.accel_max`` / ``brake_max`` for the
ego blueprint in use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rewards.geometry import local_to_world


@dataclass(frozen=True)
class ControllerConfig:
    """Gains and vehicle constants of :class:`TrajectoryController`; units in brackets."""

    lookahead_min: float = 3.0
    """Minimum pure-pursuit look-ahead distance [m]."""
    lookahead_time: float = 0.5
    """Look-ahead distance per unit speed [s] (``L = max(lookahead_min, lookahead_time * v)``)."""
    speed_preview: float = 0.2
    """How far ahead in time the speed reference is read [s] (compensates the actuation lag)."""
    kp: float = 2.0
    """Proportional gain on the speed error [1/s] (m/s^2 per m/s)."""
    ki: float = 0.2
    """Integral gain on the speed error [1/s^2]."""
    kpos: float = 0.5
    """Gain on the arc-length lag behind the timed reference [1/s^2]."""
    integral_limit: float = 2.0
    """Anti-windup bound of the integral term [m/s]."""
    accel_max: float = 4.0
    """Acceleration at full throttle [m/s^2] (stand-in model; calibrate for a real CARLA blueprint)."""
    brake_max: float = 8.0
    """Deceleration at full brake [m/s^2]."""
    max_steer_deg: float = 70.0
    """Front-wheel angle at ``steer = 1`` [deg] (CARLA's default ``WheelPhysicsControl.max_steer_angle``)."""
    stop_speed: float = 0.3
    """Below this reference and vehicle speed the brake holds the vehicle [m/s]."""


@dataclass(frozen=True, eq=False)
class TimedPath:
    """A reference: rear-axle positions ``points (K, 2)`` [m] (right-handed world) at ``times (K,)`` [s], K >= 2,
    times strictly increasing; beyond the last time it continues straight at the last segment's speed."""

    points: np.ndarray
    times: np.ndarray

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float64)
        times = np.asarray(self.times, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 2 or times.shape != (len(pts),):
            raise ValueError(f"TimedPath: expected points (K, 2) and times (K,) with K >= 2, got {pts.shape}, "
                             f"{times.shape}")
        if np.any(np.diff(times) <= 0):
            raise ValueError("TimedPath.times: must be strictly increasing")
        seg = np.hypot(*np.diff(pts, axis=0).T)
        object.__setattr__(self, "points", pts)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "_s", np.concatenate([[0.0], np.cumsum(seg)]))
        ok = seg > 1e-6  # non-degenerate segments, for projections
        object.__setattr__(self, "_a", pts[:-1][ok])
        object.__setattr__(self, "_ab", np.diff(pts, axis=0)[ok])
        object.__setattr__(self, "_len", seg[ok])
        object.__setattr__(self, "_s0", self._s[:-1][ok])

    @classmethod
    def from_trajectory(cls, pose: np.ndarray, trajectory: np.ndarray, interval: float = 0.5) -> "TimedPath":
        """The timed path of an ego-frame trajectory ``(N, 3)`` [m, m, rad] at ``interval`` [s] from the rear-axle
        world pose ``pose (3,)`` (t = 0 at ``pose``)."""
        world = local_to_world(np.asarray(trajectory, dtype=np.float64), np.asarray(pose, dtype=np.float64))
        pts = np.concatenate([np.asarray(pose, dtype=np.float64)[None, :2], world[:, :2]])
        return cls(pts, interval * np.arange(len(pts)))

    @property
    def length(self) -> float:
        """Path length over the timed points [m]."""
        return float(self._s[-1])

    def arclength_at(self, t: float) -> float:
        """Reference arc length at time ``t`` [s] (extrapolated at the last segment's speed)."""
        if t <= self.times[-1]:
            return float(np.interp(t, self.times, self._s))
        return float(self._s[-1] + self.speed_at(self.times[-1] - 1e-9) * (t - self.times[-1]))

    def speed_at(self, t: float) -> float:
        """Reference speed at ``t`` [m/s] (piecewise constant between the timed points)."""
        k = min(max(int(np.searchsorted(self.times, t, side="right")) - 1, 0), len(self.times) - 2)
        return float((self._s[k + 1] - self._s[k]) / (self.times[k + 1] - self.times[k]))

    def point_at_s(self, s: float) -> np.ndarray:
        """``(2,)`` point at arc length ``s`` [m]; beyond the end, straight along the last non-degenerate segment."""
        if s <= self._s[-1]:
            return np.array([np.interp(s, self._s, self.points[:, 0]), np.interp(s, self._s, self.points[:, 1])])
        direction = self.end_direction()
        return self.points[-1] + (s - self._s[-1]) * direction

    def project(self, xy: np.ndarray) -> float:
        """Arc length of the path point closest to ``xy (2,)`` [m] (the last segment extended)."""
        if len(self._len) == 0:
            return 0.0
        a, ab, length = self._a, self._ab, self._len
        u = ((xy[0] - a[:, 0]) * ab[:, 0] + (xy[1] - a[:, 1]) * ab[:, 1]) / (length * length)
        u = np.maximum(u, 0.0)
        u[:-1] = np.minimum(u[:-1], 1.0)
        dx, dy = a[:, 0] + u * ab[:, 0] - xy[0], a[:, 1] + u * ab[:, 1] - xy[1]
        i = int(np.argmin(dx * dx + dy * dy))
        return float(self._s0[i] + u[i] * length[i])

    def end_direction(self) -> np.ndarray:
        """``(2,)`` unit direction of the last non-degenerate segment (zeros for a point path)."""
        d = np.diff(self.points, axis=0)
        n = np.hypot(d[:, 0], d[:, 1])
        idx = np.flatnonzero(n > 1e-6)
        if len(idx) == 0:
            return np.zeros(2)
        return d[idx[-1]] / n[idx[-1]]


class TrajectoryController:
    """Pure pursuit + PID tracking of a :class:`TimedPath` (see the module docstring).

    Args:
        config: gains and vehicle constants.
        wheelbase: the vehicle's wheelbase [m].
    """

    def __init__(self, config: ControllerConfig = ControllerConfig(), wheelbase: float = 2.9) -> None:
        self.config, self.wheelbase = config, float(wheelbase)
        self._integral = 0.0
        self.path: TimedPath | None = None

    def set_path(self, path: TimedPath, keep_integral: bool = True) -> None:
        """Track ``path`` from now on (its t = 0 is the caller's clock origin for :meth:`control`)."""
        self.path = path
        if not keep_integral:
            self._integral = 0.0

    def control(self, pose: np.ndarray, speed: float, t: float, dt: float) -> tuple[float, float, float]:
        """``(throttle, steer, brake)`` of a CARLA ``VehicleControl`` for a vehicle at rear-axle pose ``pose (3,)``
        [m, m, rad] (right-handed world) moving at ``speed`` [m/s], ``t`` [s] after the path's t = 0, for a control
        period ``dt`` [s]."""
        path, cfg = self.path, self.config
        if path is None:
            raise RuntimeError("TrajectoryController.control: call set_path first")
        t_ref = t + cfg.speed_preview
        v_ref = path.speed_at(t_ref)
        s_now = path.project(pose[:2])
        if path.length < 0.05 or (v_ref < cfg.stop_speed and path.arclength_at(t_ref) - s_now < 0.5
                                  and abs(speed) < cfg.stop_speed + 0.5):
            self._integral = 0.0
            return 0.0, 0.0, 1.0
        # Steering: pure pursuit on the rear axle.
        look = max(cfg.lookahead_min, cfg.lookahead_time * abs(speed))
        target = path.point_at_s(s_now + look)
        dx, dy = target - pose[:2]
        c, s = math.cos(pose[2]), math.sin(pose[2])
        x_local, y_local = c * dx + s * dy, -s * dx + c * dy
        dist = math.hypot(x_local, y_local)
        alpha = math.atan2(y_local, x_local) if dist > 1e-6 else 0.0
        kappa = 2.0 * math.sin(alpha) / max(dist, 1e-6)
        delta = math.atan(kappa * self.wheelbase)
        steer = min(max(-delta / math.radians(cfg.max_steer_deg), -1.0), 1.0)
        # Speed: PID + position lag.
        err = v_ref - speed
        self._integral = min(max(self._integral + err * dt, -cfg.integral_limit), cfg.integral_limit)
        lag = min(max(path.arclength_at(t) - s_now, -5.0), 5.0)
        a = cfg.kp * err + cfg.ki * self._integral + cfg.kpos * lag
        if a >= 0.0:
            return float(min(a / cfg.accel_max, 1.0)), steer, 0.0
        return 0.0, steer, float(min(-a / cfg.brake_max, 1.0))
