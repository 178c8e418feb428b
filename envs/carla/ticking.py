"""The tick loop of :class:`~envs.carla.env.CarlaEnv`: controls, synchronous ticks, recorded frames, end checks.

:class:`EpisodeTicker` advances a staged :class:`~envs.carla.staging.Episode`. Each :meth:`~EpisodeTicker.tick`
applies the controls (the ego's :class:`~envs.carla.controller.TrajectoryController` on its current path, each
vehicle adversary's controller on its timed path, walkers' scripted speeds), ticks the synchronous world once
(``fixed_delta_seconds``, 0.05 s at 20 Hz), and every ``record_every`` ticks (one scene step ``pdm.sim_dt``, 0.1 s)
records a frame: the actors' box-centre poses and world velocities and the traffic-light states into the
:class:`~envs.carla.recording.EpisodeRecorder`, the ego's rear-axle pose, body-frame velocity and acceleration and
yaw rate into the episode's :class:`~envs.observation.EgoKinematics`, and red-light crossings into its infractions.
After a recorded frame :meth:`~EpisodeTicker.check` waits (at most ``sensor_timeout``) until the sensor data of the
current frame (the id ``world.tick()`` returned) have arrived, which CARLA's streaming thread may deliver after
``tick`` returns (:class:`~envs.carla.staging.Sensors`: the IMU heartbeat of the frame), then reads the collision
events of frames up to the current one and checks the ego's corners against the drivable area and the route's end;
so a collision ends the step in which it happened.

Frames: recorded poses are right-handed ``(x, y, heading)`` [m, m, rad], velocities ``(vx, vy)`` [m/s] in the world
frame (:mod:`envs.carla.frames` converts CARLA's left-handed vectors).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from envs.carla.config import CarlaEnvConfig
from envs.carla.connection import CarlaConnection, CarlaSensorError
from envs.carla.frames import box_pose, vector_to_world
from envs.carla.metrics import collision_kind
from envs.carla.staging import Episode, light_code
from envs.scenes.scene import TrafficLightState
from rewards.geometry import VehicleParameters, rotate_vectors, vehicle_corners, wrap_angle


def rear_state(actor: Any, params: VehicleParameters) -> tuple[np.ndarray, float]:
    """Rear-axle pose ``(3,)`` (right-handed) [m, m, rad] and signed speed [m/s] of a vehicle."""
    c = box_pose(actor)
    heading = np.array([math.cos(c[2]), math.sin(c[2])])
    pose = c.copy()
    pose[:2] -= params.rear_axle_to_center * heading
    return pose, float(np.dot(vector_to_world(actor.get_velocity()), heading))


class EpisodeTicker:
    """Advances staged episodes on one connection (see the module docstring).

    Args:
        config: the env's configuration.
        carla: the ``carla`` module in use (``VehicleControl``, ``WalkerControl``, ``Vector3D``).
        connection: this worker's connection.
        record_every: ticks per recorded frame (``pdm.sim_dt / fixed_delta_seconds``).
    """

    def __init__(self, config: CarlaEnvConfig, carla: Any, connection: CarlaConnection, record_every: int) -> None:
        self.config = config
        self.carla = carla
        self.connection = connection
        self.record_every = record_every

    def warmup(self, ep: Episode) -> None:
        """First tick (physics starts), initial speeds, frame 0, then the nominal plan for ``warmup_time``."""
        cfg = self.config
        ep.frame0 = self.connection.tick()
        self._set_speed(ep.ego, ep.plan.ego_speed)
        for adv, actor, _ in ep.adversaries:
            if adv.kind == "vehicle":
                self._set_speed(actor, adv.speed0)
        ep.controller.set_path(ep.plan.ego_plan)
        ep.path_t0 = 0.0
        self.record(ep)
        while ep.recorder.t * cfg.pdm.sim_dt < cfg.warmup_time - 1e-9:
            self.tick(ep)

    def _set_speed(self, actor: Any, speed: float) -> None:
        """Target velocity ``speed`` [m/s] along the actor's heading."""
        yaw = math.radians(actor.get_transform().rotation.yaw)
        actor.set_target_velocity(self.carla.Vector3D(speed * math.cos(yaw), speed * math.sin(yaw), 0.0))

    def tick(self, ep: Episode) -> bool:
        """Controls, one synchronous tick, and a recorded frame every ``record_every`` ticks (returns whether)."""
        cfg, carla = self.config, self.carla
        dt = cfg.fixed_delta_seconds
        t = ep.ticks * dt
        pose, speed = rear_state(ep.ego, ep.params)
        throttle, steer, brake = ep.controller.control(pose, speed, t - ep.path_t0, dt)
        ep.ego.apply_control(carla.VehicleControl(throttle=throttle, steer=steer, brake=brake))
        ep.steer = -steer * math.radians(cfg.controller.max_steer_deg)
        for adv, actor, ctrl in ep.adversaries:
            if adv.kind == "vehicle" and ctrl is not None:
                c_pose = box_pose(actor)
                c_speed = float(np.dot(vector_to_world(actor.get_velocity()), [math.cos(c_pose[2]), math.sin(c_pose[2])]))
                th, st, br = ctrl.control(c_pose, c_speed, t, dt)
                actor.apply_control(carla.VehicleControl(throttle=th, steer=st, brake=br))
            elif adv.kind == "walker":
                d = adv.walk[0]
                actor.apply_control(carla.WalkerControl(carla.Vector3D(float(d[0]), float(-d[1]), 0.0),
                                                        adv.walker_speed(t)))
        self.connection.tick()
        ep.ticks += 1
        if ep.ticks % self.record_every == 0:
            self.record(ep)
            return True
        return False

    def record(self, ep: Episode) -> None:
        """Record the current world state as the next frame (see the module docstring)."""
        dt = self.config.pdm.sim_dt
        pose, _ = rear_state(ep.ego, ep.params)
        vel = vector_to_world(ep.ego.get_velocity())
        n = len(ep.agents)
        poses, vels, valid = np.zeros((n, 3)), np.zeros((n, 2)), np.zeros(n, dtype=bool)
        for i, actor in enumerate(ep.agents):
            if actor.is_alive:
                poses[i], vels[i], valid[i] = box_pose(actor), vector_to_world(actor.get_velocity()), True
        states = None
        if ep.lights:
            states = ep.recorder.light_states[:, max(ep.recorder.t, 0)].copy()
            for light, i in ep.lights:
                states[i] = light_code(light.state)
        k = ep.recorder.record(pose, vel, poses, vels, valid, states)
        kin = ep.kinematics
        kin.poses[k] = pose
        kin.poses[k + 1:] = ep.recorder.ego_poses[k + 1:]
        kin.body_velocities[k] = rotate_vectors(vel, -pose[2])
        if k > 0:
            prev_v = ep.recorder.ego_velocities[k - 1]
            kin.body_accelerations[k] = rotate_vectors((vel - prev_v) / dt, -pose[2])
            kin.yaw_rates[k] = float(wrap_angle(pose[2] - kin.poses[k - 1, 2])) / dt
        ep.problem_cache = None
        self._red_light_check(ep, k)

    def _red_light_check(self, ep: Episode, k: int) -> None:
        """Count crossing a stop line on red (rear axle passes the line within the lane's width)."""
        scene_map = ep.recorder.view.map
        if k == 0 or ep.end_frame is not None or scene_map is None or not scene_map.traffic_lights:
            return
        p0, p1 = ep.kinematics.poses[k - 1, :2], ep.kinematics.poses[k, :2]
        for tl in scene_map.traffic_lights:
            if int(tl.states[k]) != int(TrafficLightState.RED):
                continue
            lane = scene_map.lane(tl.lane_id)
            d = lane.centerline[-1] - lane.centerline[-2]
            d = d / np.linalg.norm(d)
            a0, a1 = float(np.dot(p0 - tl.stop_point, d)), float(np.dot(p1 - tl.stop_point, d))
            rel = p1 - tl.stop_point
            lateral = abs(float(d[0] * rel[1] - d[1] * rel[0]))
            if a0 < 0.0 <= a1 and lateral < 0.5 * lane.width:
                ep.infractions.append("red_light")

    def check(self, ep: Episode) -> str:
        """Termination after a recorded frame: ``"collision"``, ``"offroad"``, ``"route_end"`` or ``""``.

        Raises:
            CarlaSensorError: the current frame's sensor data did not arrive within ``sensor_timeout``.
        """
        cfg = self.config
        k = ep.recorder.t
        frame = ep.frame0 + ep.ticks
        if not ep.sensors.wait_frame(frame, cfg.sensor_timeout):
            raise CarlaSensorError(
                f"sensor.other.imu (actor {ep.sensors.heartbeat_id}) sent no data for frame {frame} within "
                f"sensor_timeout={cfg.sensor_timeout:g} s, so the frame's collision and lane-invasion events may be "
                f"missing (latest frame received: {ep.sensors.frame}); is the server overloaded, or its streaming "
                "port (RPC port + 1) unreachable?")
        if ep.collision is None:
            hits = ep.sensors.collisions_until(frame)
            if hits:
                ep.collision = hits[0]
                ep.infractions.append(collision_kind(ep.collision[2]))
                return "collision"
        pose = ep.kinematics.poses[k]
        if ep.drivable is not None and not ep.drivable.contains(vehicle_corners(pose, ep.params)).all():
            return "offroad"
        if ep.route.project(pose[:2]) >= ep.route.length - cfg.route_end_margin:
            return "route_end"
        return ""

    def record_after_end(self, ep: Episode) -> None:
        """Keep the world running for ``record_after_end`` seconds into the recording (stops quietly on errors)."""
        ticks = int(round(self.config.record_after_end / self.config.fixed_delta_seconds))
        try:
            for _ in range(ticks):
                if ep.recorder.frames >= ep.recorder.capacity:
                    break
                self.tick(ep)
        except RuntimeError:
            self.connection.mark_broken()
