"""An in-process stand-in of the slice of the ``carla`` 0.9.16 client API that :mod:`envs.carla` uses, for tests
and development without a server (precedent: scenario_runner's ``srunner/tests/carla_mocks/carla.py``).

Import it where ``carla`` would be imported (``envs.carla.connection.carla_module("standin")``); start a server with
:func:`serve` (``serve("127.0.0.1", 2000, town="Standin_straight")``), which returns a
:class:`~envs.carla.standin.server.StandinServer` for fault injection. Value types are the real ``carla`` ones when
the wheel is importable (:mod:`envs.carla.standin.values`). Semantics kept and stand-in-only behaviour:
:mod:`envs.carla.standin.world` (the client API), :mod:`envs.carla.standin.server` (the simulation) and
:mod:`envs.carla.standin.map`.
"""

from envs.carla.standin.client import (
    Client,
    DestroyActor,
    FutureActor,
    Response,
    SetAutopilot,
    SpawnActor,
    command,
    get_server,
    serve,
    shutdown,
    shutdown_all,
)
from envs.carla.standin.enums import (
    ActorState,
    AttachmentType,
    CityObjectLabel,
    LaneChange,
    LaneMarkingColor,
    LaneMarkingType,
    LaneType,
    TrafficLightState,
)
from envs.carla.standin.map import STANDIN_TOWNS, Junction, LaneMarking, Map, Waypoint
from envs.carla.standin.values import value_types
from envs.carla.standin.messages import Timestamp, VehicleControl, WalkerControl, WorldSettings, WorldSnapshot
from envs.carla.standin.server import CARLA_VERSION, StandinServer
from envs.carla.standin.world import (
    Actor,
    ActorAttribute,
    ActorBlueprint,
    ActorList,
    BlueprintLibrary,
    CollisionEvent,
    IMUMeasurement,
    Image,
    LaneInvasionEvent,
    Sensor,
    SensorData,
    TrafficLight,
    TrafficManager,
    Vehicle,
    Walker,
    World,
)

_values = value_types()
Vector3D = _values["Vector3D"]
Location = _values["Location"]
Rotation = _values["Rotation"]
Transform = _values["Transform"]
BoundingBox = _values["BoundingBox"]

IS_STANDIN = True
"""Marks this module as the stand-in (the real ``carla`` module has no such attribute)."""
