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
tracking-off group; up to 90 s on a loaded machine); with the cache written, loading every kernel costs about 0.2 s
per process. When numba really compiles a kernel (no usable cache for it), one line on stderr names it; the first
such line of a process also says where the cache goes (:data:`compilation_notice`); a warm cache prints nothing.
``NUMBA_CACHE_DIR=/some/dir`` keeps the cache out of the source tree (e.g. for a read-only install or a shared cache
on a cluster).
"""

from numba.core import event as _event

from rewards.kernels.aggregate import AggregateRules, aggregate, ddc_worst, ep_and_pdms, project_points
from rewards.kernels.comfort import comfort_bounds, comfort_inputs, round8
from rewards.kernels.contacts import (
    ContactRules,
    EgoSweep,
    ObjectTracks,
    collisions_and_ttc,
    contacts_at_fault,
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
    "contacts_at_fault",
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


class _CompilationNotice(_event.Listener):
    """Prints one line to stderr when numba really compiles a kernel of this package (no usable on-disk cache for
    that signature), naming the kernel; nothing when the kernels load from the cache. numba broadcasts
    ``"numba:compile"`` only around an actual compilation, after its cache lookup failed
    (``numba.core.dispatcher.Dispatcher.compile``), so the line is true by construction. The first line of a process
    also says what it costs and where the cache goes; the ones after it name the kernel only."""

    def __init__(self, stream=None) -> None:
        self.stream = stream
        self.compiled: list[str] = []
        """Qualified names of the kernels compiled in this process, in order."""

    def on_start(self, event) -> None:
        import sys

        dispatcher = event.data.get("dispatcher") if isinstance(event.data, dict) else None
        func = getattr(dispatcher, "py_func", None)
        module = getattr(func, "__module__", "") or ""
        if not module.startswith(__name__ + "."):
            return
        name = f"{module}.{func.__name__}"
        stream = self.stream or sys.stderr
        if not self.compiled:
            where = getattr(getattr(dispatcher, "_cache", None), "_cache_path", None)
            print(f"safealign: compiling numba kernel {name} of the scorer: no on-disk cache for it yet (all kernels: "
                  f"about 10 s, up to 90 s on a loaded machine; once): cache in {where} (set NUMBA_CACHE_DIR to move "
                  f"it)", file=stream)
        else:
            print(f"safealign: compiling numba kernel {name}", file=stream)
        self.compiled.append(name)

    def on_end(self, event) -> None:
        pass


compilation_notice = _CompilationNotice()
"""The listener that announces real compilations (``compilation_notice.compiled`` lists them)."""
_event.register("numba:compile", compilation_notice)
