"""The client side of the stand-in simulator: the world, actor, sensor, blueprint and Traffic Manager objects of the
``carla`` 0.9.16 API slice the environment uses, handles that read and drive a
:class:`~envs.carla.standin.server.StandinServer` (the simulation itself, its physics and its stand-in-only
behaviour: :mod:`envs.carla.standin.server`).

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
* sensors report through ``listen`` callbacks after each tick (the server's readings, turned into
  ``carla.CollisionEvent`` / ``LaneInvasionEvent`` / ``Image`` with actor handles); ``stop`` ends it.

Stand-in only: sensor callbacks run on the ticking thread, before ``tick`` returns, unless the server delivers late
(:meth:`~envs.carla.standin.server.StandinServer.deliver_late`: a delivery thread, after ``tick`` returns, as CARLA's
streaming thread may).
"""

from __future__ import annotations

import fnmatch
import math
import time
from typing import Any, Callable, Iterator

import numpy as np

from envs.carla.standin.enums import TrafficLightState
from envs.carla.standin.map import Map, Waypoint
from envs.carla.standin.messages import VehicleControl, WalkerControl, WorldSettings, WorldSnapshot
from envs.carla.standin.server import (
    LIGHT_PLAN,
    MAX_STEER_DEG,
    TRAFFIC_MANAGERS,
    ActorRecord,
    SensorReading,
    StandinServer,
    TrafficManagerState,
    blueprint_definitions,
)
from envs.carla.standin.values import value_types


def _v():
    return value_types()


# ---------------------------------------------------------------------------------------------------- blueprints
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
    return BlueprintLibrary([ActorBlueprint(bp_id, attributes, tags)
                             for bp_id, attributes, tags in blueprint_definitions()])


# ---------------------------------------------------------------------------------------------------- sensor data
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


class IMUMeasurement(SensorData):
    """``carla.IMUMeasurement``: ``accelerometer`` [m/s^2], ``gyroscope`` [rad/s] (``Vector3D``), ``compass``
    [rad] (0 = north)."""

    def __init__(self, frame: int, timestamp: float, transform: Any, accelerometer: Any, gyroscope: Any,
                 compass: float) -> None:
        super().__init__(frame, timestamp, transform)
        self.accelerometer, self.gyroscope, self.compass = accelerometer, gyroscope, compass


def _sensor_data(server: StandinServer, reading: SensorReading) -> SensorData:
    """The ``carla.SensorData`` a sensor's callback receives for ``reading`` (actor handles on ``server``)."""
    r = reading
    if r.type_id == "sensor.other.collision":
        return CollisionEvent(r.frame, r.timestamp, r.transform, _handle(server, r.actor),  # type: ignore[arg-type]
                              _handle(server, r.other_actor), r.normal_impulse)  # type: ignore[arg-type]
    if r.type_id == "sensor.other.lane_invasion":
        return LaneInvasionEvent(r.frame, r.timestamp, r.transform, _handle(server, r.actor),  # type: ignore[arg-type]
                                 r.crossed_lane_markings)
    if r.type_id == "sensor.other.imu":
        return IMUMeasurement(r.frame, r.timestamp, r.transform, r.accelerometer, r.gyroscope, r.compass)
    return Image(r.frame, r.timestamp, r.transform, r.width, r.height, r.fov, r.raw_data)


# --------------------------------------------------------------------------------------------- client-side objects
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


def _handle(server: StandinServer, rec: ActorRecord, link: _Link | None = None) -> "Actor":
    link = link or _Link(server, server.episode, lambda: 5.0)
    cls = (Vehicle if rec.kind == "vehicle" else Walker if rec.kind == "walker" else Sensor if rec.kind == "sensor"
           else TrafficLight if rec.type_id == "traffic.traffic_light" else Actor)
    return cls(link, rec)


class Actor:
    """``carla.Actor``: a handle on a server-side actor (state getters read the last tick's state, as CARLA's
    client-side episode cache; they keep answering with the last known state when the server is gone)."""

    def __init__(self, link: _Link, rec: ActorRecord) -> None:
        self._link, self._rec, self.id, self.type_id = link, rec, rec.id, rec.type_id
        self.attributes = dict(rec.attributes)

    def _live(self) -> ActorRecord | None:
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
        return self._link.server.transform(self._rec)

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
            if port not in TRAFFIC_MANAGERS or not TRAFFIC_MANAGERS[port].server.up:
                TRAFFIC_MANAGERS[port] = TrafficManagerState(self._link.server, self._link.episode, int(port),
                                                             self._link.timeout)
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
        light = server.light_for(lane)
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
        """Call ``callback`` with the ``carla.SensorData`` of each of the server's readings for this sensor."""
        rec = self._live()
        if rec is None:
            raise RuntimeError(f"sensor {self.id} is not alive")
        server = self._link.server
        rec.listener = lambda reading: callback(_sensor_data(server, reading))

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
        return self._link.server.light_arms().get(self._rec.arm, [])

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
    """``carla.TrafficManager`` (the subset the environment uses): a handle on the process-wide
    :class:`~envs.carla.standin.server.TrafficManagerState` of its port, bound to the episode of the client that
    created it; see the module docstring."""

    def __init__(self, state: TrafficManagerState) -> None:
        self._state = state

    @property
    def _link(self) -> _Link:
        s = self._state
        return _Link(s.server, s.episode, s.timeout)

    @property
    def hybrid_physics(self) -> bool:
        return self._state.hybrid_physics

    def get_port(self) -> int:
        return self._state.port

    def set_synchronous_mode(self, mode_switch: bool = True) -> None:
        self._link.check("tm.set_synchronous_mode")
        self._state.synchronous = bool(mode_switch)

    def set_random_device_seed(self, value: int) -> None:
        self._state.rng = np.random.default_rng(int(value))

    def global_percentage_speed_difference(self, percentage: float) -> None:
        self._state.global_pct = float(percentage)

    def vehicle_percentage_speed_difference(self, actor: Actor, percentage: float) -> None:
        self._state.vehicle_pct[actor.id] = float(percentage)

    def set_desired_speed(self, actor: Actor, speed: float) -> None:
        self._state.desired[actor.id] = float(speed)

    def set_global_distance_to_leading_vehicle(self, distance: float) -> None:
        self._state.distance = float(distance)

    def distance_to_leading_vehicle(self, actor: Actor, distance: float) -> None:
        self._state.distance = float(distance)

    def ignore_lights_percentage(self, actor: Actor, perc: float) -> None:
        ignore = self._state.ignore_lights
        (ignore.add if perc >= 100.0 else ignore.discard)(actor.id)

    def auto_lane_change(self, actor: Actor, enable: bool) -> None:
        pass

    def set_hybrid_physics_mode(self, enabled: bool = False) -> None:
        self._state.hybrid_physics = bool(enabled)

    def set_respawn_dormant_vehicles(self, mode_switch: bool = False) -> None:
        pass

    def shut_down(self) -> None:
        port = self._state.port
        if TRAFFIC_MANAGERS.get(port) is self._state:
            del TRAFFIC_MANAGERS[port]


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
        if server.tick_times_out():
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
        return server.add_on_tick(callback)

    def remove_on_tick(self, callback_id: int) -> None:
        self._link.check("remove_on_tick").remove_on_tick(callback_id)

    def get_snapshot(self) -> WorldSnapshot:
        server = self._link.check("get_snapshot")
        return server.snapshot()

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
                r.state = server.planned_state(r.group, server.elapsed)

    def __repr__(self) -> str:
        return f"World(id={self._link.episode})"

