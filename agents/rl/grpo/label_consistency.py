"""GRPO's label-consistency term: is the safety label a member states consistent with what the scorer measured for
that member's own trajectory? (``GRPOConfig.label_term``, issue 30.)

The VLA writes a label sentence before its action tokens (:mod:`agents.vla.format`); the group reward scores only
the trajectory. With ``label_term = w > 0`` each member's reward becomes ``reward + w * c`` before the
group-relative advantage, ``c in [0, 1]`` the consistency of its sentence with its own scored outcome, computed by
:func:`label_consistency` (vectorised over the ``K`` members of a group; the sentences are parsed one by one with
:func:`counterfactual.language.parse_explanation`, the project's one parser of the label grammar).

**The rule** (``c = (risk + action) / 2``, both parts in ``[0, 1]``; the label semantics of
``docs/safety_labels.md``: the risk level is the risk of the situation if the ego keeps going, the action is how the
trajectory departs from keeping its speed and lane):

* **measured risk level** ``L`` of the member: the time of its first conflict ``T`` (the first contact,
  ``collision_time``, for a member that touches any object; else the first TTC failure of the PDM scorer,
  ``ttc_time``; else none) through :func:`counterfactual.labels.risk_level_of` (``T <= 1.5 s`` high, ``<= 3 s``
  medium, else low; no conflict: none). The scorer measures no closing speed per member, so the fast-closing
  escalation of the label rule is not applied (closing speed 0).
* **risk part**, stated level ``s`` (ordinal none 0, low 1, medium 2, high 3; unparseable: 0 points):

  - a *passive* statement (action ``keep_lane`` or ``none``: the member claims to keep going; also an unparseable
    action) is exact: ``1 - |s - L| / 3``: its own outcome is the outcome of keeping going;
  - an *evasive* statement (brake, yield, swerve, accelerate, compounds) is scored for understatement only:
    ``1 - max(0, L - s) / 3``, and 0 with ``s = none`` (the schema never pairs an evasive action with no risk). An
    evasion that avoids the conflict it names (a safe braking member saying "high risk, brake", the true label of
    a pre-crash state) is fully consistent; saying less than the member itself runs into is not.
* **action part**, the stated action split into its longitudinal and lateral parts
  (:func:`counterfactual.schema.split_action`; ``none`` reads as keeping both), each worth 1/2 when it matches the
  member's own motion (:func:`candidate_motion`, the thresholds of :class:`counterfactual.labels.LabelConfig`):

  - longitudinal, against keeping the current speed ``v0`` [m/s] (the decision context's ``speed``): *slower*
    (``brake`` or ``yield``: which one is the conflict type's choice, not the motion's) when some pose-to-pose speed
    falls ``brake_speed_drop`` (2 m/s) below ``v0`` or the path is shorter than ``4 v0`` by more than
    ``max(progress_abs, progress_rel * 4 v0)``; *faster* (``accelerate``) when longer by that margin; else none;
  - lateral: the largest signed offset of the poses from the constant-curvature arc with the member's own length and
    final heading (a bend followed is no swerve; a lane change or a swerve and return is); ``|offset| >=
    swerve_threshold`` (0.25 m) -> ``swerve_left`` (> 0) / ``swerve_right``, else none.
  An unparseable or ambiguous action scores 0.

Example (:func:`label_consistency` on hand-built members, tested): a member that keeps its speed and collides at
1.0 s (measured ``high``) scores 0.5 when it says "no immediate risk ... keep the lane" (risk 0, action 1) and 1.0
when it says "high collision risk ... keep the lane".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from counterfactual.labels import LabelConfig, risk_level_of
from counterfactual.language import parse_explanation
from counterfactual.schema import NO_ACTION, RISK_LEVELS, split_action

POSE_INTERVAL_S = 0.5
"""Time between the poses of a trajectory [s] (NAVSIM: 8 poses over 4 s)."""
RISK_ORDINAL = {level: i for i, level in enumerate(RISK_LEVELS)}
"""none 0, low 1, medium 2, high 3."""
_LONGITUDINAL = {None: 0, "brake": -1, "yield": -1, "accelerate": 1}
_LATERAL = {None: 0, "swerve_right": -1, "swerve_left": 1}


@dataclass(frozen=True)
class StatedLabels:
    """The parsed labels of ``K`` sentences (``(K,)`` arrays).

    Attributes:
        risk: ordinal of the stated risk level (:data:`RISK_ORDINAL`), -1 when unparseable.
        longitudinal: -1 slower (brake / yield), 0 keeps speed, +1 faster; meaningless where ``action_ok`` is False.
        lateral: -1 right, 0 keeps the lane, +1 left; likewise.
        action_ok: the action was parsed (one unambiguous value).
        passive: the action claims no manoeuvre (``keep_lane`` or ``none``).
    """

    risk: np.ndarray
    longitudinal: np.ndarray
    lateral: np.ndarray
    action_ok: np.ndarray
    passive: np.ndarray


def parse_stated(texts: Sequence[str]) -> StatedLabels:
    """:class:`StatedLabels` of ``K`` label sentences (:func:`counterfactual.language.parse_explanation`)."""
    k = len(texts)
    risk = np.full(k, -1, dtype=np.int64)
    lon = np.zeros(k, dtype=np.int64)
    lat = np.zeros(k, dtype=np.int64)
    ok = np.zeros(k, dtype=bool)
    passive = np.zeros(k, dtype=bool)
    for i, text in enumerate(texts):
        fields = parse_explanation(str(text))
        if fields["risk_level"] is not None:
            risk[i] = RISK_ORDINAL[fields["risk_level"]]
        action = fields["action"]
        if action is None:
            continue
        ok[i] = True
        parts = (None, None) if action == NO_ACTION else split_action(action)
        lon[i], lat[i] = _LONGITUDINAL[parts[0]], _LATERAL[parts[1]]
        passive[i] = parts == (None, None)
    return StatedLabels(risk, lon, lat, ok, passive)


def measured_risk(terms: Mapping[str, np.ndarray], config: LabelConfig = LabelConfig()) -> np.ndarray:
    """``(K,)`` ordinal risk level of each member's own scored outcome (module docstring): the first contact
    (``is_collision``, ``collision_time`` [s]), else the first TTC failure (``ttc_time`` [s]), through
    :func:`counterfactual.labels.risk_level_of` with closing speed 0; no conflict: none (0).

    Args:
        terms: the scorer's ``(K,)`` arrays (:meth:`envs.replay_env.ReplayEnv.score_group`); ``ttc_time`` may be
            missing (then only contacts count).
    """
    collided = np.asarray(terms["is_collision"], dtype=bool)
    k = len(collided)
    contact = np.asarray(terms.get("collision_time", np.full(k, np.nan)), dtype=np.float64)
    ttc_fail = np.asarray(terms.get("ttc_time", np.full(k, np.nan)), dtype=np.float64)
    when = np.where(collided & np.isfinite(contact), contact, ttc_fail)
    when = np.where(collided & ~np.isfinite(when), 0.0, when)  # a contact without a time: now
    return np.array([RISK_ORDINAL[risk_level_of(float(t) if math.isfinite(t) else math.inf, 0.0, config)]
                     for t in when], dtype=np.int64)


def candidate_motion(trajectories: np.ndarray, speed: float, config: LabelConfig = LabelConfig(),
                     pose_interval: float = POSE_INTERVAL_S) -> tuple[np.ndarray, np.ndarray]:
    """Each member's own motion in the action vocabulary's terms (module docstring), vectorised.

    Args:
        trajectories: ``(K, P, 3)`` ego-frame poses [m, m, rad], ``pose_interval`` [s] apart, the origin excluded.
        speed: the ego's current speed ``v0`` [m/s].

    Returns:
        ``(longitudinal (K,), lateral (K,))`` int64: -1 slower / right, 0 keeps, +1 faster / left.
    """
    traj = np.asarray(trajectories, dtype=np.float64)
    if traj.ndim != 3 or traj.shape[-1] != 3:
        raise ValueError(f"candidate_motion: trajectories must be (K, P, 3), got {traj.shape}")
    v0 = max(float(speed), 0.0)
    pts = np.concatenate([np.zeros((len(traj), 1, 2)), traj[..., :2]], axis=1)  # (K, P + 1, 2)
    seg = np.linalg.norm(np.diff(pts, axis=1), axis=-1)  # (K, P)
    keep = v0 * pose_interval * traj.shape[1]
    margin = max(config.progress_abs, config.progress_rel * keep)
    length = seg.sum(axis=1)
    slower = ((v0 - seg / pose_interval).max(axis=1) >= config.brake_speed_drop) | (length < keep - margin)
    faster = ~slower & (length > keep + margin)
    lon = np.where(slower, -1, np.where(faster, 1, 0)).astype(np.int64)
    # the constant-curvature arc with the member's length and final heading, evaluated at each pose's arc length
    s = np.cumsum(seg, axis=1)  # (K, P)
    kappa = np.where(length > 1e-6, traj[:, -1, 2] / np.maximum(length, 1e-6), 0.0)[:, None]  # (K, 1) [1/m]
    phi = kappa * s
    small = np.abs(phi) < 1e-6
    arc_x = np.where(small, s, np.sin(phi) / np.where(small, 1.0, kappa))
    arc_y = np.where(small, 0.5 * kappa * s ** 2, (1.0 - np.cos(phi)) / np.where(small, 1.0, kappa))
    dx, dy = traj[..., 0] - arc_x, traj[..., 1] - arc_y
    offset = -np.sin(phi) * dx + np.cos(phi) * dy  # signed, left > 0, along the arc's normal [m]
    worst = offset[np.arange(len(traj)), np.argmax(np.abs(offset), axis=1)]
    lat = np.where(np.abs(worst) >= config.swerve_threshold, np.sign(worst), 0).astype(np.int64)
    return lon, lat


def label_consistency(texts: Sequence[str], trajectories: np.ndarray, speed: float,
                      terms: Mapping[str, np.ndarray], config: LabelConfig = LabelConfig()) -> np.ndarray:
    """``(K,)`` consistency in ``[0, 1]`` of ``K`` members' stated labels with their own scored outcome and motion
    (the rule of the module docstring).

    Args:
        texts: ``K`` label sentences (the text before ``<action>``).
        trajectories: ``(K, 8, 3)`` the members' ego-frame trajectories [m, m, rad] (what was scored).
        speed: the ego's current speed [m/s].
        terms: the scorer's ``(K,)`` arrays for these members (``is_collision``, ``collision_time``, ``ttc_time``).
    """
    traj = np.asarray(trajectories, dtype=np.float64)
    if len(texts) != len(traj):
        raise ValueError(f"label_consistency: {len(texts)} texts for {len(traj)} trajectories")
    stated = parse_stated(texts)
    level = measured_risk(terms, config)
    if len(level) != len(traj):
        raise ValueError(f"label_consistency: terms of {len(level)} members for {len(traj)} trajectories")
    known = stated.risk >= 0
    exact = 1.0 - np.abs(stated.risk - level) / 3.0
    under = 1.0 - np.maximum(0, level - stated.risk) / 3.0
    evasive_ok = stated.risk > 0
    risk = np.where(~known, 0.0, np.where(stated.passive | ~stated.action_ok, exact,
                                          np.where(evasive_ok, under, 0.0)))
    lon, lat = candidate_motion(traj, speed, config)
    action = np.where(stated.action_ok, 0.5 * (stated.longitudinal == lon) + 0.5 * (stated.lateral == lat), 0.0)
    return 0.5 * risk + 0.5 * action
