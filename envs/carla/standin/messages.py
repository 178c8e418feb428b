"""The plain ``carla`` value objects that pass between the stand-in's client API (:mod:`envs.carla.standin.world`)
and its server (:mod:`envs.carla.standin.server`): world settings and actor controls (client to server), timestamps
and world snapshots (server to client)."""

from __future__ import annotations

from envs.carla.standin.values import value_types


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
        V = value_types()
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
