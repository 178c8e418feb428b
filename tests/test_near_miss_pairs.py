"""Near-misses become anchor pairs (``MinerConfig.near_miss_rule="clearance"``): the gap trigger of
:mod:`counterfactual.mining` and the clearance negative of :mod:`counterfactual.miner` (SYNTHETIC bank)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pytest

from counterfactual.miner import MinerConfig, mine_scene, moment_config
from counterfactual.mining import MomentConfig, find_risk_moments
from envs.scenes.bank import ScenarioBank
from rewards.geometry import box_corners, box_distance, vehicle_corners

# Scenes of the varied bank (seed 29, road families) picked once by running both rules over its first 40 scenes:
# three near-miss outcomes whose hazard passes closer than the 0.5 m margin, two benign accident typologies.
NEAR_MISS = (27, 31, 34)
BENIGN = (0, 6)


@functools.lru_cache(maxsize=1)
def _bank() -> ScenarioBank:
    return ScenarioBank(40, seed=29, outcomes="varied", roads="families")


def _gap_to(scene, agent_id: int) -> np.ndarray:
    """``(T,)`` box gap [m] of the logged ego to one agent (inf where the agent is not valid)."""
    n = scene.agent_index(agent_id)
    ego = vehicle_corners(scene.ego_poses, scene.ego_params)
    agent = box_corners(scene.agent_poses[n], scene.agent_sizes[n, 0], scene.agent_sizes[n, 1])
    return np.where(scene.agent_valid[n], box_distance(ego, agent), np.inf)


@pytest.mark.parametrize("index", NEAR_MISS)
def test_a_close_pass_becomes_a_pair_only_under_the_clearance_rule(index):
    scene = _bank()[index]
    assert scene.meta.extra["outcome"] == "near_miss"
    assert mine_scene(scene, MinerConfig()).pairs == []  # today's rule: the scorer passes the close pass
    config = MinerConfig(near_miss_rule="clearance")
    pairs = mine_scene(scene, config).pairs
    assert pairs
    margin = config.verify.clearance_margin
    for pair in pairs:
        assert pair.moment_kind == "near_miss"
        # the logged pass really is closer than the margin (never touching), near the moment's contact frame
        gaps = _gap_to(scene, int(pair.pair_id.rsplit("#", 1)[1]))
        assert 0.0 < gaps.min() < margin
        if pair.has_positive:  # the positive clears the margin on every realisation the verification judges
            ver = pair.verification
            assert min(ver["clearance_m"], ver["raw_clearance_m"], ver["closed_loop_clearance_m"]) >= margin
        assert pair.label.risk_level in ("low", "medium", "high")


@pytest.mark.parametrize("index", BENIGN)
def test_benign_scenes_give_no_pair_under_either_rule(index):
    scene = _bank()[index]
    assert scene.meta.extra["outcome"] == "benign"
    for rule in ("ttc", "clearance"):
        assert mine_scene(scene, MinerConfig(near_miss_rule=rule)).pairs == []


def test_gap_trigger_reports_the_frame_of_closest_approach():
    scene = _bank()[NEAR_MISS[0]]
    assert not [m for m in find_risk_moments(scene, MomentConfig()) if m.detected_by == "gap"]
    moments = [m for m in find_risk_moments(scene, MomentConfig(near_miss_gap=0.5)) if m.detected_by == "gap"]
    assert moments
    for m in moments:
        gaps = _gap_to(scene, m.agent_id)
        assert m.kind == "near_miss" and m.contact_frame == m.event_frame
        assert 0.0 < gaps[m.contact_frame] < 0.5
        assert gaps[m.contact_frame] == pytest.approx(gaps[scene.ego_speeds >= 1.0].min())


def test_the_clearance_rule_sets_the_gap_trigger_at_the_margin():
    config = MinerConfig(near_miss_rule="clearance")
    assert moment_config(config).near_miss_gap == config.verify.clearance_margin
    assert moment_config(MinerConfig()).near_miss_gap == 0.0
    explicit = MinerConfig(near_miss_rule="clearance", moments=MomentConfig(near_miss_gap=0.3))
    assert moment_config(explicit).near_miss_gap == 0.3
    wider = dataclasses.replace(config, verify=dataclasses.replace(config.verify, clearance_margin=0.8))
    assert moment_config(wider).near_miss_gap == 0.8


def test_bad_values_name_the_field():
    with pytest.raises(ValueError, match="near_miss_rule"):
        MinerConfig(near_miss_rule="gap")
    with pytest.raises(ValueError, match="near_miss_gap"):
        MomentConfig(near_miss_gap=-0.1)
