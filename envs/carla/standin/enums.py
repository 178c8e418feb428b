"""CARLA 0.9.16 enumerations used by the stand-in, with the member names and values of the real module (values
checked against ``carla==0.9.16``; the 0.9.16 ``CityObjectLabel`` has no ``Vehicles``: it was split into ``Car``,
``Truck``, ``Bus``, ``Motorcycle`` and ``Bicycle``)."""

from __future__ import annotations

import enum


class CityObjectLabel(enum.IntEnum):
    """Semantic tags (``carla.CityObjectLabel``, 0.9.16 values)."""

    NONE = 0
    Roads = 1
    Sidewalks = 2
    Buildings = 3
    Walls = 4
    Fences = 5
    Poles = 6
    TrafficLight = 7
    TrafficSigns = 8
    Vegetation = 9
    Terrain = 10
    Sky = 11
    Pedestrians = 12
    Rider = 13
    Car = 14
    Truck = 15
    Bus = 16
    Train = 17
    Motorcycle = 18
    Bicycle = 19
    Static = 20
    Dynamic = 21
    Other = 22
    Water = 23
    RoadLines = 24
    Ground = 25
    Bridge = 26
    RailTrack = 27
    GuardRail = 28
    Any = 255


class TrafficLightState(enum.IntEnum):
    """``carla.TrafficLightState``."""

    Red = 0
    Yellow = 1
    Green = 2
    Off = 3
    Unknown = 4


class LaneType(enum.IntFlag):
    """``carla.LaneType`` (OpenDRIVE lane types; a flag mask)."""

    NONE = 1
    Driving = 2
    Stop = 4
    Shoulder = 8
    Biking = 16
    Sidewalk = 32
    Border = 64
    Restricted = 128
    Parking = 256
    Bidirectional = 512
    Median = 1024
    Special1 = 2048
    Special2 = 4096
    Special3 = 8192
    RoadWorks = 16384
    Tram = 32768
    Rail = 65536
    Entry = 131072
    Exit = 262144
    OffRamp = 524288
    OnRamp = 1048576
    Any = -2


class LaneChange(enum.IntFlag):
    """``carla.LaneChange``: which lane changes a waypoint's lane allows."""

    NONE = 0
    Right = 1
    Left = 2
    Both = 3


class LaneMarkingType(enum.IntEnum):
    """``carla.LaneMarkingType`` (``NONE`` is 10 in the real module)."""

    Other = 0
    Broken = 1
    Solid = 2
    SolidSolid = 3
    SolidBroken = 4
    BrokenSolid = 5
    BrokenBroken = 6
    BottsDots = 7
    Grass = 8
    Curb = 9
    NONE = 10


class LaneMarkingColor(enum.IntEnum):
    """``carla.LaneMarkingColor``."""

    Standard = 0
    White = 0
    Blue = 1
    Green = 2
    Red = 3
    Yellow = 4
    Other = 5


class AttachmentType(enum.IntEnum):
    """``carla.AttachmentType``."""

    Rigid = 0
    SpringArm = 1
    SpringArmGhost = 2


class ActorState(enum.IntEnum):
    """``carla.ActorState``."""

    Invalid = 0
    Active = 1
    Dormant = 2
