"""One way to accept a configuration: an instance, a mapping of its fields (e.g. from YAML, Hydra or
``gymnasium.make(id, config={...})``) or None for the defaults."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def coerce_config(cls: type[T], config: "T | Mapping[str, Any] | None", **overrides: Any) -> T:
    """``config`` as a ``cls`` dataclass with ``overrides`` applied: None -> the defaults, an instance -> itself, a
    mapping -> ``cls(**mapping)``.

    Raises:
        ValueError: unknown field names (listed with the known ones) or another type, naming ``cls``.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    if config is None:
        base: dict[str, Any] = {}
    elif isinstance(config, cls):
        if not overrides:
            return config
        base = {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)}
    elif isinstance(config, Mapping):
        base = dict(config)
    else:
        raise ValueError(f"config: expected a {cls.__name__}, a mapping of its fields or None, got "
                         f"{type(config).__name__}")
    base.update(overrides)
    unknown = sorted(set(base) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {unknown}; known: {sorted(names)}")
    return cls(**base)
