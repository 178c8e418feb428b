"""Tests of the outcome-varied bank (envs.scenes.bank.outcomes, ``ScenarioBank(outcomes="varied")``): the stated
outcome is the geometry's (recomputed here from the scene arrays), the shares follow the configured mix, difficulty
moves them monotonically, the default bank is bit-identical, and the sources re-create varied scenes. The validity
checks of tests/test_bank.py also run over varied scenes (there)."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest

from envs.scenes.bank import ACCIDENT_TYPES, ScenarioBank, generate_scene
from envs.scenes.bank.outcomes import DEFAULT_OUTCOME_MIX, OUTCOMES, tilted_mix
from envs.scenes.scene import Scene
from envs.scenes.sources import BankIndexOrigin, open_source, origin_from_dict, resolve
from rewards.geometry import box_corners, box_distance, boxes_overlap, vehicle_corners

DEFAULT_BANK_SHA256 = "ccc499ab162d011da8bb4b4712e6b5501983050d3b01bbd1401d623e92088e49"
"""sha256 of ScenarioBank(40, seed=3)'s arrays and meta (:func:`bank_digest`) before the varied mode existed."""


def bank_digest(bank) -> str:
    h = hashlib.sha256()
    for s in bank:
        for a in (s.ego_poses, s.ego_velocities, s.agent_ids, s.agent_classes, s.agent_sizes, s.agent_poses,
                  s.agent_velocities, s.agent_valid):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr((s.scene_id, s.meta.collision_frame, s.meta.colliding_agent_id,
                       sorted(s.meta.extra.items()))).encode())
    return h.hexdigest()


def geometry_outcome(scene: Scene) -> tuple[str, float, int | None]:
    """(outcome, min gap [m], first contact frame) of the ego log against the hazard agent, from the arrays."""
    n = scene.agent_index(scene.meta.extra["hazard_agent_id"])
    ego = vehicle_corners(scene.ego_poses, scene.ego_params)
    agent = box_corners(scene.agent_poses[n], scene.agent_sizes[n, 0], scene.agent_sizes[n, 1])
    hits = np.flatnonzero(boxes_overlap(ego, agent))
    if len(hits):
        return "collision", 0.0, int(hits[0])
    gap = float(box_distance(ego, agent).min())
    return ("near_miss" if gap < 1.0 else "benign"), gap, None


@functools.lru_cache(maxsize=None)
def varied_bank(seed: int, num: int = 200, difficulty: float = 0.5) -> tuple[Scene, ...]:
    return tuple(ScenarioBank(num, seed=seed, outcomes="varied", difficulty=difficulty))


def shares(scenes) -> np.ndarray:
    outcomes = [s.meta.extra["outcome"] for s in scenes if s.meta.scenario_type != "normal"]
    return np.array([outcomes.count(o) for o in OUTCOMES]) / len(outcomes)


def test_default_bank_is_bit_identical():
    assert bank_digest(ScenarioBank(40, seed=3)) == DEFAULT_BANK_SHA256
    assert "outcome" not in ScenarioBank(4, seed=3, scenario_types=["rear_end"])[0].meta.extra


@pytest.mark.parametrize("seed", [0, 11, 12345])
def test_stated_outcome_is_the_geometry_and_meta_is_honest(seed):
    for scene in varied_bank(seed):
        extra = scene.meta.extra
        if scene.meta.scenario_type == "normal":
            assert extra["outcome"] == "benign" and not scene.meta.is_accident
            continue
        outcome, gap, first = geometry_outcome(scene)
        assert extra["outcome"] == outcome, (scene.scene_id, extra["outcome"], outcome, gap)
        assert extra["min_gap_m"] == pytest.approx(gap, abs=2e-3), scene.scene_id
        assert scene.meta.is_accident == (outcome == "collision")
        if outcome == "collision":
            assert scene.meta.collision_frame == first and scene.meta.colliding_agent_id == extra["hazard_agent_id"]
        else:
            assert scene.meta.collision_frame is None and scene.meta.colliding_agent_id is None
            # no contact with any agent at all
            ego = vehicle_corners(scene.ego_poses, scene.ego_params)
            agents = box_corners(scene.agent_poses, scene.agent_sizes[:, None, 0], scene.agent_sizes[:, None, 1])
            assert not boxes_overlap(ego[None], agents).any(), scene.scene_id
        # the controlling parameter's value (none only for a collision draw with no uncrashed variant)
        assert extra["outcome_wanted"] in OUTCOMES
        assert len(extra["outcome_params"]) == 1 or (outcome == "collision" and not extra["outcome_params"])
        assert extra["hazard_agent_class"] in ("vehicle", "pedestrian", "cyclist")
        assert scene.meta.source == "synthetic"


@pytest.mark.parametrize("seed", [0, 11, 12345])
def test_outcome_shares_follow_the_mix(seed):
    got = shares(varied_bank(seed))
    assert np.abs(got - np.array(DEFAULT_OUTCOME_MIX)).max() < 0.1, got
    # every accident type shows more than one outcome
    for t in ACCIDENT_TYPES:
        assert len({s.meta.extra["outcome"] for s in varied_bank(seed) if s.meta.scenario_type == t}) >= 2, t


def test_mix_and_difficulty_move_the_shares():
    assert shares(ScenarioBank(40, seed=2, outcomes="varied", outcome_mix=(0, 0, 1))).tolist() == [0, 0, 1]
    benign = shares(ScenarioBank(40, seed=2, outcomes="varied", outcome_mix=(1, 0, 0), normal_fraction=0.0))
    assert benign[0] > 0.8  # the few misses are head-on drifts against wide vehicles (meta says so)
    got = [shares(varied_bank(5, 120, d)) for d in (0.1, 0.5, 0.9)]
    assert got[0][2] < got[1][2] < got[2][2] and got[0][0] > got[1][0] > got[2][0], got
    wanted = [tilted_mix(DEFAULT_OUTCOME_MIX, d) for d in (0.0, 0.5, 1.0)]
    assert wanted[0][2] == 0 and wanted[2][0] == 0 and np.allclose(wanted[1], DEFAULT_OUTCOME_MIX)
    # harder near-misses pass closer
    gaps = [np.mean([s.meta.extra["min_gap_m"] for s in varied_bank(5, 120, d)
                     if s.meta.extra.get("outcome") == "near_miss"]) for d in (0.1, 0.9)]
    assert gaps[0] > gaps[1]


def test_same_typology_looks_different_by_outcome():
    """The hazard is present in every outcome; what differs is where it is."""
    scenes = {o: generate_scene("red_light_runner_left", 7, outcome=o) for o in OUTCOMES}
    assert all("hazard_agent_id" in s.meta.extra for s in scenes.values())
    offsets = {o: s.meta.extra["outcome_params"]["arrival_offset_s"] for o, s in scenes.items()}
    assert abs(offsets["collision"]) <= 0.25 < min(abs(offsets["near_miss"]), abs(offsets["benign"]))
    assert np.array_equal(scenes["benign"].ego_poses[:40], scenes["near_miss"].ego_poses[:40])


def test_errors_name_the_field():
    with pytest.raises(ValueError, match="outcomes"):
        ScenarioBank(4, outcomes="sometimes")
    with pytest.raises(ValueError, match="outcome_mix"):
        ScenarioBank(4, outcomes="varied", outcome_mix=(1, -1, 0))
    with pytest.raises(ValueError, match="difficulty"):
        ScenarioBank(4, outcomes="varied", difficulty=1.5)
    with pytest.raises(ValueError, match="outcomes='varied'"):
        ScenarioBank(4, outcome_mix=(1, 1, 1))
    with pytest.raises(ValueError, match="outcome"):
        generate_scene("cut_in", 0, outcome="crash")


def test_sources_recreate_varied_scenes():
    source = open_source("bank", num_scenes=12, seed=4, outcomes="varied", difficulty=0.7)
    for i in (0, 5, 11):
        scene = source[i]
        again = resolve(origin_from_dict(source.origin(i).to_dict()))
        assert again.scene_id == scene.scene_id and np.array_equal(again.agent_poses, scene.agent_poses)
        assert again.meta.extra == scene.meta.extra
    index = BankIndexOrigin(num_scenes=12, seed=4, index=5, outcomes="varied", outcome_mix=(0.5, 0.25, 0.25))
    scene = resolve(origin_from_dict(index.to_dict()))
    assert np.array_equal(scene.agent_poses, ScenarioBank(12, seed=4, outcomes="varied",
                                                           outcome_mix=(0.5, 0.25, 0.25))[5].agent_poses)
