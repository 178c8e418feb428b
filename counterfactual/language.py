"""Template grammar: a safety label's fields -> one explanation sentence, and back.

A sentence is four clauses, each drawn from several templates with synonyms:

    HAZARD   (agent class + sector + distance)      "A pedestrian on the left, 6.2 m away"
    CONFLICT (conflict type)                         "in a crossing conflict"
    RISK     (risk level + the stated time)          "with high collision risk (contact in 1.1 s)"
    ACTION   (corrective action)                     "so the ego should brake"
                                                     "so the ego should slow down and steer left" (compound)

The RISK clause says which time it states (``SafetyLabel.time_kind``): a collision's hindsight contact time
("contact in 1.1 s", "contact 1.1 s ahead") or a near-miss's projected time to collision ("projected time to
collision 1.1 s", "projected to collide in 1.1 s"); :func:`parse_explanation` recovers the kind and the number.

Every sentence mentions the agent class, its sector, the risk level and the action, each with a phrase from a
closed vocabulary (:data:`VOCABULARY`) in which no phrase of one category contains a phrase of another; so
:func:`parse_explanation` recovers those fields from any generated sentence (and scores free text from a model
against the same vocabulary: "language accuracy", see ``docs/safety_labels.md``). The choice of templates and
synonyms depends only on the label fields and the seed: the same (label, seed) always gives the same sentence.
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import numpy as np

from counterfactual.schema import (
    ACTIONS,
    AGENT_CLASSES,
    COMPOUND_ACTIONS,
    CONFLICT_TYPES,
    KEEP_LANE,
    LATERAL_ACTIONS,
    LONGITUDINAL_ACTIONS,
    NO_ACTION,
    RISK_LEVELS,
    SECTORS,
    join_action,
    split_action,
)

VOCABULARY: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "risk_agent_class": {
        "vehicle": ("vehicle", "car"),
        "pedestrian": ("pedestrian", "person on foot"),
        "cyclist": ("cyclist", "bicycle rider"),
        "static": ("static obstacle", "stationary object"),
    },
    "sector": {
        "front": ("ahead", "in front"),
        "left": ("on the left", "on our left side"),
        "right": ("on the right", "on our right side"),
        "rear": ("behind", "at the rear"),
    },
    "risk_level": {
        "none": ("no immediate risk", "no projected conflict"),
        "low": ("low collision risk", "a low risk"),
        "medium": ("moderate collision risk", "a medium risk"),
        "high": ("high collision risk", "a high risk"),
    },
    "conflict_type": {
        "rear_end": ("rear-end conflict", "rear-end situation"),
        "cut_in": ("cut-in conflict", "cutting-in maneuver"),
        "merge": ("merge conflict", "merging conflict"),
        "crossing": ("crossing conflict", "crossing-path conflict"),
        "left_turn": ("left-turn conflict", "conflict during the left turn"),
        "head_on": ("head-on conflict", "oncoming-lane conflict"),
        "pedestrian": ("conflict with someone walking", "walking-path conflict"),
        "cyclist": ("conflict with a rider", "bike-path conflict"),
        "static_obstacle": ("obstacle conflict", "blocked-path conflict"),
    },
    "action": {
        "brake": ("brake", "slow down"),
        "yield": ("yield", "give way"),
        "swerve_left": ("swerve left", "steer left"),
        "swerve_right": ("swerve right", "steer right"),
        "keep_lane": ("keep the lane", "stay in lane"),
        "accelerate": ("accelerate", "speed up"),
        NO_ACTION: ("no verified-safe maneuver was found", "no safe alternative is known"),
    },
}
"""Closed vocabulary: field -> value -> synonyms. Covers every allowed value of the schema except the compound
actions, which are said with their parts' phrases (:data:`COMPOUND_PHRASES`)."""

ACTION_JOINER = " and "
"""Between the two parts of a compound action: "<longitudinal phrase> and <lateral phrase>"."""

COMPOUND_PHRASES: Mapping[str, tuple[str, ...]] = {
    action: tuple(lon + ACTION_JOINER + lat for lon in VOCABULARY["action"][split_action(action)[0]]
                  for lat in VOCABULARY["action"][split_action(action)[1]])
    for action in COMPOUND_ACTIONS
}
"""Compound action -> synonyms, "<longitudinal phrase> and <lateral phrase>" (e.g. ``brake_swerve_left``: "slow down
and steer left"). Composed of :data:`VOCABULARY` phrases, so the tokenizer's isolated phrases and the parser's
patterns stay the atomic ones."""


def action_phrases(action: str) -> tuple[str, ...]:
    """Synonyms of any action value (atomic: :data:`VOCABULARY`; compound: :data:`COMPOUND_PHRASES`)."""
    return COMPOUND_PHRASES[action] if action in COMPOUND_PHRASES else VOCABULARY["action"][action]

_HAZARD = (
    "{Det} {cls} {pos}, {dist} m away",
    "There is {det} {cls} {pos} at {dist} m",
    "{Det} {cls} is {pos}, about {dist} m from the ego",
)
_HAZARD_NO_DISTANCE = (
    "{Det} {cls} {pos}",
    "There is {det} {cls} {pos}",
    "{Det} {cls} is {pos}",
)
"""The HAZARD clause of a label without a distance (a classifier's label, :func:`label_sentence`)."""
_CONFLICT = ("in {a} {conflict}", "forming {a} {conflict}", "amid {a} {conflict}")
_RISK_TIME = {
    "contact": ("with {risk} (contact in {time} s)", "with {risk}, contact {time} s ahead", "posing {risk}, contact in {time} s"),
    "projected_ttc": ("with {risk} (projected time to collision {time} s)", "with {risk}, projected to collide in {time} s",
                      "posing {risk}, projected time to collision {time} s"),
}
_RISK_INF = ("with {risk}", "posing {risk}")
_TIME_PATTERNS = {
    "contact": re.compile(r"\bcontact (?:in )?(\d+(?:\.\d+)?) s\b"),
    "projected_ttc": re.compile(r"\bprojected (?:time to collision|to collide in) (\d+(?:\.\d+)?) s\b"),
}
"""Time phrases of the RISK clause, per ``time_kind`` (group 1: the number [s])."""
_ACTION = (", so the ego should {act}", "; the safe response is to {act}", "; best action: {act}")
_ACTION_NONE = ("; {act}", ", and {act}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def explain(label: Any, seed: int = 0) -> str:
    """Explanation sentence for a label (a :class:`~counterfactual.schema.SafetyLabel` or a mapping of its fields).

    Uses ``risk_agent_class``, ``sector``, ``distance_m``, ``conflict_type``, ``risk_level``, ``action`` and the
    time named by ``time_kind`` (``contact``: ``time_to_contact_s``, ``projected_ttc``: ``ttc_s``; a mapping
    without ``time_kind`` states a finite ``time_to_contact_s`` as contact, else a finite ``ttc_s`` as projected).
    No time is stated with risk ``none``; without a finite ``distance_m`` the HAZARD clause states none either
    (``"There is a vehicle ahead"``). Deterministic in (fields, ``seed``).
    """
    f = label if isinstance(label, Mapping) else label.to_dict()
    for name, allowed in (
        ("risk_agent_class", AGENT_CLASSES),
        ("sector", SECTORS),
        ("risk_level", RISK_LEVELS),
        ("conflict_type", CONFLICT_TYPES),
        ("action", ACTIONS + (NO_ACTION,)),
    ):
        if f.get(name) not in allowed:
            raise ValueError(f"explain: field {name}={f.get(name)!r} is not one of {allowed}")
    rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)

    def pick(options: tuple[str, ...]) -> str:
        return options[int(rng.integers(len(options)))]

    cls = pick(VOCABULARY["risk_agent_class"][f["risk_agent_class"]])
    det = _article(cls)
    distance = float(f.get("distance_m", math.nan))
    templates = _HAZARD if math.isfinite(distance) else _HAZARD_NO_DISTANCE
    hazard = pick(templates).format(
        Det=det.capitalize(), det=det, cls=cls, pos=pick(VOCABULARY["sector"][f["sector"]]),
        dist=_fmt(distance) if math.isfinite(distance) else "",
    )
    conflict_phrase = pick(VOCABULARY["conflict_type"][f["conflict_type"]])
    conflict = pick(_CONFLICT).format(a=_article(conflict_phrase), conflict=conflict_phrase)
    risk_phrase = pick(VOCABULARY["risk_level"][f["risk_level"]])
    kind = stated_time(f)
    if kind is not None and f["risk_level"] != "none":
        time = float(f["time_to_contact_s"] if kind == "contact" else f["ttc_s"])
        risk = pick(_RISK_TIME[kind]).format(risk=risk_phrase, time=f"{time:.1f}")
    else:
        risk = pick(_RISK_INF).format(risk=risk_phrase)
    act = pick(action_phrases(f["action"]))
    action = pick(_ACTION_NONE if f["action"] == NO_ACTION else _ACTION).format(act=act)
    sentence = f"{hazard}, {conflict} {risk}{action}."
    return re.sub(r"\s+", " ", sentence)


def stated_time(fields: Mapping[str, Any]) -> str | None:
    """Which time a label's explanation states: ``"contact"``, ``"projected_ttc"`` or None (see :func:`explain`)."""
    kind = fields.get("time_kind")
    if kind is None:
        if math.isfinite(float(fields.get("time_to_contact_s", math.inf))):
            return "contact"
        return "projected_ttc" if math.isfinite(float(fields.get("ttc_s", math.inf))) else None
    if kind == "contact" and math.isfinite(float(fields.get("time_to_contact_s", math.inf))):
        return "contact"
    if kind == "projected_ttc" and math.isfinite(float(fields.get("ttc_s", math.inf))):
        return "projected_ttc"
    return None


def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])")


_PATTERNS = {
    name: {value: tuple(_pattern(p) for p in phrases) for value, phrases in values.items()}
    for name, values in VOCABULARY.items()
}


def _parse_action(found: set[str]) -> str | None:
    """The action from the set of atomic action values whose phrases occur in a sentence (see
    :func:`parse_explanation`): the longitudinal and the lateral parts are read separately and joined."""
    if NO_ACTION in found:
        return NO_ACTION if found == {NO_ACTION} else None
    lon = found & set(LONGITUDINAL_ACTIONS)
    lat = found & set(LATERAL_ACTIONS)
    if len(lon) > 1 or len(lat) > 1 or (KEEP_LANE in found and lat):
        return None  # ambiguous within one part ("brake ... accelerate", "steer left ... keep the lane")
    if not found:
        return None
    return join_action(next(iter(lon), None), next(iter(lat), None))


def parse_explanation(text: str) -> dict[str, Any]:
    """Recover the categorical fields and the stated time from a sentence (case-insensitive, whole phrases).

    Returns ``{field: value or None}`` for every field of :data:`VOCABULARY` (None when no value's phrase occurs or
    when phrases of two different values occur: ambiguous), plus ``"time_kind"`` (``"contact"``,
    ``"projected_ttc"`` or ``"none"`` when no time is stated; None when both kinds are) and ``"time_s"`` (the stated
    number [s], NaN when none or ambiguous).

    The action is read in two parts: at most one longitudinal value (brake / yield / accelerate) and at most one
    lateral value (swerve left / right), joined (:func:`counterfactual.schema.join_action`: "slow down and steer
    left" -> ``brake_swerve_left``; a lone part -> that part). A keep-lane phrase is the absence of a lateral part
    (alone: ``keep_lane``; with a longitudinal phrase: that phrase's value). None when no action phrase occurs, when
    one part is ambiguous (two longitudinal or two lateral values, keep-lane with a lateral phrase) or when the
    no-action phrase occurs with any other.
    """
    low = text.lower()
    out: dict[str, Any] = {}
    for name, values in _PATTERNS.items():
        found = {value for value, pats in values.items() if any(p.search(low) for p in pats)}
        if name == "action":
            out[name] = _parse_action(found)
        else:
            out[name] = found.pop() if len(found) == 1 else None
    times = {kind: m for kind, pat in _TIME_PATTERNS.items() if (m := pat.search(low))}
    if len(times) == 1:
        (kind, match), = times.items()
        out["time_kind"], out["time_s"] = kind, float(match.group(1))
    else:
        out["time_kind"], out["time_s"] = ("none" if not times else None), math.nan
    return out


NO_HAZARD_EXPLANATION = "The road is clear with no immediate risk, so the ego should keep the lane."
"""The sentence of a state without risk (normal driving, safe stretches of expert logs: the VLA's target there),
built from the closed vocabulary: it parses as risk ``none`` and action ``keep_lane`` and names no agent class,
sector or conflict type (:data:`NO_HAZARD_FIELDS`)."""
NO_HAZARD_FIELDS: Mapping[str, str | None] = {
    "risk_agent_class": None, "sector": None, "risk_level": "none", "conflict_type": None, "action": "keep_lane",
}
"""What :func:`parse_explanation` reads from :data:`NO_HAZARD_EXPLANATION`."""


def label_sentence(fields: Mapping[str, Any], seed: int = 0) -> str:
    """The sentence stating a label given by its categorical fields only (``risk_agent_class``, ``sector``,
    ``risk_level``, ``conflict_type``, ``action``; e.g. a classifier's, :func:`agents.vla.label_head.decide`):
    risk level ``none`` gives :data:`NO_HAZARD_EXPLANATION` whatever the other fields are (the consistency rule: no
    hazard, no hazard clause); any other level the :func:`explain` sentence without distance and time. So
    :func:`parse_explanation` of the result gives back the fields (the no-hazard sentence: :data:`NO_HAZARD_FIELDS`).
    ``ValueError`` naming the field when a hazard label has a value outside the schema (e.g. None)."""
    if fields.get("risk_level") == "none":
        return NO_HAZARD_EXPLANATION
    return explain({name: fields.get(name) for name in VOCABULARY}, seed=seed)
