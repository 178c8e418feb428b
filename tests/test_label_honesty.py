"""The label-honesty audit (:mod:`counterfactual.honesty`): its numbers are computed from the records (a lookup
handed the answer, or a type that decides the label, would read differently), and the records of real scenes
(SYNTHETIC outcome-varied bank) carry the frame labels and the pairs' mined labels."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from counterfactual.accuracy import label_accuracy, split_by_scene
from counterfactual.frame_labels import frame_label, sample_frames
from counterfactual.honesty import (
    decision_records,
    entropy,
    explained_share,
    format_honesty,
    label_honesty,
)
from counterfactual.miner import mine_scene
from envs.scenes.bank import ScenarioBank

NO_HAZARD = dict(risk_agent_class=None, sector=None, risk_level="none", conflict_type=None, action="keep_lane")


def _rec(scene, typ, risk, kind="expert", lead=math.nan, oracle=None):
    fields = NO_HAZARD if risk == "none" else dict(risk_agent_class="vehicle", sector="front", risk_level=risk,
                                                   conflict_type="rear_end", action="brake")
    return {"scene_id": scene, "scenario_type": typ, "kind": kind, "lead_time_s": lead, **fields,
            "oracle_risk": risk if oracle is None else oracle}


def geometry_decides(n=40):
    """Risk alternates with the scene (the geometry), not with the type: the type explains nothing."""
    return [_rec(f"s{k}", ("rear_end", "cut_in")[k % 2], ("none", "high")[(k // 2) % 2]) for k in range(n)]


def type_decides(n=40):
    return [_rec(f"s{k}", ("rear_end", "cut_in")[k % 2], ("none", "high")[k % 2]) for k in range(n)]


def test_entropy_shares():
    assert entropy(["a", "b"]) == pytest.approx(1.0) and entropy(["a", "a"]) == 0.0
    assert explained_share(["x", "y", "x", "y"], ["a", "b", "a", "b"]) == pytest.approx(1.0)
    assert explained_share(["x", "x", "y", "y"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    assert math.isnan(explained_share(["x", "y"], ["a", "a"]))
    with pytest.raises(ValueError, match="keys"):
        explained_share(["x"], ["a", "b"])


def test_metrics_follow_the_records():
    train, test = split_by_scene(geometry_decides(), 0.5, seed=0)
    honest = label_honesty(train, test)
    assert honest["risk_entropy_share"] == pytest.approx(0.0, abs=0.05)
    assert honest["lookup_risk"] < 0.75 and honest["oracle_risk"] == 1.0
    train, test = split_by_scene(type_decides(), 0.5, seed=0)
    lookup = label_honesty(train, test)
    assert lookup["risk_entropy_share"] == pytest.approx(1.0) and lookup["lookup_risk"] == 1.0
    assert lookup["lookup_language"] == 1.0  # unnamed fields of no-hazard records are right when predicted unnamed
    assert lookup["type_majority_risk"] == 1.0
    assert lookup["kind_majority_risk"] == pytest.approx(0.5, abs=0.15)  # all sampled decisions: the type decides
    text = format_honesty(honest, "demo")
    assert text.splitlines()[0] == "demo" and "oracle_risk" in text and "NOT met" not in text.split("oracle")[1]
    with pytest.raises(ValueError, match="training and evaluation"):
        label_honesty([], test)


def test_unnamed_fields_match_only_unnamed_truth():
    truth = [dict(NO_HAZARD), dict(NO_HAZARD, risk_agent_class="vehicle")]
    acc = label_accuracy([dict(NO_HAZARD), dict(NO_HAZARD)], truth)
    assert acc["risk_agent_class"] == 0.5 and acc["risk_level"] == 1.0


@pytest.fixture(scope="module")
def records():
    bank = ScenarioBank(12, seed=5, outcomes="varied")
    out = []
    for i in range(len(bank)):
        scene = bank[i]
        out += decision_records(scene, sample_frames(scene, per_scene=3), mine_scene(scene).pairs)
    return bank, out


def test_records_of_real_scenes(records):
    bank, recs = records
    kinds = Counter(r["kind"] for r in recs)
    assert kinds["pair"] > 0 and kinds["expert"] > 0
    scenes = {bank[i].scene_id: bank[i] for i in range(len(bank))}
    for r in recs:
        if r["kind"] == "expert":
            label = frame_label(scenes[r["scene_id"]], r["frame"])
            assert {k: r[k] for k in label.fields()} == label.fields() and r["oracle_risk"] == r["risk_level"]
    assert any(r["kind"] == "expert" and r["risk_level"] == "none" for r in recs)
    assert all(r["risk_level"] != "none" for r in recs if r["kind"] == "pair")  # mined moments are risky


def test_lookup_is_fitted_on_the_training_records_only(records):
    _, recs = records
    train, test = split_by_scene(recs, 0.5, seed=0)
    metrics = label_honesty(train, test)

    def key(r):
        return (r["scenario_type"], r["lead_time_s"] if math.isfinite(r["lead_time_s"]) else "expert")

    table: dict = {}
    for r in train:
        table.setdefault(key(r), Counter())[r["risk_level"]] += 1
    overall = Counter(r["risk_level"] for r in train)

    def top(c):
        return min(c, key=lambda v: (-c[v], v))

    manual = sum(top(table.get(key(r), overall)) == r["risk_level"] for r in test) / len(test)
    assert metrics["lookup_risk"] == pytest.approx(manual)
    handed = label_honesty(test, test)  # a lookup handed the answer reads better: the audit is not it
    assert handed["lookup_risk"] >= metrics["lookup_risk"] and handed["lookup_language"] > metrics["lookup_language"]
    assert 0.0 <= metrics["risk_entropy_share"] <= 1.0 and 0.0 <= metrics["oracle_risk"] <= 1.0


def test_no_hazard_decision_labels_for_comparison(records):
    bank, _ = records
    scene = next(bank[i] for i in range(len(bank)) if bank[i].meta.extra.get("outcome") == "near_miss")
    frames = sample_frames(scene, per_scene=4)
    geometry = decision_records(scene, frames)
    legacy = decision_records(scene, frames, decision_labels="no_hazard")
    assert all(r["risk_level"] == "none" and r["action"] == "keep_lane" for r in legacy)
    assert [r["oracle_risk"] for r in legacy] == [r["oracle_risk"] for r in geometry]  # the oracle stays geometric
    with pytest.raises(ValueError, match="decision_labels"):
        decision_records(scene, frames, decision_labels="lookup")


def test_audit_cli_prints_the_label_honesty(capsys):
    from counterfactual import audit

    assert audit.main(["--num-scenes", "6", "--seed", "31", "--outcomes", "varied", "--labels-only",
                       "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SYNTHETIC outcome-varied bank: 6 scenes (seed 31)")
    for name in ("lookup_language", "lookup_risk", "type_majority_risk", "risk_entropy_share",
                 "action_entropy_share", "oracle_risk"):
        assert any(line.split()[:1] == [name] and "target" in line for line in out.splitlines()), name
    assert audit.main(["--num-scenes", "4", "--seed", "31", "--roads", "families", "--road-families", "curve,ramp",
                       "--labels-only", "--no-progress"]) == 0
    assert capsys.readouterr().out.startswith("SYNTHETIC road-families (curve,ramp) bank: 4 scenes")
    for bad in (["--fit-seed", "31"], ["--difficulty", "0.2"],  # fitted on the answer; varied-only option
                ["--road-families", "curve"]):  # families-only option
        with pytest.raises(SystemExit):
            audit.main(["--num-scenes", "6", "--seed", "31", "--labels-only", *bad])


def test_pair_risk_from_the_projection_for_comparison(records):
    bank, recs = records
    scene_id = next(r["scene_id"] for r in recs if r["kind"] == "pair")
    scene = next(bank[i] for i in range(len(bank)) if bank[i].scene_id == scene_id)
    pairs = mine_scene(scene).pairs
    contact = decision_records(scene, [], pairs)
    projected = decision_records(scene, [], pairs, pair_risk="projection")
    for c, p, pair in zip(contact, projected, pairs):
        assert c["risk_level"] == pair.label.risk_level  # default: the mined label (logged contact time)
        assert p["risk_level"] == frame_label(scene, pair.decision_frame, trajectory=pair.negative).risk_level
        assert p["risk_level"] == c["oracle_risk"]  # the oracle's rule, so the oracle then agrees on every pair
        assert {k: v for k, v in p.items() if k != "risk_level"} == {k: v for k, v in c.items() if k != "risk_level"}
    with pytest.raises(ValueError, match="pair_risk"):
        decision_records(scene, [], pairs, pair_risk="logged")
