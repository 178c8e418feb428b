"""The one registry of scene sources, and typed *origins* that say how to re-create one scene.

Sources
-------
A *source* is an indexable collection of :class:`~envs.scenes.scene.Scene` (``len`` + ``[i]``). Sources are registered by
name (:func:`register_source`) and opened with :func:`open_source`:

* ``"bank"``: the built-in **synthetic** scenario bank, ``ScenarioBank(num_scenes, seed, scenario_types,
  normal_fraction, outcomes, outcome_mix, difficulty, roads, road_families, background_density, expert)``
  (``outcomes="varied"``: outcome-varied typologies, ``expert="reacting"``: their ego reacts to its hazard;
  ``roads="families"``: parametric road families);
* ``"deepaccident"``: a local DeepAccident folder (``root``, ``split`` = ``"train"`` by default, None for every
  scenario folder, ``strict``, ``frame_convention``);
* further kinds register themselves (``"carla"`` recordings: :mod:`envs.carla`).

:func:`make_source` wraps anything an environment accepts (a registered name, a folder path, a scene, a sequence
or an indexable collection of scenes) in a :class:`SceneSource`: an LRU cache of loaded scenes plus
:meth:`SceneSource.origin` (how to re-create scene ``i``) and :meth:`SceneSource.index_of`.

Origins
-------
An origin is a small frozen record that re-creates one scene with :func:`resolve` (stored as a plain dict with a
``"kind"`` key in anchor-pair datasets, :meth:`Origin.to_dict` / :func:`origin_from_dict`):

* :class:`BankOrigin` ``(scenario_type, seed, variant, scene_id, outcome, difficulty, road_families,
  background_density, expert)``: :func:`envs.scenes.bank.generate_scene`;
* :class:`BankIndexOrigin` ``(num_scenes, seed, index, scenario_types, outcomes, outcome_mix, difficulty, roads,
  road_families, background_density, expert)``: ``ScenarioBank(...)[index]``;
* :class:`DeepAccidentOrigin` ``(root, split, index, scenario_type, scenario_name)``: the scenario folder
  ``scenario_type/scenario_name`` of ``root`` (by name, so a changed split file does not shift it; origins written
  before the name was recorded resolve by ``DeepAccidentDataset(root, split)[index]``);
* :class:`RolloutOrigin` ``(base, start_frame, ego_poses, ego_velocities, scene_id)``: the base scene's origin plus
  the recorded ego states (:func:`envs.scenes.rollout.rollout_to_scene`);
* :class:`UnresolvableOrigin` ``(source, scene_id)``: a scene handed over in memory; :func:`resolve` raises.

:func:`register_origin` adds a kind (e.g. a CARLA recording file).
"""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np

from envs.scenes.scene import Scene


class SourceError(ValueError):
    """A scene source or origin is unknown, empty or unreadable (the message names it)."""


# ------------------------------------------------------------------------------------------------------- origins
@dataclass(frozen=True)
class Origin:
    """Base of the typed origins: ``kind`` names the record type; :func:`resolve` re-creates the scene."""

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with a ``"kind"`` key (numpy scalars and arrays become Python values; fields that are
        None are left out)."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = value.to_dict() if isinstance(value, Origin) else _plain(value)
        return out


@dataclass(frozen=True)
class BankOrigin(Origin):
    """A built-in synthetic scene: ``generate_scene(scenario_type, seed, variant=..., scene_id=..., outcome=...,
    difficulty=...)`` (``outcome`` / ``difficulty``: the outcome-varied bank's wanted outcome and hazard difficulty;
    None for the default bank)."""

    kind: ClassVar[str] = "bank"
    scenario_type: str
    seed: int
    variant: str | None = None
    scene_id: str | None = None
    outcome: str | None = None
    difficulty: float | None = None
    road_families: tuple[str, ...] | None = None
    background_density: float | None = None
    expert: str | None = None
    """The varied bank's expert (None: ``"logged"``)."""


@dataclass(frozen=True)
class BankIndexOrigin(Origin):
    """Scene ``index`` of ``ScenarioBank(num_scenes, seed, scenario_types, outcomes=..., outcome_mix=...,
    difficulty=...)`` (the outcome fields None: the default bank)."""

    kind: ClassVar[str] = "bank_index"
    num_scenes: int
    seed: int
    index: int
    scenario_types: tuple[str, ...] | None = None
    outcomes: str | None = None
    outcome_mix: tuple[float, ...] | None = None
    difficulty: float | None = None
    roads: str | None = None
    road_families: tuple[str, ...] | None = None
    background_density: float | None = None
    expert: str | None = None
    """The varied bank's expert (None: ``"logged"``)."""


@dataclass(frozen=True)
class DeepAccidentOrigin(Origin):
    """Scenario folder ``scenario_type/scenario_name`` of ``root``, entry ``index`` of ``DeepAccidentDataset(root,
    split)`` when recorded (lenient reading). Resolved by name when the name is recorded (found in ``split``, else
    among every scenario folder of ``root``), by ``index`` otherwise (origins written before the name was)."""

    kind: ClassVar[str] = "deepaccident"
    root: str
    index: int
    split: str | None = None
    scene_id: str | None = None
    scenario_type: str | None = None
    scenario_name: str | None = None
    frame_convention: str | None = None
    """The reading the source was opened with (None: ``"auto"``)."""


@dataclass(frozen=True)
class RolloutOrigin(Origin):
    """A closed-loop rollout: the base scene's origin and the recorded ego states from ``start_frame``."""

    kind: ClassVar[str] = "rollout"
    base: Origin
    start_frame: int
    ego_poses: tuple
    """``(R, 3)`` recorded rear-axle poses, world frame [m, m, rad] (nested tuples)."""
    ego_velocities: tuple
    """``(R, 2)`` recorded world-frame velocities [m/s] (nested tuples)."""
    scene_id: str | None = None
    base_scene_id: str | None = None
    """Informational: the base scene's id."""


@dataclass(frozen=True)
class UnresolvableOrigin(Origin):
    """A scene given in memory with nothing to re-create it from (``source`` = ``scene.meta.source``)."""

    kind: ClassVar[str] = "unresolvable"
    source: str
    scene_id: str


_ORIGIN_TYPES: dict[str, type[Origin]] = {}
_RESOLVERS: dict[str, Callable[[Any], Scene]] = {}


def register_origin(origin_type: type[Origin], resolver: Callable[[Any], Scene]) -> None:
    """Register an origin record type (by its ``kind``) and the function that re-creates its scene."""
    if not (isinstance(origin_type, type) and issubclass(origin_type, Origin)) or not origin_type.kind:
        raise TypeError(f"register_origin: expected an Origin subclass with a kind, got {origin_type!r}")
    _ORIGIN_TYPES[origin_type.kind] = origin_type
    _RESOLVERS[origin_type.kind] = resolver


def origin_from_dict(data: Mapping[str, Any]) -> Origin:
    """The typed origin of a dict written by :meth:`Origin.to_dict` (an observation reference's ``"origin"``).

    Raises:
        SourceError: unknown ``kind`` or missing / unexpected fields (named).
    """
    if not isinstance(data, Mapping):
        raise SourceError(f"origin: expected a mapping with a 'kind' key, got {type(data).__name__}")
    kind = data.get("kind")
    cls = _ORIGIN_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise SourceError(f"origin: unknown kind {kind!r}; known: {sorted(_ORIGIN_TYPES)}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k != "kind"}
    unknown = set(kwargs) - names
    if unknown:
        raise SourceError(f"origin of kind {kind!r}: unexpected fields {sorted(unknown)}; expected {sorted(names)}")
    if kind == "rollout":
        if "base" not in kwargs:
            raise SourceError("origin of kind 'rollout': missing field 'base'")
        kwargs["base"] = origin_from_dict(kwargs["base"])
        for name in ("ego_poses", "ego_velocities"):
            if name in kwargs:
                kwargs[name] = _nested_tuple(kwargs[name])
    if kind in ("bank_index", "bank"):
        for name in ("scenario_types", "outcome_mix", "road_families"):
            if kwargs.get(name) is not None:
                kwargs[name] = tuple(kwargs[name])
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SourceError(f"origin of kind {kind!r}: {exc}") from None


def resolve(origin: Origin | Mapping[str, Any]) -> Scene:
    """Re-create the scene of an origin (typed, or its dict; an observation reference's ``"origin"`` works too).

    Raises:
        SourceError: unknown kind, an :class:`UnresolvableOrigin`, or a source that cannot be read (the message
            names the origin).
    """
    if isinstance(origin, Mapping) and "origin" in origin and "kind" not in origin:
        origin = origin["origin"]  # an observation reference
    typed = origin if isinstance(origin, Origin) else origin_from_dict(origin)
    resolver = _RESOLVERS.get(typed.kind)
    if resolver is None:
        raise SourceError(f"resolve: no resolver for origin kind {typed.kind!r}; known: {sorted(_RESOLVERS)}")
    return resolver(typed)


def bank_options(outcomes: str | None = None, outcome_mix: Sequence[float] | None = None,
                 difficulty: float | None = None, roads: str | None = None,
                 road_families: Sequence[str] | str | None = None,
                 background_density: float | None = None, expert: str | None = None) -> dict[str, Any]:
    """The SYNTHETIC bank's options that are set, as keyword arguments of
    :class:`~envs.scenes.bank.ScenarioBank` / ``open_source("bank", ...)`` (``difficulty``, ``road_families`` and
    ``background_density`` also of :func:`~envs.scenes.bank.generate_scene`): None (not set: the bank's default)
    is left out, the rest normalised (``outcome_mix`` a tuple of floats, ``difficulty`` and ``background_density``
    floats, ``road_families`` a tuple of names, or one name as given). The one place the option set is assembled:
    the bank source, both bank origins' resolvers and the pipeline's sources (``experiments.builders.sources``)."""
    out: dict[str, Any] = {}
    if outcomes is not None:
        out["outcomes"] = str(outcomes)
    if outcome_mix is not None:
        out["outcome_mix"] = tuple(float(v) for v in outcome_mix)
    if difficulty is not None:
        out["difficulty"] = float(difficulty)
    if roads is not None:
        out["roads"] = str(roads)
    if road_families is not None:
        out["road_families"] = road_families if isinstance(road_families, str) else tuple(str(f) for f in road_families)
    if background_density is not None:
        out["background_density"] = float(background_density)
    if expert is not None and expert != "logged":  # (the default expert is left out: origins stay as before)
        out["expert"] = str(expert)
    return out


def _resolve_bank(o: BankOrigin) -> Scene:
    from envs.scenes.bank import generate_scene

    kwargs = bank_options(difficulty=o.difficulty, road_families=o.road_families,
                          background_density=o.background_density, expert=o.expert)
    if o.variant is not None:
        kwargs["variant"] = o.variant
    if o.scene_id:
        kwargs["scene_id"] = o.scene_id
    if o.outcome is not None:
        kwargs["outcome"] = o.outcome
    return generate_scene(o.scenario_type, int(o.seed), **kwargs)


def _resolve_bank_index(o: BankIndexOrigin) -> Scene:
    from envs.scenes.bank import ScenarioBank

    types = list(o.scenario_types) if o.scenario_types else None
    kwargs = bank_options(o.outcomes, o.outcome_mix, o.difficulty, o.roads, o.road_families, o.background_density,
                          o.expert)
    return ScenarioBank(int(o.num_scenes), seed=int(o.seed), scenario_types=types, **kwargs)[int(o.index)]


def _resolve_deepaccident(o: DeepAccidentOrigin) -> Scene:
    options: dict[str, Any] = {"root": o.root, "split": o.split, "strict": False}
    if o.frame_convention is not None:
        options["frame_convention"] = o.frame_convention
    source = open_source("deepaccident", **options)
    if o.scenario_name is None:
        return source[int(o.index)]
    for opts in (options, {**options, "split": None}):  # the split first, then every scenario folder
        src = source if opts is options else open_source("deepaccident", **opts)
        try:
            return src[src.collection.index_of_entry(o.scenario_type, o.scenario_name)]
        except KeyError:
            continue
    raise SourceError(f"resolve: DeepAccident scenario {o.scenario_type}/{o.scenario_name} is not under {o.root!r} "
                      f"(origin index {o.index} of split {o.split!r})")


def _resolve_rollout(o: RolloutOrigin) -> Scene:
    from envs.scenes.rollout import rollout_to_scene

    return rollout_to_scene(resolve(o.base), int(o.start_frame), np.asarray(o.ego_poses, dtype=np.float64),
                            np.asarray(o.ego_velocities, dtype=np.float64), scene_id=o.scene_id, origin=o.base)


def _refuse(o: UnresolvableOrigin) -> Scene:
    raise SourceError(f"resolve: scene {o.scene_id!r} (source {o.source!r}) was given in memory; it has no origin "
                      "to re-create it from (pass scenes through a registered source to keep one)")


for _type, _fn in ((BankOrigin, _resolve_bank), (BankIndexOrigin, _resolve_bank_index),
                   (DeepAccidentOrigin, _resolve_deepaccident), (RolloutOrigin, _resolve_rollout),
                   (UnresolvableOrigin, _refuse)):
    register_origin(_type, _fn)


def scene_origin(scene: Scene) -> Origin:
    """The origin a scene's meta data allows: bank scenes (``meta.extra["seed"]``) -> :class:`BankOrigin`; rollouts
    (``meta.extra`` of :func:`envs.scenes.rollout.rollout_to_scene`) -> :class:`RolloutOrigin`; otherwise
    :class:`UnresolvableOrigin` (a source that knows more, e.g. :meth:`SceneSource.origin`, should be asked)."""
    extra = scene.meta.extra
    if scene.meta.source == "synthetic" and "seed" in extra:
        variant = extra.get("variant")
        outcome = extra.get("outcome_wanted", extra.get("outcome"))  # outcome-varied bank (normal: "benign")
        return BankOrigin(scenario_type=scene.meta.scenario_type, seed=int(extra["seed"]),
                          variant=None if variant is None else str(variant), scene_id=scene.scene_id,
                          outcome=None if outcome is None else str(outcome),
                          difficulty=None if outcome is None else float(extra["difficulty"]),
                          road_families=tuple(extra["road_families"]) if "road_families" in extra else None,
                          background_density=float(extra["background_density"]) if "background_density" in extra
                          else None, expert=extra.get("expert"))
    if scene.meta.source == "rollout" and extra.get("base_origin"):
        return RolloutOrigin(
            base=origin_from_dict(extra["base_origin"]), start_frame=int(extra["start_frame"]),
            ego_poses=_nested_tuple(extra["rollout_ego_poses"]),
            ego_velocities=_nested_tuple(extra["rollout_ego_velocities"]), scene_id=scene.scene_id,
            base_scene_id=extra.get("base_scene_id"),
        )
    return UnresolvableOrigin(source=scene.meta.source, scene_id=scene.scene_id)


# ------------------------------------------------------------------------------------------------------- sources
@dataclass(frozen=True)
class SourceKind:
    """A registered source: how to open its collection, and a one-line description for help texts."""

    name: str
    open: Callable[..., Any]
    """``open(**options) -> collection`` (``len`` + ``[i] -> Scene``; optionally ``origin(i)``, ``index_of(id)``,
    ``scene_ids``)."""
    description: str
    origin: Callable[..., Origin] | None = None
    """``origin(options, index)``: how to re-create scene ``index`` of a source opened with ``options`` (None:
    from the scene's meta data, :func:`scene_origin`); ``origin(options, index, collection)`` when
    :attr:`origin_uses_collection`."""
    origin_uses_collection: bool = False


_SOURCES: dict[str, SourceKind] = {}


def register_source(name: str, open_fn: Callable[..., Any], description: str = "",
                    origin: Callable[..., Origin] | None = None, *, origin_uses_collection: bool = False) -> None:
    """Register a source kind under ``name`` (lower case): ``open_fn(**options)`` returns the collection;
    ``origin(options, index)`` (optional) the origin of one of its scenes (``origin(options, index, collection)``
    with ``origin_uses_collection``: the opened collection is passed too)."""
    if not isinstance(name, str) or not name or name != name.lower():
        raise ValueError(f"register_source: expected a lower-case name, got {name!r}")
    _SOURCES[name] = SourceKind(name, open_fn, description, origin, origin_uses_collection)


def registered_sources() -> dict[str, str]:
    """``{name: description}`` of every registered source kind."""
    return {name: kind.description for name, kind in sorted(_SOURCES.items())}


def _open_bank(num_scenes: int = 16, seed: int = 0, scenario_types: Sequence[str] | None = None,
               normal_fraction: float = 0.25, outcomes: str = "collision",
               outcome_mix: Sequence[float] | None = None, difficulty: float | None = None,
               roads: str = "classic", road_families: Sequence[str] | str | None = None,
               background_density: float = 1.0, expert: str | None = None) -> Any:
    from envs.scenes.bank import ScenarioBank

    types = None if scenario_types is None else list(scenario_types)
    return ScenarioBank(num_scenes, seed=seed, scenario_types=types, normal_fraction=normal_fraction,
                        **bank_options(outcomes, outcome_mix, difficulty, roads, road_families, background_density,
                                       expert))


def _open_deepaccident(root: str | os.PathLike | None = None, split: str | None = "train", strict: bool = True,
                       **kwargs: Any) -> Any:
    """``DeepAccidentDataset(root, split, strict, **kwargs)``; ``split=None``: every scenario folder."""
    from envs.scenes.deepaccident import DeepAccidentDataset

    if root is None:
        raise SourceError("source 'deepaccident' needs root=<DeepAccident folder>")
    path = Path(root)
    if not path.is_dir():
        raise SourceError(f"DeepAccident source {str(path)!r}: not a folder")
    try:
        return DeepAccidentDataset(path, split=split, strict=strict, **kwargs)
    except Exception as exc:
        raise SourceError(f"DeepAccident source {str(path)!r}: cannot be read ({type(exc).__name__}: {exc})") from exc


def _deepaccident_origin(options: Mapping[str, Any], index: int, collection: Any = None) -> Origin:
    split = options.get("split", "train")
    convention = options.get("frame_convention")
    stype = sname = None
    entries = getattr(collection, "entries", None)
    if entries is not None:
        stype, sname = entries[int(index)]
    return DeepAccidentOrigin(root=str(options["root"]), split=split, index=int(index), scenario_type=stype,
                              scenario_name=sname, frame_convention=None if convention == "auto" else convention)


register_source("bank", _open_bank, "built-in SYNTHETIC accident scenario bank (num_scenes, seed, scenario_types, "
                "normal_fraction, outcomes: collision | varied, outcome_mix, difficulty, roads: classic | families, "
                "road_families: train | held_out | all | [names], background_density, expert: logged | reacting)")
register_source("deepaccident", _open_deepaccident,
                "a local DeepAccident folder (root, split: train by default, null for every scenario folder, strict, "
                "frame_convention)", origin=_deepaccident_origin, origin_uses_collection=True)


def open_source(name: str, cache_size: int = 16, **options: Any) -> "SceneSource":
    """Open the registered source ``name`` with its options, wrapped in a :class:`SceneSource`.

    Raises:
        SourceError: unknown name (the known ones are listed) or a source that cannot be opened.
    """
    kind = _SOURCES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise SourceError(f"unknown scene source {name!r}; registered: {sorted(_SOURCES)} (or pass a DeepAccident "
                          "folder path, a Scene, a sequence of scenes or an indexable collection)")
    collection = kind.open(**options)
    shown = ", ".join(f"{k}={v!r}" for k, v in options.items() if v is not None)
    return SceneSource(collection, f"{name}({shown})", cache_size, source_name=name, options=options)


def _reopen(name: str, cache_size: int, options: Mapping[str, Any]) -> "SceneSource":
    """:func:`open_source` again (how a pickled :class:`SceneSource` of a registered source is restored)."""
    return open_source(name, cache_size, **options)


class SceneSource:
    """Indexable scenes with a description (for error messages), an LRU cache of loaded scenes and origins.

    Args:
        scenes: anything with ``len()`` and ``[i] -> Scene``.
        description: what the scenes are, e.g. ``"bank(num_scenes=16, seed=0)"`` or a folder path.
        cache_size: how many loaded scenes to keep (loading can be costly: generation or file parsing).
        source_name, options: the registered source and its options, when opened by :func:`open_source`.
    """

    def __init__(self, scenes: Any, description: str, cache_size: int = 16, source_name: str | None = None,
                 options: Mapping[str, Any] | None = None) -> None:
        if not hasattr(scenes, "__len__") or not hasattr(scenes, "__getitem__"):
            raise TypeError(f"scene source {description}: expected an indexable collection of Scene, got "
                            f"{type(scenes).__name__}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, (int, np.integer)) or cache_size < 1:
            raise ValueError(f"cache_size: expected an int >= 1, got {cache_size!r}")
        self._scenes = scenes
        self.description = description
        self.source_name = source_name
        self.options = dict(options or {})
        self._cache: OrderedDict[int, Scene] = OrderedDict()
        self._cache_size = int(cache_size)
        self._ids: list[str] | None = None
        try:
            n = len(scenes)
        except Exception as exc:  # a reader that fails to list its folder
            raise SourceError(f"scene source {description}: cannot be read ({type(exc).__name__}: {exc})") from exc
        if n == 0:
            raise SourceError(f"scene source {description}: contains no scenes")
        self._len = n
        self[0]  # fail now on unreadable data

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled as how it was opened (a registered source and its options: re-opened where it is unpickled, e.g.
        in a ``SubprocVecEnv`` or Ray worker; its collection may hold unpicklable state); other sources as objects."""
        if self.source_name is not None:
            return _reopen, (self.source_name, self._cache_size, dict(self.options))
        return super().__reduce_ex__(protocol)

    @property
    def collection(self) -> Any:
        """The wrapped collection (e.g. a ``ScenarioBank`` or ``DeepAccidentDataset``)."""
        return self._scenes

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: int) -> Scene:
        index = int(index)
        if not 0 <= index < self._len:
            raise IndexError(f"scene source {self.description}: index {index} outside [0, {self._len})")
        scene = self._cache.get(index)
        if scene is not None:
            self._cache.move_to_end(index)
            return scene
        try:
            scene = self._scenes[index]
        except Exception as exc:
            raise SourceError(
                f"scene source {self.description}: scene {index} cannot be loaded ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(scene, Scene):
            raise TypeError(f"scene source {self.description}: item {index} is a {type(scene).__name__}, not a Scene")
        self._cache[index] = scene
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return scene

    def origin(self, index: int) -> Origin:
        """How to re-create scene ``index``: from the registered source's ``origin`` function when it has one
        (DeepAccident: root, split, index), else :func:`scene_origin` of the loaded scene (bank scenes carry their
        generator seed)."""
        kind = _SOURCES.get(self.source_name) if self.source_name else None
        if kind is not None and kind.origin is not None:
            if kind.origin_uses_collection:
                return kind.origin(self.options, int(index), self._scenes)
            return kind.origin(self.options, int(index))
        return scene_origin(self[index])

    @property
    def scene_ids(self) -> list[str]:
        """All scene ids, by index (from the collection's ``scene_ids`` when it has one, else by loading every
        scene: avoid on huge sources, use :meth:`index_of`)."""
        if self._ids is None:
            ids = getattr(self._scenes, "scene_ids", None)
            self._ids = list(ids) if ids is not None else [self[i].scene_id for i in range(self._len)]
        return self._ids

    def index_of(self, scene_id: str) -> int:
        """Index of ``scene_id`` (asks the collection's ``index_of`` first, so a bank of any size answers at once);
        ``KeyError`` listing a few valid ids when unknown."""
        fn = getattr(self._scenes, "index_of", None)
        if callable(fn):
            try:
                return int(fn(scene_id))
            except (KeyError, ValueError):
                pass
        else:
            try:
                return self.scene_ids.index(scene_id)
            except ValueError:
                pass
        few = ", ".join(repr(self._scene_id(i)) for i in range(min(5, self._len))) + (", ..." if self._len > 5 else "")
        raise KeyError(f"scene source {self.description}: unknown scene_id {scene_id!r}; {self._len} scenes, e.g. {few}")

    def _scene_id(self, index: int) -> str:
        """Id of scene ``index`` without loading it when the collection can tell (``scene_id(i)``)."""
        fn = getattr(self._scenes, "scene_id", None)
        return str(fn(index)) if callable(fn) else self[index].scene_id


def make_source(
    source: Any,
    *,
    num_scenes: int = 16,
    seed: int = 0,
    scenario_types: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
    split: str | None = "train",
    strict: bool = True,
    cache_size: int = 16,
) -> SceneSource:
    """A :class:`SceneSource` from anything an environment accepts (see the module docstring).

    Args:
        source: a registered name (``"bank"``, ``"deepaccident"``, ...), a DeepAccident folder path, a scene, a
            sequence of scenes or an indexable collection.
        num_scenes, seed, scenario_types: for ``"bank"``.
        root, split, strict: for ``"deepaccident"`` (``split``: ``"train"`` by default; None: every scenario
            folder).
        cache_size: loaded scenes kept in memory.
    """
    if isinstance(source, SceneSource):
        return source
    if source == "bank":
        return open_source("bank", cache_size, num_scenes=num_scenes, seed=seed, scenario_types=scenario_types)
    if source == "deepaccident":
        return open_source("deepaccident", cache_size, root=root, split=split, strict=strict)
    if isinstance(source, str) and source in _SOURCES:
        return open_source(source, cache_size)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and ("/" in source or os.sep in source
                                                                        or Path(source).is_dir())):
        return open_source("deepaccident", cache_size, root=source, split=split, strict=strict)
    if isinstance(source, str):
        raise SourceError(f"unknown scene source {source!r}; registered: {sorted(_SOURCES)}, or a DeepAccident folder "
                          "path (names are case-sensitive)")
    if isinstance(source, Scene):
        source = [source]
    if isinstance(source, (list, tuple)):
        for i, s in enumerate(source):
            if not isinstance(s, Scene):
                raise TypeError(f"scene source: item {i} is a {type(s).__name__}, not a Scene")
        return SceneSource(tuple(source), f"{len(source)} given scenes", cache_size)
    return SceneSource(source, repr(source)[:200], cache_size)  # e.g. DeepAccidentDataset(root='...', ...)


# ------------------------------------------------------------------------------------------------------- helpers
def _plain(value: Any) -> Any:
    """JSON-able form: numpy scalars -> Python, arrays / tuples -> lists (recursively)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _nested_tuple(value: Any) -> tuple:
    """Nested tuples of floats (hashable, frozen) from an array-like."""
    return tuple(tuple(float(x) for x in row) for row in np.asarray(value, dtype=np.float64))
