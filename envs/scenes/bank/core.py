"""Shared machinery of the scenario builders: the build result, contact finishing and ego cropping.

Collision model (synthetic, kinematic): the ego log is a scripted "expert" that fails to react; the first frame at
which the ego box strictly overlaps the risk agent's box is the collision frame. There is no physics response:
after contact both keep following their paths while braking to a stop (ego at
:data:`EGO_POST_CONTACT_DECEL`, the risk agent at its class' deceleration), so their boxes may keep overlapping.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from envs.scenes.bank.actors import Actor, EgoTrack, first_overlap
from envs.scenes.bank.motion import DT, NUM_FRAMES, crossing_time, speed_plan
from envs.scenes.layouts import Path
from envs.scenes.scene import AgentClass

COLLISION_WINDOW = (50, 61)
"""Allowed collision frames (inclusive) of the 101-frame logs: every decision time 1-3 s before contact has >= 2 s
of history before it and >= 4.9 s of log after it (frame k - 10 + 49 <= 100)."""
CHECK_LEAD_FRAMES = 20
"""The avoidability check starts this many frames (2 s) before contact."""
CHECK_DECEL = 6.0
"""Constant deceleration of the braking avoidability check [m/s^2]."""
STEER_BACK_DURATION = 1.5
"""Duration of the steer-back avoidability check (head-on drift) [s]."""
EGO_POST_CONTACT_DECEL = 3.5
"""Ego deceleration after contact [m/s^2]."""
POST_CONTACT_DECEL = {AgentClass.VEHICLE: 5.0, AgentClass.CYCLIST: 4.0, AgentClass.PEDESTRIAN: 3.0}
"""Risk-agent deceleration after contact, per class [m/s^2]."""


@dataclass(frozen=True)
class OutcomeFamily:
    """A typology's outcome-controlling parameter (used by the outcome-varied bank, :mod:`envs.scenes.bank.outcomes`).

    ``hazard(rng)`` returns ``make``, with ``make(p)`` the hazard agent for the offset ``p`` from the colliding draw
    (``make(0)`` reproduces the colliding hazard for time-shift families); it may draw extra parameters from ``rng``
    (only the varied mode calls it, so the default bank's random stream is untouched).

    Attributes:
        name: meta key of the parameter, unit suffixed (e.g. ``"arrival_offset_s"``: the hazard reaches the conflict
            point this long after the ego [s]); the value reported is ``base + p``.
        base: the parameter's value in the colliding draw.
        ego: the ego log without post-contact braking (what the ego does when nothing is hit).
        hazard: ``rng -> (p -> Actor)``.
        spans: search intervals ``(p_collide, p_far)`` of ``p``, from a colliding end to a far (clear) end; the
            varied bank picks one at random (e.g. the hazard arriving earlier or later than the ego).
        reacting_spans: the spans searched against the reacting expert (:mod:`envs.scenes.bank.react`), None: ``spans``
            (a typology whose reacting ego keeps every hazard of ``spans`` far away, such as ``cut_in``, extends them
            beyond the logged ego's colliding end).
    """

    name: str
    base: float
    ego: EgoTrack
    hazard: Callable[[np.random.Generator], Callable[[float], Actor]]
    spans: tuple[tuple[float, float], ...]
    reacting_spans: tuple[tuple[float, float], ...] | None = None


def time_shift_family(name: str, base: float, ego: EgoTrack, risk: Actor, spans: tuple[tuple[float, float], ...]) -> OutcomeFamily:
    """Family moving the (uncrashed) ``risk`` agent's whole motion later by ``p`` [s] (earlier for ``p < 0``)."""
    return OutcomeFamily(name, base, ego, lambda rng: (lambda p: time_shifted(risk, p)), spans)


def time_shifted(actor: Actor, shift: float) -> Actor:
    """``actor`` with its motion delayed by ``shift`` [s]: ``s'(t) = s(t - shift)`` (linear extrapolation at the
    log's ends with the end speeds; the lateral offset is held at its end values)."""
    t = np.arange(len(actor.s)) * DT
    tq = t - shift
    s = np.interp(tq, t, actor.s)
    v0, v1 = (actor.s[1] - actor.s[0]) / DT, (actor.s[-1] - actor.s[-2]) / DT
    s = np.where(tq < 0.0, actor.s[0] + v0 * tq, np.where(tq > t[-1], actor.s[-1] + v1 * (tq - t[-1]), s))
    lateral = None if actor.lateral is None else np.interp(tq, t, actor.lateral)
    return replace(actor, s=s, lateral=lateral)


class Retry(Exception):
    """The sampled parameters failed a check; the generator draws new ones from the same random stream."""


@dataclass
class Core:
    """A scenario's ego, its scripted agents and facts, before background traffic is added.

    Attributes:
        layout: layout name (:data:`envs.scenes.layouts.LAYOUT_NAMES`).
        route: ego route lane names.
        ego: the ego log.
        actors: scripted agents (the risk agent first in accident scenes, then props / leads).
        variant: scenario variant name.
        conflict: ``"<scenario type>: <description>"`` (the description goes to ``meta.extra["description"]``).
        collision_frame: first contact frame (accident scenes) or None.
        avoid: extra ego tracks (avoidability counterfactuals) that background traffic must also stay clear of.
        extra: more facts for ``meta.extra``.
        family: the outcome-controlling parameter (accident types), for the outcome-varied bank.
    """

    layout: str
    route: tuple[str, ...]
    ego: EgoTrack
    actors: list[Actor]
    variant: str
    conflict: str
    collision_frame: int | None = None
    avoid: list[EgoTrack] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    family: OutcomeFamily | None = None


def target_frame(rng: np.random.Generator, lo: int = 54, hi: int = 61) -> int:
    """Random frame in ``[lo, hi]`` at which the scenario aims its nominal contact."""
    return int(rng.integers(lo, hi + 1))


def interp_frame(values: np.ndarray, t: float) -> np.ndarray:
    """Linear interpolation of per-frame ``values (T, ...)`` at time ``t`` [s]."""
    k = min(max(int(np.floor(t / DT)), 0), len(values) - 2)
    f = t / DT - k
    return (1.0 - f) * values[k] + f * values[k + 1]


def cropped_ego(
    path: Path,
    caps: np.ndarray,
    v_cruise: float,
    gate: Path,
    k_target: int,
    a_up: float,
    a_down: float,
    n_long: int = 320,
) -> tuple[EgoTrack, float]:
    """Ego log along ``path`` whose box centre crosses ``gate`` at about frame ``k_target``.

    A long speed plan (:func:`speed_plan`, starting at the path start at ``v_cruise``) is cropped to
    :data:`NUM_FRAMES` frames around the crossing.

    Returns:
        ``(ego, t_cross)``: the cropped ego and the crossing time within it [s].
    """
    s_long = speed_plan(caps, v_cruise, 0.0, v_cruise, n_long, a_up, a_down)
    long_ego = EgoTrack(path, s_long)
    hit = crossing_time(long_ego.centres[:, :2], gate)
    if hit is None:
        raise Retry
    t_long = hit[0]
    offset = int(round(t_long / DT)) - k_target
    if offset < 0 or offset + NUM_FRAMES > n_long:
        raise Retry
    return EgoTrack(path, s_long[offset : offset + NUM_FRAMES]), t_long - offset * DT


def finish_accident(
    ego: EgoTrack, risk: Actor, props: list[Actor], check: str = "brake"
) -> tuple[EgoTrack, Actor, int, list[EgoTrack]]:
    """Find the contact, apply the post-contact motion and verify avoidability.

    Checks (raising :class:`Retry` on failure): the first ego/risk overlap lies in :data:`COLLISION_WINDOW`; the
    ego never overlaps a prop; the avoidability counterfactual from :data:`CHECK_LEAD_FRAMES` before contact
    (``check="brake"``: constant :data:`CHECK_DECEL` braking along the ego path; ``"steer_back"``: lateral offset
    back to 0 over :data:`STEER_BACK_DURATION`) overlaps neither the risk agent nor a prop at any frame.

    Returns:
        ``(ego, risk, collision_frame, avoid)`` with post-contact braking applied, and the counterfactual ego tracks
        (2 s and 3 s before contact) that background traffic must keep clear of.
    """
    k = first_overlap(ego.corners(), risk.corners())
    if k is None or not COLLISION_WINDOW[0] <= k <= COLLISION_WINDOW[1]:
        raise Retry
    ego_corners = ego.corners()
    for prop in props:
        if first_overlap(ego_corners, prop.corners()) is not None:
            raise Retry
    final_ego = ego.braked_after(k, EGO_POST_CONTACT_DECEL)
    final_risk = risk.braked_after(k, POST_CONTACT_DECEL.get(risk.cls, 5.0))
    avoid = []
    for lead in (CHECK_LEAD_FRAMES, CHECK_LEAD_FRAMES + 10):
        if check == "brake":
            cf = ego.braked_after(k - lead, CHECK_DECEL)
        else:
            cf = ego.steered_back(k - lead, STEER_BACK_DURATION)
        avoid.append(cf)
    cf_corners = avoid[0].corners()
    for other in (final_risk, *props):
        if first_overlap(cf_corners, other.corners()) is not None:
            raise Retry
    return final_ego, final_risk, k, avoid
