"""Label honesty: how much of the safety label a lookup on the scenario type predicts, against the geometry.

A label that the scenario type predicts teaches the VLA to name the type, not to read the scene. On the records the
VLA is scored on (the anchor pairs **and** the sampled decisions of every scene, benign ones included: see
:func:`decision_records`), :func:`label_honesty` measures

* ``lookup_language`` / ``lookup_risk``: the (scenario type, lead time) lookup (``type_lead_lookup`` of
  :class:`counterfactual.accuracy.LabelBaseline`; sampled decisions key as ``(type, "expert")``), fitted on the
  training records: the mean exact-match accuracy of the five language fields and the risk-level accuracy, on
  **every** evaluation record (a no-hazard record's unnamed agent class, sector and conflict type are right when
  predicted unnamed);
* ``type_majority_risk``: the most frequent training risk level per scenario type alone;
* ``kind_majority_risk`` (reference, no target): the most frequent training risk level per record kind alone (pair or
  sampled decision), the part of the lookup's score its key gives without the scenario type;
* ``risk_entropy_share`` / ``action_entropy_share``: the share of the label's entropy the scenario type explains,
  ``I(type; Y) / H(Y)`` with plug-in (frequency) estimates on the evaluation records (0: the type says nothing
  about ``Y``, 1: the type decides it; records without a verified action (``none``) are left out of the action's);
* ``oracle_risk``: a **geometry oracle**, the risk level :func:`counterfactual.frame_labels.frame_label` reads from the
  true agent states at the record's frame (privileged: it sees the states, not an image; no hindsight, no scenario
  type), against the record's label. Pair labels use the logged contact time (hindsight) and sampled decisions the
  projection, so the oracle is not the label's own rule on pairs (with ``pair_risk="projection"``,
  :data:`PAIR_RISKS`, it is, for comparison; measured in ``docs/safety_labels.md#frame-sampling-the-hazard-window``).

The targets of issue #28 (:data:`TARGETS`) are printed beside the numbers by :func:`format_honesty`.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from counterfactual.accuracy import LANGUAGE_FIELDS, LabelBaseline, label_accuracy
from counterfactual.schema import NO_ACTION

TARGETS: Mapping[str, tuple[str, float]] = {
    "lookup_language": ("<=", 0.70),
    "lookup_risk": ("<=", 0.70),
    "type_majority_risk": ("<=", 0.60),
    "risk_entropy_share": ("<=", 0.50),
    "action_entropy_share": ("<=", 0.50),
    "oracle_risk": (">=", 0.90),
}
"""Issue #28's done-when: metric -> (comparison, bound)."""


# ---------------------------------------------------------------------------------------------------- records
def record_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The five label fields of a record (None where the label names none)."""
    return {name: (record.get(name) or None) for name in LANGUAGE_FIELDS}


DECISION_LABELS = ("geometry", "no_hazard")
"""How :func:`decision_records` labels sampled decisions: from the geometry at the frame (the SFT data's rule since
sample format 2) or always the no-hazard label (format 1's rule; for comparison)."""


PAIR_RISKS = ("contact", "projection")
"""The risk level of a pair record in :func:`decision_records`: the mined label's (from the logged contact time,
hindsight; the published labels) or, for comparison, the projection's at the decision frame (:func:`frame_label`'s
rule with the pair's negative as the plan: what is visible there; the other fields stay the mined label's)."""


def decision_records(scene: Any, frames: Sequence[int], pairs: Iterable[Any] = (), seed: int = 0,
                     oracle: bool = True, decision_labels: str = "geometry",
                     pair_risk: str = "contact") -> list[dict[str, Any]]:
    """The label records of one scene the VLA is scored on: one per sampled decision frame (``kind="expert"``,
    labelled by :func:`counterfactual.frame_labels.frame_label`, or the no-hazard label with
    ``decision_labels="no_hazard"``) and one per anchor pair of the scene (``kind="pair"``, its mined label).

    Each record: ``scene_id``, ``scenario_type``, ``outcome`` (``meta.extra["outcome"]`` or ``""``), ``kind``,
    ``frame``, ``lead_time_s`` (NaN for sampled decisions), the five label fields (None where not named) and, with
    ``oracle``, ``oracle_risk`` (:func:`frame_label`'s risk level at the record's frame). ``pair_risk``
    (:data:`PAIR_RISKS`) sets the pair records' risk level.
    """
    from counterfactual.frame_labels import frame_label
    from counterfactual.language import NO_HAZARD_FIELDS

    if decision_labels not in DECISION_LABELS:
        raise ValueError(f"decision_labels: expected one of {DECISION_LABELS}, got {decision_labels!r}")
    if pair_risk not in PAIR_RISKS:
        raise ValueError(f"pair_risk: expected one of {PAIR_RISKS}, got {pair_risk!r}")
    outcome = str(scene.meta.extra.get("outcome", "")) if scene.meta.extra else ""
    base = {"scene_id": scene.scene_id, "scenario_type": scene.meta.scenario_type, "outcome": outcome}
    out = []
    for t in frames:
        label = frame_label(scene, int(t), seed=seed)
        fields = label.fields() if decision_labels == "geometry" else {k: NO_HAZARD_FIELDS.get(k) for k in LANGUAGE_FIELDS}
        rec = {**base, "kind": "expert", "frame": int(t), "lead_time_s": math.nan, **fields}
        if oracle:
            rec["oracle_risk"] = label.risk_level
        out.append(rec)
    for pair in pairs:
        t = int(pair.decision_frame)
        d = pair.label.to_dict()
        rec = {**base, "kind": "pair", "frame": t, "lead_time_s": float(pair.lead_time_s),
               **{name: d[name] for name in LANGUAGE_FIELDS}}
        if oracle or pair_risk == "projection":
            projected = frame_label(scene, t, trajectory=pair.negative, seed=seed).risk_level
            if oracle:
                rec["oracle_risk"] = projected
            if pair_risk == "projection":
                rec["risk_level"] = projected
        out.append(rec)
    return out


# ---------------------------------------------------------------------------------------------------- metrics
def entropy(values: Sequence[Any]) -> float:
    """Plug-in Shannon entropy of the values' frequencies [bit]."""
    counts = np.array(list(Counter(values).values()), dtype=np.float64)
    if not len(counts):
        return 0.0
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def explained_share(keys: Sequence[Any], values: Sequence[Any]) -> float:
    """``I(key; value) / H(value)`` with plug-in estimates (``H(value) - H(value | key)``); NaN when ``H(value) = 0``
    (nothing to explain). In [0, 1]."""
    if len(keys) != len(values):
        raise ValueError(f"explained_share: {len(keys)} keys for {len(values)} values")
    h = entropy(values)
    if h <= 0:
        return math.nan
    n = len(values)
    groups: dict[Any, list] = {}
    for k, v in zip(keys, values):
        groups.setdefault(k, []).append(v)
    conditional = sum(len(g) / n * entropy(g) for g in groups.values())
    return float(min(max((h - conditional) / h, 0.0), 1.0))


def label_honesty(train: Sequence[Mapping[str, Any]], evaluation: Sequence[Mapping[str, Any]],
                  oracle: Callable[[Mapping[str, Any]], str] | None = None) -> dict[str, float]:
    """The honesty metrics of the module docstring (fractions; counts as floats).

    Args:
        train: records the lookups are fitted on (:func:`decision_records`; scenes disjoint from ``evaluation``).
        evaluation: records they are scored on.
        oracle: risk level per evaluation record; default: the record's ``oracle_risk`` (NaN metric when absent).
    """
    if not train or not evaluation:
        raise ValueError(f"label_honesty: need training and evaluation records, got {len(train)} and "
                         f"{len(evaluation)}")
    truth = [record_fields(r) for r in evaluation]
    lookup = label_accuracy(LabelBaseline("type_lead_lookup").fit(train).predict(evaluation), truth)
    by_type = label_accuracy(LabelBaseline("type_majority").fit(train).predict(evaluation), truth)
    by_kind = label_accuracy(LabelBaseline("kind_majority").fit(train).predict(evaluation), truth)
    types = [str(r["scenario_type"]) for r in evaluation]
    acted = [i for i, f in enumerate(truth) if f["action"] != NO_ACTION]
    out = {
        "records": float(len(evaluation)),
        "pairs": float(sum(r["kind"] == "pair" for r in evaluation)),
        "decisions": float(sum(r["kind"] == "expert" for r in evaluation)),
        "no_hazard": float(sum(f["risk_level"] == "none" for f in truth)),
        "lookup_language": lookup["language"],
        "lookup_risk": lookup["risk_level"],
        "type_majority_risk": by_type["risk_level"],
        "kind_majority_risk": by_kind["risk_level"],
        "risk_entropy_share": explained_share(types, [f["risk_level"] for f in truth]),
        "action_entropy_share": explained_share([types[i] for i in acted], [truth[i]["action"] for i in acted]),
    }
    if oracle is None and not all("oracle_risk" in r for r in evaluation):
        out["oracle_risk"] = math.nan
    else:
        guess = [oracle(r) if oracle is not None else r["oracle_risk"] for r in evaluation]
        out["oracle_risk"] = float(np.mean([g == f["risk_level"] for g, f in zip(guess, truth)]))
    return out


def format_honesty(metrics: Mapping[str, float], title: str = "") -> str:
    """One line per metric of :data:`TARGETS`: value, target and whether it is met."""
    lines = [title] if title else []
    lines.append(f"records: {int(metrics['records'])} ({int(metrics['pairs'])} pairs + {int(metrics['decisions'])} "
                 f"sampled decisions; {int(metrics['no_hazard'])} with no hazard)")
    for name, (op, bound) in TARGETS.items():
        value = metrics[name]
        share = name.endswith("_share")
        shown = "n/a" if math.isnan(value) else (f"{value:.2f}" if share else f"{100 * value:.1f}%")
        target = f"{op} {bound:.2f}" if share else f"{op} {100 * bound:.0f}%"
        met = "n/a" if math.isnan(value) else ("met" if (value <= bound if op == "<=" else value >= bound) else "NOT met")
        lines.append(f"  {name:<22} {shown:>7}   target {target:<8} {met}")
        if name == "type_majority_risk" and "kind_majority_risk" in metrics:
            lines.append(f"  {'kind_majority_risk':<22} {100 * metrics['kind_majority_risk']:>6.1f}%   (reference: "
                         "per record kind alone, no type)")
    return "\n".join(lines)
