"""Kinematic invariants any :class:`~envs.scenes.scene.Scene` should satisfy, to catch a wrong frame convention.

A mirrored axis, a negated yaw or a negated velocity component in a reader leaves parallel traffic untouched but
breaks crossing traffic. Two checks detect it on any scene, with no ground truth needed:

* **heading vs motion**: for a moving object (finite-difference speed above ``min_speed``) the yaw should point along
  the direction of motion; a sample disagrees when they differ by more than ``heading_tol``;
* **velocity vs finite differences**: the stored velocity should match the central difference of the positions,
  ``(p[t+1] - p[t-1]) / (2 dt)``; a sample disagrees when the error exceeds ``velocity_tol + velocity_rel_tol * |fd|``.

Samples use frames ``t-1, t, t+1`` all valid (agents' padded frames are skipped). The ego uses its rear-axle poses
(velocity along the heading there). From the logged collision frame on, the ego and the colliding agent are skipped
(contact makes heading and motion legitimately disagree). A scene **fails** when more than ``max_bad_fraction`` of
either kind of samples disagree (a few spawn or contact artefacts do not fail a real log).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.scenes.scene import Scene
from rewards.geometry import wrap_angle


@dataclass(frozen=True)
class KinematicsCheckConfig:
    """Thresholds of :func:`check_kinematics`."""

    min_speed: float = 2.0
    """Heading is checked only where the finite-difference speed exceeds this [m/s]."""
    heading_tol: float = np.pi / 4
    """Largest heading vs motion-direction difference that still agrees [rad]."""
    velocity_tol: float = 1.0
    """Absolute part of the velocity tolerance [m/s]."""
    velocity_rel_tol: float = 0.2
    """Relative part of the velocity tolerance (times the finite-difference speed)."""
    max_bad_fraction: float = 0.1
    """A scene fails when more than this fraction of either kind of samples disagree."""


@dataclass(frozen=True)
class KinematicsCheck:
    """Result of :func:`check_kinematics`.

    Attributes:
        heading_samples, heading_bad: moving samples checked, and those whose heading disagrees with the motion.
        max_heading_error: largest heading vs motion difference [rad] (0 without samples).
        velocity_samples, velocity_bad: samples checked, and those whose velocity disagrees with the positions.
        max_velocity_error: largest ``|v - fd|`` [m/s] (0 without samples).
        worst: up to 3 descriptions of the worst samples of each kind (object, frame, error).
        passed: neither kind has more than ``max_bad_fraction`` bad samples.
    """

    heading_samples: int
    heading_bad: int
    max_heading_error: float
    velocity_samples: int
    velocity_bad: int
    max_velocity_error: float
    worst: tuple[str, ...]
    passed: bool

    def summary(self) -> str:
        """One line: counts and maxima of both checks."""
        return (f"heading vs motion: {self.heading_bad}/{self.heading_samples} moving samples off by more than the "
                f"tolerance (max {self.max_heading_error:.2f} rad); velocity vs finite differences: "
                f"{self.velocity_bad}/{self.velocity_samples} off (max {self.max_velocity_error:.2f} m/s)")

    def as_dict(self) -> dict:
        """Plain, JSON-serialisable form (for ``meta.extra``)."""
        return {
            "passed": self.passed,
            "heading_samples": self.heading_samples,
            "heading_bad": self.heading_bad,
            "max_heading_error_rad": round(self.max_heading_error, 4),
            "velocity_samples": self.velocity_samples,
            "velocity_bad": self.velocity_bad,
            "max_velocity_error_mps": round(self.max_velocity_error, 4),
            "worst": list(self.worst),
        }


def _tracks(scene: Scene):
    """(name, poses (T, 3), velocities (T, 2), valid (T,), first skipped frame) per object, the ego first."""
    T = scene.num_frames
    cf = scene.meta.collision_frame
    cut = T if cf is None else int(cf)
    yield "ego", scene.ego_poses, scene.ego_velocities, np.ones(T, dtype=bool), cut
    for n in range(scene.num_agents):
        agent_id = int(scene.agent_ids[n])
        agent_cut = cut if agent_id == scene.meta.colliding_agent_id else T
        yield f"agent {agent_id}", scene.agent_poses[n], scene.agent_velocities[n], scene.agent_valid[n], agent_cut


def _worst(errors: list[np.ndarray], where: list[tuple[str, np.ndarray, np.ndarray]], tol: float, what: str,
           unit: str) -> list[str]:
    """Descriptions of the (up to) 3 largest errors above ``tol``."""
    if not errors:
        return []
    err = np.concatenate(errors)
    owner = np.concatenate([np.full(len(e), k) for k, e in enumerate(errors)])
    pos = np.concatenate([np.arange(len(e)) for e in errors])
    out = []
    for i in np.argsort(-err, kind="stable")[:3]:
        if err[i] <= tol:
            break
        name, frames, speed = where[owner[i]]
        out.append(f"{name} frame {int(frames[pos[i]])}: {what} by {err[i]:.2f} {unit} at {speed[pos[i]]:.1f} m/s")
    return out


def check_kinematics(scene: Scene, config: KinematicsCheckConfig = KinematicsCheckConfig()) -> KinematicsCheck:
    """Run both invariant checks on ``scene`` (see the module docstring)."""
    T = scene.num_frames
    h_errs: list[np.ndarray] = []
    v_errs: list[np.ndarray] = []
    h_where: list[tuple[str, np.ndarray, np.ndarray]] = []
    v_where: list[tuple[str, np.ndarray, np.ndarray]] = []
    h_bad = v_bad = 0
    if T >= 3:
        frames = np.arange(1, T - 1)
        for name, poses, vels, valid, cut in _tracks(scene):
            ok = valid[:-2] & valid[1:-1] & valid[2:] & (frames + 1 < cut)
            if not ok.any():
                continue
            fd = (poses[2:, :2] - poses[:-2, :2]) / (2.0 * scene.dt)  # (T-2, 2) [m/s]
            speed = np.hypot(fd[:, 0], fd[:, 1])
            v_err = np.hypot(*(vels[1:-1] - fd).T)
            h_err = np.abs(wrap_angle(poses[1:-1, 2] - np.arctan2(fd[:, 1], fd[:, 0])))
            moving = ok & (speed > config.min_speed)
            h_bad += int(np.sum(h_err[moving] > config.heading_tol))
            v_bad += int(np.sum(v_err[ok] > config.velocity_tol + config.velocity_rel_tol * speed[ok]))
            h_errs.append(h_err[moving])
            h_where.append((name, frames[moving], speed[moving]))
            v_errs.append(v_err[ok])
            v_where.append((name, frames[ok], speed[ok]))
    n_h = int(sum(len(e) for e in h_errs))
    n_v = int(sum(len(e) for e in v_errs))
    worst = _worst(h_errs, h_where, config.heading_tol, "heading off the motion", "rad") + \
        _worst(v_errs, v_where, config.velocity_tol, "velocity off the finite difference", "m/s")
    return KinematicsCheck(
        heading_samples=n_h,
        heading_bad=h_bad,
        max_heading_error=float(max((e.max() for e in h_errs if len(e)), default=0.0)),
        velocity_samples=n_v,
        velocity_bad=v_bad,
        max_velocity_error=float(max((e.max() for e in v_errs if len(e)), default=0.0)),
        worst=tuple(worst),
        passed=bool(h_bad <= config.max_bad_fraction * n_h and v_bad <= config.max_bad_fraction * n_v),
    )
