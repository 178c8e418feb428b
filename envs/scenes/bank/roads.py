"""Road-geometry choice of the scenario builders: the classic layouts (default) or parametric families.

``roads=None`` (the classic bank) makes every helper return the classic layout without touching the random stream, so
the default bank stays bit-identical. With a :class:`Roads` (``ScenarioBank(..., roads="families")``) a typology's
builder picks one of the families it runs on (:data:`TYPOLOGY_FAMILIES`, intersected with the allowed ones) and draws
its parameters from the scene's generator (:func:`envs.scenes.road_families.draw_params`).

:class:`RoadFrame`: the road frame of a two-way road, ``(x, y)`` with ``x`` the station along the reference
centreline minus 250 m and ``y`` the lateral offset (left positive) [m]; on the classic straight road, the merge
families and the ``straight`` family it is the world frame itself (identity, exact), on ``curve`` layouts it follows
the curved centreline.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from envs.scenes.layouts import Layout, Path, get_layout
from envs.scenes.road_families import (
    FAMILIES,
    HALF_LENGTH,
    JUNCTION_FAMILIES,
    MERGE_FAMILIES,
    ROAD_FAMILIES,
    check_family,
    draw_params,
    family_layout_name,
)

_ROADS = ROAD_FAMILIES + MERGE_FAMILIES
TYPOLOGY_FAMILIES: dict[str, tuple[str, ...]] = {
    "rear_end": _ROADS,
    "cut_in": _ROADS,
    "pedestrian_occluded": _ROADS,
    "head_on_drift": _ROADS,
    "merge_conflict": MERGE_FAMILIES,
    "red_light_runner_left": JUNCTION_FAMILIES,
    "red_light_runner_right": JUNCTION_FAMILIES,
    "unprotected_left_turn": JUNCTION_FAMILIES,
    "right_turn_vru": JUNCTION_FAMILIES,
    "normal": FAMILIES,
}
"""Families each scenario type runs on (every accident typology on at least three)."""
NORMAL_VARIANT_FAMILIES: dict[str, tuple[str, ...]] = {
    "cruise": _ROADS,
    "follow": _ROADS,
    "junction_straight": JUNCTION_FAMILIES,
    "junction_left": JUNCTION_FAMILIES,
    "junction_right": JUNCTION_FAMILIES,
    "merge": MERGE_FAMILIES,
}
"""Families each ``normal`` variant runs on."""
T_MISSING = {
    "red_light_runner_left": "E",
    "unprotected_left_turn": "E",
    "junction_left": "E",
    "red_light_runner_right": "W",
    "right_turn_vru": "W",
    "junction_right": "W",
}
"""The arm a ``junction_t`` lacks for a typology / normal variant (it needs the other side arm)."""


@dataclass(frozen=True)
class Roads:
    """The families a families-mode scene may be built on (a non-empty subset of :data:`FAMILIES`)."""

    families: tuple[str, ...]

    def __post_init__(self) -> None:
        if isinstance(self.families, str) or not self.families:
            raise ValueError(f"road_families must be a non-empty list of family names, got {self.families!r}")
        for f in self.families:
            check_family(f)

    def allowed(self, candidates: Sequence[str]) -> tuple[str, ...]:
        """``candidates`` that are allowed, in :data:`FAMILIES` order."""
        return tuple(f for f in FAMILIES if f in candidates and f in self.families)

    def pick(self, rng: np.random.Generator, candidates: Sequence[str], **needs) -> Layout:
        """A layout of one allowed family of ``candidates`` (uniform), parameters drawn from ``rng`` (``needs``:
        :func:`~envs.scenes.road_families.draw_params` keywords, each applied where it means something: ``missing``
        and ``min_ns`` to ``junction_t`` only, ``min_lanes`` to the two-way road and merge families, ``parking`` to
        ``straight`` / ``curve``)."""
        allowed = self.allowed(candidates)
        if not allowed:
            raise ValueError(f"none of the families {tuple(candidates)} is allowed (road_families={self.families})")
        family = allowed[int(rng.integers(len(allowed)))]
        if family != "junction_t":  # (the T-specific needs: which arm it lacks, lanes on its through road)
            needs.pop("missing", None)
            needs.pop("min_ns", None)
        if family in JUNCTION_FAMILIES:
            needs.pop("min_lanes", None)
            needs.pop("parking", None)
        if family in MERGE_FAMILIES:
            needs.pop("parking", None)
        return get_layout(family_layout_name(family, draw_params(rng, family, **needs)))


def eastbound_routes(layout: Layout) -> list[tuple[str, ...]]:
    """Eastbound lanes of a two-way road / merge layout as routes, index 0 next to the centre line (a lane split at
    a merge is its ``_up``, ``_down`` pair)."""
    out = []
    i = 0
    while True:
        if f"E{i}" in layout.lane_ids:
            out.append((f"E{i}",))
        elif f"E{i}_up" in layout.lane_ids:
            out.append((f"E{i}_up", f"E{i}_down"))
        else:
            return out
        i += 1


def lanes_per_direction(layout: Layout) -> int:
    """Lanes per direction of a two-way road / merge layout (classic ones: 2; the classic merge counts E0, E1)."""
    return len(eastbound_routes(layout))


def merging_lane(layout: Layout) -> str:
    """Name of the lane that merges into the outer eastbound lane (``"ramp"`` or, on ``lane_drop``, ``"drop"``)."""
    return "ramp" if "ramp" in layout.lane_ids else "drop"


def merge_offset(layout: Layout) -> float:
    """Where the merge ends relative to the classic merge layout's x = 20 m [m] (0.0 on the classic layout)."""
    return float(layout.params["X"]) - 20.0 if layout.params else 0.0


@functools.lru_cache(maxsize=256)
def _centre_path(layout_name: str) -> Path | None:
    centre = get_layout(layout_name).centre
    return None if centre is None else Path.from_points(centre)


class RoadFrame:
    """Road frame ``(x, y)`` [m] of a two-way road layout (see the module docstring)."""

    def __init__(self, layout: Layout) -> None:
        self.centre = _centre_path(layout.name)

    def point(self, x: float, y: float) -> np.ndarray:
        """World point ``(2,)`` [m] of frame point ``(x, y)``."""
        if self.centre is None:
            return np.array([x, y])
        return self.centre.poses(x + HALF_LENGTH, y)[:2]

    def heading(self, x: float) -> float:
        """Road heading at frame station ``x`` [rad] (eastbound direction)."""
        return 0.0 if self.centre is None else float(self.centre.poses(x + HALF_LENGTH)[2])

    def x_of(self, points: np.ndarray) -> np.ndarray:
        """Frame station ``x (M,)`` [m] of world points ``(M, 2)``."""
        if self.centre is None:
            return points[:, 0]
        return self.centre.project(points)[0] - HALF_LENGTH

    def lane_s(self, path: Path, x: float, y: float, westbound: bool = False) -> float:
        """Arc length [m] along the lane ``path`` (starting at the road's west end, or east end if ``westbound``)
        of frame point ``(x, y)`` (y: the lane's lateral position)."""
        if self.centre is None:
            return HALF_LENGTH - x if westbound else x + HALF_LENGTH
        return float(path.project(self.point(x, y)[None])[0][0])

    def transfer(self, src: Path, s: float, dst: Path) -> float:
        """Arc length on the parallel lane ``dst`` abreast of arc length ``s`` on ``src`` [m] (identity frame: ``s``)."""
        if self.centre is None:
            return s
        return float(dst.project(src.poses(s)[None, :2])[0][0])
