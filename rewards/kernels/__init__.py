"""Compiled (numba) inner loops of the scorer, by subject.

* :mod:`~rewards.kernels.tracking`: interpolation, velocity / curvature fit, LQR tracker + kinematic bicycle,
  finite-difference states (:mod:`rewards.tracking`);
* :mod:`~rewards.kernels.map_areas`: strict point-in-polygon on the map grid, ego areas (:mod:`rewards.map_index`,
  :mod:`rewards.pdm`);
* :mod:`~rewards.kernels.contacts`: ego / object boxes, NC and TTC from the ego-object contacts;
* :mod:`~rewards.kernels.aggregate`: DAC, DDC, route progress, EP and the PDMS aggregation;
* :mod:`~rewards.kernels.comfort`: the comfort metric's inputs and bound checks.

Conventions shared by every kernel: no fast-math (no fused multiply-adds, no reassociation), so each kernel's
results are fixed bit for bit by its inputs, and the tests pin several of them bit for bit. Where a kernel needs the
sine / cosine of an input array, the caller computes it with numpy and passes it in; the exceptions, documented
where they occur, are the tracker's per-step ``cos / sin / tan`` of the simulated state and the ``atan2`` of the
relative angle of the (few) classified contacts, which come from the C library and can differ from numpy's
vectorised (SVML) versions in the last bit.

Callers pass C-contiguous float64 / int64 / bool arrays and Python floats / ints only (grouped inputs as the
``NamedTuple`` s :class:`EgoSweep`, :class:`ObjectTracks`, :class:`ContactRules`, :class:`AggregateRules`), so
each kernel compiles to one specialisation per array writability (the scorer's inputs are read-only,
:mod:`rewards.types`).

Compilation is lazy (first call) and cached on disk (``cache=True``: ``__pycache__`` beside each module, or numba's
user-wide cache directory when that is not writable; ``NUMBA_CACHE_DIR`` moves it). Measured on a 2-core x86-64 VM:
with an empty cache the first scored group costs about 11 s of compilation (tracking on; 0.6 s more for the first
tracking-off group); with the cache written, loading every kernel costs about 0.2 s per process.
"""

from rewards.kernels.aggregate import AggregateRules, aggregate, ddc_worst, ep_and_pdms, project_points
from rewards.kernels.comfort import comfort_bounds, comfort_inputs, round8
from rewards.kernels.contacts import (
    ContactRules,
    EgoSweep,
    ObjectTracks,
    collisions_and_ttc,
    ego_boxes,
    min_box_gaps,
    object_boxes,
    object_drift,
)
from rewards.kernels.map_areas import contains_points, ego_areas, entry_boxes
from rewards.kernels.tracking import (
    finite_differences,
    fit_profiles,
    interpolate,
    simulate_tracked,
    simulate_tracked_each,
    track,
)

__all__ = [
    "AggregateRules",
    "ContactRules",
    "EgoSweep",
    "ObjectTracks",
    "aggregate",
    "collisions_and_ttc",
    "comfort_bounds",
    "comfort_inputs",
    "contains_points",
    "ddc_worst",
    "ego_areas",
    "ego_boxes",
    "ep_and_pdms",
    "entry_boxes",
    "finite_differences",
    "fit_profiles",
    "interpolate",
    "min_box_gaps",
    "object_boxes",
    "object_drift",
    "project_points",
    "round8",
    "simulate_tracked",
    "simulate_tracked_each",
    "track",
]
