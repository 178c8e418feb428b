"""The safety-label schema: :class:`SafetyLabel`, its closed vocabularies and :data:`LABEL_SCHEMA_VERSION`.

Importable without the derivation rules (:mod:`counterfactual.labels`) or the explanation grammar
(:mod:`counterfactual.language`), both of which build on it; agents (tokenizers, evaluation) import the schema from
here. Documented field by field in ``docs/safety_labels.md``. Bump :data:`LABEL_SCHEMA_VERSION` on any change of a
field, an allowed value or a derivation rule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

LABEL_SCHEMA_VERSION = "2.1"
"""Version of the label schema (fields, allowed values, derivation rules). 2.1: compound actions (a lateral evasion
that also changes speed names both parts), swerve threshold 0.25 m, closed risk-level boundaries."""

AGENT_CLASSES = ("vehicle", "pedestrian", "cyclist", "static")
SECTORS = ("front", "left", "right", "rear")
RISK_LEVELS = ("none", "low", "medium", "high")
CONFLICT_TYPES = (
    "rear_end",
    "cut_in",
    "merge",
    "crossing",
    "left_turn",
    "head_on",
    "pedestrian",
    "cyclist",
    "static_obstacle",
)
KEEP_LANE = "keep_lane"
"""Action of a positive that neither changes speed nor leaves the negative's path (no longitudinal, no lateral part)."""
LONGITUDINAL_ACTIONS = ("brake", "yield", "accelerate")
"""Longitudinal parts of an action: slower (``brake``; ``yield`` in crossing-path conflicts) or faster; absent: the
positive keeps the negative's speed."""
LATERAL_ACTIONS = ("swerve_left", "swerve_right")
"""Lateral parts of an action: the positive leaves the negative's path to the left / right; absent: it keeps the
lane."""
COMPOUND_ACTIONS = tuple(f"{lon}_{lat}" for lon in LONGITUDINAL_ACTIONS for lat in LATERAL_ACTIONS)
"""``<longitudinal>_<lateral>``: a lateral evasion that also changes speed, e.g. ``brake_swerve_left``."""
ATOMIC_ACTIONS = ("brake", "yield", "swerve_left", "swerve_right", KEEP_LANE, "accelerate")
"""Actions with at most one part (schema 2.0's whole action vocabulary)."""
ACTIONS = ATOMIC_ACTIONS + COMPOUND_ACTIONS
"""Every action of a record with a positive: the atomic ones (one part or none) and the compound ones (both)."""
NO_ACTION = "none"
"""Action value of a record without a verified-safe positive (no action is claimed)."""
PASSIVE_ACTIONS = (KEEP_LANE, NO_ACTION)
"""Actions allowed with risk level ``none`` (nothing to evade: every other action is an evasive one)."""
TIME_KINDS = ("contact", "projected_ttc", "none")
"""Which time the explanation states: the hindsight contact time of a collision, the projected time to collision
of a near-miss, or none."""


def split_action(action: str) -> tuple[str | None, str | None]:
    """``(longitudinal, lateral)`` parts of an action of :data:`ACTIONS`: ``longitudinal`` one of
    :data:`LONGITUDINAL_ACTIONS` or None (keeps speed), ``lateral`` one of :data:`LATERAL_ACTIONS` or None (keeps
    the lane). ``keep_lane`` -> ``(None, None)``, ``brake`` -> ``("brake", None)``, ``swerve_left`` ->
    ``(None, "swerve_left")``, ``yield_swerve_right`` -> ``("yield", "swerve_right")``.

    Raises ``ValueError`` for :data:`NO_ACTION` (no positive, no action claimed) and unknown values.
    """
    if action == KEEP_LANE:
        return None, None
    if action in LONGITUDINAL_ACTIONS:
        return action, None
    if action in LATERAL_ACTIONS:
        return None, action
    if action in COMPOUND_ACTIONS:
        lon, lat = action.split("_", 1)
        return lon, lat
    raise ValueError(f"split_action: {action!r} is not one of {ACTIONS}")


def join_action(longitudinal: str | None, lateral: str | None) -> str:
    """The action of :data:`ACTIONS` with these parts (inverse of :func:`split_action`): both None -> ``keep_lane``,
    one part -> that part, both -> ``<longitudinal>_<lateral>``.

    Raises ``ValueError`` for a part outside :data:`LONGITUDINAL_ACTIONS` / :data:`LATERAL_ACTIONS`.
    """
    if longitudinal is not None and longitudinal not in LONGITUDINAL_ACTIONS:
        raise ValueError(f"join_action: longitudinal part {longitudinal!r} is not one of {LONGITUDINAL_ACTIONS}")
    if lateral is not None and lateral not in LATERAL_ACTIONS:
        raise ValueError(f"join_action: lateral part {lateral!r} is not one of {LATERAL_ACTIONS}")
    if longitudinal is None:
        return KEEP_LANE if lateral is None else lateral
    return longitudinal if lateral is None else f"{longitudinal}_{lateral}"


@dataclass(frozen=True)
class SafetyLabel:
    """One structured safety label (schema :data:`LABEL_SCHEMA_VERSION`; see ``docs/safety_labels.md``).

    Attributes:
        risk_agent_id: id of the agent the risk comes from.
        risk_agent_class: one of :data:`AGENT_CLASSES`.
        sector: one of :data:`SECTORS`, from ``bearing_deg``.
        distance_m: distance ego box centre -> agent box centre [m].
        bearing_deg: direction of the agent centre seen from the ego box centre, 0 = straight ahead, positive to
            the left, in ``(-180, 180]`` [deg].
        relative_heading_deg: agent heading minus ego heading, in ``[-180, 180)`` [deg].
        closing_speed_mps: rate at which the centre distance shrinks [m/s] (positive: approaching).
        ttc_s: projected time to collision [s] (ego along its own path, agents at constant velocity;
            :mod:`counterfactual.projection`), ``inf`` when none within ``LabelConfig.cv_horizon``.
        time_to_contact_s: collisions: time until the logged contact (hindsight, ``contact_frame - t``) [s];
            near-misses: ``inf`` (no contact happened).
        risk_level: one of :data:`RISK_LEVELS`: collisions from ``min(ttc_s, time_to_contact_s)``, near-misses from
            ``ttc_s`` and at least ``low``; never ``none`` with an evasive action.
        conflict_type: one of :data:`CONFLICT_TYPES`.
        conflict_source: ``"geometry"`` or ``"scenario_hint"`` (the scenario type broke a geometric tie).
        action: one of :data:`ACTIONS` (atomic, or compound ``<longitudinal>_<lateral>`` when the positive both
            changes speed and leaves the lane; :func:`split_action`), or :data:`NO_ACTION` when no verified-safe
            positive exists.
        lateral_offset_m: signed largest lateral offset of the positive from the negative's path [m] (left > 0);
            NaN without a positive.
        progress_change_m: positive's progress minus the negative's along the negative's path over the horizon
            [m]; NaN without a positive.
        time_kind: one of :data:`TIME_KINDS`: the time the explanation states (``contact``:
            ``time_to_contact_s``; ``projected_ttc``: ``ttc_s``).
        explanation: sentence generated from the fields by :func:`counterfactual.language.explain`.
        explanation_seed: seed of the template choice (same fields + seed -> same sentence).
        schema_version: :data:`LABEL_SCHEMA_VERSION`.
    """

    risk_agent_id: int
    risk_agent_class: str
    sector: str
    distance_m: float
    bearing_deg: float
    relative_heading_deg: float
    closing_speed_mps: float
    ttc_s: float
    time_to_contact_s: float
    risk_level: str
    conflict_type: str
    conflict_source: str
    action: str
    lateral_offset_m: float
    progress_change_m: float
    time_kind: str = "none"
    explanation: str = ""
    explanation_seed: int = 0
    schema_version: str = LABEL_SCHEMA_VERSION

    def __post_init__(self) -> None:
        for name, allowed in (
            ("risk_agent_class", AGENT_CLASSES),
            ("sector", SECTORS),
            ("risk_level", RISK_LEVELS),
            ("conflict_type", CONFLICT_TYPES),
            ("conflict_source", ("geometry", "scenario_hint")),
            ("action", ACTIONS + (NO_ACTION,)),
            ("time_kind", TIME_KINDS),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"SafetyLabel.{name}: {value!r} is not one of {allowed}")
        for name in ("distance_m", "bearing_deg", "relative_heading_deg", "closing_speed_mps"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"SafetyLabel.{name}: must be finite, got {getattr(self, name)!r}")
        for name in ("ttc_s", "time_to_contact_s"):
            if not (getattr(self, name) >= 0):
                raise ValueError(f"SafetyLabel.{name}: must be >= 0 or inf, got {getattr(self, name)!r}")
        if self.risk_level == "none" and self.action not in PASSIVE_ACTIONS:
            raise ValueError(f"SafetyLabel: risk_level 'none' with the evasive action {self.action!r} (allowed with no "
                             f"risk: {PASSIVE_ACTIONS})")
        stated = {"contact": "time_to_contact_s", "projected_ttc": "ttc_s"}.get(self.time_kind)
        if stated is not None and not math.isfinite(getattr(self, stated)):
            raise ValueError(f"SafetyLabel.time_kind: {self.time_kind!r} states {stated}, which is {getattr(self, stated)!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields."""
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all fields, in schema order."""
        return tuple(f.name for f in fields(cls))
