"""Road-geometry families of the SYNTHETIC bank (``ScenarioBank(..., roads="families")``): the default bank stays
bit-identical, every family scene passes the bank's validity checks (the functions of ``tests/test_bank.py``, run on
family scenes), every typology runs on >= 3 families, the held-out split and the knobs behave."""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pytest

import tests.test_bank as checks
from envs.scenes.bank import ACCIDENT_TYPES, SCENARIO_TYPES, ScenarioBank, generate_scene
from envs.scenes.bank.roads import TYPOLOGY_FAMILIES
from envs.scenes.layouts import get_layout
from envs.scenes.road_families import FAMILIES, HELD_OUT_FAMILIES, TRAIN_FAMILIES

SEEDS = range(12)


@functools.lru_cache(maxsize=None)
def family_scenes_of(scenario_type: str, outcome: str | None = None):
    """The type's scenes of :data:`SEEDS` on every family (held-out one included)."""
    return tuple(generate_scene(scenario_type, 7000 + seed, outcome=outcome, road_families=FAMILIES) for seed in SEEDS)


VALIDITY_CHECKS = [
    checks.test_expert_log_stays_on_the_drivable_area_until_contact,
    checks.test_agents_do_not_overlap_each_other_and_stay_plausible,
    checks.test_ego_kinematics_and_route,
    checks.test_meta_and_map,
]


@pytest.mark.parametrize("outcome", checks.OUTCOME_MODES)
@pytest.mark.parametrize("scenario_type", SCENARIO_TYPES)
def test_family_scenes_pass_the_bank_validity_checks(monkeypatch, scenario_type, outcome):
    monkeypatch.setattr(checks, "scenes_of", family_scenes_of)
    for check in VALIDITY_CHECKS:
        check(scenario_type, outcome)
    if outcome is None and scenario_type in ACCIDENT_TYPES:
        checks.test_accident_contact_is_first_overlap(scenario_type)
        checks.test_accident_is_avoidable_from_two_seconds_before(scenario_type)
    if outcome is None and scenario_type == "normal":
        for scene in family_scenes_of("normal"):
            assert scene.meta.collision_frame is None and not checks.ego_overlaps(scene).any(), scene.scene_id


def _bank_hash(bank: ScenarioBank) -> str:
    """sha256 over every scene's arrays, id, meta and map geometry."""
    h = hashlib.sha256()
    for s in bank:
        for a in (s.ego_poses, s.ego_velocities, s.agent_ids, s.agent_classes, s.agent_sizes, s.agent_poses,
                  s.agent_velocities, s.agent_valid):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(s.scene_id.encode())
        h.update(repr(sorted((k, repr(v)) for k, v in s.meta.extra.items())).encode())
        h.update(repr((s.meta.collision_frame, s.meta.colliding_agent_id)).encode())
        for p in s.map.drivable_areas:
            h.update(np.ascontiguousarray(p).tobytes())
        for lane in s.map.lanes:
            h.update(np.ascontiguousarray(lane.centerline).tobytes())
        h.update(np.ascontiguousarray(s.map.route).tobytes())
    return h.hexdigest()


def test_default_bank_is_bit_identical_to_before_the_families():
    """Hashes of the default and outcome-varied banks computed on main before road families existed (35dde30)."""
    assert _bank_hash(ScenarioBank(24, seed=3)) == "3c3fb653f4d0cfabe0cf290242ee8911e6d628e2274cdd298a0dacac4a72a971"
    assert _bank_hash(ScenarioBank(24, seed=3, outcomes="varied")) == (
        "4f072f91c845bac02f4338ef9b09bd4026029be0e780db47bd8b8c355c2f6a2e"
    )


def test_every_typology_runs_on_at_least_three_families():
    for scenario_type in ACCIDENT_TYPES:
        families = TYPOLOGY_FAMILIES[scenario_type]
        assert len(families) >= 3 and len([f for f in families if f in TRAIN_FAMILIES]) >= 3, scenario_type
        for family in families:  # and really builds there
            scene = generate_scene(scenario_type, 5, road_families=[family])
            assert scene.meta.extra["road_family"] == family, (scenario_type, family)
            assert scene.meta.collision_frame is not None
            assert get_layout(scene.meta.extra["layout"]).family == family


def test_family_layouts_are_parametric_and_rebuilt_from_their_names():
    scenes = [generate_scene("rear_end", seed, road_families=["straight", "curve"]) for seed in range(12)]
    names = {s.meta.extra["layout"] for s in scenes}
    assert len(names) >= 6  # parameters vary from scene to scene
    lanes = {s.meta.extra["road_params"]["L"] for s in scenes}
    assert len(lanes) >= 2
    for scene in scenes:
        layout = get_layout(scene.meta.extra["layout"])
        assert dict(layout.params) == scene.meta.extra["road_params"]
        assert scene.map is layout.scene_map(scene.meta.extra["ego_route"], 101)
    with pytest.raises(ValueError, match="unknown road family 'hexagon'"):
        get_layout("hexagon[L=2]")
    with pytest.raises(ValueError, match="parameters"):
        get_layout("straight[L=2]")


def test_held_out_family_is_never_in_a_default_training_bank():
    train = ScenarioBank(40, seed=2, roads="families")
    held = ScenarioBank(12, seed=2, roads="families", road_families="held_out")
    got_train = {s.meta.extra["road_family"] for s in train}
    assert got_train and not got_train & set(HELD_OUT_FAMILIES) and len(got_train) >= 5
    assert {s.meta.extra["road_family"] for s in held} == set(HELD_OUT_FAMILIES)
    # types that cannot run on the held-out family are left out of it, and named when asked for
    assert "merge_conflict" not in held.scenario_types and "rear_end" in held.scenario_types
    with pytest.raises(ValueError, match="merge_conflict.*runs on none"):
        ScenarioBank(4, roads="families", road_families="held_out", scenario_types=["merge_conflict"])
    with pytest.raises(ValueError, match="road_families.*needs roads='families'"):
        ScenarioBank(4, road_families=["curve"])
    with pytest.raises(ValueError, match="unknown road family 'spiral'"):
        ScenarioBank(4, roads="families", road_families=["spiral"])
    with pytest.raises(ValueError, match="roads must be one of"):
        ScenarioBank(4, roads="fancy")


def test_the_road_alone_no_longer_names_the_typology():
    """In a families bank every family carries >= 3 accident typologies and every typology shows on >= 3 families
    (the classic merge layout carries merge_conflict alone), and the uncertainty left about the type once the road
    is known (conditional entropy, bits) is larger than with the classic layouts on the same seed."""
    families = ScenarioBank(200, seed=4, roads="families")
    seen: dict[str, set] = {}
    on: dict[str, set] = {}
    for scene in families:
        if scene.meta.scenario_type != "normal":
            seen.setdefault(scene.meta.extra["road_family"], set()).add(scene.meta.scenario_type)
            on.setdefault(scene.meta.scenario_type, set()).add(scene.meta.extra["road_family"])
    assert set(seen) == set(TRAIN_FAMILIES) and all(len(t) >= 3 for t in seen.values()), seen
    assert all(len(f) >= 3 for f in on.values()) and len(on) == len(ACCIDENT_TYPES), on
    classic = ScenarioBank(200, seed=4)
    h_classic = type_entropy_given_road(classic, lambda s: s.meta.extra["layout"].split("_")[0])
    h_families = type_entropy_given_road(families, lambda s: s.meta.extra["road_family"])
    assert h_families > h_classic + 0.15, (h_classic, h_families)


def type_entropy_given_road(bank: ScenarioBank, road) -> float:
    """H(scenario type | road kind) [bits] over the bank's accident scenes (plug-in estimate)."""
    from collections import Counter

    pairs = Counter((road(s), s.meta.scenario_type) for s in bank if s.meta.scenario_type != "normal")
    roads = Counter()
    for (r, _), n in pairs.items():
        roads[r] += n
    total = sum(pairs.values())
    return float(-sum(n / total * np.log2(n / roads[r]) for (r, _), n in pairs.items()))


def test_background_density_scales_the_traffic():
    def mean_background(density: float) -> float:
        bank = ScenarioBank(16, seed=5, roads="families", background_density=density)
        return float(np.mean([s.meta.extra["num_background"] for s in bank]))

    assert mean_background(0.0) == 0.0
    assert mean_background(2.0) > 1.4 * mean_background(1.0)
    with pytest.raises(ValueError, match="background_density"):
        ScenarioBank(4, background_density=-1.0)


def test_outcome_varied_mode_runs_on_the_families():
    bank = ScenarioBank(27, seed=6, roads="families", outcomes="varied")
    outcomes = {s.meta.extra["outcome"] for s in bank if s.meta.scenario_type != "normal"}
    assert outcomes == {"benign", "near_miss", "collision"}
    assert all(s.meta.extra["road_family"] in TRAIN_FAMILIES for s in bank)


def test_many_family_scenes_stay_on_the_road_and_clear_of_each_other():
    """A wider sweep of seeds than the per-type checks: every ego box corner on the drivable area until contact
    (shapely, the same polygons the scorer indexes), no ego overlap before it, agents apart from each other."""
    import shapely

    for scene in ScenarioBank(80, seed=9, roads="families", road_families="all"):
        end = scene.meta.collision_frame if scene.meta.is_accident else scene.num_frames
        area = checks.drivable(scene).buffer(1e-6)
        corners = checks.ego_corners(scene)[:end].reshape(-1, 2)
        assert shapely.contains_xy(area, corners[:, 0], corners[:, 1]).all(), scene.scene_id
        assert not checks.ego_overlaps(scene)[:, :end].any(), scene.scene_id
        c = checks.agent_corners(scene)
        pair = checks.boxes_overlap(c[:, None], c[None, :]).any(axis=-1)
        np.fill_diagonal(pair, False)
        assert not pair.any(), scene.scene_id


def test_render_cli_writes_one_contact_sheet_per_family(tmp_path, capsys):
    import cv2

    from envs.render import main

    out = tmp_path / "sheets"
    assert main(["--family-sheets", "--families", "curve,junction_t", "--out", str(out), "--num-scenes", "3",
                 "--size", "64", "--mpp", "1.0", "--columns", "3"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "family_curve.png"), str(out / "family_junction_t.png")]
    for path in printed:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        assert image is not None and image.shape[1] >= 3 * 64  # three tiles in a row
    with pytest.raises(SystemExit):
        main(["--family-sheets", "--families", "hexagon", "--out", str(out)])


def test_bank_options_leave_out_what_is_not_set():
    """``envs.scenes.sources.bank_options``: the one assembly of the bank's option kwargs (the bank source, both bank
    origins' resolvers, the pipeline's sources): None is left out (the bank's default), the rest normalised."""
    from envs.scenes.sources import bank_options

    assert bank_options() == {}
    assert bank_options("varied", [0.3, 0.3, 0.4], 1, "families", ["a", "b"], 2) == {
        "outcomes": "varied", "outcome_mix": (0.3, 0.3, 0.4), "difficulty": 1.0, "roads": "families",
        "road_families": ("a", "b"), "background_density": 2.0}
    assert bank_options(road_families="a") == {"road_families": "a"}
