"""Template grammar: a safety label's fields -> one explanation sentence, and back.

A sentence is four clauses, each drawn from several templates with synonyms:

    HAZARD   (agent class + sector + distance)      "A pedestrian on the left, 6.2 m away"
    CONFLICT (conflict type)                         "in a crossing conflict"
    RISK     (risk level + CV time to collision)     "with high collision risk (1.1 s to contact)"
    ACTION   (corrective action)                     "so the ego should brake"

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

from counterfactual.schema import ACTIONS, AGENT_CLASSES, CONFLICT_TYPES, NO_ACTION, RISK_LEVELS, SECTORS

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
"""Closed vocabulary: field -> value -> synonyms. Covers every allowed value of the schema."""

_HAZARD = (
    "{Det} {cls} {pos}, {dist} m away",
    "There is {det} {cls} {pos} at {dist} m",
    "{Det} {cls} is {pos}, about {dist} m from the ego",
)
_CONFLICT = ("in {a} {conflict}", "forming {a} {conflict}", "amid {a} {conflict}")
_RISK_TTC = ("with {risk} ({ttc} s to contact)", "with {risk}, time to collision {ttc} s", "posing {risk} in {ttc} s")
_RISK_INF = ("with {risk}", "posing {risk}")
_ACTION = (", so the ego should {act}", "; the safe response is to {act}", "; best action: {act}")
_ACTION_NONE = ("; {act}", ", and {act}")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def explain(label: Any, seed: int = 0) -> str:
    """Explanation sentence for a label (a :class:`~counterfactual.schema.SafetyLabel` or a mapping of its fields).

    Uses ``risk_agent_class``, ``sector``, ``distance_m``, ``conflict_type``, ``risk_level``, ``ttc_s`` and
    ``action``. Deterministic in (fields, ``seed``).
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
    hazard = pick(_HAZARD).format(
        Det=det.capitalize(), det=det, cls=cls, pos=pick(VOCABULARY["sector"][f["sector"]]), dist=_fmt(f["distance_m"])
    )
    conflict_phrase = pick(VOCABULARY["conflict_type"][f["conflict_type"]])
    conflict = pick(_CONFLICT).format(a=_article(conflict_phrase), conflict=conflict_phrase)
    risk_phrase = pick(VOCABULARY["risk_level"][f["risk_level"]])
    ttc = float(f["ttc_s"])
    if math.isfinite(ttc) and f["risk_level"] != "none":
        risk = pick(_RISK_TTC).format(risk=risk_phrase, ttc=f"{ttc:.1f}")
    else:
        risk = pick(_RISK_INF).format(risk=risk_phrase)
    act = pick(VOCABULARY["action"][f["action"]])
    action = pick(_ACTION_NONE if f["action"] == NO_ACTION else _ACTION).format(act=act)
    sentence = f"{hazard}, {conflict} {risk}{action}."
    return re.sub(r"\s+", " ", sentence)


def _pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])")


_PATTERNS = {
    name: {value: tuple(_pattern(p) for p in phrases) for value, phrases in values.items()}
    for name, values in VOCABULARY.items()
}


def parse_explanation(text: str) -> dict[str, str | None]:
    """Recover the categorical fields from a sentence using :data:`VOCABULARY` (case-insensitive, whole phrases).

    Returns ``{field: value or None}`` for every field of :data:`VOCABULARY`; None when no value's phrase occurs
    or when phrases of two different values occur (ambiguous).
    """
    low = text.lower()
    out: dict[str, str | None] = {}
    for name, values in _PATTERNS.items():
        found = {value for value, pats in values.items() if any(p.search(low) for p in pats)}
        out[name] = found.pop() if len(found) == 1 else None
    return out
