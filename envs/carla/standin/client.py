"""``carla.Client``, the ``carla.command`` batch commands, and the registry of in-process stand-in servers.

``serve(host, port, ...)`` starts a :class:`~envs.carla.standin.server.StandinServer` that ``Client(host, port)``
reaches; like CARLA's client, ``Client`` connects lazily, so constructing one never fails, and the first call to an
address nobody serves waits the client's timeout (``set_timeout``, default 5 s) and raises CARLA's time-out error.
``localhost`` and ``127.0.0.1`` are the same address.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from typing import Any, Sequence

from envs.carla.standin.map import STANDIN_TOWNS
from envs.carla.standin.messages import WorldSettings
from envs.carla.standin.server import (
    CARLA_VERSION,
    TRAFFIC_MANAGERS,
    StandinServer,
    TrafficManagerState,
    map_names,
)
from envs.carla.standin.world import Actor, ActorBlueprint, TrafficManager, World, _Link

_SERVERS: dict[tuple[str, int], StandinServer] = {}


def _key(host: str, port: int) -> tuple[str, int]:
    return ("127.0.0.1" if host in ("localhost", "127.0.0.1", "::1") else host, int(port))


def serve(host: str = "127.0.0.1", port: int = 2000, town: str = "Standin_junction_2x2",
          version: str = CARLA_VERSION, nullrhi: bool = False) -> StandinServer:
    """Start a stand-in server at ``host:port`` (replacing any other there) and return it for fault injection."""
    old = _SERVERS.get(_key(host, port))
    if old is not None:
        old.stop_streaming()
    server = StandinServer(host, port, town=town, version=version, nullrhi=nullrhi)
    _SERVERS[_key(host, port)] = server
    return server


def get_server(host: str, port: int) -> StandinServer | None:
    """The stand-in server at ``host:port``, or None."""
    return _SERVERS.get(_key(host, port))


def shutdown(server: StandinServer) -> None:
    """Stop ``server`` (its address stops answering) and release the Traffic Managers bound to it."""
    for key, s in list(_SERVERS.items()):
        if s is server:
            del _SERVERS[key]
    server.crash()
    server.stop_streaming()
    for port, tm in list(TRAFFIC_MANAGERS.items()):
        if tm.server is server:
            del TRAFFIC_MANAGERS[port]


def shutdown_all() -> None:
    """Stop every stand-in server (tests call it in teardown)."""
    for server in list(_SERVERS.values()):
        shutdown(server)
    TRAFFIC_MANAGERS.clear()


class _Unreachable(StandinServer):
    """The "server" behind an address nobody serves: never up."""

    def __init__(self, host: str, port: int) -> None:  # noqa: D107  (no episode, no map)
        self.host, self.port = host, int(port)
        self.alive = self.responsive = False
        self.episode = -1
        self.tick_timeouts = []


# ----------------------------------------------------------------------------------------------------- commands
FutureActor = 0
"""Placeholder for "the actor spawned by the previous command" in ``SpawnActor(...).then(...)``."""


class Response:
    """``carla.command.Response``: ``actor_id`` and ``error`` ("" on success), ``has_error()``."""

    def __init__(self, actor_id: int, error: str = "") -> None:
        self.actor_id, self.error = int(actor_id), error

    def has_error(self) -> bool:
        return bool(self.error)

    def __repr__(self) -> str:
        return f"Response(actor_id={self.actor_id}, error={self.error!r})"


class _Command:
    def __init__(self) -> None:
        self._then: list[_Command] = []

    def then(self, command: "_Command") -> "_Command":
        self._then.append(command)
        return self


def _actor_id(actor: Actor | int) -> int:
    return actor.id if isinstance(actor, Actor) else int(actor)


class DestroyActor(_Command):
    """``carla.command.DestroyActor(actor)``."""

    def __init__(self, actor: Actor | int) -> None:
        super().__init__()
        self.actor_id = _actor_id(actor)


class SpawnActor(_Command):
    """``carla.command.SpawnActor(blueprint, transform, parent=None)``."""

    def __init__(self, blueprint: ActorBlueprint | None = None, transform: Any = None,
                 parent: Actor | int | None = None) -> None:
        super().__init__()
        self.blueprint, self.transform = blueprint, transform
        self.parent_id = 0 if parent is None else _actor_id(parent)


class SetAutopilot(_Command):
    """``carla.command.SetAutopilot(actor, enabled, port=8000)``."""

    def __init__(self, actor: Actor | int, enabled: bool, port: int = 8000) -> None:
        super().__init__()
        self.actor_id, self.enabled, self.port = _actor_id(actor), bool(enabled), int(port)


command = SimpleNamespace(DestroyActor=DestroyActor, SpawnActor=SpawnActor, SetAutopilot=SetAutopilot,
                          FutureActor=FutureActor, Response=Response)
"""The ``carla.command`` namespace of the stand-in."""


# ------------------------------------------------------------------------------------------------------- client
class Client:
    """``carla.Client(host="127.0.0.1", port=2000, worker_threads=0)``: lazy connection, ``set_timeout`` bounds every
    call (default 5 s)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2000, worker_threads: int = 0) -> None:
        self.host, self.port = host, int(port)
        self._timeout = 5.0

    def _server(self) -> StandinServer:
        return _SERVERS.get(_key(self.host, self.port)) or _Unreachable(self.host, self.port)

    def _link(self) -> _Link:
        server = self._server()
        return _Link(server, server.episode, lambda: self._timeout)

    def set_timeout(self, second: float) -> None:
        self._timeout = float(second)

    def get_client_version(self) -> str:
        return CARLA_VERSION

    def get_server_version(self) -> str:
        return self._link().check("get_server_version").version

    def get_world(self) -> World:
        link = self._link()
        link.check("get_world")
        return World(link)

    def get_available_maps(self) -> list[str]:
        self._link().check("get_available_maps")
        return map_names()

    def load_world(self, map_name: str, reset_settings: bool = True, map_layers: Any = None) -> World:
        """Load a town (``"Standin_straight"`` or ``"/Game/Carla/Maps/Standin_straight"``): a new episode without
        actors, default settings unless ``reset_settings`` is False. An unknown town is the server's RPC error
        ``RuntimeError("map not found")``; a load longer than the client's timeout (``server.slow_load``) waits the
        timeout and raises LibCarla's ``RuntimeError("failed to connect to newly created map")`` while the server
        completes the load."""
        link = self._link()
        server = link.check("load_world")
        town = re.sub(r"^.*/", "", map_name)
        if town not in STANDIN_TOWNS:
            raise RuntimeError("map not found")
        settings = WorldSettings() if reset_settings else server.settings
        if server.load_seconds > self._timeout:
            time.sleep(self._timeout)
            server.new_episode(town, settings)
            raise RuntimeError("failed to connect to newly created map")
        time.sleep(server.load_seconds)
        server.new_episode(town, settings)
        return self.get_world()

    def reload_world(self, reset_settings: bool = True) -> World:
        server = self._link().check("reload_world")
        return self.load_world(server.town, reset_settings)

    def get_trafficmanager(self, client_connection: int = 8000) -> TrafficManager:
        """A handle on the process-wide Traffic Manager on ``client_connection``, created bound to this client's server
        when there is none; an existing one stays bound to whichever server created it (it follows that server's new
        episodes)."""
        link = self._link()
        link.check("get_trafficmanager")
        tm = TRAFFIC_MANAGERS.get(int(client_connection))
        if tm is None or not tm.server.up:
            tm = TrafficManagerState(link.server, link.episode, int(client_connection), link.timeout)
            TRAFFIC_MANAGERS[int(client_connection)] = tm
        elif tm.server is link.server and tm.episode != link.episode:
            # same simulator, new episode (load_world / restart): the TM follows it
            tm.episode, tm.timeout = link.episode, link.timeout
        return TrafficManager(tm)

    def apply_batch(self, commands: Sequence[_Command], do_tick: bool = False) -> None:
        self.apply_batch_sync(commands, do_tick)

    def apply_batch_sync(self, commands: Sequence[_Command], do_tick: bool = False) -> list[Response]:
        """Run the commands in order, one :class:`Response` each (``SpawnActor(...).then(...)`` chains apply to the
        new actor); ``do_tick`` ticks the world afterwards."""
        link = self._link()
        server = link.check("apply_batch_sync")
        out = []
        for cmd in commands:
            out.append(self._run(server, link, cmd, None))
        if do_tick:
            World(link).tick(self._timeout)
        return out

    def _run(self, server: StandinServer, link: _Link, cmd: _Command, future: int | None) -> Response:
        if isinstance(cmd, DestroyActor):
            aid = future if cmd.actor_id == FutureActor and future is not None else cmd.actor_id
            ok = server.destroy(aid)
            return Response(aid, "" if ok else f"actor {aid} not found")
        if isinstance(cmd, SpawnActor):
            try:
                rec = server.spawn(cmd.blueprint, cmd.transform, cmd.parent_id or None)
            except RuntimeError as exc:
                return Response(0, str(exc))
            for nxt in cmd._then:
                resp = self._run(server, link, nxt, rec.id)
                if resp.has_error():
                    return Response(rec.id, resp.error)
            return Response(rec.id)
        if isinstance(cmd, SetAutopilot):
            aid = future if cmd.actor_id == FutureActor and future is not None else cmd.actor_id
            rec = server.actors.get(aid)
            if rec is None:
                return Response(aid, f"actor {aid} not found")
            from envs.carla.standin.world import Vehicle, _handle  # noqa: PLC0415

            handle = _handle(server, rec, link)
            if isinstance(handle, Vehicle):
                handle.set_autopilot(cmd.enabled, cmd.port)
            return Response(aid)
        raise TypeError(f"apply_batch_sync: unsupported command {type(cmd).__name__}")
