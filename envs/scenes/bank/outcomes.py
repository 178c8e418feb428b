"""Outcome-varied accident typologies (opt-in: ``ScenarioBank(..., outcomes="varied")``), SYNTHETIC.

In the default bank every accident typology ends in a crash if the ego follows its log. In the varied mode each
accident scene gets a wanted outcome (``benign``, ``near_miss`` or ``collision``, drawn from a configurable mix),
reached through the typology's outcome-controlling parameter (:class:`~envs.scenes.bank.core.OutcomeFamily`):

* junction typologies, ``pedestrian_occluded``: ``arrival_offset_s``, when the hazard reaches the conflict point
  relative to the ego [s] (the colliding draw's arrival jitter, moved up to 2.5 s earlier or later);
* ``head_on_drift``: ``oncoming_time_shift_s``, the oncoming vehicle passes earlier, while the ego has drifted less;
* ``merge_conflict``: ``main_vehicle_time_shift_s`` / ``ramp_vehicle_time_shift_s``, the other vehicle's timing;
* ``rear_end``: ``brake_gap_m``, the bumper gap when the lead starts braking (the lead drives on after it);
* ``cut_in``: ``cut_in_gap_m``, the bumper gap when the lane change ends (the cutter speeds up after it).

A collision is the typology's own colliding draw (contact frame, avoidability and post-contact motion as in the
default bank). For a near-miss or benign outcome a target minimum gap is drawn from :data:`TARGET_GAP` and the
parameter solved for it (regula falsi on the geometry); the outcome is then VERIFIED by the geometry (the ego's log
against the hazard's, oriented boxes at every frame, :func:`classify`): a mismatch redraws (at most
:data:`MAX_OUTCOME_DRAWS` times) and, failing that, the scene keeps its colliding draw and says so in meta
(``outcome`` the geometry's, ``outcome_wanted``). The hazard agent is present in every outcome.

With ``expert="reacting"`` (:mod:`envs.scenes.bank.react`) a near-miss / benign scene's ego reacts to its hazard: the
parameter is solved against the ego reacting to each candidate hazard (:func:`_solve_reacting`: a scan of the span
for a bracket, then regula falsi; the gap is not monotonic once the ego brakes) and the outcome verified on the
reacted log. Collision scenes keep the colliding draw's inattentive ego (no reaction) with either expert.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from envs.scenes.bank.actors import Actor, first_overlap
from envs.scenes.bank.core import Core
from envs.scenes.bank.react import EXPERTS, min_gap_track, react
from envs.scenes.bank.ranges import Range
from rewards.geometry import box_distance

OUTCOMES = ("benign", "near_miss", "collision")
"""Outcomes of an accident typology's log, from the hazard's minimum gap to the ego (:func:`classify`)."""
OUTCOME_MODES = ("collision", "varied")
"""``ScenarioBank(outcomes=...)``: ``"collision"`` (default: every accident scene collides) or ``"varied"``."""
DEFAULT_OUTCOME_MIX = (0.35, 0.30, 0.35)
"""Default wanted shares of (benign, near_miss, collision) in the varied mode."""
DEFAULT_DIFFICULTY = 0.5
"""Hazard difficulty that leaves the mix as configured (:func:`tilted_mix`)."""
NEAR_MISS_GAP = 1.0
"""A log whose minimum ego-hazard box gap is below this [m] without contact is a near-miss; at or above, benign."""
TARGET_GAP = {"near_miss": Range(0.15, 0.85), "benign": Range(1.5, 6.0)}
"""Target minimum gaps [m] the outcome parameter is solved for (kept clear of :data:`NEAR_MISS_GAP`)."""
MAX_OUTCOME_DRAWS = 4
"""Target-gap draws per scene before it keeps its colliding draw."""
GAP_TOLERANCE = 0.05
"""Solver tolerance on the minimum gap [m]."""
END_FRAMES = 5
"""A near-miss / benign draw whose minimum gap falls in the log's last frames is redrawn (the hazard might still be
closing in after the log ends)."""


def check_outcome_mix(mix: Sequence[float]) -> tuple[float, float, float]:
    """``mix`` (benign, near_miss, collision) normalised to sum 1; ``ValueError`` naming it when malformed."""
    try:
        values = tuple(float(v) for v in mix)
    except (TypeError, ValueError):
        raise ValueError(f"outcome_mix must be three non-negative numbers (benign, near_miss, collision), got {mix!r}")
    if len(values) != 3 or any(not np.isfinite(v) or v < 0 for v in values) or sum(values) <= 0:
        raise ValueError(f"outcome_mix must be three non-negative numbers (benign, near_miss, collision) with a "
                         f"positive sum, got {mix!r}")
    total = sum(values)
    if abs(total - 1.0) < 1e-12:
        return values  # type: ignore[return-value]
    return (values[0] / total, values[1] / total, values[2] / total)


def check_difficulty(difficulty: float) -> float:
    """``difficulty`` as a float in [0, 1]; ``ValueError`` naming it otherwise."""
    if isinstance(difficulty, bool) or not isinstance(difficulty, (int, float, np.floating)) or not 0 <= difficulty <= 1:
        raise ValueError(f"difficulty must be a number in [0, 1], got {difficulty!r}")
    return float(difficulty)


def tilted_mix(mix: Sequence[float], difficulty: float = DEFAULT_DIFFICULTY) -> np.ndarray:
    """Wanted outcome shares ``(3,)`` at ``difficulty`` in [0, 1]: benign weighted by ``2 (1 - d)``, collision by
    ``2 d``, near-miss by 1, renormalised (``d = 0.5`` gives ``mix`` itself; collisions rise and benign scenes fall
    monotonically with ``d``; ``d = 0``: no collision, ``d = 1``: no benign scene, where the others have weight)."""
    d = check_difficulty(difficulty)
    w = np.asarray(check_outcome_mix(mix)) * np.array([2.0 * (1.0 - d), 1.0, 2.0 * d])
    if w.sum() <= 0:  # e.g. an all-collision mix at difficulty 0: keep the mix
        w = np.asarray(check_outcome_mix(mix))
    return w / w.sum()


def classify(min_gap: float) -> str:
    """Outcome of a log whose ego-hazard minimum box gap is ``min_gap`` [m] (0: contact)."""
    if min_gap <= 0.0:
        return "collision"
    return "near_miss" if min_gap < NEAR_MISS_GAP else "benign"


def min_gap(ego_corners: np.ndarray, agent_corners: np.ndarray) -> float:
    """Smallest gap [m] between two box tracks ``(T, 4, 2)`` over the frames (0 when they overlap at any frame)."""
    return float(box_distance(ego_corners, agent_corners).min())


def _solve(gap_of: Callable[[float], float], p0: float, p1: float, target: float, iters: int = 14) -> float | None:
    """``p`` between ``p0`` (gap below ``target``) and ``p1`` (gap above) with ``gap_of(p)`` within
    :data:`GAP_TOLERANCE` of ``target`` (Illinois regula falsi), or None when ``p0`` does not collide. A target
    beyond the gap at ``p1`` is lowered to that gap less ``2 GAP_TOLERANCE`` (the caller verifies the outcome)."""
    g0, far = gap_of(p0), gap_of(p1)
    if g0 > 0.0:
        return None
    target = min(target, far - 2.0 * GAP_TOLERANCE)
    if target <= 0.0:
        return None
    g0, g1 = g0 - target, far - target
    side = 0
    p = p1
    for _ in range(iters):
        p = p1 - g1 * (p1 - p0) / (g1 - g0)
        g = gap_of(p) - target
        if abs(g) < GAP_TOLERANCE:
            return p
        if g < 0.0:
            p0, g0 = p, g
            if side == -1:
                g1 *= 0.5
            side = -1
        else:
            p1, g1 = p, g
            if side == 1:
                g0 *= 0.5
            side = 1
    return p


def _reacting_gap(family: Any, make: Callable[[float], Actor], props: Sequence[Actor]) -> Callable[[float], tuple]:
    """``p -> (gap, frame, ego, hazard, facts, p)``: the hazard ``make(p)``, the ego reacting to it
    (:func:`~envs.scenes.bank.react.react`), their smallest box gap [m] and its frame."""

    seen: dict[float, tuple] = {}  # (redraws scan the same points of a span again)

    def evaluate(p: float) -> tuple:
        if p not in seen:
            hazard = make(p)
            ego, facts = react(family.ego, hazard, props)
            gap, frame = min_gap_track(ego, hazard)
            seen[p] = gap, frame, ego, hazard, facts, p
        return seen[p]

    return evaluate


SCAN = (0.0, 0.125, 0.25, 0.5, 1.0)
"""Reacting expert: fractions of a span ``(p_collide, p_far)`` scanned for a bracket of the target gap."""


def _solve_reacting(evaluate: Callable[[float], tuple], p0: float, p1: float, target: float, wanted: str,
                    iters: int = 10) -> tuple | None:
    """The reacting expert's solve: scan ``p`` over :data:`SCAN` of ``(p0, p1)`` for the first pair of neighbours
    whose gaps lie on both sides of ``target`` and refine it (Illinois regula falsi to :data:`GAP_TOLERANCE`); the
    gap is not monotonic in ``p`` once the ego reacts (braking can move the ego into a hazard that was to pass
    ahead of it). Without a bracket: the scanned point whose outcome is ``wanted`` with the gap nearest ``target``.
    Returns ``evaluate``'s tuple, or None (the caller verifies the outcome)."""
    done: list[tuple[float, tuple]] = []
    for f in SCAN:
        p = p0 + f * (p1 - p0)
        res = evaluate(p)
        if done and (done[-1][1][0] - target) * (res[0] - target) < 0.0:
            (pa, ra), (pb, rb) = done[-1], (p, res)
            break
        done.append((p, res))
    else:
        ok = [r for _, r in done if classify(r[0]) == wanted]
        return min(ok, key=lambda r: abs(r[0] - target)) if ok else None
    ga, gb = ra[0] - target, rb[0] - target
    side = 0
    best = ra if abs(ga) < abs(gb) else rb
    for _ in range(iters):
        if abs(best[0] - target) < GAP_TOLERANCE:
            break
        p = pb - gb * (pb - pa) / (gb - ga)
        res = evaluate(p)
        g = res[0] - target
        if abs(g) < abs(best[0] - target):
            best = res
        if (g < 0.0) == (ga < 0.0):
            pa, ga = p, g
            if side == -1:
                gb *= 0.5
            side = -1
        else:
            pb, gb = p, g
            if side == 1:
                ga *= 0.5
            side = 1
    return best


def vary(core: Core, wanted: str, rng: np.random.Generator, difficulty: float = DEFAULT_DIFFICULTY,
         expert: str = "logged") -> tuple[Core, dict[str, Any]]:
    """The scene core for the ``wanted`` outcome and its meta facts (see the module docstring).

    Args:
        core: an accident typology's colliding draw (with ``core.family``).
        wanted: one of :data:`OUTCOMES`.
        rng: the scene's generator (target gaps, spans and the family's own draws come from it).
        difficulty: in [0, 1]; target gaps are drawn as ``lo + (hi - lo) u^(2^(2 d - 1))`` for ``u`` uniform, so a
            harder scene's hazard passes closer (``d = 0.5``: uniform over :data:`TARGET_GAP`).
        expert: ``"logged"`` (the ego keeps its speed plan) or ``"reacting"`` (a near-miss / benign scene's ego
            reacts to its hazard, :mod:`envs.scenes.bank.react`: the parameter is solved against the reacting ego,
            recomputed for every candidate hazard, by :func:`_solve_reacting`; ``facts`` then also holds
            ``reaction``). Collision scenes keep the colliding draw's inattentive ego either way.

    Returns:
        ``(core, facts)``: ``facts`` holds ``outcome`` (the geometry's), ``outcome_wanted``, ``outcome_redraws``,
        ``min_gap_m`` and ``outcome_params`` (``{family.name: value}``).
    """
    if wanted not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {wanted!r}")
    family = core.family
    facts: dict[str, Any] = {"outcome_wanted": wanted, "outcome_redraws": 0}
    if family is None:  # a colliding draw with no uncrashed variant (the generator redraws those for other outcomes)
        facts.update(outcome="collision", min_gap_m=0.0, outcome_params={})
        return core, facts
    if expert not in EXPERTS:
        raise ValueError(f"expert must be one of {EXPERTS}, got {expert!r}")
    if wanted != "collision" and expert == "reacting":
        return _vary_reacting(core, wanted, rng, difficulty, facts)
    if wanted != "collision":
        make = family.hazard(rng)
        exponent = 2.0 ** (2.0 * check_difficulty(difficulty) - 1.0)
        lo, hi = TARGET_GAP[wanted]
        for draw in range(MAX_OUTCOME_DRAWS):
            target = lo + (hi - lo) * float(rng.random()) ** exponent
            p0, p1 = family.spans[int(rng.integers(len(family.spans)))]
            p = _solve(lambda q: min_gap_track(family.ego, make(q))[0], p0, p1, target)
            if p is None:
                continue
            hazard: Actor = make(p)
            gap, frame = min_gap_track(family.ego, hazard)  # (the exact minimum of box_distance over every frame)
            if classify(gap) != wanted or frame >= len(family.ego.s) - END_FRAMES:
                continue  # wrong outcome, or the gap may keep closing after the log
            facts.update(outcome=wanted, outcome_redraws=draw, min_gap_m=round(gap, 3),
                         outcome_params={family.name: round(family.base + p, 3)})
            varied = replace(core, ego=family.ego, actors=[hazard, *core.actors[1:]], collision_frame=None)
            return varied, facts
        facts["outcome_redraws"] = MAX_OUTCOME_DRAWS
    facts.update(outcome="collision", min_gap_m=0.0, outcome_params={family.name: round(family.base, 3)})
    return core, facts


def _vary_reacting(core: Core, wanted: str, rng: np.random.Generator, difficulty: float,
                   facts: dict[str, Any]) -> tuple[Core, dict[str, Any]]:
    """:func:`vary` for a near-miss / benign scene of the reacting expert: the same draws as the logged expert's
    (target gap, span), the parameter solved against the ego that reacts to each candidate hazard, the outcome
    verified on the final logs (the reacted ego against the hazard)."""
    family = core.family
    make = family.hazard(rng)
    props = [a for a in core.actors[1:] if a.role == "prop"]
    evaluate = _reacting_gap(family, make, props)
    exponent = 2.0 ** (2.0 * check_difficulty(difficulty) - 1.0)
    lo, hi = TARGET_GAP[wanted]
    for draw in range(MAX_OUTCOME_DRAWS):
        target = lo + (hi - lo) * float(rng.random()) ** exponent
        spans = family.reacting_spans or family.spans
        p0, p1 = spans[int(rng.integers(len(spans)))]
        res = _solve_reacting(evaluate, p0, p1, target, wanted)
        if res is None:
            continue
        _, _, ego, hazard, reaction, p = res
        gap, frame = min_gap_track(ego, hazard)  # (the exact minimum of box_distance over every frame)
        if classify(gap) != wanted or frame >= len(ego.s) - END_FRAMES:
            continue  # wrong outcome, or the gap may keep closing after the log
        if any(first_overlap(ego.corners(), prop.corners()) is not None for prop in props):
            continue  # (the reacted ego never reaches further than the plan; kept as a check)
        facts.update(outcome=wanted, outcome_redraws=draw, min_gap_m=round(gap, 3),
                     outcome_params={family.name: round(family.base + p, 3)}, reaction=reaction.to_meta())
        varied = replace(core, ego=ego, actors=[hazard, *core.actors[1:]], collision_frame=None)
        return varied, facts
    facts["outcome_redraws"] = MAX_OUTCOME_DRAWS
    facts.update(outcome="collision", min_gap_m=0.0, outcome_params={family.name: round(family.base, 3)})
    return core, facts
