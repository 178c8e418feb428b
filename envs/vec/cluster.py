"""Connecting to Ray: one place that starts or joins the cluster the Ray-backed pieces run on.

* :func:`require_ray`: ``import ray`` with an error that says how to install it (the optional ``[scale]`` extra,
  ``pip install -e '.[scale]'``);
* :func:`init_ray`: ``ray.init`` once per process: ``address=None`` is Ray's default (``RAY_ADDRESS`` if set, else a
  cluster started with ``ray start`` on this machine, else a new local Ray: tests, one-machine runs), ``"local"``
  always starts a new local Ray, ``"auto"`` joins the cluster this machine belongs to, and ``"HOST:PORT"`` /
  ``"ray://HOST:10001"`` joins a head node (``docker compose --profile ray``, README "Ray"). An already initialised
  Ray is used as it is (the caller owns it: a test fixture, a notebook).

Code on the workers: a local Ray puts the driver's working directory on the workers' ``sys.path`` (run from the
repository root, or install the project); on a cluster every node needs the project installed (the trainer image).
"""

from __future__ import annotations

from typing import Any

INSTALL_HINT = "pip install -e '.[scale]'  (or: pip install 'ray>=2.40,<3')"
"""How to get Ray (the ``scale`` extra of ``pyproject.toml``)."""


def require_ray() -> Any:
    """The ``ray`` module, or an ``ImportError`` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is part of the dev extra
        raise ImportError(f"the Ray backend needs the 'ray' package: {INSTALL_HINT}") from exc
    return ray


def init_ray(address: str | None = None, num_cpus: int | None = None, object_store_memory: int | None = None,
             **kwargs: Any) -> Any:
    """Initialise Ray once for this process and return the ``ray`` module (see the module docstring).

    Args:
        address: None (Ray's default), ``"local"``, ``"auto"``, ``"HOST:PORT"`` of a head node or
            ``"ray://HOST:PORT"``.
        num_cpus: CPUs a new local Ray offers (None: every core); only with ``address`` None or ``"local"`` (Ray
            refuses it when it joins a running cluster).
        object_store_memory: bytes of a new local Ray's object store (None: Ray's default, 30 % of RAM); as
            ``num_cpus``.
        **kwargs: more ``ray.init`` arguments.

    Raises:
        ValueError: ``address`` is not a string (e.g. a port number given alone).
        ConnectionError: no Ray cluster answers at ``address`` (Ray's message, with the address).
    """
    if address is not None and (not isinstance(address, str) or not address.strip()):
        raise ValueError(f"ray address: expected None, 'local', 'auto', 'HOST:PORT' or 'ray://HOST:PORT', got "
                         f"{address!r}")
    ray = require_ray()
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, **kwargs}
    if address in (None, "local"):
        if address == "local":
            options["address"] = "local"
        if num_cpus is not None:
            options["num_cpus"] = int(num_cpus)
        if object_store_memory is not None:
            options["object_store_memory"] = int(object_store_memory)
    else:
        options["address"] = address.strip()
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise ConnectionError(f"ray address {address!r}: no Ray cluster answers ({exc}); start one with "
                              "`ray start --head` or `docker compose --profile ray up -d`") from exc
    return ray
