"""``ScenarioBank``: a deterministic, indexable collection of synthetic scenes with a balanced mix of types."""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

from envs.scenes.bank.generator import (
    SCENARIO_TYPES,
    check_background_density,
    check_roads_for,
    check_scenario_type,
    generate_scene,
)
from envs.scenes.bank.outcomes import (
    DEFAULT_DIFFICULTY,
    DEFAULT_OUTCOME_MIX,
    OUTCOME_MODES,
    OUTCOMES,
    check_difficulty,
    check_outcome_mix,
    tilted_mix,
)
from envs.scenes.bank.react import EXPERTS
from envs.scenes.bank.roads import Roads
from envs.scenes.road_families import FAMILIES, HELD_OUT_FAMILIES, TRAIN_FAMILIES
from envs.scenes.scene import Scene

ROAD_MODES = ("classic", "families")
"""``ScenarioBank(roads=...)``: ``"classic"`` (default: the six fixed layouts) or ``"families"`` (parametric)."""
FAMILY_SPLITS = {"train": TRAIN_FAMILIES, "held_out": HELD_OUT_FAMILIES, "all": FAMILIES}
"""Shorthands accepted for ``road_families``: the training families (default), the held-out ones, or all."""


def resolve_road_families(road_families: Sequence[str] | str | None) -> tuple[str, ...]:
    """Family names of ``road_families`` (a list of names, or a :data:`FAMILY_SPLITS` key; None: ``"train"``);
    ``ValueError`` naming the value when unknown."""
    if road_families is None:
        return TRAIN_FAMILIES
    if not isinstance(road_families, str) and len(road_families) == 1 and road_families[0] in FAMILY_SPLITS:
        road_families = road_families[0]  # a one-item list naming a split (Hydra lists: [held_out])
    if isinstance(road_families, str):
        if road_families not in FAMILY_SPLITS:
            raise ValueError(f"road_families: unknown split {road_families!r}; use one of {tuple(FAMILY_SPLITS)} "
                             f"or a list of families from {FAMILIES}")
        return FAMILY_SPLITS[road_families]
    return Roads(tuple(str(f) for f in road_families)).families


class ScenarioBank(Sequence[Scene]):
    """``num_scenes`` SYNTHETIC scenes; ``bank[i]`` is generated on demand, deterministically from ``(seed, i)``.

    Type assignment: a ``normal_fraction`` share of the indices are ``"normal"`` (spread evenly: every prefix of
    the bank holds ``normal_fraction`` of normal scenes up to one scene), the others cycle through the accident
    types in a fresh seeded order per round, so every prefix is balanced across types up to one round. The type
    and scene of index ``i`` depend only on ``(seed, i, scenario_types, normal_fraction)``, not on
    ``num_scenes``. Scene ids look like ``"synthetic/rear_end/s0-000017"`` (the bank seed in the id: unique across
    seeds).

    Outcomes (:mod:`envs.scenes.bank.outcomes`): with ``outcomes="collision"`` (default) every accident scene's log
    collides (the scenes of earlier releases, bit-identical). With ``outcomes="varied"`` each accident scene wants
    an outcome (benign / near-miss / collision) drawn per type from ``outcome_mix`` tilted by ``difficulty``
    (:func:`~envs.scenes.bank.outcomes.tilted_mix`), low-discrepancy over the type's rounds so every type's shares
    follow the mix up to about one scene; the geometry verifies it and ``meta.extra["outcome"]`` says what it is.

    Args:
        num_scenes: number of scenes (>= 0).
        seed: non-negative base seed.
        scenario_types: types to include (default: all of :data:`SCENARIO_TYPES`).
        normal_fraction: share of ``"normal"`` scenes in [0, 1] when ``"normal"`` is included and other types are
            too (ignored otherwise: all normal, or none).
        outcomes: ``"collision"`` or ``"varied"`` (:data:`~envs.scenes.bank.outcomes.OUTCOME_MODES`).
        outcome_mix: wanted (benign, near_miss, collision) shares of the varied mode (default
            :data:`~envs.scenes.bank.outcomes.DEFAULT_OUTCOME_MIX`, normalised); only with ``outcomes="varied"``.
        difficulty: hazard difficulty in [0, 1] of the varied mode (0.5: the mix as given; higher: more
            collisions, fewer benign scenes, closer near-misses); only with ``outcomes="varied"``.
        roads: ``"classic"`` (default: the fixed layouts of :data:`envs.scenes.layouts.LAYOUT_NAMES`, scenes
            bit-identical to earlier releases) or ``"families"`` (parametric road families,
            :mod:`envs.scenes.road_families`; the family and its parameters are drawn per scene and recorded in
            ``meta.extra["road_family"]`` / ``["road_params"]``).
        road_families: families mode: the families scenes are built on, a list of names or ``"train"`` (default:
            every family but the held-out :data:`~envs.scenes.road_families.HELD_OUT_FAMILIES`), ``"held_out"``
            (the evaluation split) or ``"all"``. With ``scenario_types`` None, the types that run on none of them
            are left out; an explicit type that runs on none of them is an error.
        background_density: scale of the number of background agents wanted per scene (1.0: 3-12).
        expert: ``"logged"`` (default: the ego keeps its speed plan, never reacting to its hazard) or
            ``"reacting"`` (only with ``outcomes="varied"``: a near-miss / benign scene's ego reacts to its hazard
            and the outcome is solved against the reacting ego, :mod:`envs.scenes.bank.react`).
    """

    def __init__(
        self,
        num_scenes: int,
        seed: int = 0,
        scenario_types: Sequence[str] | None = None,
        normal_fraction: float = 0.25,
        outcomes: str = "collision",
        outcome_mix: Sequence[float] | None = None,
        difficulty: float = DEFAULT_DIFFICULTY,
        roads: str = "classic",
        road_families: Sequence[str] | str | None = None,
        background_density: float = 1.0,
        expert: str = "logged",
    ) -> None:
        if isinstance(num_scenes, bool) or not isinstance(num_scenes, (int, np.integer)) or num_scenes < 0:
            raise ValueError(f"num_scenes must be a non-negative integer, got {num_scenes!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if roads not in ROAD_MODES:
            raise ValueError(f"roads must be one of {ROAD_MODES}, got {roads!r}")
        if roads == "classic" and road_families is not None:
            raise ValueError(f"road_families={road_families!r} needs roads='families'")
        self.roads = roads
        self.road_families = resolve_road_families(road_families) if roads == "families" else None
        self.background_density = check_background_density(background_density)
        family_roads = None if self.road_families is None else Roads(self.road_families)
        types = tuple(SCENARIO_TYPES if scenario_types is None else scenario_types)
        if isinstance(scenario_types, str) or not types:
            raise ValueError(f"scenario_types must be a non-empty sequence of names, got {scenario_types!r}")
        for t in types:
            check_scenario_type(t)
        if family_roads is not None:
            if scenario_types is None:
                types = tuple(t for t in types if _runs_on(t, family_roads))
            for t in types:
                check_roads_for(t, family_roads)
        if len(set(types)) != len(types):
            raise ValueError(f"scenario_types has duplicates: {types}")
        if not (0.0 <= normal_fraction <= 1.0):
            raise ValueError(f"normal_fraction must be in [0, 1], got {normal_fraction!r}")
        if outcomes not in OUTCOME_MODES:
            raise ValueError(f"outcomes must be one of {OUTCOME_MODES}, got {outcomes!r}")
        if outcomes == "collision" and (outcome_mix is not None or difficulty != DEFAULT_DIFFICULTY):
            raise ValueError(f"outcome_mix={outcome_mix!r} / difficulty={difficulty!r} need outcomes='varied'")
        if expert not in EXPERTS:
            raise ValueError(f"expert must be one of {EXPERTS}, got {expert!r}")
        if expert != "logged" and outcomes != "varied":
            raise ValueError(f"expert={expert!r} needs outcomes='varied'")
        self.expert = expert
        self.outcomes = outcomes
        self.outcome_mix = check_outcome_mix(DEFAULT_OUTCOME_MIX if outcome_mix is None else outcome_mix)
        self.difficulty = check_difficulty(difficulty)
        self._outcome_cdf = np.cumsum(tilted_mix(self.outcome_mix, self.difficulty))
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

    def wanted_outcome(self, i: int) -> str | None:
        """Outcome scene ``i`` is built for (varied mode, accident types), else None. The ``r``-th scene of a type
        (counted over the type's rounds of the accident cycle) takes ``frac(phase_type + r * 0.618...)`` through the
        tilted mix's cumulative shares."""
        i = self._index(i)
        scene_type = self.scenario_type(i)
        if self.outcomes != "varied" or scene_type == "normal":
            return None
        j = i - self._normals_before(i)
        r = j // len(self._accidents)  # this scene is the type's r-th (one per round)
        phase = np.random.default_rng(np.random.SeedSequence([self.seed, 3, self._accidents.index(scene_type)])).random()
        u = (phase + r * 0.6180339887498949) % 1.0
        return OUTCOMES[min(int(np.searchsorted(self._outcome_cdf, u, side="right")), len(OUTCOMES) - 1)]

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
        extra: dict = {}
        if self.road_families is not None:
            extra["road_families"] = self.road_families
        if self.background_density != 1.0:
            extra["background_density"] = self.background_density
        if self.outcomes == "collision":
            return generate_scene(scene_type, self.scene_seed(i), scene_id=self.scene_id(i), **extra)
        return generate_scene(
            scene_type, self.scene_seed(i), scene_id=self.scene_id(i),
            outcome=self.wanted_outcome(i) or "benign", difficulty=self.difficulty, **extra,
            **({"expert": self.expert} if self.expert != "logged" else {}),
        )

    def __iter__(self) -> Iterator[Scene]:
        for i in range(self.num_scenes):
            yield self[i]

    def __repr__(self) -> str:
        return (
            f"ScenarioBank(num_scenes={self.num_scenes}, seed={self.seed}, types={len(self.scenario_types)}, "
            f"normal_fraction={self.normal_fraction}, "
            + (f"outcomes='varied', outcome_mix={self.outcome_mix}, difficulty={self.difficulty}, "
               if self.outcomes == "varied" else "")
            + (f"expert='{self.expert}', " if self.expert != "logged" else "")
            + (f"roads='families', road_families={list(self.road_families)}, " if self.road_families else "")
            + (f"background_density={self.background_density}, " if self.background_density != 1.0 else "")
            + "source='synthetic')"
        )


def _runs_on(scenario_type: str, roads: Roads) -> bool:
    try:
        check_roads_for(scenario_type, roads)
    except ValueError:
        return False
    return True
