"""Step reward terms whose costly part is computed on first read: :class:`DeferredTerms`.

A closed-loop step of the replay env with the default progress-first reward does not need the terms that depend on
the EP references (``ep``, ``pdms``, ``sp_ep``, ``sp_pdms``, ``score``: :data:`envs.sim.reward.EP_TERMS`): the step
reward is route progress scaled by TTC, comfort and DDC. Planning the references (the PDM-Closed-like planner and
the safe-progress planner, a few ms per new ego state once the ego has left the log) was most of such a step's time,
so ``info["rewards"]`` is a :class:`DeferredTerms`: a ``dict`` whose deferred values are computed, all at once, the
first time any of them is read, by the function given at construction (which captures the step's immutable scoring
inputs, so the values are exactly those an eager step would have stored: pinned by ``tests/test_env_pinned.py``).

It behaves as the plain dict it was: the same keys from the start (``len``, ``in``, key iteration read no value),
and every way of reading values (``[]``, ``get``, ``items``, ``values``, ``copy``, ``dict(d)``, ``{**d}``, ``==``,
``repr``, ``json.dumps``, ``pickle`` / ``copy.deepcopy`` (a plain dict comes out), any mutation) computes the
deferred values first. A value read past these paths (``dict.__getitem__(d, k)`` called directly) is the
:data:`PENDING` sentinel, which no arithmetic accepts, never a silent number.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class _Pending:
    """The stored value of a deferred term until it is computed (see :data:`PENDING`)."""

    def __repr__(self) -> str:
        return "<deferred term: read it through the DeferredTerms mapping>"


PENDING = _Pending()
"""Placeholder of a deferred value inside :class:`DeferredTerms` (only visible to code that bypasses the mapping)."""


class DeferredTerms(dict):
    """``{name: float}`` whose ``deferred`` names are filled by ``compute()`` (returning at least those names) on
    the first read of any value; the other values are stored as given.

    Args:
        values: the terms computed eagerly (a deferred name among them is overwritten when computed).
        deferred: names of the terms ``compute`` provides.
        compute: ``() -> {name: float}``, called at most once.
    """

    __slots__ = ("_compute",)

    def __init__(self, values: dict[str, float], deferred: Iterable[str], compute: Callable[[], dict[str, Any]]):
        super().__init__(values)
        for name in deferred:
            dict.__setitem__(self, name, PENDING)
        self._compute: Callable[[], dict[str, Any]] | None = compute

    @property
    def pending(self) -> bool:
        """Whether the deferred values are still to be computed."""
        return self._compute is not None

    @property
    def pending_names(self) -> tuple[str, ...]:
        """Names of the deferred terms still to be computed (empty once computed); reads no value."""
        return tuple(name for name, value in dict.items(self) if value is PENDING)

    def known(self) -> dict[str, Any]:
        """A plain dict of the values stored so far, without computing the deferred ones (all of them once
        computed): what :class:`envs.vec.RayVecEnv`'s workers send while the deferred terms stay in the worker."""
        return {name: value for name, value in dict.items(self) if value is not PENDING}

    def _resolve(self) -> None:
        compute, self._compute = self._compute, None
        if compute is None:
            return
        values = compute()
        for name, value in dict.items(self):
            if value is PENDING:
                dict.__setitem__(self, name, values[name])

    # ---- reads
    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if value is PENDING:
            self._resolve()
            value = dict.__getitem__(self, key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if dict.__contains__(self, key) else default

    def __iter__(self):
        # Overriding __iter__ makes dict(d), {**d}, f(**d) and dict.update(d) read values through __getitem__.
        return dict.__iter__(self)

    def items(self):
        self._resolve()
        return dict.items(self)

    def values(self):
        self._resolve()
        return dict.values(self)

    def copy(self) -> dict[str, Any]:
        self._resolve()
        return dict(dict.items(self))

    def __eq__(self, other: object) -> bool:
        self._resolve()
        if isinstance(other, DeferredTerms):
            other._resolve()
        return dict.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        self._resolve()
        return dict.__repr__(self)

    def __or__(self, other: Any) -> dict[str, Any]:
        return self.copy() | other

    def __ror__(self, other: Any) -> dict[str, Any]:
        return dict(other) | self.copy()

    def __reduce__(self):
        return dict, (self.copy(),)

    # ---- writes: compute first, so a value set now is never overwritten by a later computation
    def __setitem__(self, key: str, value: Any) -> None:
        self._resolve()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: str) -> None:
        self._resolve()
        dict.__delitem__(self, key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._resolve()
        dict.update(self, *args, **kwargs)

    def __ior__(self, other: Any):
        self.update(other)
        return self

    def pop(self, *args: Any) -> Any:
        self._resolve()
        return dict.pop(self, *args)

    def popitem(self):
        self._resolve()
        return dict.popitem(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._resolve()
        return dict.setdefault(self, key, default)

    def clear(self) -> None:
        self._compute = None
        dict.clear(self)
