"""``python -m envs.carla.wait HOST:PORT [HOST:PORT ...] --timeout 300``: block until every CARLA server answers a
version query, the trainer container's start-up gate (docker-compose.yml).

A listening RPC port (the carla service's healthcheck) is not yet a server that answers: the port opens before the
first town is loaded. This module retries :func:`envs.carla.connection.check_server` (TCP probe, then
``carla.Client(host, port).get_server_version()`` with ``--query-timeout``, then the client == server version check)
for each host until it answers or ``--timeout`` seconds have passed. A server that answers with another version, or
a missing client library, fails at once (waiting does not fix them). Exit status 0 when all answered (one line per
server with its version), 1 otherwise with the last error. Hosts may also be given comma-separated, as in
``CARLA_HOSTS=carla:2000,carla-2:2010``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

from envs.carla.connection import BACKENDS, CarlaConnectionError, CarlaError, check_server, parse_host


def split_hosts(specs: Sequence[str]) -> list[tuple[str, int]]:
    """``["a:2000,b:2010", "c"]`` -> ``[("a", 2000), ("b", 2010), ("c", 2000)]`` (``[...]`` around a list allowed)."""
    hosts = [part for spec in specs for part in str(spec).strip().strip("[]").split(",") if part.strip()]
    if not hosts:
        raise ValueError("no CARLA host given (expected HOST:PORT, e.g. carla:2000)")
    return [parse_host(h) for h in hosts]


def wait_for_servers(hosts: Sequence[tuple[str, int]], timeout: float = 300.0, interval: float = 5.0,
                     query_timeout: float = 5.0, backend: str = "carla",
                     clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                     log: Callable[[str], None] = print) -> dict[str, str]:
    """``{"host:port": server version}`` once every server answered a version query.

    Raises:
        CarlaConnectionError: a server did not answer within ``timeout`` seconds from the call (the message names it,
            how long was waited and the last error).
        CarlaVersionError: a server runs another version than the client library (not retried).
        ImportError: the ``carla`` client library is missing (not retried).
    """
    deadline = clock() + float(timeout)
    versions: dict[str, str] = {}
    for host, port in hosts:
        tries = 0
        while True:
            tries += 1
            try:
                versions[f"{host}:{port}"] = check_server(host, port, timeout=float(query_timeout), backend=backend)
                break
            except CarlaConnectionError as exc:
                left = deadline - clock()
                if left <= 0:
                    raise CarlaConnectionError(f"CARLA server {host}:{port} did not answer a version query within "
                                               f"{timeout:g} s ({tries} tries); last error: {exc}") from None
                if tries == 1:
                    log(f"waiting for CARLA at {host}:{port} (up to {timeout:g} s): {exc}")
                sleep(min(float(interval), left))
        log(f"CARLA {versions[f'{host}:{port}']} answers at {host}:{port}")
    return versions


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m envs.carla.wait", description=__doc__.split("\n\n")[0])
    parser.add_argument("hosts", nargs="+", help="HOST:PORT of each server (also comma-separated)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (300)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between tries (5)")
    parser.add_argument("--query-timeout", type=float, default=5.0,
                        help="client timeout of one version query in seconds (5)")
    parser.add_argument("--backend", choices=BACKENDS, default="carla", help="'standin' for tests")
    args = parser.parse_args(argv)
    for name in ("timeout", "interval", "query_timeout"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    try:
        args.hosts = split_hosts(args.hosts)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wait_for_servers(args.hosts, timeout=args.timeout, interval=args.interval, query_timeout=args.query_timeout,
                         backend=args.backend, log=lambda msg: print(msg, flush=True))
    except (CarlaError, ImportError) as exc:
        print(f"envs.carla.wait: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
