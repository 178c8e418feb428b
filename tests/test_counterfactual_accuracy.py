"""Language and risk accuracy beside the two trivial baselines (majority class, scenario-type + lead-time lookup)."""

from __future__ import annotations

import math

import pytest

from counterfactual.accuracy import (
    BASELINES,
    LabelBaseline,
    accuracy_report,
    baseline_accuracies,
    format_accuracy_table,
    language_accuracy,
    risk_accuracy,
    split_by_scene,
)
from counterfactual.language import explain


def record(scene: str, scenario_type: str, lead: float, risk: str, action: str = "brake",
           cls: str = "vehicle", conflict: str = "rear_end") -> dict:
    """A pair-like mapping: keys of the lookup plus a ``label`` mapping."""
    label = dict(risk_agent_class=cls, sector="front", risk_level=risk, conflict_type=conflict, action=action,
                 distance_m=10.0, ttc_s=math.inf, time_to_contact_s=lead, time_kind="contact")
    return {"scene_id": scene, "scenario_type": scenario_type, "lead_time_s": lead, "label": label}


def synthetic_records() -> list[dict]:
    """Risk is a function of the lead time, the class of the scenario type: the lookup is perfect on both."""
    out = []
    for k in range(40):
        typ = ("rear_end", "pedestrian_occluded")[k % 2]
        for lead, risk in ((1.0, "high"), (2.0, "medium"), (3.0, "low")):
            out.append(record(f"s{k}", typ, lead, risk, cls="vehicle" if typ == "rear_end" else "pedestrian",
                              conflict="rear_end" if typ == "rear_end" else "pedestrian",
                              action="brake" if typ == "rear_end" else "yield"))
    return out


def test_split_keeps_scenes_together_and_is_deterministic():
    recs = synthetic_records()
    train, test = split_by_scene(recs, 0.5, seed=1)
    assert train and test and len(train) + len(test) == len(recs)
    assert {r["scene_id"] for r in train}.isdisjoint({r["scene_id"] for r in test})
    assert split_by_scene(recs, 0.5, seed=1) == (train, test)
    with pytest.raises(ValueError, match="eval_fraction"):
        split_by_scene(recs, 1.0)


def test_baselines_and_the_table():
    train, test = split_by_scene(synthetic_records(), 0.5, seed=0)
    acc = baseline_accuracies(train, test)
    assert set(acc) == set(BASELINES)
    assert acc["type_lead_lookup"]["risk_level"] == 1.0 and acc["type_lead_lookup"]["conflict_type"] == 1.0
    assert acc["majority"]["risk_level"] == pytest.approx(1 / 3, abs=0.1)
    lookup = LabelBaseline("type_lead_lookup").fit(train)
    assert lookup.predict([record("new", "rear_end", 2.0, "low")])[0]["risk_level"] == "medium"
    unseen = lookup.predict([record("new", "cut_in", 9.0, "low")])[0]  # unseen key: the majority answers
    assert unseen == LabelBaseline("majority").fit(train).predict([record("x", "y", 0.0, "low")])[0]
    with pytest.raises(ValueError, match="unknown baseline"):
        LabelBaseline("oracle")
    with pytest.raises(ValueError, match="empty training split"):
        LabelBaseline("majority").fit([])

    # a model that says every sentence right, and one that says nothing parseable
    texts = [explain(r["label"], seed=i) for i, r in enumerate(test)]
    perfect = language_accuracy(texts, test)
    assert perfect["language"] == 1.0 and perfect["all_fields"] == 1.0 and perfect["time_kind"] == 1.0
    assert risk_accuracy([r["label"]["risk_level"] for r in test], test)["risk_level"] == 1.0
    report = accuracy_report({"oracle_text": texts, "mute": ["..."] * len(test)}, test, train, title="demo")
    lines = report.splitlines()
    assert lines[0] == "demo"
    rows = {line.split()[0]: line.split() for line in lines[3:]}
    assert list(rows) == ["oracle_text", "mute", "majority", "type_lead_lookup"]  # the baselines always follow
    assert rows["oracle_text"][2] == "100.0" and rows["mute"][2] == "0.0"
    with pytest.raises(ValueError, match="predictions"):
        accuracy_report({"short": texts[:1]}, test, train)


def test_format_marks_missing_values():
    text = format_accuracy_table({"m": {"count": 3.0, "language": float("nan"), "risk_level": 0.5}})
    assert "n/a" in text and "50.0" in text and text.splitlines()[2].split()[1] == "3"
