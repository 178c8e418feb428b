"""Hydra structured-config nodes generated from library dataclasses, and their building back into library objects.

:func:`schema` turns a library dataclass (``GRPOConfig``, ``SFTConfig``, ``RewardConfig``, ``VLAConfig``, ...) into a
Hydra node with ``_target_`` and every field, typed, with the library's default, so that the defaults are defined
once (in the library) and every field is reachable from the command line; :func:`build` makes the library object
from such a node, the library class's own checks validating every field (``SystemExit`` naming the config path).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import types
import typing
from dataclasses import field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING, OmegaConf


# ------------------------------------------------------------------------------------------- library dataclasses
def _schema_type(tp: Any) -> Any:
    """An OmegaConf-typed annotation for a library field's type (containers become lists / dicts; other types Any)."""
    if tp in (int, float, str, bool):
        return tp
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        inner = _schema_type(rest[0]) if len(rest) == 1 else Any
        return Optional[inner] if len(rest) < len(args) else inner
    if origin in (tuple, list, collections.abc.Sequence):
        return List[_schema_type(args[0]) if args and args[-1] is not Ellipsis or len(args) == 2 else Any]
    if origin in (dict, collections.abc.Mapping):
        return Dict[str, _schema_type(args[1]) if len(args) == 2 else Any]
    return Any


def _plain_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain_default(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_default(v) for k, v in value.items()}
    return value


_SCHEMAS: dict[type, type] = {}


def schema(cls: type) -> type:
    """The Hydra structured-config class of the library dataclass ``cls``: ``_target_`` naming ``cls`` and every field
    of ``cls`` with an OmegaConf type and ``cls``'s default (tuples as lists), so Hydra type-checks command-line
    overrides and the defaults stay defined once, in the library. ``schema(cls)(field=value)`` is a node with some
    fields changed (a preset). Cached per class."""
    if cls in _SCHEMAS:
        return _SCHEMAS[cls]
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, Any, Any]] = [("_target_", str, field(default=f"{cls.__module__}.{cls.__qualname__}"))]
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default = _plain_default(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = _plain_default(f.default_factory())
        else:
            default = MISSING
        spec = field(default_factory=lambda d=default: _plain_default(d)) if isinstance(default, (list, dict)) \
            else field(default=default)
        fields.append((f.name, _schema_type(hints[f.name]), spec))
    node = dataclasses.make_dataclass(f"{cls.__name__}Node", fields)
    node.__doc__ = f"Structured config of :class:`{cls.__module__}.{cls.__qualname__}` (``_target_``)."
    node.__module__ = __name__
    _SCHEMAS[cls] = node
    return node


def build(node: Any, where: str, **overrides: Any) -> Any:
    """The library object of a ``_target_`` node (a DictConfig, a :func:`schema` instance or a mapping), with
    ``overrides`` for run-level fields; lists become tuples where the library field is a tuple. The library class
    validates every field: ``SystemExit`` naming ``where`` (the config path) and the field when one is wrong."""
    from hydra.utils import get_class

    from envs.configuration import coerce_config

    if OmegaConf.is_config(node):
        data = OmegaConf.to_container(node, resolve=True)
    elif dataclasses.is_dataclass(node):
        data = {f.name: getattr(node, f.name) for f in dataclasses.fields(node)}
    else:
        data = dict(node)
    target = data.pop("_target_", None)
    if target is None:
        raise SystemExit(f"{where}: no _target_")
    cls = get_class(target)
    data.update(overrides)
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if isinstance(value, list) and typing.get_origin(hints.get(name)) in (tuple, collections.abc.Sequence):
            data[name] = tuple(value)
    try:
        return coerce_config(cls, data)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"{where}: {exc}") from None
