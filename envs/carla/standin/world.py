"""The stand-in simulator: an in-process "server" per (host, port) and the client-side world, actor, sensor and
Traffic Manager objects of the ``carla`` 0.9.16 API slice the environment uses.

Semantics kept from CARLA (each one has a test in ``tests/test_carla_standin.py``):

* every call that is an RPC in CARLA (tick, spawn, destroy, get_actors, settings, map, batch, versions, ...) fails
  after waiting the client's timeout with CARLA's ``RuntimeError("time-out of <ms>ms while waiting for the
  simulator, ...")`` when the server is down or hung; ``world.tick(seconds)`` waits at most ``seconds``;
* objects of an old episode (after ``load_world`` or a server restart) raise ``RuntimeError("trying to access an
  expired episode; ...")``;
* synchronous mode: the world advances one ``fixed_delta_seconds`` per ``tick`` and never by itself; ``load_world``
  resets the settings (``reset_settings=True``), so synchronous mode must be applied again;
* spawning fails where the new actor's box overlaps another vehicle or walker (``try_spawn_actor`` -> None,
  ``spawn_actor`` -> ``RuntimeError("Spawn failed because of collision at spawn position")``);
* the Traffic Manager is process-wide per port and bound to the episode of the client that first asked for it
  (the trap behind "one TM port per worker"); it drives its vehicles only when its synchronous mode matches the
  world's;
* sensors report through ``listen`` callbacks after each tick; ``stop`` ends it; collision events fire when two boxes
  start to overlap, lane-invasion events when a vehicle's centre moves into a parallel lane; cameras send a BGRA
  image per tick, none under ``no_rendering_mode`` or on a ``-nullrhi`` server.

Stand-in only (documented, not CARLA): vehicles are kinematic bicycles (throttle up to ``ACCEL_MAX``, brake up to
``BRAKE_MAX``, steer 1 = ``MAX_STEER_DEG`` at the front wheels, wheelbase 0.6 x length) that stop dead on contact;
autopilot vehicles follow lane centres at the speed limit minus the TM's percentage, keep a gap and stop at red
lights; walkers move at ``WalkerControl.speed`` along ``direction``; camera images are flat placeholders (sky / road,
no renderer); traffic lights cycle on a fixed 26 s plan (north-south green first). Sensor callbacks run on the
ticking thread, before ``tick`` returns (CARLA delivers them from a streaming thread).

Fault injection on :class:`StandinServer`: :meth:`~StandinServer.hang` / :meth:`~StandinServer.resume`,
:meth:`~StandinServer.fail_ticks`, :meth:`~StandinServer.crash` / :meth:`~StandinServer.restart`,
:meth:`~StandinServer.fail_spawns`, :meth:`~StandinServer.mute_sensors`.
"""

from __future__ import annotations

import fnmatch
import itertools
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from envs.carla.standin.enums import CityObjectLabel, TrafficLightState
from envs.carla.standin.map import STANDIN_TOWNS, TOWN_PREFIX, Map, Waypoint, standin_map
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


def _v():
    return value_types()


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
    "sensor.camera.rgb": {"image_size_x": "800", "image_size_y": "600", "fov": "90", "sensor_tick": "0.0"},
}


class ActorAttribute:
    """``carla.ActorAttribute``: ``id``, value (``as_str``/``as_int``/``as_float``/``as_bool``), modifiability."""

    def __init__(self, id: str, value: str, is_modifiable: bool = False,  # noqa: A002
                 recommended_values: list[str] | None = None) -> None:
        self.id, self._value, self.is_modifiable = id, str(value), is_modifiable
        self.recommended_values = list(recommended_values or [])

    def as_str(self) -> str:
        return self._value

    def as_int(self) -> int:
        return int(float(self._value))

    def as_float(self) -> float:
        return float(self._value)

    def as_bool(self) -> bool:
        return self._value.lower() in ("true", "1")

    def __str__(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"ActorAttribute(id={self.id}, value={self._value})"


class ActorBlueprint:
    """``carla.ActorBlueprint``: an id, tags and attributes (``set_attribute`` only on modifiable ones)."""

    def __init__(self, bp_id: str, attributes: dict[str, tuple[str, bool]], tags: list[str]) -> None:
        self.id = bp_id
        self.tags = tags
        self._attrs = {k: ActorAttribute(k, v, mod) for k, (v, mod) in attributes.items()}

    def has_attribute(self, id: str) -> bool:  # noqa: A002
        return id in self._attrs

    def has_tag(self, tag: str) -> bool:
        return tag in self.tags

    def match_tags(self, wildcard_pattern: str) -> bool:
        return any(fnmatch.fnmatch(t, wildcard_pattern) for t in self.tags)

    def get_attribute(self, id: str) -> ActorAttribute:  # noqa: A002
        try:
            return self._attrs[id]
        except KeyError:
            raise IndexError(f"attribute '{id}' not found in blueprint {self.id}") from None

    def set_attribute(self, id: str, value: str) -> None:  # noqa: A002
        attr = self.get_attribute(id)
        if not attr.is_modifiable:
            raise RuntimeError(f"attribute '{id}' of blueprint {self.id} is not modifiable")
        attr._value = str(value)

    def __iter__(self) -> Iterator[ActorAttribute]:
        return iter(self._attrs.values())

    def __len__(self) -> int:
        return len(self._attrs)

    def _copy(self) -> "ActorBlueprint":
        bp = ActorBlueprint(self.id, {k: (a._value, a.is_modifiable) for k, a in self._attrs.items()}, list(self.tags))
        return bp

    def __repr__(self) -> str:
        return f"ActorBlueprint(id={self.id},tags={self.tags})"


class BlueprintLibrary:
    """``carla.BlueprintLibrary``: ``filter(wildcard)``, ``find(id)``, iteration; blueprints are copies."""

    def __init__(self, blueprints: list[ActorBlueprint]) -> None:
        self._bps = blueprints

    def filter(self, wildcard_pattern: str) -> "BlueprintLibrary":
        return BlueprintLibrary([bp for bp in self._bps if fnmatch.fnmatch(bp.id, wildcard_pattern)
                                 or bp.match_tags(wildcard_pattern)])

    def filter_by_attribute(self, name: str, value: str) -> "BlueprintLibrary":
        return BlueprintLibrary([bp for bp in self._bps if bp.has_attribute(name)
                                 and bp.get_attribute(name).as_str() == str(value)])

    def find(self, id: str) -> ActorBlueprint:  # noqa: A002
        for bp in self._bps:
            if bp.id == id:
                return bp._copy()
        raise IndexError(f"blueprint '{id}' not found")

    def __getitem__(self, pos: int) -> ActorBlueprint:
        return self._bps[pos]._copy()

    def __iter__(self) -> Iterator[ActorBlueprint]:
        return (bp._copy() for bp in self._bps)

    def __len__(self) -> int:
        return len(self._bps)


def _library() -> BlueprintLibrary:
    bps = []
    for bp_id, (ext, base, wheels, _) in _VEHICLES.items():
        _, make, model = bp_id.split(".")
        bps.append(ActorBlueprint(bp_id, {"role_name": ("autopilot", True), "color": ("255,255,255", True),
                                          "number_of_wheels": (str(wheels), False), "base_type": (base, False),
                                          "generation": ("2", False)}, [make, model, "vehicle"]))
    for bp_id in _WALKERS:
        bps.append(ActorBlueprint(bp_id, {"role_name": ("pedestrian", True), "is_invincible": ("true", True),
                                          "speed": ("1.4", False), "generation": ("2", False)},
                                  ["pedestrian", "walker"]))
    for bp_id in _STATIC:
        bps.append(ActorBlueprint(bp_id, {"role_name": ("prop", True), "size": ("small", False)}, ["prop", "static"]))
    for bp_id, attrs in _SENSORS.items():
        bps.append(ActorBlueprint(bp_id, {"role_name": ("front", True), **{k: (v, True) for k, v in attrs.items()}},
                                  bp_id.split(".")[1:]))
    return BlueprintLibrary(bps)


# -------------------------------------------------------------------------------------------------- value objects
class WorldSettings:
    """``carla.WorldSettings`` (the fields the stand-in honours: ``synchronous_mode``, ``fixed_delta_seconds``,
    ``no_rendering_mode``; ``fixed_delta_seconds`` reads None when unset)."""

    def __init__(self, synchronous_mode: bool = False, no_rendering_mode: bool = False,
                 fixed_delta_seconds: float = 0.0, max_culling_distance: float = 0.0,
                 deterministic_ragdolls: bool = False, tile_stream_distance: int = 3000,
                 actor_active_distance: int = 2000, spectator_as_ego: bool = True) -> None:
        self.synchronous_mode = bool(synchronous_mode)
        self.no_rendering_mode = bool(no_rendering_mode)
        self.fixed_delta_seconds = fixed_delta_seconds if fixed_delta_seconds else None
        self.substepping = True
        self.max_substep_delta_time = 0.01
        self.max_substeps = 10
        self.max_culling_distance = max_culling_distance
        self.deterministic_ragdolls = deterministic_ragdolls
        self.tile_stream_distance = tile_stream_distance
        self.actor_active_distance = actor_active_distance
        self.spectator_as_ego = spectator_as_ego

    def _copy(self) -> "WorldSettings":
        out = WorldSettings()
        out.__dict__.update(self.__dict__)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WorldSettings) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return (f"WorldSettings(synchronous_mode={self.synchronous_mode},no_rendering_mode={self.no_rendering_mode},"
                f"fixed_delta_seconds={self.fixed_delta_seconds})")


class VehicleControl:
    """``carla.VehicleControl``: throttle [0, 1], steer [-1, 1] (positive: right), brake [0, 1], ..."""

    def __init__(self, throttle: float = 0.0, steer: float = 0.0, brake: float = 0.0, hand_brake: bool = False,
                 reverse: bool = False, manual_gear_shift: bool = False, gear: int = 0) -> None:
        self.throttle, self.steer, self.brake = float(throttle), float(steer), float(brake)
        self.hand_brake, self.reverse, self.manual_gear_shift, self.gear = hand_brake, reverse, manual_gear_shift, gear

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VehicleControl) and self.__dict__ == other.__dict__

    def __repr__(self) -> str:
        return (f"VehicleControl(throttle={self.throttle:.6f}, steer={self.steer:.6f}, brake={self.brake:.6f}, "
                f"hand_brake={self.hand_brake}, reverse={self.reverse}, manual_gear_shift={self.manual_gear_shift}, "
                f"gear={self.gear})")


class WalkerControl:
    """``carla.WalkerControl(direction=Vector3D(1, 0, 0), speed=0.0, jump=False)`` (speed [m/s])."""

    def __init__(self, direction=None, speed: float = 0.0, jump: bool = False) -> None:
        V = _v()
        self.direction = direction if direction is not None else V["Vector3D"](1.0, 0.0, 0.0)
        self.speed, self.jump = float(speed), bool(jump)


class Timestamp:
    """``carla.Timestamp``: frame, elapsed and delta seconds, platform time."""

    def __init__(self, frame: int, elapsed_seconds: float, delta_seconds: float, platform_timestamp: float) -> None:
        self.frame, self.elapsed_seconds = frame, elapsed_seconds
        self.delta_seconds, self.platform_timestamp = delta_seconds, platform_timestamp


class WorldSnapshot:
    """``carla.WorldSnapshot`` (``id``, ``frame``, ``timestamp``; ``has_actor``)."""

    def __init__(self, episode: int, frame: int, timestamp: Timestamp, actor_ids: set[int]) -> None:
        self.id, self.frame, self.timestamp, self._ids = episode, frame, timestamp, actor_ids

    def has_actor(self, actor_id: int) -> bool:
        return actor_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)


class SensorData:
    """``carla.SensorData``: ``frame``, ``timestamp`` [s], ``transform`` of the sensor."""

    def __init__(self, frame: int, timestamp: float, transform: Any) -> None:
        self.frame, self.timestamp, self.transform = frame, timestamp, transform


class CollisionEvent(SensorData):
    """``carla.CollisionEvent``: ``actor`` (the sensor's parent), ``other_actor``, ``normal_impulse`` [N s]."""

    def __init__(self, frame: int, timestamp: float, transform: Any, actor: "Actor", other_actor: "Actor",
                 normal_impulse: Any) -> None:
        super().__init__(frame, timestamp, transform)
        self.actor, self.other_actor, self.normal_impulse = actor, other_actor, normal_impulse


class LaneInvasionEvent(SensorData):
    """``carla.LaneInvasionEvent``: ``actor`` and ``crossed_lane_markings``."""

    def __init__(self, frame: int, timestamp: float, transform: Any, actor: "Actor", markings: list) -> None:
        super().__init__(frame, timestamp, transform)
        self.actor, self.crossed_lane_markings = actor, markings


class Image(SensorData):
    """``carla.Image``: ``width``, ``height``, ``fov``, ``raw_data`` (BGRA bytes, row-major)."""

    def __init__(self, frame: int, timestamp: float, transform: Any, width: int, height: int, fov: float,
                 raw_data: bytes) -> None:
        super().__init__(frame, timestamp, transform)
        self.width, self.height, self.fov, self.raw_data = width, height, fov, raw_data

    def __len__(self) -> int:
        return self.width * self.height


# ------------------------------------------------------------------------------------------------------- records
@dataclass
class _Record:
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
    listener: Callable[[Any], None] | None = None
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
        self._new_episode(town, WorldSettings())

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
        self._new_episode(town or self.town, WorldSettings())

    def fail_spawns(self, n: int = 1) -> None:
        """The next ``n`` spawn attempts fail as if the spawn point were occupied."""
        self._spawn_faults += int(n)

    def mute_sensors(self, pattern: str = "sensor.*") -> None:
        """From now on, sensors whose type id matches ``pattern`` stay listening but never deliver data."""
        self._muted.append(pattern)

    @property
    def up(self) -> bool:
        return self.alive and self.responsive

    def user_actors(self) -> list[str]:
        """Type ids of the actors a client spawned (vehicles, walkers, sensors, props): what a leak check counts."""
        return sorted(r.type_id for r in self.actors.values() if r.kind in ("vehicle", "walker", "sensor", "static"))

    # ------------------------------------------------------------------ episode
    def _new_episode(self, town: str, settings: WorldSettings) -> None:
        self.town = town
        self.map: Map = standin_map(town)
        self.episode += 1
        self.settings = settings
        self.frame = 0
        self.elapsed = 0.0
        self.actors: dict[int, _Record] = {}
        self._contacts: set[tuple[int, int]] = set()
        self._on_tick: dict[int, Callable] = {}
        self._add(_Record(next(self._ids), "spectator", {}, (0.1, 0.1, 0.1), z=10.0))
        for arm, lanes in self._light_arms().items():
            rec = _Record(next(self._ids), "traffic.traffic_light", {}, (0.2, 0.2, 2.0), physics=False)
            rec.arm = arm
            rec.group = "NS" if arm in ("N", "S") else "EW"
            end = self.map._lanes[lanes[0]].points[-1]
            rec.x, rec.y = float(end[0]), float(end[1])
            rec.state = self._planned_state(rec.group, 0.0)
            self._add(rec)

    def _light_arms(self) -> dict[str, list[int]]:
        """Junction towns: ``{arm: [in-lane indices]}``; other towns have no lights."""
        if not self.town.startswith(TOWN_PREFIX + "junction"):
            return {}
        out: dict[str, list[int]] = {}
        for lane in self.map._lanes:
            if "_in" in lane.name and ">" not in lane.name:
                out.setdefault(lane.name[0], []).append(lane.index)
        return out

    def _planned_state(self, group: str, t: float) -> TrafficLightState:
        green, yellow, red = LIGHT_PLAN
        period = green + yellow + red
        phase = (t - (0.0 if group == "NS" else green + yellow)) % period
        if phase < green:
            return TrafficLightState.Green
        if phase < green + yellow:
            return TrafficLightState.Yellow
        return TrafficLightState.Red

    def _add(self, rec: _Record) -> _Record:
        self.actors[rec.id] = rec
        return rec

    # ------------------------------------------------------------------ spawning
    def spawn(self, bp: ActorBlueprint, transform: Any, parent: int | None) -> _Record:
        """Spawn an actor or raise ``RuntimeError`` (occupied spawn point, unknown parent, fault)."""
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
        rec = _Record(next(self._ids), bp_id, attrs, ext, tags=tags)
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

    def _corners(self, recs: list[_Record]) -> np.ndarray:
        poses = np.array([[r.x, r.y, r.yaw] for r in recs], dtype=np.float64).reshape(-1, 3)
        sizes = np.array([[2 * r.extent[0], 2 * r.extent[1]] for r in recs], dtype=np.float64).reshape(-1, 2)
        return box_corners(poses, sizes[:, 0], sizes[:, 1])

    def _overlaps(self, rec: _Record) -> bool:
        others = [r for r in self.actors.values() if r.solid]
        if not others:
            return False
        return bool(boxes_overlap(self._corners([rec]), self._corners(others)).any())

    def _follow_parent(self, rec: _Record) -> None:
        p = self.actors[rec.parent]  # type: ignore[index]
        rx, ry, rz, ryaw = rec.rel
        c, s = math.cos(p.yaw), math.sin(p.yaw)
        rec.x, rec.y, rec.z, rec.yaw = p.x + c * rx - s * ry, p.y + s * rx + c * ry, p.z + rz, p.yaw + ryaw
        rec.speed = p.speed

    # ------------------------------------------------------------------ ticking
    def dt(self) -> float:
        return self.settings.fixed_delta_seconds or 0.05

    def step(self) -> int:
        """Advance one frame: lights, autopilot, vehicles, walkers, contacts, sensors; returns the new frame."""
        dt = self.dt()
        self.frame += 1
        self.elapsed += dt
        for rec in self.actors.values():
            if rec.type_id == "traffic.traffic_light" and not rec.frozen:
                rec.state = self._planned_state(rec.group, self.elapsed)
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
        events = self._collisions() + self._lane_invasions() + self._images()
        snapshot = WorldSnapshot(self.episode, self.frame, self._timestamp(), set(self.actors))
        for rec, data in events:
            if rec.listener is not None and rec.id in self.actors and not self._muted_type(rec.type_id):
                try:
                    rec.listener(data)
                except Exception as exc:  # CARLA prints callback errors and keeps ticking
                    self.callback_errors.append(exc)
                    warnings.warn(f"stand-in: sensor {rec.id} callback raised {exc!r}", RuntimeWarning, stacklevel=2)
        for cb in list(self._on_tick.values()):
            cb(snapshot)
        return self.frame

    def _timestamp(self) -> Timestamp:
        return Timestamp(self.frame, self.elapsed, self.dt(), time.time())

    def _drive(self, rec: _Record, dt: float) -> None:
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

    def _walk(self, rec: _Record, dt: float) -> None:
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

    def _autopilot(self, rec: _Record, dt: float) -> None:
        """Lane following at the TM's speed with a gap to the leader and stops at red lights."""
        tm = _TRAFFIC_MANAGERS.get(rec.autopilot_port)  # type: ignore[arg-type]
        if tm is None or tm._server is not self or tm._episode != self.episode \
                or tm._synchronous != self.settings.synchronous_mode:
            rec.speed, rec.accel = 0.0, 0.0
            return
        lanes = self.map._lanes
        if rec.lane < 0:
            rec.lane, rec.lane_s, _ = self.map.lane_of(np.array([rec.x, rec.y]))
        lane = lanes[rec.lane]
        pct = tm._vehicle_pct.get(rec.id, tm._global_pct)
        target = lane.speed_limit * (1.0 - pct / 100.0)
        if rec.id in tm._desired:
            target = tm._desired[rec.id] / 3.6
        gap = self._gap_ahead(rec, lane)
        target = min(target, max(0.0, (gap - tm._distance) / 1.5))
        light = self._light_for(lane.index)
        if light is not None and light.state != TrafficLightState.Green and rec.id not in tm._ignore_lights:
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
            lane = lanes[int(tm._rng.choice(lane.successors))]
            rec.lane = lane.index
        x, y, yaw = lane.at(rec.lane_s)
        rec.yaw_rate = ((yaw - rec.yaw + math.pi) % (2 * math.pi) - math.pi) / dt
        rec.x, rec.y, rec.yaw = x, y, yaw
        rec.accel, rec.speed = (v_new - rec.speed) / dt, v_new

    def _gap_ahead(self, rec: _Record, lane) -> float:
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

    def _light_for(self, lane_index: int) -> _Record | None:
        name = self.map._lanes[lane_index].name
        if "_in" not in name or ">" in name:
            return None
        for rec in self.actors.values():
            if rec.type_id == "traffic.traffic_light" and rec.arm == name[0]:
                return rec
        return None

    def _collisions(self) -> list[tuple[_Record, CollisionEvent]]:
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
        V = _v()
        for a, b in sorted(new):
            ra, rb = self.actors[a], self.actors[b]
            dv = abs(ra.speed - rb.speed)
            for me, other in ((ra, rb), (rb, ra)):
                if me.kind == "vehicle":  # stopped dead (stand-in contact model); walkers keep their control
                    me.speed = 0.0
                for sensor in self._sensors_of(me.id, "sensor.other.collision"):
                    mass = 1500.0 if other.kind == "vehicle" else 80.0
                    events.append((sensor, CollisionEvent(
                        self.frame, self.elapsed, self._transform(sensor), _handle(self, me), _handle(self, other),
                        V["Vector3D"](mass * dv, 0.0, 0.0))))
        return events

    def _lane_invasions(self) -> list[tuple[_Record, LaneInvasionEvent]]:
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
            events.append((sensor, LaneInvasionEvent(self.frame, self.elapsed, self._transform(sensor),
                                                     _handle(self, parent), [side])))
        return events

    def _images(self) -> list[tuple[_Record, Image]]:
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
            events.append((rec, Image(self.frame, self.elapsed, self._transform(rec), w, h,
                                      float(rec.attributes["fov"]), img.tobytes())))
        return events

    def _sensors_of(self, actor_id: int, type_id: str) -> list[_Record]:
        return [r for r in self.actors.values() if r.parent == actor_id and r.type_id == type_id]

    def _muted_type(self, type_id: str) -> bool:
        return any(fnmatch.fnmatch(type_id, p) for p in self._muted)

    def _transform(self, rec: _Record):
        V = _v()
        return V["Transform"](V["Location"](rec.x, rec.y, rec.z), V["Rotation"](0.0, math.degrees(rec.yaw), 0.0))


# --------------------------------------------------------------------------------------------- client-side objects
_TRAFFIC_MANAGERS: dict[int, "TrafficManager"] = {}
"""Process-wide Traffic Managers by port (CARLA: one TM server per port per client process)."""


class _Link:
    """What every client-side object needs: the server, the episode it belongs to, the client's timeout."""

    def __init__(self, server: StandinServer, episode: int, timeout: Callable[[], float]) -> None:
        self.server, self.episode, self.timeout = server, episode, timeout

    def check(self, what: str = "") -> StandinServer:
        """The server if it answers, else wait the timeout and raise CARLA's time-out error; expired episodes
        raise CARLA's expired-episode error."""
        s = self.server
        if not s.up:
            t = self.timeout()
            time.sleep(t)
            raise RuntimeError(f"time-out of {int(round(t * 1000))}ms while waiting for the simulator, make sure the "
                               f"simulator is ready and connected to {s.host}:{s.port}")
        if s.episode != self.episode:
            raise RuntimeError("trying to access an expired episode; a new episode was started in the simulation but "
                               "an object tried accessing the old one.")
        return s


def _handle(server: StandinServer, rec: _Record, link: _Link | None = None) -> "Actor":
    link = link or _Link(server, server.episode, lambda: 5.0)
    cls = (Vehicle if rec.kind == "vehicle" else Walker if rec.kind == "walker" else Sensor if rec.kind == "sensor"
           else TrafficLight if rec.type_id == "traffic.traffic_light" else Actor)
    return cls(link, rec)


class Actor:
    """``carla.Actor``: a handle on a server-side actor (state getters read the last tick's state, as CARLA's
    client-side episode cache; they keep answering with the last known state when the server is gone)."""

    def __init__(self, link: _Link, rec: _Record) -> None:
        self._link, self._rec, self.id, self.type_id = link, rec, rec.id, rec.type_id
        self.attributes = dict(rec.attributes)

    def _live(self) -> _Record | None:
        s = self._link.server
        if s.alive and s.episode == self._link.episode:
            rec = s.actors.get(self.id)
            if rec is not None:
                self._rec = rec
                return rec
        return None

    @property
    def is_alive(self) -> bool:
        return self._live() is not None

    @property
    def is_active(self) -> bool:
        return self.is_alive

    @property
    def parent(self) -> "Actor | None":
        rec = self._live()
        if rec is None or rec.parent is None:
            return None
        p = self._link.server.actors.get(rec.parent)
        return None if p is None else _handle(self._link.server, p, self._link)

    @property
    def semantic_tags(self) -> list[int]:
        return list(self._rec.tags)

    @property
    def bounding_box(self):
        V = _v()
        e = self._rec.extent
        return V["BoundingBox"](V["Location"](0.0, 0.0, e[2]), V["Vector3D"](*e))

    def get_world(self) -> "World":
        return World(self._link)

    def get_transform(self):
        self._live()
        return self._link.server._transform(self._rec)

    def get_location(self):
        return self.get_transform().location

    def get_velocity(self):
        self._live()
        r = self._rec
        return _v()["Vector3D"](r.speed * math.cos(r.yaw), r.speed * math.sin(r.yaw), 0.0)

    def get_acceleration(self):
        self._live()
        r = self._rec
        return _v()["Vector3D"](r.accel * math.cos(r.yaw), r.accel * math.sin(r.yaw), 0.0)

    def get_angular_velocity(self):
        self._live()
        return _v()["Vector3D"](0.0, 0.0, math.degrees(self._rec.yaw_rate))

    def set_transform(self, transform) -> None:
        rec = self._live()
        if rec is not None:
            rec.x, rec.y, rec.z = transform.location.x, transform.location.y, transform.location.z
            rec.yaw = math.radians(transform.rotation.yaw)
            rec.lane = -1

    def set_location(self, location) -> None:
        rec = self._live()
        if rec is not None:
            rec.x, rec.y, rec.z = location.x, location.y, location.z
            rec.lane = -1

    def set_target_velocity(self, velocity) -> None:
        """Sets the speed along the heading to ``velocity`` projected on it (stand-in: no side slip)."""
        rec = self._live()
        if rec is not None:
            rec.speed = velocity.x * math.cos(rec.yaw) + velocity.y * math.sin(rec.yaw)

    def set_target_angular_velocity(self, angular_velocity) -> None:
        rec = self._live()
        if rec is not None:
            rec.yaw_rate = math.radians(angular_velocity.z)

    def set_simulate_physics(self, enabled: bool = True) -> None:
        rec = self._live()
        if rec is not None:
            rec.physics = bool(enabled)

    def set_enable_gravity(self, enabled: bool) -> None:
        self._live()

    def add_impulse(self, impulse) -> None:
        self._live()

    def destroy(self) -> bool:
        """Destroy the actor (an RPC: times out on a dead server); False if it was already gone."""
        server = self._link.check("destroy")
        return server.destroy(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Actor) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"Actor(id={self.id}, type={self.type_id})"


class Vehicle(Actor):
    """``carla.Vehicle``: ``apply_control``, ``get_control``, ``set_autopilot(enabled, port)``, lights."""

    def apply_control(self, control: VehicleControl) -> None:
        rec = self._live()
        if rec is not None:
            rec.control = VehicleControl(control.throttle, control.steer, control.brake, control.hand_brake,
                                         control.reverse, control.manual_gear_shift, control.gear)

    def get_control(self) -> VehicleControl:
        c = self._rec.control
        return VehicleControl(c.throttle, c.steer, c.brake, c.hand_brake, c.reverse, c.manual_gear_shift, c.gear)

    def set_autopilot(self, enabled: bool = True, port: int = 8000) -> None:
        """Register with (or leave) the Traffic Manager on ``port``, creating it bound to this episode if none exists
        in this process."""
        server = self._link.check("set_autopilot")
        rec = server.actors.get(self.id)
        if rec is None:
            return
        if enabled:
            if port not in _TRAFFIC_MANAGERS or not _TRAFFIC_MANAGERS[port]._server.up:
                _TRAFFIC_MANAGERS[port] = TrafficManager(self._link, port)
            rec.autopilot_port, rec.lane = int(port), -1
        else:
            rec.autopilot_port = None

    def get_speed_limit(self) -> float:
        """Speed limit of the current lane [km/h]."""
        r = self._rec
        lane, _, _ = self._link.server.map.lane_of(np.array([r.x, r.y]))
        return self._link.server.map._lanes[lane].speed_limit * 3.6

    def get_traffic_light_state(self) -> TrafficLightState:
        light = self.get_traffic_light()
        return TrafficLightState.Green if light is None else light.state

    def is_at_traffic_light(self) -> bool:
        return self.get_traffic_light() is not None

    def get_traffic_light(self) -> "TrafficLight | None":
        r = self._rec
        server = self._link.server
        lane, s, _ = server.map.lane_of(np.array([r.x, r.y]))
        light = server._light_for(lane)
        if light is None or server.map._lanes[lane].length - s > 20.0:
            return None
        return TrafficLight(self._link, light)

    def get_wheel_steer_angle(self, wheel_location: int) -> float:
        """Front-wheel angle [deg] (positive: right)."""
        return self._rec.control.steer * MAX_STEER_DEG if int(wheel_location) in (0, 1) else 0.0

    def set_light_state(self, light_state: Any) -> None:
        self._live()


class Walker(Actor):
    """``carla.Walker``: ``apply_control(WalkerControl)``."""

    def apply_control(self, control: WalkerControl) -> None:
        rec = self._live()
        if rec is not None:
            rec.control = WalkerControl(control.direction, control.speed, control.jump)

    def get_control(self) -> WalkerControl:
        return self._rec.control


class Sensor(Actor):
    """``carla.Sensor``: ``listen(callback)``, ``is_listening()``, ``stop()``."""

    def listen(self, callback: Callable[[Any], None]) -> None:
        rec = self._live()
        if rec is None:
            raise RuntimeError(f"sensor {self.id} is not alive")
        rec.listener = callback

    def is_listening(self) -> bool:
        rec = self._live()
        return rec is not None and rec.listener is not None

    def stop(self) -> None:
        rec = self._live()
        if rec is not None:
            rec.listener = None


class TrafficLight(Actor):
    """``carla.TrafficLight``: state, freezing, stop waypoints of the lanes it controls."""

    @property
    def state(self) -> TrafficLightState:
        self._live()
        return self._rec.state

    def get_state(self) -> TrafficLightState:
        return self.state

    def set_state(self, state: TrafficLightState) -> None:
        rec = self._live()
        if rec is not None:
            rec.state = TrafficLightState(int(state))

    def freeze(self, freeze: bool) -> None:
        rec = self._live()
        if rec is not None:
            rec.frozen = bool(freeze)

    def is_frozen(self) -> bool:
        self._live()
        return self._rec.frozen

    def _lanes(self) -> list[int]:
        return self._link.server._light_arms().get(self._rec.arm, [])

    def get_stop_waypoints(self) -> list[Waypoint]:
        town = self._link.server.map
        return [Waypoint(town, i, town._lanes[i].length) for i in self._lanes()]

    def get_affected_lane_waypoints(self) -> list[Waypoint]:
        return self.get_stop_waypoints()

    def get_opendrive_id(self) -> str:
        return f"light_{self._rec.arm}"

    def get_group_traffic_lights(self) -> list["TrafficLight"]:
        server = self._link.server
        return [TrafficLight(self._link, r) for r in server.actors.values() if r.type_id == "traffic.traffic_light"]

    def get_green_time(self) -> float:
        return LIGHT_PLAN[0]

    def get_yellow_time(self) -> float:
        return LIGHT_PLAN[1]

    def get_red_time(self) -> float:
        return LIGHT_PLAN[2]


class ActorList:
    """``carla.ActorList``: ``filter(wildcard)``, ``find(id)``, iteration, ``len``."""

    def __init__(self, actors: list[Actor]) -> None:
        self._actors = actors

    def filter(self, wildcard_pattern: str) -> "ActorList":
        return ActorList([a for a in self._actors if fnmatch.fnmatch(a.type_id, wildcard_pattern)])

    def find(self, actor_id: int) -> Actor | None:
        for a in self._actors:
            if a.id == actor_id:
                return a
        return None

    def __getitem__(self, pos: int) -> Actor:
        return self._actors[pos]

    def __iter__(self) -> Iterator[Actor]:
        return iter(self._actors)

    def __len__(self) -> int:
        return len(self._actors)


class TrafficManager:
    """``carla.TrafficManager`` (the subset the environment uses), bound to the episode of the client that created
    it; see the module docstring."""

    def __init__(self, link: _Link, port: int) -> None:
        self._link, self._server, self._episode, self._port = link, link.server, link.episode, int(port)
        self._synchronous = False
        self._rng = np.random.default_rng(0)
        self._global_pct = 30.0
        self._vehicle_pct: dict[int, float] = {}
        self._desired: dict[int, float] = {}
        self._ignore_lights: set[int] = set()
        self._distance = 2.5
        self.hybrid_physics = False

    def get_port(self) -> int:
        return self._port

    def _rebind(self, link: _Link) -> None:
        self._link, self._episode = link, link.episode

    def set_synchronous_mode(self, mode_switch: bool = True) -> None:
        self._link.check("tm.set_synchronous_mode")
        self._synchronous = bool(mode_switch)

    def set_random_device_seed(self, value: int) -> None:
        self._rng = np.random.default_rng(int(value))

    def global_percentage_speed_difference(self, percentage: float) -> None:
        self._global_pct = float(percentage)

    def vehicle_percentage_speed_difference(self, actor: Actor, percentage: float) -> None:
        self._vehicle_pct[actor.id] = float(percentage)

    def set_desired_speed(self, actor: Actor, speed: float) -> None:
        self._desired[actor.id] = float(speed)

    def set_global_distance_to_leading_vehicle(self, distance: float) -> None:
        self._distance = float(distance)

    def distance_to_leading_vehicle(self, actor: Actor, distance: float) -> None:
        self._distance = float(distance)

    def ignore_lights_percentage(self, actor: Actor, perc: float) -> None:
        (self._ignore_lights.add if perc >= 100.0 else self._ignore_lights.discard)(actor.id)

    def auto_lane_change(self, actor: Actor, enable: bool) -> None:
        pass

    def set_hybrid_physics_mode(self, enabled: bool = False) -> None:
        self.hybrid_physics = bool(enabled)

    def set_respawn_dormant_vehicles(self, mode_switch: bool = False) -> None:
        pass

    def shut_down(self) -> None:
        if _TRAFFIC_MANAGERS.get(self._port) is self:
            del _TRAFFIC_MANAGERS[self._port]


class World:
    """``carla.World`` of one episode (see the module docstring for the semantics kept)."""

    def __init__(self, link: _Link) -> None:
        self._link = link

    @property
    def id(self) -> int:
        return self._link.episode

    def get_settings(self) -> WorldSettings:
        return self._link.check("get_settings").settings._copy()

    def apply_settings(self, world_settings: WorldSettings) -> int:
        server = self._link.check("apply_settings")
        server.settings = world_settings._copy()
        return server.frame

    def tick(self, seconds: float = 10.0) -> int:
        """Advance one frame (synchronous mode); waits at most ``seconds`` and raises CARLA's time-out error."""
        server = self._link.server
        server.tick_timeouts.append(float(seconds))
        if not server.up or server._tick_faults > 0:
            if server.up:
                server._tick_faults -= 1
            time.sleep(seconds)
            raise RuntimeError(f"time-out of {int(round(seconds * 1000))}ms while waiting for the simulator, make "
                               f"sure the simulator is ready and connected to {server.host}:{server.port}")
        self._link.check("tick")
        return server.step()

    def wait_for_tick(self, seconds: float = 10.0) -> WorldSnapshot:
        server = self._link.check("wait_for_tick")
        if server.settings.synchronous_mode:  # nobody else ticks this world
            time.sleep(seconds)
            raise RuntimeError(f"time-out of {int(round(seconds * 1000))}ms while waiting for the simulator, make "
                               f"sure the simulator is ready and connected to {server.host}:{server.port}")
        server.step()
        return self.get_snapshot()

    def on_tick(self, callback: Callable[[WorldSnapshot], Any]) -> int:
        server = self._link.check("on_tick")
        key = next(server._ids)
        server._on_tick[key] = callback
        return key

    def remove_on_tick(self, callback_id: int) -> None:
        self._link.check("remove_on_tick")._on_tick.pop(callback_id, None)

    def get_snapshot(self) -> WorldSnapshot:
        server = self._link.check("get_snapshot")
        return WorldSnapshot(server.episode, server.frame, server._timestamp(), set(server.actors))

    def get_map(self) -> Map:
        return self._link.check("get_map").map

    def get_blueprint_library(self) -> BlueprintLibrary:
        self._link.check("get_blueprint_library")
        return _library()

    def get_spectator(self) -> Actor:
        server = self._link.check("get_spectator")
        rec = next(r for r in server.actors.values() if r.type_id == "spectator")
        return _handle(server, rec, self._link)

    def get_actor(self, actor_id: int) -> Actor | None:
        server = self._link.check("get_actor")
        rec = server.actors.get(actor_id)
        return None if rec is None else _handle(server, rec, self._link)

    def get_actors(self, actor_ids: list[int] | None = None) -> ActorList:
        server = self._link.check("get_actors")
        recs = [r for r in server.actors.values() if actor_ids is None or r.id in set(actor_ids)]
        return ActorList([_handle(server, r, self._link) for r in recs])

    def spawn_actor(self, blueprint: ActorBlueprint, transform: Any, attach_to: Actor | None = None,
                    attachment_type: Any = 0) -> Actor:
        """Spawn or raise ``RuntimeError`` (e.g. "Spawn failed because of collision at spawn position")."""
        server = self._link.check("spawn_actor")
        rec = server.spawn(blueprint, transform, None if attach_to is None else attach_to.id)
        return _handle(server, rec, self._link)

    def try_spawn_actor(self, blueprint: ActorBlueprint, transform: Any, attach_to: Actor | None = None,
                        attachment_type: Any = 0) -> Actor | None:
        """As :meth:`spawn_actor`, but None when the spawn fails (time-outs still raise)."""
        try:
            return self.spawn_actor(blueprint, transform, attach_to, attachment_type)
        except RuntimeError as exc:
            if "time-out" in str(exc) or "expired episode" in str(exc):
                raise
            return None

    def get_traffic_lights_in_junction(self, junction_id: int) -> list[TrafficLight]:
        server = self._link.check("get_traffic_lights_in_junction")
        return [TrafficLight(self._link, r) for r in server.actors.values() if r.type_id == "traffic.traffic_light"]

    def freeze_all_traffic_lights(self, frozen: bool) -> None:
        server = self._link.check("freeze_all_traffic_lights")
        for r in server.actors.values():
            if r.type_id == "traffic.traffic_light":
                r.frozen = bool(frozen)

    def reset_all_traffic_lights(self) -> None:
        server = self._link.check("reset_all_traffic_lights")
        for r in server.actors.values():
            if r.type_id == "traffic.traffic_light":
                r.state = server._planned_state(r.group, server.elapsed)

    def __repr__(self) -> str:
        return f"World(id={self._link.episode})"


def map_names() -> list[str]:
    """``Client.get_available_maps()`` of the stand-in."""
    return [f"/Game/Carla/Maps/{t}" for t in STANDIN_TOWNS]
