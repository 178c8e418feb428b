"""``ScenarioBank``: a deterministic, indexable collection of synthetic scenes with a balanced mix of types."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

from envs.scenes.bank.generator import SCENARIO_TYPES, check_scenario_type, generate_scene
from envs.scenes.scene import Scene


class ScenarioBank(Sequence[Scene]):
    """``num_scenes`` SYNTHETIC scenes; ``bank[i]`` is generated on demand, deterministically from ``(seed, i)``.

    Type assignment: a ``normal_fraction`` share of the indices are ``"normal"`` (spread evenly: every prefix of
    the bank holds ``normal_fraction`` of normal scenes up to one scene), the others cycle through the accident
    types in a fresh seeded order per round, so every prefix is balanced across types up to one round. The type
    and scene of index ``i`` depend only on ``(seed, i, scenario_types, normal_fraction)``, not on
    ``num_scenes``. Scene ids look like ``"synthetic/rear_end/s0-000017"`` (the bank seed in the id: unique across
    seeds).

    Args:
        num_scenes: number of scenes (>= 0).
        seed: non-negative base seed.
        scenario_types: types to include (default: all of :data:`SCENARIO_TYPES`).
        normal_fraction: share of ``"normal"`` scenes in [0, 1] when ``"normal"`` is included and other types are
            too (ignored otherwise: all normal, or none).
    """

    def __init__(
        self,
        num_scenes: int,
        seed: int = 0,
        scenario_types: Sequence[str] | None = None,
        normal_fraction: float = 0.25,
    ) -> None:
        if isinstance(num_scenes, bool) or not isinstance(num_scenes, (int, np.integer)) or num_scenes < 0:
            raise ValueError(f"num_scenes must be a non-negative integer, got {num_scenes!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        types = tuple(SCENARIO_TYPES if scenario_types is None else scenario_types)
        if isinstance(scenario_types, str) or not types:
            raise ValueError(f"scenario_types must be a non-empty sequence of names, got {scenario_types!r}")
        for t in types:
            check_scenario_type(t)
        if len(set(types)) != len(types):
            raise ValueError(f"scenario_types has duplicates: {types}")
        if not (0.0 <= normal_fraction <= 1.0):
            raise ValueError(f"normal_fraction must be in [0, 1], got {normal_fraction!r}")
        self.num_scenes = int(num_scenes)
        self.seed = int(seed)
        self.scenario_types = types
        self._accidents = tuple(t for t in types if t != "normal")
        if "normal" not in types:
            self.normal_fraction = 0.0
        elif not self._accidents:
            self.normal_fraction = 1.0
        else:
            self.normal_fraction = float(normal_fraction)
        self._phase = float(np.random.default_rng(np.random.SeedSequence([self.seed, 1])).random())

    def __len__(self) -> int:
        return self.num_scenes

    def _index(self, i: int) -> int:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"ScenarioBank indices must be integers, got {type(i).__name__}")
        j = int(i) + (self.num_scenes if i < 0 else 0)
        if not 0 <= j < self.num_scenes:
            raise IndexError(f"scene index {i} out of range for a bank of {self.num_scenes}")
        return j

    def _normals_before(self, i: int) -> int:
        """Number of normal scenes among indices ``< i`` (low-discrepancy: floor(i f + phase) - floor(phase))."""
        f = self.normal_fraction
        return math.floor(i * f + self._phase) - math.floor(self._phase)

    def scenario_type(self, i: int) -> str:
        """Scenario type of scene ``i``."""
        i = self._index(i)
        if self._normals_before(i + 1) > self._normals_before(i):
            return "normal"
        j = i - self._normals_before(i)  # index among the accident scenes
        n = len(self._accidents)
        order = np.random.default_rng(np.random.SeedSequence([self.seed, 2, j // n])).permutation(n)
        return self._accidents[int(order[j % n])]

    def scene_seed(self, i: int) -> int:
        """Seed passed to :func:`generate_scene` for scene ``i`` (derived from ``(seed, i)``)."""
        i = self._index(i)
        return int(np.random.SeedSequence([self.seed, 0, i]).generate_state(1)[0])

    def scene_id(self, i: int) -> str:
        """Id of scene ``i``, e.g. ``"synthetic/rear_end/s0-000017"`` (type, bank seed, index: unique across seeds)."""
        i = self._index(i)
        return f"synthetic/{self.scenario_type(i)}/s{self.seed}-{i:06d}"

    def index_of(self, scene_id: str) -> int:
        """Index of ``scene_id`` (``"synthetic/<type>/s<seed>-<index>"``) without generating any scene; ``KeyError``
        when it names no scene of this bank (another seed's scene included)."""
        parts = scene_id.split("/") if isinstance(scene_id, str) else []
        if len(parts) == 3 and parts[0] == "synthetic":
            seed, _, index = parts[2].partition("-")
            if seed == f"s{self.seed}" and index.isdigit():
                i = int(index)
                if i < self.num_scenes and self.scenario_type(i) == parts[1]:
                    return i
        raise KeyError(f"{self!r}: no scene with id {scene_id!r} (ids look like 'synthetic/<type>/s{self.seed}-<index>')")

    def __getitem__(self, i: int) -> Scene:  # type: ignore[override]
        i = self._index(i)
        scene_type = self.scenario_type(i)
        return generate_scene(scene_type, self.scene_seed(i), scene_id=self.scene_id(i))

    def __iter__(self) -> Iterator[Scene]:
        for i in range(self.num_scenes):
            yield self[i]

    def __repr__(self) -> str:
        return (
            f"ScenarioBank(num_scenes={self.num_scenes}, seed={self.seed}, types={len(self.scenario_types)}, "
            f"normal_fraction={self.normal_fraction}, source='synthetic')"
        )
