"""The PDM scorer as NAVSIM's ``pdm_score`` runs it: simulate a group of candidates, plan the PDM-Closed-like
reference once per problem, and score the candidates with EP normalised against it.

NAVSIM keeps the scorer (``pdm_scorer.py``) apart from the PDM-Closed planner and composes them in
``navsim/evaluate/pdm_score.py``; so does this package: :mod:`rewards.pdm` scores simulated states,
:mod:`rewards.reference_planner` plans the reference (and scores its proposals with :mod:`rewards.pdm`), and this
module composes the two. Import order: ``pdm`` <- ``reference_planner`` <- ``scorer``; no import circle.

* :func:`reference_for`: the reference of a problem, cached per problem object, configuration and proposal set
  (``"navsim"``: PDM-Closed's 15 proposals, the EP reference of PDMS; ``"careful"``: with braking / yield
  proposals, one of the safe oracle's fallback candidates);
* :func:`planner_action_for`: the same planner choosing among its proposals scored as the 8-pose actions the env
  executes (the ``pdm_closed_like`` baseline policy);
* :func:`safe_progress_for`: the safe-progress reference of a problem (the RL reward's EP normaliser, reported as
  SP-PDMS beside PDMS; :func:`rewards.reference_planner.plan_safe_progress`), cached the same way;
  :func:`safe_planner_trajectory` drives it (the privileged safe oracle planner), with :func:`fallback_action_for`
  where no proposal is safe;
* :func:`score_group`: ``simulate_candidates`` + ``score_states`` with the reference's masked progress;
* :class:`PDMScorer`: a configured scorer object with both.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from rewards.config import PDMConfig
from rewards.pdm import PDMResult, score_states
from rewards.reference_planner import (
    ActionPlan,
    FallbackAction,
    ReferenceResult,
    SafeProgressResult,
    plan_action,
    plan_fallback_action,
    plan_reference,
    plan_safe_progress,
    proposal_poses,
)
from rewards.tracking import simulate_poses
from rewards.tracking import simulate_candidates
from rewards.types import ScoringProblem

_REFERENCES: "weakref.WeakKeyDictionary[ScoringProblem, dict[tuple, Any]]" = weakref.WeakKeyDictionary()
"""Per problem object (released with it): ``{(kind, config): reference or None}``. Keyed by identity: sound because a
problem's arrays are read-only copies (:mod:`rewards.types`)."""


def reference_for(problem: ScoringProblem, config: PDMConfig = PDMConfig(),
                  proposal_set: str = "navsim") -> ReferenceResult | None:
    """The PDM-Closed-like reference of ``problem`` (:func:`rewards.reference_planner.plan_reference`), planned once
    per problem object, config and proposal set and cached; None without a map (or with a route of fewer than 2
    points)."""
    return _cached(problem, (proposal_set, config),
                   lambda: plan_reference(problem, config, proposal_set, _proposal_states(problem, config)))


def planner_action_for(problem: ScoringProblem, config: PDMConfig = PDMConfig(),
                       proposal_set: str = "navsim") -> ActionPlan | None:
    """The PDM-Closed-like planner's choice among its proposals scored as the actions the env executes
    (:func:`rewards.reference_planner.plan_action`; the ``pdm_closed_like`` policy), cached like
    :func:`reference_for`; None without a map."""
    return _cached(problem, ("action", proposal_set, config),
                   lambda: plan_action(problem, config, proposal_set, _proposal_poses(problem, config)))


def _cached(problem: ScoringProblem, key: tuple, make: Any) -> Any:
    """``make()`` once per problem object and key."""
    per_problem = _REFERENCES.setdefault(problem, {})
    if key not in per_problem:
        per_problem[key] = make()
    return per_problem[key]


def _proposal_poses(problem: ScoringProblem, config: PDMConfig) -> np.ndarray | None:
    """The ``"careful"`` proposal poses of ``problem`` (the ``"navsim"`` ones are the first 15), computed once per
    problem and config for every reference; None without a map route."""
    if problem.map is None or len(problem.map.route) < 2:
        return None
    return _cached(problem, ("proposal_poses", config), lambda: proposal_poses(problem, config, "careful"))


def _proposal_states(problem: ScoringProblem, config: PDMConfig) -> np.ndarray | None:
    """The proposals of :func:`_proposal_poses` simulated at 0.1 s (PDM-Closed's way), once per problem and config."""
    poses = _proposal_poses(problem, config)
    if poses is None:
        return None
    return _cached(problem, ("proposal_states", config), lambda: simulate_poses(problem.ego, poses, config))


def safe_progress_for(problem: ScoringProblem, config: PDMConfig = PDMConfig()) -> SafeProgressResult | None:
    """The safe-progress reference of ``problem`` (:func:`rewards.reference_planner.plan_safe_progress`), planned
    once per problem object and config and cached; None without a map."""
    return _cached(problem, ("safe_progress", config),
                   lambda: plan_safe_progress(problem, config, _proposal_poses(problem, config)))


def fallback_action_for(problem: ScoringProblem, config: PDMConfig = PDMConfig()) -> FallbackAction | None:
    """The safe oracle's least unsafe action (:func:`rewards.reference_planner.plan_fallback_action`) among the
    careful proposals and the careful planner's choice under constant-velocity forecasts (:func:`reference_for`),
    planned once per problem object and config and cached; None without a map."""
    def make() -> FallbackAction | None:
        ref = reference_for(problem, config, "careful")
        extra = None if ref is None else ref.trajectory[None]
        return plan_fallback_action(problem, config, _proposal_poses(problem, config), extra)

    return _cached(problem, ("fallback_action", config), make)


def safe_planner_trajectory(problem: ScoringProblem, config: PDMConfig = PDMConfig()) -> np.ndarray | None:
    """The trajectory of the **safe oracle planner** ``(num_poses, 3)`` [m, m, rad] (ego frame): the careful proposal
    with the largest safe progress against the logged agents (:func:`safe_progress_for`), or, when none is safe, the
    least unsafe one against the same logged agents (:func:`fallback_action_for`: no contact first, then the largest
    gap up to the margin, then progress). Both are judged as the 8-pose action the env executes with its tracker.
    It reads the agents' logged future (privileged): the reference driver of the closed-loop route completion. Not
    an upper bound on safety: re-planning every 0.5 s over a 4 s horizon of fixed proposals, it can meet a state
    where every proposal touches an agent (measured with ``python -m benchmarks.bench_oracle``). None without a
    map."""
    sp = safe_progress_for(problem, config)
    if sp is None:
        return None
    if sp.trajectory is not None and sp.fallback == "safe":
        return sp.trajectory
    fallback = fallback_action_for(problem, config)
    return None if fallback is None else fallback.trajectory


def score_group(
    problem: ScoringProblem,
    candidates: np.ndarray,
    config: PDMConfig = PDMConfig(),
    reference: "None | str | ReferenceResult" = "auto",
) -> PDMResult:
    """Simulate and score a group of candidates (``simulate_candidates`` + ``score_states``).

    Args:
        problem: the decision time.
        candidates: ``(G, 8, 3)`` ego-frame rear-axle poses [m, m, rad] at 0.5 s.
        config: scorer configuration.
        reference: ``"auto"``: EP is normalised against the PDM-Closed-like reference (planned once per problem and
            cached, :func:`reference_for`); a :class:`~rewards.reference_planner.ReferenceResult`: against that one;
            ``None``: among the candidates of the group only.

    Raises:
        ValueError: ``reference`` is another string; and as :func:`rewards.tracking.simulate_candidates` and
            :func:`rewards.pdm.score_states`.
    """
    states = simulate_candidates(problem.ego, candidates, config)
    ref_progress = None
    if isinstance(reference, str):
        if reference != "auto":
            raise ValueError(f"reference: expected None, 'auto' or a ReferenceResult, got {reference!r}")
        ref = reference_for(problem, config) if problem.map is not None else None
        ref_progress = None if ref is None else ref.masked_progress
    elif reference is not None:
        ref_progress = float(reference.masked_progress)
    return score_states(problem, states, config, reference_progress=ref_progress)


class PDMScorer:
    """Configured scorer: ``PDMScorer(config).score_group(problem, candidates)``."""

    def __init__(self, config: PDMConfig = PDMConfig(), reference: "None | str" = "auto"):
        self.config = config
        self.reference = reference

    def score_group(self, problem: ScoringProblem, candidates: np.ndarray, reference: Any = "default") -> PDMResult:
        """See :func:`score_group`; ``reference`` defaults to the scorer's setting."""
        ref = self.reference if isinstance(reference, str) and reference == "default" else reference
        return score_group(problem, candidates, self.config, reference=ref)

    def score_states(self, problem: ScoringProblem, states: np.ndarray,
                     reference_progress: float | None = None) -> PDMResult:
        """See :func:`rewards.pdm.score_states`."""
        return score_states(problem, states, self.config, reference_progress)
