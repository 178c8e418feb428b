"""The ``"hazard_dense"`` decision rule (``env=world_v2``'s; issue #28's label honesty) on small outcome-varied banks
(SYNTHETIC).

* The (scenario type, lead) lookup, the per-type majority and the per-kind majority predict the sampled decisions'
  labels worse under the rule than under the old ``"even"`` rule, by a margin: both computed here on the same
  scenes, the lookups fitted on another bank seed's scenes (a relative comparison, not a threshold one seed clears;
  the pairs are the same under both rules, so they are left out here and the difference is the rule's alone).
* Every mined pair whose negative collides carries a hazard label (risk not ``none``, its agent named), also as a
  label-honesty record.
* The frames follow the designated hazard's window (logged geometry, scene kind), never the label: every safe
  candidate inside it, one frame outside it, one frame of a scene without a designated hazard.
"""

from __future__ import annotations

import math

import pytest

from counterfactual.frame_labels import (
    WindowConfig,
    closest_approach,
    dense_window,
    designated_hazard,
    hazard_window,
    safe_log_frames,
    sample_frames,
)
from counterfactual.honesty import decision_records, label_honesty
from counterfactual.miner import mine_scene
from envs.scenes.bank import ScenarioBank

SCENES = 40
"""Scenes per bank. The decisions-only lookup is noisy on small banks, so the comparison is two-fold (fitted on one
bank, scored on the other, both ways, averaged). Measured with this file's seeds (11, 12), old -> new rule, the two
folds: lookup language 76.2 -> 65.9 and 73.6 -> 71.3, lookup risk 68.8 -> 53.4 and 67.0 -> 59.7, per-kind majority
63.4 -> 53.8 and 63.1 -> 43.8 [%]; on seeds (5, 6) one fold: 81.4 -> 74.9 / 73.0 -> 63.8 / 73.0 -> 42.6. On 24-32
scenes one fold's language can rise by a point: too few scenes for the lookup."""


def _decisions(scenes, sampling):
    return [r for s in scenes for r in decision_records(s, sample_frames(s, sampling=sampling), oracle=False)]


@pytest.fixture(scope="module")
def banks():
    one = ScenarioBank(SCENES, seed=11, outcomes="varied")
    two = ScenarioBank(SCENES, seed=12, outcomes="varied")
    return [one[i] for i in range(SCENES)], [two[i] for i in range(SCENES)]


def _two_fold(banks, sampling):
    """The honesty metrics fitted on each bank and scored on the other, averaged."""
    one, two = (_decisions(b, sampling) for b in banks)
    folds = [label_honesty(one, two), label_honesty(two, one)]
    return {k: (folds[0][k] + folds[1][k]) / 2 for k in folds[0]}, two


def test_lookups_read_less_of_the_dense_decisions_than_of_the_even_ones(banks):
    old, _ = _two_fold(banks, "even")
    new, records = _two_fold(banks, "hazard_dense")
    assert new["lookup_language"] <= old["lookup_language"] - 0.03, (old, new)
    assert new["lookup_risk"] <= old["lookup_risk"] - 0.05, (old, new)
    assert new["type_majority_risk"] <= old["type_majority_risk"] - 0.05, (old, new)
    assert new["kind_majority_risk"] <= old["kind_majority_risk"] - 0.05, (old, new)
    # still an evaluation set with no-hazard decisions, benign scenes among them, and more hazards than before
    assert 0 < new["no_hazard"] < new["decisions"]
    assert new["decisions"] - new["no_hazard"] > old["decisions"] - old["no_hazard"]
    assert any(r["outcome"] == "benign" and r["scenario_type"] != "normal" for r in records)
    assert any(r["scenario_type"] == "normal" and r["risk_level"] == "none" for r in records)


def test_every_pair_whose_negative_collides_has_a_hazard_label(banks):
    _, scored = banks
    collided = 0
    for scene in [s for s in scored if s.meta.extra.get("outcome") == "collision"][:3]:
        pairs = mine_scene(scene).pairs
        records = decision_records(scene, [], pairs, oracle=False)
        for pair, record in zip(pairs, records):
            if not pair.negative_scores.get("collision"):
                continue
            collided += 1
            assert pair.label.risk_level != "none" and record["risk_level"] == pair.label.risk_level
            assert record["risk_agent_class"] and record["sector"] and record["conflict_type"]
            assert pair.label.time_kind == "contact" and math.isfinite(pair.label.time_to_contact_s)
    assert collided >= 3


def test_frames_follow_the_hazard_window(banks):
    _, scored = banks
    window = WindowConfig()
    seen = set()
    for scene in scored:
        frames = sample_frames(scene, sampling="hazard_dense")
        assert frames == sorted(set(frames)) and safe_log_frames(scene, frames) == frames
        if designated_hazard(scene) is None:  # normal driving: one frame, no window
            assert scene.meta.scenario_type == "normal" and len(frames) == 1
            seen.add("normal")
            continue
        first, last = dense_window(scene, window)
        start, end = round(2.0 / scene.dt), scene.num_frames - round(4.0 / scene.dt)  # history 2 s, future 4 s
        grid = range(max(start, first), min(end, last + 1), round(window.dense_stride_s / scene.dt))
        inside = [t for t in frames if first <= t <= last]
        assert inside == safe_log_frames(scene, list(grid))  # every safe window frame
        assert len(frames) - len(inside) <= 1  # one frame outside it
        seen.add(scene.meta.extra["outcome"])
        if scene.meta.extra["outcome"] == "collision":
            assert not inside  # the logged future of every window frame collides: those moments are pairs
    assert seen == {"normal", "benign", "near_miss", "collision"}
    with pytest.raises(ValueError, match="WindowConfig.dense_stride_s"):
        WindowConfig(dense_stride_s=0.0)


def test_dense_window_options_reach_the_frames(banks):
    """``WindowConfig.dense_stride_s`` / ``dense_before_s`` set the rule's grid and window: the default (sample
    format 3's rule, every 0.2 s from 4 s before the hazard's closest approach) and the rule issue #28's tuning chose
    on seeds 29 / 37 (every 0.1 s from 5 s before; ``benchmarks/bench_decision_rules.py``, not the default: it
    missed the language target on one new held-out cell)."""
    default, tuned = WindowConfig(), WindowConfig(dense_stride_s=0.1, dense_before_s=5.0)
    assert (default.dense_stride_s, default.dense_before_s, default.before_s) == (0.2, 4.0, 4.0)
    _, scored = banks
    early = adjacent = 0
    for scene in scored:
        if designated_hazard(scene) is None:
            continue
        _, approach = closest_approach(scene)
        assert dense_window(scene, default) == hazard_window(scene, default) == (max(0, approach - 40), approach)
        first, last = dense_window(scene, tuned)
        assert (first, last) == (max(0, approach - 50), approach)  # 5 s at the bank's 10 Hz
        old = [t for t in sample_frames(scene, sampling="hazard_dense") if approach - 40 <= t <= approach]
        assert all((t - old[0]) % 2 == 0 for t in old)  # the default's 0.2 s grid
        inside = [t for t in sample_frames(scene, sampling="hazard_dense", window=tuned) if first <= t <= last]
        assert inside == safe_log_frames(scene, list(range(max(20, first), min(scene.num_frames - 40, last + 1))))
        assert set(old) <= set(inside)  # the default's window frames stay
        early += sum(t < approach - 40 for t in inside)  # 4-5 s before the approach: outside the default window
        adjacent += sum(b - a == 1 for a, b in zip(inside, inside[1:]))  # 0.1 s apart: off the default's grid
    assert early > 0 and adjacent > 0
    with pytest.raises(ValueError, match="WindowConfig.dense_before_s"):
        WindowConfig(dense_before_s=-1.0)


def _cfg(*overrides: str):
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        return compose(config_name="config", overrides=list(overrides))


def test_world_v2_preset_and_audit_default_to_the_rule(capsys):
    from counterfactual.audit import main as audit_main
    from experiments.run import typed_config

    assert _cfg("env=world_v2").env.frame_sampling == "hazard_dense"
    assert _cfg().env.frame_sampling == "even"  # the default bank's decisions are unchanged
    with pytest.raises(SystemExit, match="env.frame_sampling"):
        typed_config(_cfg("env.frame_sampling=dense"))
    assert audit_main(["--num-scenes", "3", "--seed", "3", "--outcomes", "varied", "--labels-only",
                       "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "chosen: hazard_dense" in out and "near-misses: clearance" in out  # as env=world_v2 samples and mines
    assert audit_main(["--num-scenes", "3", "--seed", "3", "--labels-only", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "chosen: even" in out and "near-misses: ttc" in out


def test_rule_reaches_the_sft_rows(banks):
    from agents.sft.data import SampleConfig, build_sample_table, expert_frames
    from envs.observation import ObservationConfig
    from envs.render import BEVConfig

    _, scored = banks
    scene = next(s for s in scored if s.meta.extra.get("outcome") == "near_miss")
    config = SampleConfig(frame_sampling="hazard_dense", observation=ObservationConfig(
        bev=BEVConfig(height=16, width=16, meters_per_pixel=4.0, antialias=False)))
    want = sample_frames(scene, sampling="hazard_dense")
    assert len(want) > len(sample_frames(scene))  # the window's frames: more decisions than under "even"
    assert expert_frames(scene, config) == want
    rows = build_sample_table([scene], [], config)
    assert [r["frame"] for r in rows] == want and any(r["risk_level"] not in ("", "none") for r in rows)
