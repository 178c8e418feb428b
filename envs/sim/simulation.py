"""Closed-loop simulation state for the replay environments: the ego's simulated track and the checks on it.

The ego tracks an action trajectory with the scorer's own controller + kinematic bicycle model
(:func:`rewards.tracking.simulate_candidates`); other agents replay their logs (non-reactive). This module keeps the
ego's state per frame and answers the termination questions (collision, off-road) with the scorer's geometry
(:func:`rewards.geometry.boxes_overlap`, :class:`rewards.map_index.MapIndex` behind a raster fast path) and, for
contacts, the scorer's at-fault classification (:func:`first_event`, :func:`rewards.pdm.contacts_at_fault`).

Frames: everything here is in the **world frame** unless a name says otherwise; ego poses are rear-axle poses.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref

import cv2
import numpy as np

from envs.observation import EgoKinematics
from envs.scenes.scene import Scene
from envs.sim.kernels import frame_collisions, raster_inside
from rewards.geometry import box_corners, boxes_overlap, local_to_world, rotate_vectors, vehicle_corners, wrap_angle
from rewards.config import PDMConfig
from rewards.map_index import map_index_for
from rewards.pdm import contacts_at_fault
from rewards.tracking import (
    NUM_STATE_COLUMNS,
    SAX,
    SAY,
    SVX,
    SVY,
    SX,
    SY,
    SYAW,
    finite_difference_states,
    interpolate_candidates,
    interpolation_weights,
    simulate_candidates,
    track_poses_each,
    track_poses_with_steering,
)
from rewards.types import EgoState, MapGeometry, ScoringProblem


def scene_with_ego(scene: Scene, ego_poses: np.ndarray, ego_velocities: np.ndarray) -> Scene:
    """A shallow view of ``scene`` whose ego log is replaced (no validation, no copy of the other arrays).

    Used so that consumers of a :class:`Scene` (the BEV renderer) see the closed-loop ego without copying the scene
    every step: give it read-only views of arrays the caller keeps updating in place.

    Args:
        scene: the logged scene.
        ego_poses: ``(T, 3)`` rear-axle poses, world frame [m, m, rad], finite.
        ego_velocities: ``(T, 2)`` world-frame velocities [m/s], finite.
    """
    T = scene.num_frames
    if ego_poses.shape != (T, 3) or ego_velocities.shape != (T, 2):
        raise ValueError(
            f"scene_with_ego({scene.scene_id}): expected ego arrays (T={T}, 3) and ({T}, 2), "
            f"got {ego_poses.shape} and {ego_velocities.shape}"
        )
    view = copy.copy(scene)
    object.__setattr__(view, "ego_poses", ego_poses)
    object.__setattr__(view, "ego_velocities", ego_velocities)
    return view


class EgoTrack:
    """The ego's state per frame over one episode: the log up to the start frame, simulated frames after it.

    Arrays are ``(T, ...)`` over the scene's frames and are updated in place by :meth:`advance`;
    :attr:`scene_view` is a :class:`Scene` that reads them (created once per episode).

    Attributes:
        poses: ``(T, 3)`` rear-axle poses, world frame [m, m, rad].
        velocities: ``(T, 2)`` world-frame velocities [m/s].
        body_velocities: ``(T, 2)`` (longitudinal, lateral) velocities in the ego body frame [m/s].
        body_accelerations: ``(T, 2)`` (longitudinal, lateral) accelerations [m/s^2].
        yaw_rates: ``(T,)`` [rad/s].
        steering: tire steering angle at :attr:`frame` [rad] (at the start: the start state's, ``ego``'s; the
            replay env's closed loop gives the logged path's, ``EnvConfig.start_steering``).
        kinematics: :class:`~envs.observation.EgoKinematics` over the same arrays (what the observation reads).
        frame: the current frame (the last frame that holds the ego's real, possibly simulated, state).
    """

    def __init__(self, scene: Scene, start: int, ego: EgoState, log: EgoKinematics | None = None) -> None:
        """``log``: ``EgoKinematics.from_scene(scene)`` if the caller keeps it per scene (it is copied, never
        written); computed here otherwise."""
        self.scene = scene
        if log is None:
            log = EgoKinematics.from_scene(scene)  # fresh arrays, updated in place below and by advance()
        else:
            log = EgoKinematics(poses=log.poses.copy(), body_velocities=log.body_velocities.copy(),
                                body_accelerations=log.body_accelerations.copy(), yaw_rates=log.yaw_rates.copy())
        self.kinematics = log
        self.poses = log.poses
        self.velocities = scene.ego_velocities.copy()
        self.body_velocities = log.body_velocities
        self.body_accelerations = log.body_accelerations
        self.yaw_rates = log.yaw_rates
        # The decision-time state is the scorer's (so open and closed loop start from the same EgoState); the
        # observed acceleration at ``start`` stays the log's causal one (EgoKinematics.from_log: backward difference),
        # not the scorer's EgoState.acceleration (a central difference that reads frame start + 1).
        self.poses[start] = ego.pose
        self.body_velocities[start] = ego.velocity
        self.velocities[start] = rotate_vectors(ego.velocity, ego.pose[2])
        self.frame = int(start)
        self.steering = float(ego.steering_angle)
        self._ego = ego
        pv, vv = self.poses.view(), self.velocities.view()
        pv.setflags(write=False)
        vv.setflags(write=False)
        self.scene_view = scene_with_ego(scene, pv, vv)

    @property
    def ego_state(self) -> EgoState:
        """The :class:`EgoState` at :attr:`frame` (what the scorer and the tracker start from)."""
        return self._ego

    def advance(self, states: np.ndarray, steering: float) -> None:
        """Append simulated states for the frames after :attr:`frame`.

        Args:
            states: ``(k, 7)`` tracker states ``(x, y, yaw, vx, vy, ax, ay)`` at frames ``frame+1 .. frame+k``
                (layout of :mod:`rewards.tracking`: world-frame rear-axle pose, body-frame velocity and
                acceleration), ``frame + k < T``.
            steering: steering angle [rad] at the last of them.
        """
        k = len(states)
        a, b = self.frame + 1, self.frame + 1 + k
        if b > len(self.poses):
            raise ValueError(f"EgoTrack.advance: frames {a}..{b - 1} exceed the scene's {len(self.poses)} frames")
        dt = self.scene.dt
        self.poses[a:b, 0] = states[:, SX]
        self.poses[a:b, 1] = states[:, SY]
        self.poses[a:b, 2] = wrap_angle(states[:, SYAW])
        self.body_velocities[a:b] = states[:, SVX : SVY + 1]  # SVY = SVX + 1, SAY = SAX + 1 (rewards.tracking)
        self.velocities[a:b] = rotate_vectors(self.body_velocities[a:b], self.poses[a:b, 2])
        self.body_accelerations[a:b] = states[:, SAX : SAY + 1]
        self.yaw_rates[a:b] = wrap_angle(np.diff(self.poses[a - 1 : b, 2])) / dt
        self.frame = b - 1
        self.steering = float(steering)
        # Read-only copies: EgoState keeps a frozen array as it is (rewards.types), so they are not copied again.
        pose, velocity = self.poses[self.frame].copy(), self.body_velocities[self.frame].copy()
        acceleration = self.body_accelerations[self.frame].copy()
        for arr in (pose, velocity, acceleration):
            arr.setflags(write=False)
        self._ego = EgoState(pose=pose, velocity=velocity, acceleration=acceleration, params=self._ego.params,
                             steering_angle=self.steering)


class DrivableArea:
    """Which points lie in the drivable area: a raster answers "surely inside" fast, the scorer's exact index the rest.

    The exact test is the scorer's DAC rule (:class:`rewards.map_index.MapIndex`, drivable columns: a point is
    drivable when some drivable-area or intersection polygon strictly contains it). It costs 0.1-0.4 ms per call on
    long straight bank roads, so the polygons are also rasterised once (``resolution`` m/px) and eroded by two pixels:
    a point in a remaining pixel is inside with a margin of at least one pixel, and only the other points (near an
    edge, or outside) go to the exact test. The answers equal the exact test's, except on the measure-zero seams
    between adjacent polygons (outside both for the scorer, inside here).

    Args:
        geometry: the scene's map geometry (the scorer's :class:`~rewards.types.MapGeometry`).
        resolution: raster cell [m].
    """

    def __init__(self, geometry: MapGeometry, resolution: float = 0.5) -> None:
        self.index = map_index_for(geometry)
        polygons = list(geometry.drivable_areas) + list(geometry.intersections)
        pts = np.concatenate(polygons)
        self._origin = pts.min(axis=0) - 2.0 * resolution
        size = np.ceil((pts.max(axis=0) - self._origin) / resolution).astype(int) + 3  # (nx, ny)
        mask = np.zeros((size[1], size[0]), dtype=np.uint8)  # rows: y, columns: x
        scale = 16.0 / resolution  # 4 fractional bits
        for poly in polygons:
            pix = np.round((poly - self._origin) * scale - 8.0).astype(np.int32)  # pixel centres at (i + 0.5) res
            cv2.fillPoly(mask, [pix], 1, cv2.LINE_8, 4)
        self._mask = cv2.erode(mask, np.ones((5, 5), np.uint8)).astype(bool)
        self._resolution = resolution

    def contains_numpy(self, points: np.ndarray) -> np.ndarray:
        """``(...,)`` bool: which points ``(..., 2)`` [m] lie in the drivable area (numpy reference of
        :meth:`contains`)."""
        pts = np.asarray(points, dtype=np.float64)
        flat = pts.reshape(-1, 2)
        ij = np.floor((flat - self._origin) / self._resolution).astype(np.int64)
        h, w = self._mask.shape
        ok = (ij[:, 0] >= 0) & (ij[:, 0] < w) & (ij[:, 1] >= 0) & (ij[:, 1] < h)
        inside = np.zeros(len(flat), dtype=bool)
        inside[ok] = self._mask[ij[ok, 1], ij[ok, 0]]
        rest = ~inside
        if rest.any():
            inside[rest] = self.index.contains(flat[rest])[:, self.index.drivable_columns].any(axis=-1)
        return inside.reshape(pts.shape[:-1])

    def contains(self, points: np.ndarray) -> np.ndarray:
        """``(...,)`` bool: which points ``(..., 2)`` [m] lie in the drivable area (the raster lookup compiled,
        :func:`envs.sim.kernels.raster_inside`; equal to :meth:`contains_numpy`)."""
        pts = np.asarray(points, dtype=np.float64)
        flat = np.ascontiguousarray(pts.reshape(-1, 2))
        inside = raster_inside(flat, float(self._origin[0]), float(self._origin[1]), float(self._resolution),
                               self._mask)
        rest = ~inside
        if rest.any():
            inside[rest] = self.index.contains(flat[rest])[:, self.index.drivable_columns].any(axis=-1)
        return inside.reshape(pts.shape[:-1])


def check_frames(
    scene: Scene, poses: np.ndarray, frames: np.ndarray, drivable: DrivableArea | None,
    ignore: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Collision and off-road checks of simulated ego poses against the log, one frame each.

    Args:
        scene: the logged scene (agents replay their logs).
        poses: ``(k, 3)`` simulated ego rear-axle poses, world frame [m, m, rad].
        frames: ``(k,)`` the scene frames of ``poses``.
        drivable: the scene's drivable area, or None to skip the off-road check (no map).
        ignore: optional ``(N,)`` bool over the scene's agent rows: agents never reported (the closed loop's
            agents already touched without fault, see :mod:`envs.replay_env`).

    Returns:
        ``(colliding_id (k,) int64, offroad (k,) bool)``: per frame, the id of an agent valid at that frame whose box
        overlaps the ego box (the lowest agent row; -1: none), and whether an ego corner lies outside every drivable
        polygon (strict, as the scorer's DAC).

    One compiled pass (:func:`envs.sim.kernels.frame_collisions`): the results equal :func:`check_frames_numpy`'s
    bit for bit (tested).
    """
    params = scene.ego_params
    poses = np.ascontiguousarray(poses, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.int64)
    yaw = poses[:, 2]
    agents = np.ascontiguousarray(scene.agent_poses[:, frames])  # (N, k, 3)
    valid = scene.agent_valid[:, frames]
    if ignore is not None:
        valid &= ~np.asarray(ignore, dtype=bool)[:, None]
    half_length, half_width, reach2, ids = _agent_constants(scene)
    corners, colliding = frame_collisions(
        poses, np.cos(yaw), np.sin(yaw), float(params.rear_axle_to_center), float(0.5 * params.length),
        float(0.5 * params.width), agents, np.cos(agents[..., 2]), np.sin(agents[..., 2]),
        np.ascontiguousarray(valid), half_length, half_width, reach2, ids)
    if drivable is None:
        offroad = np.zeros(len(frames), dtype=bool)
    else:
        offroad = ~drivable.contains(corners).all(axis=-1)  # (k,)
    return colliding, offroad


_AGENT_CONSTANTS: "weakref.WeakKeyDictionary[Scene, tuple]" = weakref.WeakKeyDictionary()
"""Per scene object (scenes are immutable; a closed-loop view has its own entry): :func:`_agent_constants`."""


def _agent_constants(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`check_frames` reads of the agents beside their poses, once per scene: half lengths ``(N,)`` [m],
    half widths ``(N,)`` [m], squared ego + agent half diagonals ``(N,)`` [m^2], ids ``(N,)`` int64."""
    cached = _AGENT_CONSTANTS.get(scene)
    if cached is None or scene.agent_sizes.flags.writeable:  # a writeable (unvalidated) scene: never cached
        params = scene.ego_params
        reach = 0.5 * (np.hypot(params.length, params.width) + np.hypot(*scene.agent_sizes.T))  # (N,)
        cached = (0.5 * scene.agent_sizes[:, 0], 0.5 * scene.agent_sizes[:, 1], reach ** 2,
                  np.array(scene.agent_ids, dtype=np.int64))
        for arr in cached:
            arr.setflags(write=False)
        _AGENT_CONSTANTS[scene] = cached
    return cached


@dataclasses.dataclass(frozen=True)
class DrivenFrames:
    """What :func:`first_event` found over one re-planning interval of simulated frames."""

    driven: int
    """Frames driven: up to and including the first episode-ending event, else all of them."""
    collision_agent: int
    """Id of the agent of an at-fault collision in the last driven frame (-1: none)."""
    offroad: bool
    """The last driven frame ended the episode off the road (and not in an at-fault collision)."""
    offroad_at: np.ndarray
    """``(driven,)`` bool: an ego corner off the drivable area, per driven frame."""
    contacts: tuple[int, ...]
    """Ids of the agents touched without fault in the driven frames (in order; ignored from then on)."""


def first_event(
    scene: Scene, states: np.ndarray, frames: np.ndarray, drivable: DrivableArea | None, problem: ScoringProblem,
    config: PDMConfig, ignore: np.ndarray,
) -> DrivenFrames:
    """The closed loop's termination rule over simulated frames: the first **at-fault** collision or off-road frame.

    Contacts come from :func:`check_frames` (agents in ``ignore`` skipped); each is classified by the scorer's NC
    rule (:func:`rewards.pdm.contacts_at_fault`: NAVSIM's ``get_collision_type``, the objects read from ``problem``,
    "stopped" as first seen in its window). A contact that is not the ego's fault (rear-ended, side-swiped, hit
    while stopped) does not end the episode: its agent is added to ``ignore`` **in place** (so it is not reported
    again while the boxes still overlap, as NAVSIM ignores an object after a not-at-fault contact for the rest of a
    candidate) and the frames are checked again.

    Args:
        scene: the logged scene; states: ``(k, 7)`` simulated tracker states (world rear-axle pose first);
        frames: ``(k,)`` their scene frames, ``problem.time_index < frames``; drivable: as :func:`check_frames`.
        problem: the log's scoring problem at the decision frame (its window covers ``frames``).
        config: the scorer configuration (classification thresholds).
        ignore: ``(N,)`` bool over the scene's agent rows, updated in place.
    """
    k = len(frames)
    contacts: list[int] = []
    while True:
        colliding, offroad_at = check_frames(scene, states[:, :3], frames, drivable, ignore)
        events = np.flatnonzero((colliding >= 0) | offroad_at)
        if not len(events):
            return DrivenFrames(k, -1, False, offroad_at, tuple(contacts))
        i = int(events[0])
        agent = int(colliding[i])
        if agent >= 0 and not contacts_at_fault(problem, states[i : i + 1], [int(frames[i]) - problem.time_index],
                                                [agent], config)[0]:
            ignore[scene.agent_index(agent)] = True
            contacts.append(agent)
            continue
        return DrivenFrames(i + 1, agent, agent < 0, offroad_at[: i + 1], tuple(contacts))


def check_frames_numpy(
    scene: Scene, poses: np.ndarray, frames: np.ndarray, drivable: DrivableArea | None,
    ignore: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The numpy formulation of :func:`check_frames` (same arguments and results; kept as its reference in the
    tests)."""
    params = scene.ego_params
    corners = vehicle_corners(poses, params)  # (k, 4, 2)
    colliding = np.full(len(frames), -1, dtype=np.int64)
    if scene.num_agents:
        # Bounding-circle prefilter: only agents whose centre is within the two half diagonals of the ego centre.
        centers = corners.mean(axis=1)  # (k, 2)
        agents = scene.agent_poses[:, frames]  # (N, k, 3)
        reach = 0.5 * (np.hypot(params.length, params.width) + np.hypot(*scene.agent_sizes.T))  # (N,)
        dist2 = np.sum((agents[..., :2] - centers) ** 2, axis=-1)  # (N, k)
        near = (dist2 <= reach[:, None] ** 2) & scene.agent_valid[:, frames]
        if ignore is not None:
            near &= ~np.asarray(ignore, dtype=bool)[:, None]
        if near.any():
            n_idx, k_idx = np.nonzero(near)
            sizes = scene.agent_sizes[n_idx]
            boxes = box_corners(agents[n_idx, k_idx], sizes[:, 0], sizes[:, 1])  # (M, 4, 2)
            hit = np.zeros_like(near)
            hit[n_idx, k_idx] = boxes_overlap(corners[k_idx], boxes)
            any_hit = hit.any(axis=0)
            colliding[any_hit] = scene.agent_ids[np.argmax(hit[:, any_hit], axis=0)]
    if drivable is None:
        offroad = np.zeros(len(frames), dtype=bool)
    else:
        offroad = ~drivable.contains(corners).all(axis=-1)  # (k,)
    return colliding, offroad


def simulate_prefix(
    ego: EgoState, trajectory: np.ndarray, config: PDMConfig, num_steps: int, steering: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``num_steps`` simulated states of one trajectory, as :func:`rewards.tracking.simulate_candidates`,
    starting from a given steering angle.

    A thin call into the scorer's tracker (:func:`rewards.tracking.track_poses_with_steering`): the same
    interpolation and velocity/curvature fit over the **whole** 4 s trajectory (so the tracker's 1 s look-ahead sees
    the same references), then only ``num_steps`` iterations of the compiled tracker + bicycle loop. With the same
    initial steering the states equal ``simulate_candidates(ego, trajectory[None], config)[0, 1 : num_steps + 1]``.

    ``steering`` is the tire steering angle at t=0 [rad]; a closed loop that re-plans every 0.5 s must carry it over,
    or each re-plan straightens the wheels mid-turn (log replay then drifts up to ~4 m off a junction turn). The
    scorer's candidates start from ``ego.steering_angle`` (0 for our sources, a documented deviation from NAVSIM).

    Args:
        ego: current ego state (its pose is the frame of ``trajectory``).
        trajectory: ``(num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] at ``config.pose_interval``.
        config: the scorer configuration (sampling, ``tracking`` switch).
        num_steps: states wanted after the current one, ``1 <= num_steps < config.num_sim_steps``.
        steering: initial steering angle [rad]; None: ``ego.steering_angle``.

    Returns:
        ``(states (num_steps, 7), steering (num_steps,))``: world-frame states (columns of :mod:`rewards.tracking`)
        at ``config.sim_dt`` spacing, and the steering angle [rad] at each of them (0 without tracking).
    """
    if not 1 <= num_steps < config.num_sim_steps:
        raise ValueError(f"num_steps: expected an int in [1, {config.num_sim_steps - 1}], got {num_steps}")
    if not config.tracking:
        return simulate_candidates(ego, trajectory[None], config)[0, 1 : num_steps + 1], np.zeros(num_steps)
    if steering is not None:
        ego = dataclasses.replace(ego, steering_angle=float(steering))
    poses = interpolate_candidates(ego, trajectory[None], config)  # (1, T, 3)
    states, steers = track_poses_with_steering(ego, poses, config.sim_dt, num_steps=int(num_steps),
                                               jerk_penalty_form=config.jerk_penalty_form)
    return states[0, 1:], steers[0, 1:]


def simulate_with_steering(ego: EgoState, trajectories: np.ndarray, config: PDMConfig) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rewards.tracking.simulate_candidates` with the tire steering angle per state, so one simulation serves
    both the score of a trajectory and the closed loop that drives its first states (and carries the steering).

    Args:
        ego: current ego state (the tracker starts from ``ego.steering_angle``).
        trajectories: ``(G, num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] at ``config.pose_interval``.
        config: the scorer configuration.

    Returns:
        ``(states (G, num_sim_steps, 7), steering (G, num_sim_steps))``: the states equal
        ``simulate_candidates(ego, trajectories, config)`` bit for bit; steering [rad] (0 without tracking).
    """
    if not config.tracking:
        states = simulate_candidates(ego, trajectories, config)
        return states, np.zeros(states.shape[:2])
    poses = interpolate_candidates(ego, trajectories, config)
    return track_poses_with_steering(ego, poses, config.sim_dt, jerk_penalty_form=config.jerk_penalty_form)


def follow_trajectories(
    ego: EgoState, trajectories: np.ndarray, config: PDMConfig, replan_steps: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Follow each trajectory in the closed loop, as :class:`~envs.replay_env.ReplayEnv` would drive it when a policy
    re-plans every ``replan_steps`` with the **remainder** of that trajectory; all candidates in one batch.

    At re-plan ``r`` (time ``tau = r * replan_steps * sim_dt``) the action is the trajectory's own poses at
    ``tau + pose_interval, ..., tau + horizon`` (world frame, fixed at the start; linear in time between its poses,
    heading unwrapped), seen from the ego's current simulated pose. Past the trajectory's end it continues at
    constant velocity: the last displacement repeated per pose interval, heading kept (a stop stays a stop). The
    ego tracks it with the scorer's tracker for ``replan_steps`` steps, carrying the steering angle across re-plans
    (:func:`simulate_prefix`; one compiled call per re-plan for the whole batch,
    :func:`rewards.tracking.track_poses_each`). Without ``config.tracking`` the interpolated poses are driven
    directly, so following reproduces the trajectory.

    Args:
        ego: start state (world frame; its pose is the frame of ``trajectories``; its steering angle is the start's).
        trajectories: ``(G, num_poses, 3)`` ego-frame rear-axle poses [m, m, rad] at ``config.pose_interval``.
        config: the scorer configuration (sampling, tracking).
        replan_steps: simulation steps between re-plans (5 = 0.5 s at 0.1 s), dividing ``num_sim_steps - 1``.

    Returns:
        ``(states (G, num_sim_steps, 7), steering (G, num_sim_steps))``: the driven world-frame states (state 0 =
        ``ego``; columns of :mod:`rewards.tracking`) and the tire steering angle [rad] at each.
    """
    trajs = np.asarray(trajectories, dtype=np.float64)
    if trajs.ndim != 3 or trajs.shape[1:] != (config.num_poses, 3) or not np.all(np.isfinite(trajs)):
        raise ValueError(f"trajectories: expected finite (G, {config.num_poses}, 3) poses, got shape {trajs.shape}")
    total = config.num_sim_steps - 1
    if isinstance(replan_steps, bool) or not isinstance(replan_steps, (int, np.integer)) or replan_steps < 1 \
            or total % replan_steps:
        raise ValueError(f"replan_steps: expected a positive int dividing {total}, got {replan_steps!r}")
    G, P = trajs.shape[:2]
    # Knots of the fixed world-frame plan: the start pose, the poses, then P constant-velocity continuation poses.
    world = local_to_world(trajs, ego.pose)  # (G, P, 3)
    start = np.broadcast_to(np.asarray(ego.pose, dtype=np.float64), (G, 1, 3))
    plan = np.concatenate([start, world], axis=1)  # (G, P + 1, 3)
    plan[..., 2] = np.unwrap(plan[..., 2], axis=1)
    step = plan[:, -1:, :2] - plan[:, -2:-1, :2]
    ext_xy = plan[:, -1:, :2] + step * np.arange(1, P + 1)[None, :, None]
    ext = np.concatenate([ext_xy, np.repeat(plan[:, -1:, 2:], P, axis=1)], axis=2)
    plan = np.concatenate([plan, ext], axis=1)  # (G, 2P + 1, 3) at 0, dT, ..., 2P dT
    weights = interpolation_weights(P, config.pose_interval, config.sim_dt)  # (T, P + 1)

    states = np.empty((G, total + 1, NUM_STATE_COLUMNS))
    steers = np.empty((G, total + 1))
    state = np.broadcast_to(np.concatenate([ego.pose, ego.velocity, ego.acceleration]), (G, NUM_STATE_COLUMNS)).copy()
    steer = np.full(G, float(ego.steering_angle))
    states[:, 0], steers[:, 0] = state, steer
    for r in range(total // replan_steps):
        # the remainder: the plan at tau + pose_interval, ..., tau + horizon (linear in time between plan knots)
        pos = r * replan_steps * config.sim_dt / config.pose_interval + np.arange(1, P + 1)
        lo = np.minimum(np.floor(pos).astype(int), 2 * P - 1)
        frac = (pos - lo)[None, :, None]
        knots = np.empty((G, P + 1, 3))
        knots[:, 0] = state[:, :3]
        knots[:, 1:] = (1.0 - frac) * plan[:, lo] + frac * plan[:, lo + 1]
        # heading knots as the tracker's interpolation sees an ego-frame action: current heading + wrapped relative
        # heading, then unwrapped over the knots (rewards.kernels.interpolate)
        knots[:, 1:, 2] = knots[:, 0:1, 2] + wrap_angle(knots[:, 1:, 2] - knots[:, 0:1, 2])
        knots[..., 2] = np.unwrap(knots[..., 2], axis=1)
        ref = weights @ knots  # (T, P + 1) @ (G, P + 1, 3) -> (G, T, 3)
        ref[..., 2] = wrap_angle(ref[..., 2])
        a, b = r * replan_steps + 1, (r + 1) * replan_steps + 1
        if config.tracking:
            out, out_steer = track_poses_each(state, steer, ref, config.sim_dt, ego.params, replan_steps,
                                              config.jerk_penalty_form)
            states[:, a:b], steers[:, a:b] = out[:, 1:], out_steer[:, 1:]
        else:  # poses driven as planned; velocities and accelerations below
            states[:, a:b, :3], steers[:, a:b] = ref[:, 1 : replan_steps + 1], 0.0
        state, steer = states[:, b - 1].copy(), steers[:, b - 1].copy()
    if not config.tracking:
        states = finite_difference_states(ego, np.ascontiguousarray(states[..., :3]), config.sim_dt)
    return states, steers
