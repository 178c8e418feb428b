"""Scene sources for the environments: one indexable interface over lists of scenes, the synthetic bank and
DeepAccident folders, with a small cache of loaded scenes.

``make_source`` accepts:

* a sequence of :class:`~envs.scene.Scene` (used as given);
* any indexable collection of scenes (``len`` + ``[i]``), e.g. a ``ScenarioBank`` or a ``DeepAccidentDataset``;
* ``"bank"``: the built-in synthetic bank, ``ScenarioBank(num_scenes, seed, scenario_types)``;
* ``"deepaccident"`` with ``root``, or directly a folder path (``str`` / ``os.PathLike``): a DeepAccident root.

An empty or unreadable source raises at construction (the message names the source or its path); the first scene is
loaded eagerly so that a folder with broken files fails there, not at the first ``reset``.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

from envs.scene import Scene


class SceneSource:
    """Indexable scenes with a description (for error messages) and an LRU cache of loaded scenes.

    Args:
        scenes: anything with ``len()`` and ``[i] -> Scene``.
        description: what the scenes are, e.g. ``"ScenarioBank(num_scenes=16, seed=0)"`` or a folder path.
        cache_size: how many loaded scenes to keep (loading can be costly: generation or file parsing).
    """

    def __init__(self, scenes: Any, description: str, cache_size: int = 16) -> None:
        if not hasattr(scenes, "__len__") or not hasattr(scenes, "__getitem__"):
            raise TypeError(f"scene source {description}: expected an indexable collection of Scene, got "
                            f"{type(scenes).__name__}")
        if cache_size < 1:
            raise ValueError(f"cache_size: expected >= 1, got {cache_size}")
        self._scenes = scenes
        self.description = description
        self._cache: OrderedDict[int, Scene] = OrderedDict()
        self._cache_size = int(cache_size)
        self._ids: list[str] | None = None
        try:
            n = len(scenes)
        except Exception as exc:  # a reader that fails to list its folder
            raise ValueError(f"scene source {description}: cannot be read ({type(exc).__name__}: {exc})") from exc
        if n == 0:
            raise ValueError(f"scene source {description}: contains no scenes")
        self._len = n
        self[0]  # fail now on unreadable data

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
            raise ValueError(
                f"scene source {self.description}: scene {index} cannot be loaded ({type(exc).__name__}: {exc})"
            ) from exc
        if not isinstance(scene, Scene):
            raise TypeError(f"scene source {self.description}: item {index} is a {type(scene).__name__}, not a Scene")
        self._cache[index] = scene
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return scene

    @property
    def scene_ids(self) -> list[str]:
        """All scene ids, by index (from the collection's ``scene_ids`` when it has one, else by loading)."""
        if self._ids is None:
            ids = getattr(self._scenes, "scene_ids", None)
            self._ids = list(ids) if ids is not None else [self[i].scene_id for i in range(self._len)]
        return self._ids

    def index_of(self, scene_id: str) -> int:
        """Index of ``scene_id``; ``KeyError`` listing a few valid ids when unknown."""
        ids = self.scene_ids
        try:
            return ids.index(scene_id)
        except ValueError:
            few = ", ".join(repr(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise KeyError(
                f"scene source {self.description}: unknown scene_id {scene_id!r}; {len(ids)} scenes, e.g. {few}"
            ) from None


def make_source(
    source: Any,
    *,
    num_scenes: int = 16,
    seed: int = 0,
    scenario_types: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
    split: str | None = None,
    strict: bool = True,
    cache_size: int = 16,
) -> SceneSource:
    """A :class:`SceneSource` from any of the accepted forms (see the module docstring).

    Args:
        source: ``"bank"``, ``"deepaccident"``, a folder path, a sequence of scenes or an indexable collection.
        num_scenes, seed, scenario_types: for ``"bank"``.
        root, split, strict: for ``"deepaccident"`` (``split`` None: the reader's default).
        cache_size: loaded scenes kept in memory.
    """
    if isinstance(source, SceneSource):
        return source
    if isinstance(source, str) and source == "bank":
        from envs.bank import ScenarioBank

        bank = ScenarioBank(num_scenes, seed=seed, scenario_types=scenario_types)
        types = "all" if scenario_types is None else ",".join(scenario_types)
        return SceneSource(bank, f"ScenarioBank(num_scenes={num_scenes}, seed={seed}, types={types})", cache_size)
    if isinstance(source, str) and source == "deepaccident":
        if root is None:
            raise ValueError("source='deepaccident' needs root=<DeepAccident folder>")
        return _deepaccident(root, split, strict, cache_size)
    if isinstance(source, (str, os.PathLike)):
        return _deepaccident(source, split, strict, cache_size)
    if isinstance(source, Scene):
        source = [source]
    if isinstance(source, (list, tuple)):
        for i, s in enumerate(source):
            if not isinstance(s, Scene):
                raise TypeError(f"scene source: item {i} is a {type(s).__name__}, not a Scene")
        return SceneSource(tuple(source), f"{len(source)} given scenes", cache_size)
    return SceneSource(source, repr(source)[:200], cache_size)  # e.g. DeepAccidentDataset(root='...', ...)


def _deepaccident(root: str | os.PathLike, split: str | None, strict: bool, cache_size: int) -> SceneSource:
    from envs.deepaccident import DeepAccidentDataset

    path = Path(root)
    if not path.is_dir():
        raise ValueError(f"DeepAccident source {str(path)!r}: not a folder")
    kwargs: dict[str, Any] = {"strict": strict}
    if split is not None:
        kwargs["split"] = split
    try:
        dataset = DeepAccidentDataset(path, **kwargs)
    except Exception as exc:
        raise ValueError(f"DeepAccident source {str(path)!r}: cannot be read ({type(exc).__name__}: {exc})") from exc
    label = f"DeepAccident {str(path)!r}" + (f" split={split}" if split else "")
    return SceneSource(dataset, label, cache_size)
