"""The simulation behind a stand-in "server" (one per (host, port)): the episode's ground truth (every actor's
:class:`ActorRecord`), the blueprints it can spawn, the synchronous step (traffic lights, the Traffic Manager's
autopilot, vehicle and walker kinematics, contacts) and the sensor readings each step streams to the listeners.
The ``carla`` client objects that read and drive it live in :mod:`envs.carla.standin.world`.

Semantics kept from CARLA (each one has a test in ``tests/test_carla_standin.py``):

* the world advances one ``fixed_delta_seconds`` per :meth:`StandinServer.step` and never by itself;
* spawning fails where the new actor's box overlaps another vehicle, walker or prop (``RuntimeError("Spawn failed
  because of collision at spawn position")``);
* the Traffic Manager (:class:`TrafficManagerState`, process-wide per port in :data:`TRAFFIC_MANAGERS`) drives its
  vehicles only while it is bound to this server's current episode and its synchronous mode matches the world's;
* sensors report to their listeners after each step: collision readings when two boxes start to overlap,
  lane-invasion readings when a vehicle's centre moves into a parallel lane, an IMU measurement per step from each
  listening ``sensor.other.imu`` (after the step's collision and lane-invasion readings, as CARLA sends collisions
  during the frame's physics and IMU data at its end), a BGRA image per step from each listening camera, none under
  ``no_rendering_mode`` or on a ``-nullrhi`` server;
* unknown town: ``load_world`` fails with the server's RPC error ``RuntimeError("map not found")``; a town load
  longer than the client's timeout fails with ``RuntimeError("failed to connect to newly created map")`` (LibCarla's
  ``Simulator::LoadEpisode`` waits at most the client timeout for the new episode) while the server finishes the
  load by itself.

Stand-in only (documented, not CARLA): vehicles are kinematic bicycles (throttle up to ``ACCEL_MAX``, brake up to
``BRAKE_MAX``, steer 1 = ``MAX_STEER_DEG`` at the front wheels, wheelbase 0.6 x length) that stop dead on contact;
autopilot vehicles follow lane centres at the speed limit minus the TM's percentage, keep a gap and stop at red
lights; walkers move at ``WalkerControl.speed`` along ``direction``; camera images are flat placeholders (sky / road,
no renderer); traffic lights cycle on a fixed 26 s plan (north-south green first). Sensor listeners run on the
ticking thread, inside :meth:`StandinServer.step`, unless :meth:`~StandinServer.deliver_late` is set: then a
delivery thread calls them ``delay`` seconds after the step, i.e. after ``world.tick()`` has returned (CARLA delivers
them from a streaming thread, with no guarantee that they arrive before ``tick`` returns); IMU values are the
actor's kinematics (no noise, no gravity).

Fault injection on :class:`StandinServer`: :meth:`~StandinServer.hang` / :meth:`~StandinServer.resume`,
:meth:`~StandinServer.fail_ticks`, :meth:`~StandinServer.crash` / :meth:`~StandinServer.restart`,
:meth:`~StandinServer.fail_spawns`, :meth:`~StandinServer.mute_sensors`, :meth:`~StandinServer.deliver_late`
(sensor data after ``tick`` returns), :meth:`~StandinServer.slow_load` (town loads that take this long).
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from envs.carla.standin.enums import CityObjectLabel, TrafficLightState
from envs.carla.standin.map import STANDIN_TOWNS, TOWN_PREFIX, Map, Waypoint, standin_map
from envs.carla.standin.messages import Timestamp, VehicleControl, WalkerControl, WorldSettings, WorldSnapshot
from envs.carla.standin.values import value_types
from rewards.geometry import box_corners, boxes_overlap

CARLA_VERSION = "0.9.16"
"""The client and (default) server version of the stand-in."""
ACCEL_MAX = 4.0
"""Stand-in vehicle acceleration at full throttle from rest [m/s^2]."""
BRAKE_MAX = 8.0
"""Stand-in vehicle deceleration at full brake [m/s^2]."""
MAX_STEER_DEG = 70.0
"""Front-wheel angle at ``steer = 1`` [deg] (CARLA's ``WheelPhysicsControl.max_steer_angle`` default)."""
V_MAX = 50.0
"""Stand-in top speed [m/s]."""
LIGHT_PLAN = (10.0, 3.0, 13.0)
"""Traffic-light plan: green, yellow, red [s] per group; north-south green first, east-west offset by 13 s."""


# ---------------------------------------------------------------------------------------------------- blueprints
_VEHICLES = {
    # id: (extent x, y, z [m], base_type, wheels, semantic tag)
    "vehicle.lincoln.mkz_2020": ((2.44, 1.05, 0.75), "car", 4, CityObjectLabel.Car),
    "vehicle.tesla.model3": ((2.40, 1.08, 0.75), "car", 4, CityObjectLabel.Car),
    "vehicle.audi.a2": ((1.85, 0.90, 0.78), "car", 4, CityObjectLabel.Car),
    "vehicle.nissan.patrol_2021": ((2.78, 1.07, 0.95), "car", 4, CityObjectLabel.Car),
    "vehicle.mercedes.sprinter": ((2.96, 1.00, 1.28), "van", 4, CityObjectLabel.Truck),
    "vehicle.carlamotors.carlacola": ((2.60, 1.30, 1.28), "truck", 4, CityObjectLabel.Truck),
    "vehicle.mitsubishi.fusorosa": ((5.10, 1.40, 1.80), "bus", 4, CityObjectLabel.Bus),
    "vehicle.yamaha.yzf": ((1.10, 0.43, 0.62), "motorcycle", 2, CityObjectLabel.Motorcycle),
    "vehicle.diamondback.century": ((0.82, 0.19, 0.75), "bicycle", 2, CityObjectLabel.Bicycle),
}
_WALKERS = {f"walker.pedestrian.{i:04d}": (0.19 + 0.02 * (i % 3), 0.19 + 0.02 * (i % 3), 0.9) for i in range(1, 9)}
_STATIC = {"static.prop.streetbarrier": (1.0, 0.3, 0.5), "static.prop.trafficcone01": (0.2, 0.2, 0.4)}
_SENSORS = {
    "sensor.other.collision": {},
    "sensor.other.lane_invasion": {},
    "sensor.other.imu": {"sensor_tick": "0.0"},
    "sensor.camera.rgb": {"image_size_x": "800", "image_size_y": "600", "fov": "90", "sensor_tick": "0.0"},
}


def blueprint_definitions() -> list[tuple[str, dict[str, tuple[str, bool]], list[str]]]:
    """Every blueprint the server spawns, as ``(id, {attribute: (value, is_modifiable)}, tags)`` (the client API
    builds its ``carla.BlueprintLibrary`` from them)."""
    out = []
    for bp_id, (ext, base, wheels, _) in _VEHICLES.items():
        _, make, model = bp_id.split(".")
        out.append((bp_id, {"role_name": ("autopilot", True), "color": ("255,255,255", True),
                            "number_of_wheels": (str(wheels), False), "base_type": (base, False),
                            "generation": ("2", False)}, [make, model, "vehicle"]))
    for bp_id in _WALKERS:
        out.append((bp_id, {"role_name": ("pedestrian", True), "is_invincible": ("true", True),
                            "speed": ("1.4", False), "generation": ("2", False)}, ["pedestrian", "walker"]))
    for bp_id in _STATIC:
        out.append((bp_id, {"role_name": ("prop", True), "size": ("small", False)}, ["prop", "static"]))
    for bp_id, attrs in _SENSORS.items():
        out.append((bp_id, {"role_name": ("front", True), **{k: (v, True) for k, v in attrs.items()}},
                    bp_id.split(".")[1:]))
    return out


def map_names() -> list[str]:
    """``Client.get_available_maps()`` of the stand-in."""
    return [f"/Game/Carla/Maps/{t}" for t in STANDIN_TOWNS]


# ------------------------------------------------------------------------------------------------------- records
@dataclass
class ActorRecord:
    """Server-side state of one actor (left-handed world frame; yaw [rad])."""

    id: int
    type_id: str
    attributes: dict[str, str]
    extent: tuple[float, float, float]
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    """Signed speed along the heading [m/s] (vehicles, walkers)."""
    accel: float = 0.0
    yaw_rate: float = 0.0
    parent: int | None = None
    rel: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    """Sensors: (x, y, z, yaw [rad]) relative to the parent."""
    physics: bool = True
    control: Any = None
    autopilot_port: int | None = None
    lane: int = -1
    lane_s: float = 0.0
    listener: Callable[[SensorReading], None] | None = None
    """Sensors: called with each :class:`SensorReading` (set by ``Sensor.listen``)."""
    tags: tuple[int, ...] = ()
    last_lane: int | None = None
    state: TrafficLightState = TrafficLightState.Green
    frozen: bool = False
    group: str = ""
    arm: str = ""

    @property
    def kind(self) -> str:
        return self.type_id.split(".")[0]

    @property
    def solid(self) -> bool:
        """Takes part in collisions and spawn checks."""
        return self.kind in ("vehicle", "walker", "static")


@dataclass
class SensorReading:
    """One measurement a step streams to a sensor's listener, as the server knows it (actor records, not handles;
    the client API turns it into ``carla.CollisionEvent`` / ``LaneInvasionEvent`` / ``Image``)."""

    type_id: str
    """Of the sensor that measured it."""
    frame: int
    timestamp: float
    """Elapsed simulation time [s]."""
    transform: Any
    """Of the sensor."""
    actor: ActorRecord | None = None
    """Collision and lane invasion: the sensor's parent."""
    other_actor: ActorRecord | None = None
    """Collision: what the parent hit."""
    normal_impulse: Any = None
    """Collision [N s]."""
    crossed_lane_markings: list = field(default_factory=list)
    """Lane invasion."""
    accelerometer: Any = None
    """IMU: linear acceleration [m/s^2], angular velocity [rad/s] and compass [rad] (sensor frame)."""
    gyroscope: Any = None
    compass: float = 0.0
    width: int = 0
    """Camera image width, height [px], field of view [deg] and BGRA bytes (row-major)."""
    height: int = 0
    fov: float = 0.0
    raw_data: bytes = b""


@dataclass(eq=False)
class TrafficManagerState:
    """One Traffic Manager: its parameters, bound to the server and episode of the client that created it (see the
    module docstring); the client API's ``TrafficManager`` is a handle on it."""

    server: StandinServer
    episode: int
    port: int
    timeout: Callable[[], float]
    """Returns the creating client's time-out [s] (the TM's RPCs wait it on a dead server)."""
    synchronous: bool = False
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    """Picks the successor lane at forks."""
    global_pct: float = 30.0
    """Percentage below the speed limit."""
    vehicle_pct: dict[int, float] = field(default_factory=dict)
    desired: dict[int, float] = field(default_factory=dict)
    """Desired speeds by actor id [km/h] (override the percentages)."""
    ignore_lights: set[int] = field(default_factory=set)
    distance: float = 2.5
    """Gap kept to the leading vehicle [m]."""
    hybrid_physics: bool = False


TRAFFIC_MANAGERS: dict[int, TrafficManagerState] = {}
"""Process-wide Traffic Managers by port (CARLA: one TM server per port per client process)."""


class StandinServer:
    """One simulated CARLA server at ``(host, port)`` (see the module docstring); created by
    :func:`envs.carla.standin.serve`.

    Attributes:
        version: reported by ``Client.get_server_version``.
        nullrhi: started with ``-nullrhi`` (cameras never report).
        tick_timeouts: the ``seconds`` argument of every ``World.tick`` call (for tests).
        destroyed_while_listening: sensors destroyed without ``stop()`` first.
    """

    def __init__(self, host: str, port: int, town: str = TOWN_PREFIX + "junction_2x2", version: str = CARLA_VERSION,
                 nullrhi: bool = False) -> None:
        self.host, self.port, self.version, self.nullrhi = host, int(port), version, nullrhi
        self.alive = True
        self.responsive = True
        self._tick_faults = 0
        self._spawn_faults = 0
        self._muted: list[str] = []
        self._ids = itertools.count(1)
        self.episode = 0
        self.tick_timeouts: list[float] = []
        self.destroyed_while_listening = 0
        self.callback_errors: list[BaseException] = []
        self.load_seconds = 0.0
        """How long a town load takes [s] (:meth:`slow_load`)."""
        self.delivery_delay: float | None = None
        """Sensor data delay after the step [s] (:meth:`deliver_late`; None: inside the step)."""
        self._late: queue.Queue | None = None
        self.new_episode(town, WorldSettings())

    # ------------------------------------------------------------------ faults
    def hang(self) -> None:
        """Stop answering (every call times out) until :meth:`resume`."""
        self.responsive = False

    def resume(self) -> None:
        """Answer again after :meth:`hang`."""
        self.responsive = True

    def fail_ticks(self, n: int = 1) -> None:
        """The next ``n`` ticks time out (the frame does not advance); the server answers again afterwards."""
        self._tick_faults += int(n)

    def crash(self) -> None:
        """The server process dies: every actor is gone and every call times out until :meth:`restart`."""
        self.alive = False
        self.actors.clear()

    def restart(self, town: str | None = None) -> None:
        """A fresh server process on the same port: new episode, default settings, no actors but the map's."""
        self.alive = True
        self.responsive = True
        self._tick_faults = 0
        self.new_episode(town or self.town, WorldSettings())

    def fail_spawns(self, n: int = 1) -> None:
        """The next ``n`` spawn attempts fail as if the spawn point were occupied."""
        self._spawn_faults += int(n)

    def mute_sensors(self, pattern: str = "sensor.*") -> None:
        """From now on, sensors whose type id matches ``pattern`` stay listening but never deliver data."""
        self._muted.append(pattern)

    def deliver_late(self, delay: float | None = 0.05) -> None:
        """From now on, sensor data reach the listeners ``delay`` seconds after the step that measured them, from a
        delivery thread, in measurement order: after ``world.tick()`` has returned (None: inside the step again)."""
        self.delivery_delay = None if delay is None else float(delay)
        if delay is not None and self._late is None:
            self._late = queue.Queue()
            threading.Thread(target=self._deliver_loop, args=(self._late,), daemon=True,
                             name=f"standin-stream-{self.port}").start()

    def slow_load(self, seconds: float) -> None:
        """From now on, ``load_world`` takes ``seconds`` [s]: a client whose timeout is shorter gets
        ``RuntimeError("failed to connect to newly created map")`` after its timeout (the load completes anyway)."""
        self.load_seconds = float(seconds)

    def stop_streaming(self) -> None:
        """End the delivery thread of :meth:`deliver_late` (undelivered data are dropped)."""
        if self._late is not None:
            self._late.put(None)
            self._late = None
        self.delivery_delay = None

    @property
    def up(self) -> bool:
        return self.alive and self.responsive

    def user_actors(self) -> list[str]:
        """Type ids of the actors a client spawned (vehicles, walkers, sensors, props): what a leak check counts."""
        return sorted(r.type_id for r in self.actors.values() if r.kind in ("vehicle", "walker", "sensor", "static"))

    # ------------------------------------------------------------------ episode
    def new_episode(self, town: str, settings: WorldSettings) -> None:
        """Load ``town`` (``load_world``, restarts): a new episode without actors but the spectator and lights."""
        self.town = town
        self.map: Map = standin_map(town)
        self.episode += 1
        self.settings = settings
        self.frame = 0
        self.elapsed = 0.0
        self.actors: dict[int, ActorRecord] = {}
        self._contacts: set[tuple[int, int]] = set()
        self._on_tick: dict[int, Callable] = {}
        self._add(ActorRecord(next(self._ids), "spectator", {}, (0.1, 0.1, 0.1), z=10.0))
        for arm, lanes in self.light_arms().items():
            rec = ActorRecord(next(self._ids), "traffic.traffic_light", {}, (0.2, 0.2, 2.0), physics=False)
            rec.arm = arm
            rec.group = "NS" if arm in ("N", "S") else "EW"
            end = self.map._lanes[lanes[0]].points[-1]
            rec.x, rec.y = float(end[0]), float(end[1])
            rec.state = self.planned_state(rec.group, 0.0)
            self._add(rec)

    def light_arms(self) -> dict[str, list[int]]:
        """Junction towns: ``{arm: [in-lane indices]}``; other towns have no lights."""
        if not self.town.startswith(TOWN_PREFIX + "junction"):
            return {}
        out: dict[str, list[int]] = {}
        for lane in self.map._lanes:
            if "_in" in lane.name and ">" not in lane.name:
                out.setdefault(lane.name[0], []).append(lane.index)
        return out

    def planned_state(self, group: str, t: float) -> TrafficLightState:
        """The state of the lights of ``group`` (``"NS"``, ``"EW"``) at ``t`` [s] on ``LIGHT_PLAN``."""
        green, yellow, red = LIGHT_PLAN
        period = green + yellow + red
        phase = (t - (0.0 if group == "NS" else green + yellow)) % period
        if phase < green:
            return TrafficLightState.Green
        if phase < green + yellow:
            return TrafficLightState.Yellow
        return TrafficLightState.Red

    def _add(self, rec: ActorRecord) -> ActorRecord:
        self.actors[rec.id] = rec
        return rec

    # ------------------------------------------------------------------ spawning
    def spawn(self, bp: Any, transform: Any, parent: int | None) -> ActorRecord:
        """Spawn an actor of blueprint ``bp`` (a ``carla.ActorBlueprint``: ``id`` and its attributes) or raise
        ``RuntimeError`` (occupied spawn point, unknown parent, fault)."""
        attrs = {a.id: a.as_str() for a in bp}
        bp_id = bp.id
        if parent is not None and parent not in self.actors:
            raise RuntimeError(f"Spawn failed because the parent actor {parent} does not exist")
        if self._spawn_faults > 0 and not bp_id.startswith("sensor."):
            self._spawn_faults -= 1
            raise RuntimeError("Spawn failed because of collision at spawn position")
        loc, rot = transform.location, transform.rotation
        if bp_id in _VEHICLES:
            ext, _, _, tag = _VEHICLES[bp_id]
            tags: tuple[int, ...] = (int(tag),)
        elif bp_id in _WALKERS:
            ext, tags = _WALKERS[bp_id], (int(CityObjectLabel.Pedestrians),)
        elif bp_id in _STATIC:
            ext, tags = _STATIC[bp_id], (int(CityObjectLabel.Static),)
        elif bp_id in _SENSORS:
            ext, tags = (0.0, 0.0, 0.0), ()
        else:
            raise RuntimeError(f"blueprint '{bp_id}' cannot be spawned by the stand-in")
        rec = ActorRecord(next(self._ids), bp_id, attrs, ext, tags=tags)
        if parent is not None:
            rec.parent = parent
            rec.rel = (loc.x, loc.y, loc.z, math.radians(rot.yaw))
            rec.physics = False
            self._follow_parent(rec)
        else:
            rec.x, rec.y, rec.z, rec.yaw = loc.x, loc.y, loc.z, math.radians(rot.yaw)
        if rec.solid and self._overlaps(rec):
            raise RuntimeError("Spawn failed because of collision at spawn position")
        if rec.kind == "vehicle":
            rec.control = VehicleControl()
        elif rec.kind == "walker":
            rec.control = WalkerControl()
        return self._add(rec)

    def destroy(self, actor_id: int) -> bool:
        rec = self.actors.pop(actor_id, None)
        if rec is None:
            return False
        if rec.listener is not None:
            self.destroyed_while_listening += 1
        for child in [r.id for r in self.actors.values() if r.parent == actor_id]:
            self.destroy(child)
        self._contacts = {c for c in self._contacts if actor_id not in c}
        return True

    def _corners(self, recs: list[ActorRecord]) -> np.ndarray:
        poses = np.array([[r.x, r.y, r.yaw] for r in recs], dtype=np.float64).reshape(-1, 3)
        sizes = np.array([[2 * r.extent[0], 2 * r.extent[1]] for r in recs], dtype=np.float64).reshape(-1, 2)
        return box_corners(poses, sizes[:, 0], sizes[:, 1])

    def _overlaps(self, rec: ActorRecord) -> bool:
        others = [r for r in self.actors.values() if r.solid]
        if not others:
            return False
        return bool(boxes_overlap(self._corners([rec]), self._corners(others)).any())

    def _follow_parent(self, rec: ActorRecord) -> None:
        p = self.actors[rec.parent]  # type: ignore[index]
        rx, ry, rz, ryaw = rec.rel
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        rec.x, rec.y, rec.z, rec.yaw = p.x + c * rx - s * ry, p.y + s * rx + c * ry, p.z + rz, p.yaw + ryaw
        rec.speed = p.speed

    # ------------------------------------------------------------------ ticking
    def dt(self) -> float:
        return self.settings.fixed_delta_seconds or 0.05

    def tick_times_out(self) -> bool:
        """Whether a tick asked for now times out: the server is down, or a :meth:`fail_ticks` fault (used up)."""
        if not self.up:
            return True
        if self._tick_faults > 0:
            self._tick_faults -= 1
            return True
        return False

    def add_on_tick(self, callback: Callable[[WorldSnapshot], Any]) -> int:
        """Call ``callback`` with the snapshot after every step of this episode; returns its id."""
        key = next(self._ids)
        self._on_tick[key] = callback
        return key

    def remove_on_tick(self, callback_id: int) -> None:
        self._on_tick.pop(callback_id, None)

    def snapshot(self) -> WorldSnapshot:
        return WorldSnapshot(self.episode, self.frame, self.timestamp(), set(self.actors))

    def step(self) -> int:
        """Advance one frame: lights, autopilot, vehicles, walkers, contacts, sensor readings to the listeners, then
        the ``on_tick`` callbacks; returns the new frame."""
        dt = self.dt()
        self.frame += 1
        self.elapsed += dt
        for rec in self.actors.values():
            if rec.type_id == "traffic.traffic_light" and not rec.frozen:
                rec.state = self.planned_state(rec.group, self.elapsed)
        movers = [r for r in self.actors.values() if r.kind in ("vehicle", "walker")]
        for rec in movers:
            if rec.autopilot_port is not None:
                self._autopilot(rec, dt)
            elif rec.kind == "vehicle":
                self._drive(rec, dt)
            else:
                self._walk(rec, dt)
        for rec in self.actors.values():
            if rec.parent is not None and rec.parent in self.actors:
                self._follow_parent(rec)
        readings = self._collisions() + self._lane_invasions() + self._imus() + self._images()
        snapshot = self.snapshot()
        if self.delivery_delay is not None and self._late is not None:
            self._late.put((time.monotonic() + self.delivery_delay, self.episode, readings))
        else:
            self._deliver(readings)
        for cb in list(self._on_tick.values()):
            cb(snapshot)
        return self.frame

    def _deliver(self, readings: list[tuple[ActorRecord, SensorReading]]) -> None:
        for rec, reading in readings:
            listener = rec.listener
            if listener is not None and rec.id in self.actors and not self._muted_type(rec.type_id):
                try:
                    listener(reading)
                except Exception as exc:  # CARLA prints callback errors and keeps ticking
                    self.callback_errors.append(exc)
                    warnings.warn(f"stand-in: sensor {rec.id} callback raised {exc!r}", RuntimeWarning, stacklevel=2)

    def _deliver_loop(self, late: queue.Queue) -> None:
        """The delivery thread of :meth:`deliver_late`: each step's readings at their due time, in order (dropped
        when the server died or started another episode meanwhile)."""
        while True:
            item = late.get()
            if item is None:
                return
            due, episode, readings = item
            time.sleep(max(0.0, due - time.monotonic()))
            if self.alive and self.episode == episode:
                self._deliver(readings)

    def timestamp(self) -> Timestamp:
        return Timestamp(self.frame, self.elapsed, self.dt(), time.time())

    def _drive(self, rec: ActorRecord, dt: float) -> None:
        """Kinematic bicycle about the rear axle, driven by the last ``VehicleControl`` (physics on)."""
        if not rec.physics:
            rec.accel = 0.0
            return
        c: VehicleControl = rec.control
        v = rec.speed
        throttle, brake = min(max(c.throttle, 0.0), 1.0), min(max(c.brake, 0.0), 1.0)
        if c.hand_brake:
            brake = 1.0
        direction = -1.0 if c.reverse else 1.0
        a = direction * throttle * ACCEL_MAX * max(0.0, 1.0 - abs(v) / V_MAX)
        a -= math.copysign(brake * BRAKE_MAX + 0.05, v) if abs(v) > 1e-6 else 0.0
        v_new = v + a * dt
        if abs(v) > 1e-6 and v * v_new < 0 and throttle == 0.0:  # brakes stop the car, they do not reverse it
            v_new = 0.0
        length = 2.0 * rec.extent[0]
        wheelbase = 0.6 * length
        delta = min(max(c.steer, -1.0), 1.0) * math.radians(MAX_STEER_DEG)
        v_mid = 0.5 * (v + v_new)
        rear_x = rec.x - 0.5 * wheelbase * math.cos(rec.yaw)
        rear_y = rec.y - 0.5 * wheelbase * math.sin(rec.yaw)
        rec.yaw_rate = v_mid / wheelbase * math.tan(delta)
        yaw_mid = rec.yaw + 0.5 * rec.yaw_rate * dt
        rear_x += v_mid * math.cos(yaw_mid) * dt
        rear_y += v_mid * math.sin(yaw_mid) * dt
        rec.yaw = (rec.yaw + rec.yaw_rate * dt + math.pi) % (2.0 * math.pi) - math.pi
        rec.x = rear_x + 0.5 * wheelbase * math.cos(rec.yaw)
        rec.y = rear_y + 0.5 * wheelbase * math.sin(rec.yaw)
        rec.accel = (v_new - v) / dt
        rec.speed = v_new

    def _walk(self, rec: ActorRecord, dt: float) -> None:
        if not rec.physics:
            return
        c: WalkerControl = rec.control
        d = c.direction
        n = math.hypot(d.x, d.y)
        speed = c.speed if n > 1e-9 else 0.0
        if speed > 0:
            rec.yaw = math.atan2(d.y, d.x)
        rec.accel = (speed - rec.speed) / dt
        rec.speed = speed
        rec.x += speed * math.cos(rec.yaw) * dt
        rec.y += speed * math.sin(rec.yaw) * dt
        rec.yaw_rate = 0.0

    def _autopilot(self, rec: ActorRecord, dt: float) -> None:
        """Lane following at the TM's speed with a gap to the leader and stops at red lights."""
        tm = TRAFFIC_MANAGERS.get(rec.autopilot_port)  # type: ignore[arg-type]
        if tm is None or tm.server is not self or tm.episode != self.episode \
                or tm.synchronous != self.settings.synchronous_mode:
            rec.speed, rec.accel = 0.0, 0.0
            return
        lanes = self.map._lanes
        if rec.lane < 0:
            rec.lane, rec.lane_s, _ = self.map.lane_of(np.array([rec.x, rec.y]))
        lane = lanes[rec.lane]
        pct = tm.vehicle_pct.get(rec.id, tm.global_pct)
        target = lane.speed_limit * (1.0 - pct / 100.0)
        if rec.id in tm.desired:
            target = tm.desired[rec.id] / 3.6
        gap = self._gap_ahead(rec, lane)
        target = min(target, max(0.0, (gap - tm.distance) / 1.5))
        light = self.light_for(lane.index)
        if light is not None and light.state != TrafficLightState.Green and rec.id not in tm.ignore_lights:
            to_stop = lane.length - 1.0 - rec.lane_s
            if to_stop >= -0.5:
                target = min(target, max(0.0, to_stop) / 1.5)
        a = min(3.0, max(-6.0, (target - rec.speed) / dt))
        v_new = max(0.0, rec.speed + a * dt)
        rec.lane_s += 0.5 * (rec.speed + v_new) * dt
        while rec.lane_s > lane.length:
            if not lane.successors:
                rec.lane_s, v_new = lane.length, 0.0
                break
            rec.lane_s -= lane.length
            lane = lanes[int(tm.rng.choice(lane.successors))]
            rec.lane = lane.index
        x, y, yaw = lane.at(rec.lane_s)
        rec.yaw_rate = ((yaw - rec.yaw + math.pi) % (2 * math.pi) - math.pi) / dt
        rec.x, rec.y, rec.yaw = x, y, yaw
        rec.accel, rec.speed = (v_new - rec.speed) / dt, v_new

    def _gap_ahead(self, rec: ActorRecord, lane) -> float:
        """Free distance [m] from ``rec``'s front to the rear of the nearest solid actor ahead on its lane (and the
        next lane of its route), or inf."""
        best = math.inf
        candidates = [lane] + [self.map._lanes[j] for j in lane.successors[:3]]
        reach = 60.0
        for other in self.actors.values():
            if other.id == rec.id or not other.solid or abs(other.x - rec.x) > reach or abs(other.y - rec.y) > reach:
                continue
            for k, ln in enumerate(candidates):
                s, d = ln.project(np.array([other.x, other.y]))
                if d > 0.5 * ln.width + other.extent[1]:
                    continue
                ahead = (s - rec.lane_s) if k == 0 else (lane.length - rec.lane_s + s)
                if ahead > 0:
                    best = min(best, ahead - rec.extent[0] - other.extent[0])
                break
        return best

    def light_for(self, lane_index: int) -> ActorRecord | None:
        name = self.map._lanes[lane_index].name
        if "_in" not in name or ">" in name:
            return None
        for rec in self.actors.values():
            if rec.type_id == "traffic.traffic_light" and rec.arm == name[0]:
                return rec
        return None

    def _collisions(self) -> list[tuple[ActorRecord, SensorReading]]:
        solid = [r for r in self.actors.values() if r.solid]
        now: set[tuple[int, int]] = set()
        if len(solid) >= 2:
            corners = self._corners(solid)
            hit = boxes_overlap(corners[:, None], corners[None, :])
            for i, j in zip(*np.nonzero(np.triu(hit, 1))):
                now.add((solid[i].id, solid[j].id))
        new = now - self._contacts
        self._contacts = now
        events = []
        V = value_types()
        for a, b in sorted(new):
            ra, rb = self.actors[a], self.actors[b]
            dv = abs(ra.speed - rb.speed)
            for me, other in ((ra, rb), (rb, ra)):
                if me.kind == "vehicle":  # stopped dead (stand-in contact model); walkers keep their control
                    me.speed = 0.0
                for sensor in self._sensors_of(me.id, "sensor.other.collision"):
                    mass = 1500.0 if other.kind == "vehicle" else 80.0
                    events.append((sensor, SensorReading(
                        sensor.type_id, self.frame, self.elapsed, self.transform(sensor), actor=me, other_actor=other,
                        normal_impulse=V["Vector3D"](mass * dv, 0.0, 0.0))))
        return events

    def _lane_invasions(self) -> list[tuple[ActorRecord, SensorReading]]:
        events = []
        for sensor in [r for r in self.actors.values() if r.type_id == "sensor.other.lane_invasion"]:
            parent = self.actors.get(sensor.parent)  # type: ignore[arg-type]
            if parent is None:
                continue
            lane, s, _ = self.map.lane_of(np.array([parent.x, parent.y]))
            prev = parent.last_lane
            parent.last_lane = lane
            lanes = self.map._lanes
            if prev is None or prev == lane or lane in lanes[prev].successors or lane in lanes[prev].predecessors:
                continue
            if lanes[lane].in_junction or lanes[prev].in_junction:
                continue
            wp = Waypoint(self.map, prev, lanes[prev].project(np.array([parent.x, parent.y]))[0])
            side = wp.left_lane_marking if wp.get_left_lane() is not None and \
                wp.get_left_lane()._lane == lane else wp.right_lane_marking
            events.append((sensor, SensorReading(sensor.type_id, self.frame, self.elapsed, self.transform(sensor),
                                                 actor=parent, crossed_lane_markings=[side])))
        return events

    def _imus(self) -> list[tuple[ActorRecord, SensorReading]]:
        V = value_types()
        events = []
        for rec in self.actors.values():
            if rec.type_id != "sensor.other.imu" or rec.listener is None:
                continue
            parent = self.actors.get(rec.parent) if rec.parent is not None else None
            accel, yaw_rate = (parent.accel, parent.yaw_rate) if parent is not None else (0.0, 0.0)
            events.append((rec, SensorReading(rec.type_id, self.frame, self.elapsed, self.transform(rec),
                                              accelerometer=V["Vector3D"](accel, 0.0, 0.0),
                                              gyroscope=V["Vector3D"](0.0, 0.0, yaw_rate),
                                              compass=float((math.pi / 2 + rec.yaw) % (2 * math.pi)))))
        return events

    def _images(self) -> list[tuple[ActorRecord, SensorReading]]:
        if self.nullrhi or self.settings.no_rendering_mode:
            return []
        events = []
        for rec in self.actors.values():
            if rec.type_id != "sensor.camera.rgb" or rec.listener is None:
                continue
            w, h = int(float(rec.attributes["image_size_x"])), int(float(rec.attributes["image_size_y"]))
            img = np.empty((h, w, 4), dtype=np.uint8)
            img[: h // 2] = (235, 206, 135, 255)  # BGRA sky
            img[h // 2:] = (90, 90, 90, 255)  # road
            events.append((rec, SensorReading(rec.type_id, self.frame, self.elapsed, self.transform(rec), width=w,
                                              height=h, fov=float(rec.attributes["fov"]), raw_data=img.tobytes())))
        return events

    def _sensors_of(self, actor_id: int, type_id: str) -> list[ActorRecord]:
        return [r for r in self.actors.values() if r.parent == actor_id and r.type_id == type_id]

    def _muted_type(self, type_id: str) -> bool:
        return any(fnmatch.fnmatch(type_id, p) for p in self._muted)

    def transform(self, rec: ActorRecord):
        """``rec``'s pose as a ``carla.Transform`` (yaw in degrees)."""
        V = value_types()
        return V["Transform"](V["Location"](rec.x, rec.y, rec.z), V["Rotation"](0.0, math.degrees(rec.yaw), 0.0))
