"""Episode staging for :class:`~envs.carla.env.CarlaEnv`: from a connected server to a ready :class:`Episode`.

:meth:`EpisodeStager.stage` plans a scripted scenario on the town (:func:`envs.carla.scenarios.plan_scenario`) and
spawns it: the ego (role_name ``hero``) with its sensors (collision, lane invasion, an IMU as the per-frame
heartbeat, the configured RGB cameras, listened to by :class:`Sensors`, which keeps their data by frame id), the adversaries (vehicles with their own
:class:`~envs.carla.controller.TrajectoryController`, walkers, static props), background vehicles on this worker's
Traffic Manager (autopilot), the plan's frozen traffic lights; then it builds the episode's map (lanes near the
route, :mod:`envs.carla.roadmap`; scorer geometry and drivable area), the recorded agents and the
:class:`~envs.carla.recording.EpisodeRecorder` whose live view starts as the ego's nominal plan. A failed spawn
destroys everything and tries a new placement; a server failure is a :class:`~envs.carla.connection.CarlaError`.
:meth:`EpisodeStager.connect` (re)connects with retries (the connection switches synchronous mode on and binds the
Traffic Manager, :meth:`envs.carla.connection.CarlaConnection.ensure`); :meth:`EpisodeStager.release` undoes a
staging (unfreezes the lights, destroys every spawned actor in one batch).

Frames: poses are right-handed SafeAlign ``(x, y, heading)`` [m, m, rad] (:mod:`envs.carla.frames` converts to and
from CARLA's left-handed frame).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.carla.config import CarlaEnvConfig
from envs.carla.connection import NOT_RETRIED, CarlaConnection, CarlaError, CarlaSpawnError
from envs.carla.controller import TrajectoryController
from envs.carla.frames import box_pose, box_size, transform_from_pose
from envs.carla.recording import EpisodeRecorder
from envs.carla.roadmap import TownLanes, waypoint_key
from envs.carla.scenarios import ScenarioPlan, nominal_poses, plan_scenario, route_keys
from envs.observation import EgoKinematics, Route
from envs.scenes.scene import AgentClass, SceneMeta, TrafficLight, TrafficLightState
from envs.sim.scoring import map_geometry_from_scene_map
from envs.sim.simulation import DrivableArea
from rewards.geometry import VehicleParameters


def agent_class(actor: Any, carla: Any) -> AgentClass:
    """SafeAlign class of a CARLA actor: walkers are pedestrians; vehicles tagged ``CityObjectLabel.Bicycle``
    (0.9.16 split the old ``Vehicles`` label into Car/Truck/Bus/Motorcycle/Bicycle) or with two wheels and base
    type bicycle are cyclists; other vehicles are vehicles; ``static.*`` props are static."""
    type_id = str(actor.type_id)
    if type_id.startswith("walker."):
        return AgentClass.PEDESTRIAN
    if type_id.startswith("static."):
        return AgentClass.STATIC
    bicycle = getattr(getattr(carla, "CityObjectLabel", None), "Bicycle", None)
    tags = {int(t) for t in getattr(actor, "semantic_tags", ()) or ()}
    if bicycle is not None and int(bicycle) in tags:
        return AgentClass.CYCLIST
    attrs = getattr(actor, "attributes", {}) or {}
    if str(attrs.get("base_type", "")).lower() == "bicycle":
        return AgentClass.CYCLIST
    return AgentClass.VEHICLE


_TL_STATES = {"Red": TrafficLightState.RED, "Yellow": TrafficLightState.YELLOW, "Green": TrafficLightState.GREEN}


def light_code(state: Any) -> int:
    """:class:`~envs.scenes.scene.TrafficLightState` code of a ``carla.TrafficLightState`` (UNKNOWN if unnamed)."""
    name = getattr(state, "name", str(state)).split(".")[-1]
    return int(_TL_STATES.get(name, TrafficLightState.UNKNOWN))


class Sensors:
    """Listener state of the ego's sensors, kept by CARLA frame id: collision and lane-invasion events, camera images,
    and the heartbeat (``sensor.other.imu``, which reports every tick).

    CARLA calls the listeners from its streaming thread, possibly after ``world.tick()`` has returned the frame they
    belong to; every datum carries its ``frame``. The server sends a frame's collision events during the frame's
    physics and its IMU measurement at the frame's end, so :meth:`wait_frame` (the IMU of a frame arrived, bounded by
    a timeout) is when that frame's events are in: :meth:`collisions_until` / :meth:`invasions_between` then read
    them by frame. Thread-safe (one condition variable)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.collisions: list[tuple[int, int, str]] = []
        """``(frame, other actor id, other type id)`` in arrival order."""
        self.invasions: list[int] = []
        """Frames of lane-invasion events."""
        self.images: dict[str, tuple[int, np.ndarray]] = {}
        """Camera name -> ``(frame, uint8 (H, W, 3) RGB image)`` of its latest image."""
        self.frame = -1
        """The latest frame whose heartbeat (IMU measurement) arrived."""
        self.heartbeat_id = -1
        """Actor id of the heartbeat sensor (for messages)."""

    def on_collision(self, event: Any) -> None:
        other = event.other_actor
        item = (int(event.frame), int(other.id) if other is not None else -1, str(getattr(other, "type_id", "")))
        with self._cond:
            self.collisions.append(item)
            self._cond.notify_all()

    def on_invasion(self, event: Any) -> None:
        with self._cond:
            self.invasions.append(int(event.frame))
            self._cond.notify_all()

    def on_heartbeat(self, event: Any) -> None:
        with self._cond:
            self.frame = max(self.frame, int(event.frame))
            self._cond.notify_all()

    def on_image(self, name: str, image: Any) -> None:
        bgra = np.frombuffer(bytes(image.raw_data), dtype=np.uint8).reshape(image.height, image.width, 4)
        rgb = np.ascontiguousarray(bgra[:, :, 2::-1])
        with self._cond:
            self.images[name] = (int(image.frame), rgb)
            self._cond.notify_all()

    def wait_frame(self, frame: int, timeout: float) -> bool:
        """Wait up to ``timeout`` [s] for the heartbeat of ``frame``; whether it arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: self.frame >= frame, timeout)

    def wait_image(self, name: str, frame: int, timeout: float) -> np.ndarray | None:
        """Camera ``name``'s image of ``frame`` or later, waiting up to ``timeout`` [s] (None if none came)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: name in self.images and self.images[name][0] >= frame, timeout)
            return self.images[name][1] if ok else None

    def collisions_until(self, frame: int) -> list[tuple[int, int, str]]:
        """Collision events of frames ``<= frame``, earliest frame first."""
        with self._cond:
            return sorted((c for c in self.collisions if c[0] <= frame), key=lambda c: c[0])

    def invasions_between(self, first: int, last: int) -> int:
        """Lane-invasion events of frames ``first < frame <= last``."""
        with self._cond:
            return sum(first < f <= last for f in self.invasions)


@dataclass
class Episode:
    """One staged episode: its actors, its recorder and ego state buffers, and the loop's bookkeeping
    (:mod:`envs.carla.ticking` advances it, :class:`~envs.carla.env.CarlaEnv` reads it)."""

    plan: ScenarioPlan
    ego: Any
    params: VehicleParameters
    adversaries: list[tuple[Any, Any, TrajectoryController | None]]
    """``(plan adversary, actor, its controller (vehicles) or None)``."""
    agents: list[Any]
    """The recorded actors (the recorder's agent order)."""
    lights: list[tuple[Any, int]]
    """``(traffic light actor, index of its stop line in the scene map)``."""
    frozen: list[Any]
    """Lights frozen by the plan (unfrozen by :meth:`EpisodeStager.release`)."""
    recorder: EpisodeRecorder
    kinematics: EgoKinematics
    route: Route
    geometry: Any
    drivable: DrivableArea | None
    controller: TrajectoryController
    sensors: Sensors
    cameras: dict[str, Any]
    spawn_failures: list[str]
    frame0: int = 0
    """CARLA frame of the first tick (recorded frame 0)."""
    ticks: int = 0
    """Ticks since ``frame0``."""
    path_t0: float = 0.0
    """Episode time at which the ego's current path starts [s]."""
    infractions: list[str] = field(default_factory=list)
    collision: tuple[int, int, str] | None = None
    steer: float = 0.0
    """Tire angle of the last ego control, right-handed [rad]."""
    done: bool = False
    index: int = 0
    steps: int = 0
    """Policy steps taken."""
    end_frame: int | None = None
    """The frame the episode ended at (frames after it are the post-end recording)."""
    problem_cache: tuple[int, Any] | None = None
    """``(frame, ScoringProblem)`` of :meth:`~envs.carla.env.CarlaEnv.current_problem`; dropped when a frame is
    recorded."""
    route_s: float | None = None
    """Route arc length of the ego at the episode's first frame [m] (None before the first step)."""
    completion: float = 0.0
    """The episode's route completion RC at the last step (:func:`envs.sim.metrics.route_completion`; 0 before the
    first step)."""
    earned: float = 0.0
    """Progress rewards of the episode so far (``RewardConfig.kind="progress"``)."""


class EpisodeStager:
    """Stages episodes on one connection (see the module docstring); caches per town its lanes, its candidate
    scenario places and the last few route maps.

    Args:
        config: the env's configuration.
        carla: the ``carla`` module in use (real or stand-in).
        connection: this worker's connection.
        view_frames: frames of the recorder's live view (the episode plus one scoring horizon).
    """

    def __init__(self, config: CarlaEnvConfig, carla: Any, connection: CarlaConnection, view_frames: int) -> None:
        self.config = config
        self.carla = carla
        self.connection = connection
        self.view_frames = view_frames
        self._towns: dict[str, TownLanes] = {}
        self._route_maps: dict[tuple, tuple[Any, Any, DrivableArea]] = {}
        self._places: dict[str, dict[str, list[Any]]] = {}

    def connect(self) -> None:
        """Ensure a live connection: ``reconnect_attempts`` tries ``reconnect_wait`` seconds apart (configuration
        errors, :data:`~envs.carla.connection.NOT_RETRIED`: a version mismatch, an unknown town, fail at once)."""
        cfg = self.config
        for attempt in range(max(1, cfg.reconnect_attempts)):
            try:
                self.connection.ensure()
                return
            except CarlaError as exc:
                if attempt + 1 >= max(1, cfg.reconnect_attempts) or isinstance(exc, NOT_RETRIED):
                    raise
                time.sleep(cfg.reconnect_wait)

    def stage(self, scenario_type: str, np_random: np.random.Generator, index: int, attempts: int = 3) -> Episode:
        """Stage ``scenario_type`` (episode number ``index``), trying new placements when a spawn fails (everything
        spawned is destroyed). ``np_random`` is the env's generator: each attempt draws its placement seed from it.

        Raises:
            ScenarioPlacementError: no place on this town fits the type.
            CarlaSpawnError: every attempt failed to spawn.
            CarlaError: the server failed (the connection is marked broken; the next reset reconnects).
        """
        last: Exception | None = None
        for _ in range(attempts):
            rng = np.random.default_rng(int(np_random.integers(0, 2**63 - 1)))
            try:
                return self._stage(scenario_type, rng, np_random, index)
            except CarlaSpawnError as exc:
                last = exc
                self.connection.destroy_all()
            except RuntimeError as exc:
                self.connection.destroy_all()
                self.connection.mark_broken()
                raise CarlaError(f"CARLA server at {self.connection.address} failed while staging the episode "
                                 f"({exc}); reset again to reconnect") from None
        raise CarlaSpawnError(f"{scenario_type}: {last}; tried {attempts} placements")

    def release(self, ep: Episode | None) -> None:
        """Unfreeze the episode's lights (while connected) and destroy every spawned actor in one batch."""
        if ep is not None and self.connection.connected:
            for light in ep.frozen:
                try:
                    light.freeze(False)
                except RuntimeError:
                    break
        self.connection.destroy_all()

    def _town(self) -> TownLanes:
        name = str(self.connection.map.name)
        if name not in self._towns:
            self._towns[name] = TownLanes.from_map(self.connection.map)
        return self._towns[name]

    def _stage(self, scenario_type: str, rng: np.random.Generator, np_random: np.random.Generator,
               index: int) -> Episode:
        cfg, conn, carla = self.config, self.connection, self.carla
        plan = plan_scenario(carla, conn.map, scenario_type, rng, cfg.warmup_time, cfg.lead_time,
                             cfg.episode_time + cfg.pdm.horizon + 1.0,
                             places=self._places.setdefault(str(conn.map.name), {}))
        library = conn.world.get_blueprint_library()
        failures: list[str] = []
        bp = library.find(cfg.ego_blueprint)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "hero")
        ego = conn.spawn(bp, transform_from_pose(carla, plan.ego_spawn, self._z(plan.ego_spawn) + 0.3))
        if ego is None:
            raise CarlaSpawnError(f"ego {cfg.ego_blueprint} could not be spawned at {plan.ego_spawn.round(1).tolist()}")
        length, width = box_size(ego)
        wheelbase = 0.6 * length
        params = VehicleParameters(length=length, width=width, wheelbase=wheelbase, rear_axle_to_center=0.5 * wheelbase)
        sensors = Sensors()
        for type_id, cb in (("sensor.other.collision", sensors.on_collision),
                            ("sensor.other.lane_invasion", sensors.on_invasion),
                            ("sensor.other.imu", sensors.on_heartbeat)):
            s = conn.spawn(library.find(type_id), carla.Transform(), ego)
            if s is None:
                raise CarlaSpawnError(f"{type_id} could not be attached to the ego")
            s.listen(cb)
            if type_id == "sensor.other.imu":
                sensors.heartbeat_id = int(s.id)
        cameras = {}
        for cam in cfg.cameras:
            cbp = library.find("sensor.camera.rgb")
            for key, value in (("image_size_x", cam.width), ("image_size_y", cam.height), ("fov", cam.fov)):
                cbp.set_attribute(key, str(value))
            rel = carla.Transform(carla.Location(cam.x, -cam.y, cam.z), carla.Rotation(0.0, -cam.yaw_deg, 0.0))
            s = conn.spawn(cbp, rel, ego)
            if s is None:
                raise CarlaSpawnError(f"camera {cam.name!r} could not be attached to the ego")
            s.listen(functools.partial(sensors.on_image, cam.name))
            cameras[cam.name] = s
        adversaries = []
        for adv in plan.adversaries:
            actor = self._spawn_adversary(library, adv)
            if actor is None:
                failures.append(f"{adv.role}:{adv.blueprint}")
                if adv.role == "risk":
                    raise CarlaSpawnError(f"{scenario_type}: the {adv.blueprint} adversary could not be spawned")
                continue
            ctrl = None
            if adv.kind == "vehicle":
                ctrl = TrajectoryController(cfg.controller, 0.6 * box_size(actor)[0])
                ctrl.set_path(adv.path)  # type: ignore[arg-type]
            adversaries.append((adv, actor, ctrl))
        self._spawn_background(library, plan, np_random)
        frozen = self._set_lights(plan)
        # ---- the recorded agents, the map, the recorder
        town = self._town()
        ego_id = ego.id
        agents = [a for a in conn.world.get_actors() if a.id != ego_id and (
            str(a.type_id).startswith(("vehicle.", "walker.", "static.prop")))]
        agents = [a for a in agents if np.min(np.linalg.norm(plan.route_xy - box_pose(a)[:2], axis=1))
                  <= cfg.map_radius + 50.0]
        lights, scene_lights = self._map_lights(town, plan)
        base_map, geometry, drivable = self._route_map(town, plan)
        live_map = base_map if not scene_lights else dataclasses.replace(base_map, traffic_lights=tuple(scene_lights))
        times = cfg.pdm.sim_dt * np.arange(self.view_frames)
        nominal = nominal_poses(plan, times)
        # Deterministic per reset seed (same seed, same id: the recording is overwritten), distinct otherwise.
        scene_id = f"carla/{plan.scenario_type}/w{cfg.worker_index}-{int(rng.integers(0, 2**48)):012x}"
        meta = SceneMeta(source="carla", scenario_type=plan.scenario_type, extra=self._extra(plan))
        recorder = EpisodeRecorder(
            scene_id, cfg.pdm.sim_dt, self.view_frames, np.array([a.id for a in agents], dtype=np.int64),
            np.array([int(agent_class(a, carla)) for a in agents], dtype=np.int8),
            np.array([box_size(a) for a in agents], dtype=np.float64).reshape(len(agents), 2), live_map, meta, params,
            nominal)
        kin = EgoKinematics(poses=np.array(nominal), body_velocities=np.zeros((self.view_frames, 2)),
                            body_accelerations=np.zeros((self.view_frames, 2)), yaw_rates=np.zeros(self.view_frames))
        return Episode(plan=plan, ego=ego, params=params, adversaries=adversaries, agents=agents, lights=lights,
                       frozen=frozen, recorder=recorder, kinematics=kin, route=Route.from_points(plan.route_xy),
                       geometry=geometry, drivable=drivable, sensors=sensors, cameras=cameras,
                       controller=TrajectoryController(cfg.controller, wheelbase), spawn_failures=failures,
                       index=index)

    def _route_map(self, town: TownLanes, plan: ScenarioPlan) -> tuple[Any, Any, DrivableArea]:
        """The route's scene map, its scorer geometry and drivable area (the last few cached: building the map
        index costs ~0.1 s, and seeded resets repeat routes)."""
        key = (town.name, plan.route_xy.tobytes(), tuple(route_keys(plan)), self.config.map_radius)
        hit = self._route_maps.get(key)
        if hit is None:
            base_map = town.scene_map(plan.route_xy, route_keys(plan), self.config.map_radius)
            geometry = map_geometry_from_scene_map(base_map)
            hit = (base_map, geometry, DrivableArea(geometry))
            self._route_maps[key] = hit
            while len(self._route_maps) > 8:
                self._route_maps.pop(next(iter(self._route_maps)))
        return hit

    def _z(self, pose: np.ndarray) -> float:
        """Road height [m] under a right-handed pose (0 off the road)."""
        wp = self.connection.map.get_waypoint(self.carla.Location(float(pose[0]), float(-pose[1]), 0.0))
        return float(wp.transform.location.z) if wp is not None else 0.0

    def _spawn_adversary(self, library: Any, adv: Any) -> Any:
        carla, conn = self.carla, self.connection
        bp = library.find(adv.blueprint)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", "scenario")
        if bp.has_attribute("is_invincible"):
            bp.set_attribute("is_invincible", "false")
        lift = 1.0 if adv.kind == "walker" else 0.3
        actor = conn.spawn(bp, transform_from_pose(carla, adv.spawn, self._z(adv.spawn) + lift))
        if actor is not None and adv.kind == "static":
            actor.set_simulate_physics(False)
        return actor

    def _spawn_background(self, library: Any, plan: ScenarioPlan, np_random: np.random.Generator) -> None:
        """Up to ``num_background`` four-wheeled vehicles on the Traffic Manager at spawn points clear of the ego
        route and the adversaries (one batch; ``np_random`` seeds the choice)."""
        cfg, conn, carla = self.config, self.connection, self.carla
        if cfg.num_background <= 0:
            return
        keep_clear = [plan.route_xy] + [a.path.points for a in plan.adversaries if a.path is not None] + \
            [a.spawn[None, :2] for a in plan.adversaries]
        clear = np.concatenate(keep_clear)
        points = conn.map.get_spawn_points()
        rng = np.random.default_rng(int(np_random.integers(0, 2**31)))
        order = rng.permutation(len(points))
        blueprints = [bp for bp in library.filter("vehicle.*")
                      if not bp.has_attribute("number_of_wheels") or bp.get_attribute("number_of_wheels").as_int() == 4]
        batch = []
        for i in order:
            sp = points[int(i)]
            xy = np.array([sp.location.x, -sp.location.y])
            if np.min(np.linalg.norm(clear - xy, axis=1)) < cfg.background_clearance:
                continue
            bp = blueprints[int(rng.integers(len(blueprints)))]
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "background")
            batch.append(carla.command.SpawnActor(bp, sp).then(
                carla.command.SetAutopilot(carla.command.FutureActor, True, cfg.tm_port)))
            if len(batch) >= cfg.num_background:
                break
        if not batch:
            return
        responses = conn.client.apply_batch_sync(batch, False)
        ids = [r.actor_id for r in responses if not r.has_error()]
        for actor in conn.world.get_actors(ids):
            conn.track(actor)

    def _set_lights(self, plan: ScenarioPlan) -> list[Any]:
        """Set and freeze the lights the plan asks for; returns the frozen lights (unfrozen at the episode's end)."""
        if not plan.lights:
            return []
        carla = self.carla
        wanted = dict(plan.lights)
        frozen = []
        for light in self.connection.world.get_actors().filter("traffic.traffic_light*"):
            keys = {waypoint_key(w) for w in light.get_stop_waypoints()}
            hit = [wanted[k] for k in keys if k in wanted]
            if hit:
                light.set_state(carla.TrafficLightState.Green if hit[0] == "green" else carla.TrafficLightState.Red)
                light.freeze(True)
                frozen.append(light)
        return frozen

    def _map_lights(self, town: TownLanes, plan: ScenarioPlan) -> tuple[list[tuple[Any, int]], list[TrafficLight]]:
        """Traffic lights whose stop lines lie on the episode's map lanes: ``[(light actor, stop index)]`` and the
        scene's :class:`TrafficLight` s (states filled by the recorder)."""
        ids = set(town.lanes_near(plan.route_xy, self.config.map_radius))
        actors, scene_lights = [], []
        for light in self.connection.world.get_actors().filter("traffic.traffic_light*"):
            code = light_code(light.state)
            for wp in light.get_stop_waypoints():
                xy = np.array([wp.transform.location.x, -wp.transform.location.y])
                seg = town.segment_of(waypoint_key(wp), xy)
                if seg is None or seg not in ids:
                    continue
                actors.append((light, len(scene_lights)))
                scene_lights.append(TrafficLight(seg, xy, np.full(self.view_frames, code, dtype=np.uint8)))
        return actors, scene_lights

    def _extra(self, plan: ScenarioPlan) -> dict[str, Any]:
        """The recording's ``meta.extra``: server, scenario facts and timing."""
        cfg, conn = self.config, self.connection
        return {"town": str(conn.map.name), "server": conn.address, "server_version": conn.server_version,
                "worker_index": cfg.worker_index, "conflict": plan.conflict, "description": plan.description,
                "params": plan.params, "contact_time": plan.contact_time, "warmup_time": cfg.warmup_time,
                "fixed_delta_seconds": cfg.fixed_delta_seconds, "backend": cfg.backend,
                "start_frame": int(round(cfg.warmup_time / cfg.pdm.sim_dt))}
