"""The connection to one CARLA server: connect with a timeout, version check, town, synchronous mode, Traffic
Manager, ticks with a timeout, batch destroy of every spawned actor, reconnection, clean close.

Reliability rules (``../shared/specs/carla-0916.md``):

* **connect**: ``carla.Client(host, port)`` connects lazily, so the first call (``get_server_version``) is the
  connection test, bounded by ``client.set_timeout``; a server that does not answer is a
  :class:`CarlaConnectionError` naming ``host:port`` and how to start one (``docker compose up carla``);
* **versions**: ``get_server_version()`` must equal ``get_client_version()`` (major.minor.patch), else
  :class:`CarlaVersionError`;
* **town**: ``load_world`` runs under its own timeout ``load_world_timeout`` (``client.set_timeout`` around the call,
  restored after: a first town load often takes longer than the client timeout; LibCarla waits at most the client
  timeout for the new episode, then raises ``failed to connect to newly created map``, a
  :class:`CarlaConnectionError` that the reconnection retries); a town the server does not have (not in
  ``client.get_available_maps()``, or the server's ``map not found``) is a :class:`CarlaMapError` listing the
  available maps, a configuration error that is never retried;
* **synchronous mode** with ``fixed_delta_seconds``; the Traffic Manager on this worker's own port is switched to
  synchronous mode too (the TM port binds on the client side: workers in one process or machine need distinct ports);
  ``load_world`` resets settings, so they are applied after it; ``tick`` always passes a timeout;
* **actors**: everything spawned is tracked; :meth:`CarlaConnection.destroy_all` stops sensors and destroys all in one
  ``apply_batch_sync`` of ``command.DestroyActor``; actors that could not be destroyed because the server stopped
  answering are destroyed on the next successful (re)connection;
* **close**: destroy, then synchronous mode off (world and TM), so the server does not wait for ticks that never
  come; errors from a server that is gone are swallowed.

:func:`check_server` is the fast start-up check of ``python -m experiments.run env=carla``: a TCP probe of the RPC port
(fails at once when nothing listens), then a version query with a short timeout.
"""

from __future__ import annotations

import importlib
import re
import socket
from types import ModuleType
from typing import Any

START_HINT = ("start one with `docker compose up carla` (GPU) or `docker compose --profile nullrhi up carla-nullrhi` "
              "(no GPU, no cameras), or point env.hosts / CarlaEnvConfig.hosts at a running server")
"""How to start a server, appended to connection errors."""
BACKENDS = ("carla", "standin")
"""``"carla"``: the real client library (``pip install -e '.[carla]'``); ``"standin"``: the in-process stand-in."""


class CarlaError(RuntimeError):
    """Base of the CARLA environment's errors."""


class CarlaConnectionError(CarlaError):
    """No CARLA server answers at the configured address (the message names ``host:port`` and how to start one)."""


class CarlaVersionError(CarlaError):
    """Client library and server versions differ."""


class CarlaSensorError(CarlaError):
    """A sensor sent no data for the current frame within ``sensor_timeout`` (ends the episode; the server is up)."""


class CarlaMapError(CarlaError):
    """The configured town is not on the server (a configuration error: the message lists the available maps)."""


NOT_RETRIED = (CarlaVersionError, CarlaMapError)
"""Configuration errors that a reconnection cannot fix (the reconnect loop raises them at once)."""


class CarlaSpawnError(CarlaError):
    """The ego could not be spawned (every candidate place failed)."""


def carla_module(backend: str = "carla") -> ModuleType:
    """The ``carla`` module of a backend (:data:`BACKENDS`); a clear ``ImportError`` when the real wheel is missing."""
    if backend == "standin":
        return importlib.import_module("envs.carla.standin")
    if backend != "carla":
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    try:
        return importlib.import_module("carla")
    except ImportError:
        raise ImportError("the CARLA client library is not installed: pip install -e '.[carla]' (carla==0.9.16, "
                          "CPython 3.10-3.12), or use backend='standin' for the in-process stand-in") from None


def parse_host(spec: str, default_port: int = 2000) -> tuple[str, int]:
    """``"host:port"`` (or ``"host"``) -> ``(host, port)``; ``ValueError`` naming the bad entry."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"hosts: expected 'host:port' strings, got {spec!r}")
    m = re.fullmatch(r"\s*(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(\d+))?\s*", spec)
    if m is None:
        raise ValueError(f"hosts: cannot parse {spec!r}; expected 'host:port', e.g. 'localhost:2000'")
    port = int(m.group(2)) if m.group(2) else default_port
    if not 0 < port < 65536:
        raise ValueError(f"hosts: port {port} of {spec!r} is outside 1..65535")
    return m.group(1).strip("[]"), port


def _versions_match(a: str, b: str) -> bool:
    pa, pb = re.match(r"\d+\.\d+\.\d+", a), re.match(r"\d+\.\d+\.\d+", b)
    return bool(pa and pb and pa.group(0) == pb.group(0))


def check_server(host: str, port: int, timeout: float = 3.0, backend: str = "carla") -> str:
    """Fail fast unless a CARLA server of the client's version answers at ``host:port``; returns its version.

    Raises:
        CarlaConnectionError: nothing listens / no answer within ``timeout`` (message names ``host:port`` and
            ``docker compose up carla``).
        CarlaVersionError: the server runs another version than the client library.
        ImportError: the real client library is missing while a server answers.
    """
    if backend == "carla":
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError as exc:
            raise CarlaConnectionError(f"no CARLA server answers at {host}:{port} ({exc.strerror or exc}); "
                                       f"{START_HINT}") from None
    return open_client(carla_module(backend), host, port, timeout)[1]


def open_client(carla: ModuleType, host: str, port: int, timeout: float) -> tuple[Any, str]:
    """``(client, server version)``: a ``carla.Client`` with ``timeout`` whose server answered with the client's
    version; :class:`CarlaConnectionError` / :class:`CarlaVersionError` otherwise."""
    client = carla.Client(host, port)
    client.set_timeout(timeout)
    try:
        server_version = client.get_server_version()
    except RuntimeError as exc:
        raise CarlaConnectionError(f"no CARLA server answers at {host}:{port} ({exc}); {START_HINT}") from None
    client_version = client.get_client_version()
    if not _versions_match(server_version, client_version):
        raise CarlaVersionError(f"CARLA server at {host}:{port} runs {server_version} but the client library is "
                                f"{client_version}; they must match: run carlasim/carla:{client_version} (docker "
                                f"compose up carla) or install carla=={server_version}")
    return client, server_version


class CarlaConnection:
    """One server connection for one environment worker (see the module docstring).

    Args:
        carla: the ``carla`` module (real or stand-in).
        host, port: the server.
        client_timeout: bound of every RPC [s].
        tick_timeout: bound of every ``world.tick`` [s].
        tm_port: this worker's Traffic Manager port.
        fixed_delta_seconds: synchronous step [s].
        town: map to load when another one is loaded (None: keep the server's).
        load_world_timeout: bound of ``load_world`` [s] (the client timeout is restored after it).
        no_rendering_mode: ``WorldSettings.no_rendering_mode`` (True only without cameras).
        seed: Traffic Manager seed.
    """

    def __init__(self, carla: ModuleType, host: str, port: int, client_timeout: float = 10.0,
                 tick_timeout: float = 5.0, tm_port: int = 8000, fixed_delta_seconds: float = 0.05,
                 town: str | None = None, no_rendering_mode: bool = False, seed: int = 0,
                 load_world_timeout: float = 120.0) -> None:
        self.carla, self.host, self.port = carla, host, int(port)
        self.load_world_timeout = float(load_world_timeout)
        self.client_timeout, self.tick_timeout = float(client_timeout), float(tick_timeout)
        self.tm_port, self.fixed_delta_seconds, self.town = int(tm_port), float(fixed_delta_seconds), town
        self.no_rendering_mode, self.seed = bool(no_rendering_mode), int(seed)
        self.client: Any = None
        self.world: Any = None
        self.tm: Any = None
        self.map: Any = None
        self.server_version = ""
        self.connected = False
        self.actors: dict[int, Any] = {}
        """Spawned actors by id (destroyed by :meth:`destroy_all`)."""
        self._orphans: list[Any] = []
        self.connections = 0
        """How many times a connection was (re)established."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ connect
    def connect(self) -> None:
        """(Re)connect: version check, town, synchronous settings, Traffic Manager, leftover cleanup."""
        self.connected = False
        client, server_version = open_client(self.carla, self.host, self.port, self.client_timeout)
        try:
            world = client.get_world()
            if self.town and world.get_map().name.split("/")[-1] != self.town.split("/")[-1]:
                world = self._load_town(client)
            settings = world.get_settings()
            settings.synchronous_mode = True
            settings.fixed_delta_seconds = self.fixed_delta_seconds
            settings.no_rendering_mode = self.no_rendering_mode
            world.apply_settings(settings)
            tm = client.get_trafficmanager(self.tm_port)
            tm.set_synchronous_mode(True)
            tm.set_random_device_seed(self.seed)
            carla_map = world.get_map()
        except CarlaError:
            raise
        except RuntimeError as exc:
            raise CarlaConnectionError(f"CARLA server at {self.address} stopped answering while connecting ({exc}); "
                                       f"{START_HINT}") from None
        self.client, self.world, self.tm, self.map = client, world, tm, carla_map
        self.server_version = server_version
        self.connected = True
        self.connections += 1
        if self._orphans:
            self._destroy(self._orphans)
            self._orphans = []

    def _load_town(self, client: Any) -> Any:
        """``client.load_world(town)`` under ``load_world_timeout`` (the client timeout restored after); see the
        module docstring for its errors."""
        town = str(self.town)
        available = sorted(str(m) for m in client.get_available_maps())
        if town.split("/")[-1] not in {m.split("/")[-1] for m in available}:
            raise self._map_error(available)
        client.set_timeout(self.load_world_timeout)
        try:
            return client.load_world(town)
        except RuntimeError as exc:
            if "map not found" in str(exc):
                raise self._map_error(available) from None
            raise CarlaConnectionError(
                f"CARLA server at {self.address} did not finish loading town {town!r} within load_world_timeout="
                f"{self.load_world_timeout:g} s ({exc}); a first town load can take minutes: raise "
                "CarlaEnvConfig.load_world_timeout (env.load_world_timeout)") from None
        finally:
            client.set_timeout(self.client_timeout)

    def _map_error(self, available: list[str]) -> CarlaMapError:
        return CarlaMapError(f"town {self.town!r} (CarlaEnvConfig.town / env.town): map not found on the CARLA server "
                             f"at {self.address}; available maps: {', '.join(available) or '(none)'} (a "
                             "configuration error, not retried)")

    def ensure(self) -> None:
        """Connect if not connected (first use, or after :meth:`mark_broken`)."""
        if not self.connected:
            self.connect()

    def mark_broken(self) -> None:
        """The server stopped answering: forget the connection; the actors become orphans destroyed on reconnect."""
        self.connected = False
        self._orphans.extend(self.actors.values())
        self.actors = {}

    # ------------------------------------------------------------------ simulation
    def tick(self) -> int:
        """``world.tick(tick_timeout)``; the new frame id (``RuntimeError`` on a time-out)."""
        return int(self.world.tick(self.tick_timeout))

    def spawn(self, blueprint: Any, transform: Any, attach_to: Any = None) -> Any:
        """``try_spawn_actor``; the actor (tracked for destruction) or None."""
        actor = self.world.try_spawn_actor(blueprint, transform, attach_to) if attach_to is not None \
            else self.world.try_spawn_actor(blueprint, transform)
        if actor is not None:
            self.actors[actor.id] = actor
        return actor

    def track(self, actor: Any) -> None:
        """Track an actor spawned otherwise (e.g. by a batch) for destruction."""
        self.actors[actor.id] = actor

    def destroy_all(self) -> None:
        """Stop every sensor and destroy every tracked actor in one batch; on a dead server they become orphans."""
        actors, self.actors = list(self.actors.values()), {}
        if not actors:
            return
        if not self.connected:
            self._orphans.extend(actors)
            return
        try:
            self._destroy(actors)
        except RuntimeError:
            self.mark_broken()
            self._orphans.extend(actors)

    def _destroy(self, actors: list[Any]) -> None:
        for actor in actors:
            stop = getattr(actor, "stop", None)
            if callable(stop) and str(getattr(actor, "type_id", "")).startswith("sensor."):
                try:
                    if actor.is_listening():
                        stop()
                except RuntimeError:
                    pass
        ids = [a.id for a in actors]
        sensors = [i for i, a in zip(ids, actors) if str(getattr(a, "type_id", "")).startswith("sensor.")]
        others = [i for i in ids if i not in set(sensors)]
        self.client.apply_batch_sync([self.carla.command.DestroyActor(i) for i in sensors + others], False)

    def close(self) -> None:
        """Destroy everything, then synchronous mode off (world and Traffic Manager); quiet on a dead server (one
        reconnection attempt when actors of a lost connection are still to be destroyed)."""
        self.destroy_all()
        if not self.connected and self._orphans:
            try:
                self.connect()
            except CarlaError:
                return
        if not self.connected:
            return
        try:
            settings = self.world.get_settings()
            settings.synchronous_mode = False
            settings.fixed_delta_seconds = None
            settings.no_rendering_mode = False
            self.world.apply_settings(settings)
            self.tm.set_synchronous_mode(False)
        except RuntimeError:
            pass
        self.connected = False
