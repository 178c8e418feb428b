"""Adapter from a :class:`~envs.scenes.scene.Scene` at a decision frame to the scorer's :class:`~rewards.types.ScoringProblem`.

The scorer (``rewards/``) sees arrays and geometry only; this module is where a scene's log becomes those arrays:

* :func:`problem_from_scene` builds the ego state, the other objects' future boxes over the scoring window and the
  map geometry (cached per :class:`~envs.scenes.scene.SceneMap` object);
* :func:`trajectory_from_log` gives the ego's logged future as a NAVSIM trajectory (8 ego-frame rear-axle poses at
  0.5 s), i.e. NAVSIM's "human" proposal.

Choices (documented once here):

* **Ego acceleration**: the log has no accelerations, so the world-frame velocity is differentiated (central
  difference inside the log, zeros at the first and last frame, where no centred difference exists) and rotated into
  the body frame at ``t`` (x longitudinal, y lateral), matching nuPlan's body-frame ``rear_axle_acceleration_2d``.
  This is the *simulator's* start state (the scorer may read the whole log); the policy's *observation* states the
  causal backward difference instead (:meth:`envs.observation.EgoKinematics.from_log`: frames ``<= t`` only), and a
  closed-loop episode keeps that one in its observation (:class:`envs.sim.simulation.EgoTrack`).
* **Steering angle**: the scorer's start state keeps NAVSIM's convention for sources without a logged tire steering
  angle (0, straight wheels: :attr:`rewards.types.EgoState.steering_angle`). :func:`logged_steering_angle` derives
  the kinematic bicycle's steering from the logged path instead (``atan(L * kappa)``, the curvature ``kappa`` a
  central difference of the heading over the arc length); the closed loop may start from it
  (``EnvConfig.start_steering="log"``, :mod:`envs.replay_env`) so an episode that starts mid-turn keeps turning.
* **Agents' window**: ``S = config.num_observation_steps`` steps at ``config.sim_dt`` from frame ``t`` (50 by
  default: the 41 states of the horizon plus 9 for TTC). When the scene's ``dt`` differs from ``sim_dt``, poses and
  velocities are interpolated linearly in time between the two bracketing frames (yaw unwrapped first, wrapped back to
  ``[-pi, pi)``); a sample is valid only if both bracketing frames are valid (or it falls exactly on a valid frame).
* **Beyond the end of the log** the samples are marked **invalid** (``valid=False``): the scorer then sees no object
  there, which can only make NC/TTC more lenient near the end of a log, never invent a collision. Their poses are
  filled by constant-velocity extrapolation from the agent's last frame so the arrays stay finite and meaningful.
  NAVSIM's metric cache likewise only holds an object between its first and last observation.
* Agents never valid inside the window are dropped (the scorer has nothing to test against them).
* **Map**: drivable areas, lane polygons and ids, route lane ids, route and intersections are copied from
  ``scene.map``; the speed limit is the smallest speed limit of the route lanes (of all lanes when the route names
  none). ``scene.map is None`` gives ``MapGeometry`` None (DAC, DDC, EP and PDMS are then NaN).
  NAVSIM's on-route lanes are *all* lanes of the route's roadblocks (``PDMClosedPlanner._route_lane_dict``), so a lane
  change into a parallel same-direction lane is not "oncoming" there; here the on-route set is exactly
  ``SceneMap.route_lane_ids``, so scene sources should list every same-direction lane of the route in it.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np

from envs.scenes.scene import AgentClass, Scene, SceneMap
from envs.spaces import clip_trajectories
from rewards.config import PDMConfig
from rewards.geometry import rotate_vectors, wrap_angle, world_to_local
from rewards.reference_planner import forecast_problem
from rewards.tracking import MAX_STEERING_ANGLE, STOPPING_VELOCITY
from rewards.types import AgentsFuture, EgoState, MapGeometry, ScoringProblem

_TIME_TOLERANCE = 1e-9
"""Relative tolerance [-] when matching sample times to log frames."""

_MAP_CACHE: "weakref.WeakKeyDictionary[SceneMap, MapGeometry]" = weakref.WeakKeyDictionary()


# ----------------------------------------------------------------------------------------------------- validation
def _check_frame(scene: Scene, t: int) -> int:
    """``t`` as an int frame index of ``scene``; ``ValueError`` naming ``t`` otherwise."""
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
        raise ValueError(f"t: expected an integer frame index, got {t!r} ({type(t).__name__})")
    if not 0 <= int(t) < scene.num_frames:
        raise ValueError(f"t: frame {int(t)} is outside [0, {scene.num_frames}) of scene {scene.scene_id}")
    return int(t)


def _check_config(config: PDMConfig) -> None:
    """``ValueError`` unless ``config`` is a :class:`PDMConfig`."""
    if not isinstance(config, PDMConfig):
        raise ValueError(f"config: expected PDMConfig, got {type(config).__name__}")


# ------------------------------------------------------------------------------------------------------------ ego
def _ego_acceleration_world(scene: Scene, t: int) -> np.ndarray:
    """``(2,)`` world-frame ego acceleration [m/s^2] at frame ``t``: central difference, zeros at the log's ends."""
    if t == 0 or t == scene.num_frames - 1:
        return np.zeros(2)
    v = scene.ego_velocities
    return (v[t + 1] - v[t - 1]) / (2.0 * scene.dt)


def ego_state_from_scene(scene: Scene, t: int) -> EgoState:
    """Ego state at frame ``t``: rear-axle pose (world), velocity and acceleration in the body frame."""
    t = _check_frame(scene, t)
    yaw = scene.ego_poses[t, 2]
    return EgoState(
        pose=scene.ego_poses[t].copy(),
        velocity=rotate_vectors(scene.ego_velocities[t], -yaw),
        acceleration=rotate_vectors(_ego_acceleration_world(scene, t), -yaw),
        params=scene.ego_params,
    )


def logged_steering_angle(scene: Scene, t: int) -> float:
    """The tire steering angle [rad] of the kinematic bicycle that follows the logged path at frame ``t``.

    ``atan(L * kappa)`` with ``L`` the ego's wheelbase [m] and ``kappa`` the logged path's curvature [1/m] at ``t``:
    the heading change over the distance driven, central between frames ``t - 1`` and ``t + 1`` (one-sided at the
    log's ends), clipped to the tracker's +-pi/3 (:data:`rewards.tracking.MAX_STEERING_ANGLE`). 0 where the ego
    drives less than :data:`rewards.tracking.STOPPING_VELOCITY` over those frames (no heading to read; the tracker's
    stopping controller holds the wheels there anyway). Forward driving is assumed (the sign of a reversing ego's
    curvature is not recovered). Not the scorer's start state (0, :func:`ego_state_from_scene`): the closed loop's
    optional one (``EnvConfig.start_steering="log"``).
    """
    t = _check_frame(scene, t)
    if scene.num_frames < 2:
        return 0.0
    lo, hi = max(t - 1, 0), min(t + 1, scene.num_frames - 1)
    poses = scene.ego_poses
    ds = float(np.sum(np.hypot(*np.diff(poses[lo : hi + 1, :2], axis=0).T)))  # [m]
    if ds < STOPPING_VELOCITY * (hi - lo) * scene.dt:
        return 0.0
    kappa = float(wrap_angle(poses[hi, 2] - poses[lo, 2])) / ds
    return float(np.clip(np.arctan(scene.ego_params.wheelbase * kappa), -MAX_STEERING_ANGLE, MAX_STEERING_ANGLE))


# --------------------------------------------------------------------------------------------------------- agents
def _sample_positions(scene: Scene, t: int, num_steps: int, sim_dt: float) -> np.ndarray:
    """Fractional frame index ``(S,)`` of each sample ``t + k * sim_dt / scene.dt``, snapped to integers within
    tolerance."""
    pos = t + np.arange(num_steps) * (sim_dt / scene.dt)
    nearest = np.round(pos)
    snap = np.abs(pos - nearest) <= _TIME_TOLERANCE * np.maximum(1.0, np.abs(pos))
    return np.where(snap, nearest, pos)


def _resample_agents(scene: Scene, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agent poses ``(N, S, 3)``, velocities ``(N, S, 2)`` and validity ``(N, S)`` at fractional frames ``pos``.

    Inside the log: linear interpolation between frames ``floor`` and ``ceil`` (yaw unwrapped), valid iff both are.
    Beyond the last frame: constant-velocity extrapolation from the last frame, invalid.
    """
    last = scene.num_frames - 1
    inside = pos <= last + _TIME_TOLERANCE
    clipped = np.minimum(pos, last)
    lo = np.floor(clipped).astype(int)
    hi = np.minimum(lo + 1, last)
    frac = clipped - lo  # (S,)

    poses, vels, valid = scene.agent_poses, scene.agent_velocities, scene.agent_valid
    p_lo, p_hi = poses[:, lo], poses[:, hi]  # (N, S, 3)
    dyaw = wrap_angle(p_hi[..., 2] - p_lo[..., 2])  # unwrap: shortest turn between the two frames
    out_pose = np.empty_like(p_lo)
    out_pose[..., :2] = p_lo[..., :2] + frac[None, :, None] * (p_hi[..., :2] - p_lo[..., :2])
    out_pose[..., 2] = wrap_angle(p_lo[..., 2] + frac[None, :] * dyaw)
    out_vel = vels[:, lo] + frac[None, :, None] * (vels[:, hi] - vels[:, lo])
    on_frame = frac == 0.0
    out_valid = valid[:, lo] & (valid[:, hi] | on_frame[None, :])

    beyond = ~inside
    if np.any(beyond):
        extra_time = (pos[beyond] - last) * scene.dt  # (B,) [s]
        out_pose[:, beyond, :2] = poses[:, last, None, :2] + vels[:, last, None, :] * extra_time[None, :, None]
        out_pose[:, beyond, 2] = poses[:, last, None, 2]
        out_vel[:, beyond] = vels[:, last, None, :]
        out_valid[:, beyond] = False
    return out_pose, out_vel, out_valid


def agents_future_from_scene(scene: Scene, t: int, config: PDMConfig = PDMConfig()) -> AgentsFuture:
    """Other objects' boxes over ``config.num_observation_steps`` steps at ``config.sim_dt`` from frame ``t``.

    See the module docstring for resampling, the end of the log (invalid) and dropped agents.
    """
    t = _check_frame(scene, t)
    _check_config(config)
    pos = _sample_positions(scene, t, config.num_observation_steps, config.sim_dt)
    poses, vels, valid = _resample_agents(scene, pos)
    keep = valid.any(axis=1)
    return AgentsFuture(
        ids=scene.agent_ids[keep],
        is_static=scene.agent_classes[keep] == AgentClass.STATIC,
        sizes=scene.agent_sizes[keep],
        poses=poses[keep],
        velocities=vels[keep],
        valid=valid[keep],
    )


# ------------------------------------------------------------------------------------------------------------ map
def map_geometry_from_scene_map(scene_map: SceneMap) -> MapGeometry:
    """:class:`MapGeometry` of ``scene_map`` (cached per ``SceneMap`` object, released with it)."""
    cached = _MAP_CACHE.get(scene_map)
    if cached is not None:
        return cached
    route_ids = set(scene_map.route_lane_ids)
    route_lanes = [lane for lane in scene_map.lanes if lane.lane_id in route_ids] or list(scene_map.lanes)
    speed_limit = min((lane.speed_limit for lane in route_lanes), default=MapGeometry.speed_limit)
    geometry = MapGeometry(
        drivable_areas=scene_map.drivable_areas,
        lane_polygons=tuple(lane.polygon for lane in scene_map.lanes),
        lane_ids=np.array([lane.lane_id for lane in scene_map.lanes], dtype=np.int64),
        route_lane_ids=scene_map.route_lane_ids,
        route=scene_map.route,
        intersections=scene_map.intersections,
        speed_limit=float(speed_limit),
    )
    _MAP_CACHE[scene_map] = geometry
    return geometry


def problem_from_scene(scene: Scene, t: int, config: PDMConfig = PDMConfig()) -> ScoringProblem:
    """Scoring problem of ``scene`` at decision frame ``t``: ego state, agents' future boxes, map geometry.

    Args:
        scene: any scene (synthetic, DeepAccident, CARLA, rollout).
        t: decision frame, ``0 <= t < scene.num_frames``.
        config: provides ``sim_dt`` and the window length ``num_observation_steps``.

    Raises:
        ValueError: ``t`` is not an integer frame of the scene, or ``config`` is not a :class:`PDMConfig`.
    """
    t = _check_frame(scene, t)
    _check_config(config)
    return ScoringProblem(
        ego=ego_state_from_scene(scene, t),
        agents=agents_future_from_scene(scene, t, config),
        map=None if scene.map is None else map_geometry_from_scene_map(scene.map),
        scene_id=scene.scene_id,
        time_index=t,
    )


# ----------------------------------------------------------------------------------------------------- trajectory
def trajectory_from_log(scene: Scene, t: int, config: PDMConfig = PDMConfig()) -> np.ndarray:
    """The ego's logged future at ``t`` as a trajectory ``(num_poses, 3)`` in the ego frame at ``t`` [m, m, rad].

    Poses at ``k * config.pose_interval`` for ``k = 1 .. num_poses`` (NAVSIM's human trajectory), interpolated
    linearly between frames (yaw unwrapped) when they fall between frames.

    Raises:
        ValueError: ``t`` is invalid, or the log ends before ``t + horizon`` (the message gives the frames needed).
    """
    t = _check_frame(scene, t)
    _check_config(config)
    times = np.arange(1, config.num_poses + 1) * config.pose_interval
    pos = t + times / scene.dt
    nearest = np.round(pos)
    pos = np.where(np.abs(pos - nearest) <= _TIME_TOLERANCE * np.maximum(1.0, pos), nearest, pos)
    last = scene.num_frames - 1
    if pos[-1] > last:
        need = int(np.ceil(pos[-1]))
        raise ValueError(
            f"t: scene {scene.scene_id} has frames 0..{last}; the logged trajectory at frame {t} needs frame {need} "
            f"({config.horizon} s at dt={scene.dt} s), so t must be <= {last - (need - t)}"
        )
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, last)
    frac = pos - lo
    p_lo, p_hi = scene.ego_poses[lo], scene.ego_poses[hi]
    world = np.empty((config.num_poses, 3))
    world[:, :2] = p_lo[:, :2] + frac[:, None] * (p_hi[:, :2] - p_lo[:, :2])
    world[:, 2] = p_lo[:, 2] + frac * wrap_angle(p_hi[:, 2] - p_lo[:, 2])
    return world_to_local(world, scene.ego_poses[t])


def log_as_action(scene: Scene, t: int, pose: np.ndarray, config: PDMConfig = PDMConfig()) -> np.ndarray:
    """The ego's logged future from frame ``t`` as an action seen from ``pose`` (the current, possibly simulated,
    rear-axle pose): ``(num_poses, 3)`` float32 [m, m, rad].

    The logged rear-axle poses at ``t + pose_interval, ..., t + horizon`` (frames past the log's end repeat its last
    pose; the scene step must divide the pose interval) expressed in the frame of ``pose`` and clipped to the
    action bounds (:func:`envs.spaces.clip_trajectories`). Replaying it closed loop follows the log; with ``pose``
    the logged pose at ``t`` it equals :func:`trajectory_from_log` wherever that is defined.
    """
    t = _check_frame(scene, t)
    _check_config(config)
    step = int(round(config.pose_interval / scene.dt))
    frames = np.minimum(t + step * np.arange(1, config.num_poses + 1), scene.num_frames - 1)
    return clip_trajectories(world_to_local(scene.ego_poses[frames], np.asarray(pose, dtype=np.float64)))


BEST_RESPONSE_FRACTIONS = (1.0, 0.9, 0.8, 0.6, 0.3, 0.0)
"""Fractions of the logged speed the group score's best response chooses among by default
(:meth:`envs.replay_env.ReplayEnv.best_response`, ``GRPOConfig.teacher_fractions``; the family
``benchmarks/bench_group_score.py`` measures)."""


def slowed(trajectory: np.ndarray, fraction: float, dt: float = 0.5) -> np.ndarray:
    """The path of ``trajectory (K, 3)`` [m, m, rad] (ego frame, poses every ``dt`` s from the origin) driven at
    ``fraction`` (in [0, 1]) of its speed: pose k at time ``fraction * (k + 1) * dt`` along it (linear between poses,
    the origin at t = 0; ``fraction = 0`` stays at the origin), ``(K, 3)`` float64."""
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"slowed: fraction must lie in [0, 1], got {fraction!r}")
    k = trajectory.shape[0]
    times = np.arange(k + 1) * dt
    poses = np.vstack([np.zeros((1, 3)), np.asarray(trajectory, dtype=np.float64)])
    tau = float(fraction) * times[1:]
    return np.stack([np.interp(tau, times, poses[:, j]) for j in range(3)], axis=-1)


MOTION_WINDOW = 0.5
"""The stretch of an agent's past log its ``ctra`` turn rate and acceleration are measured over [s]."""

PRESENT_FUTURES = ("log", "cv", "ctra")
"""The other agents' futures a best response can be scored against (:func:`present_forecast`): ``log`` their logged
futures (privileged: no observation holds them); ``cv`` every agent at constant velocity from its present box and
velocity (PDM-Closed's forecast); ``ctra`` every agent at the constant turn rate and acceleration of its last
:data:`MOTION_WINDOW` s of log (:func:`recent_motion`). ``cv`` and ``ctra`` read the present and past only."""


def recent_motion(scene: Scene, frame: int, window: float = MOTION_WINDOW) -> dict[int, tuple[float, float]]:
    """``{agent id: (yaw rate [rad/s], acceleration [m/s^2])}`` from the log between ``frame - window`` and ``frame``
    (present and past only): the change of the box heading and of the speed over that stretch, for every agent
    observed at both ends; the others are left out (constant velocity)."""
    k = max(1, int(round(window / scene.dt)))
    if frame - k < 0:
        return {}
    valid = scene.agent_valid[:, frame] & scene.agent_valid[:, frame - k]
    yaw = scene.agent_poses[:, frame, 2] - scene.agent_poses[:, frame - k, 2]
    yaw_rate = np.arctan2(np.sin(yaw), np.cos(yaw)) / (k * scene.dt)
    speed = np.hypot(*scene.agent_velocities[:, frame].T) - np.hypot(*scene.agent_velocities[:, frame - k].T)
    accel = speed / (k * scene.dt)
    return {int(i): (float(w), float(a)) for i, w, a, ok in zip(scene.agent_ids, yaw_rate, accel, valid) if ok}


def present_forecast(futures: str, scene: Scene, config: PDMConfig = PDMConfig()):
    """The ``forecast`` (a function ``ScoringProblem -> ScoringProblem`` replacing the other agents' futures) of
    :meth:`envs.replay_env.ReplayEnv.score_group` for one of :data:`PRESENT_FUTURES` on ``scene``; None for ``log``
    (the problem's own logged futures)."""
    if futures == "log":
        return None
    if futures == "cv":
        return functools.partial(forecast_problem, config=config)
    if futures == "ctra":
        return lambda problem: forecast_problem(problem, config, None, recent_motion(scene, problem.time_index))
    raise ValueError(f"futures must be one of {PRESENT_FUTURES}, got {futures!r}")
