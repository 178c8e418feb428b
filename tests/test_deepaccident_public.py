"""DeepAccident reader on SYNTHETIC folders in the public layout, written by an independent test writer
(``tests/deepaccident_public_fixture.py``): zero-padded frame names, crossing and turning traffic, meta accident
truth, lenient mode, malformed meta and split files, unknown classes, and the kinematic invariants over the
built-in bank written to disk and read back."""

from __future__ import annotations

import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon

from envs.scenes.deepaccident import (
    DeepAccidentDataset,
    DeepAccidentFormatError,
    DeepAccidentWarning,
    check_kinematics,
    read_scenario,
    write_scenario,
)
from envs.scenes.deepaccident.__main__ import main as export_main
from envs.scenes.scene import AgentClass
from rewards.geometry import box_corners, wrap_angle
from tests import deepaccident_public_fixture as fx


def _read(root: Path, sc: fx.Scenario, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepAccidentWarning)  # a clean public folder reads without any warning
        return read_scenario(root, sc.scenario_type, sc.scenario_name, **kwargs)


def _paths(root: Path, sc: fx.Scenario, number: int, padded: bool = True) -> tuple[Path, Path]:
    stem = f"{sc.scenario_name}_{number:03d}" if padded else f"{sc.scenario_name}_{number}"
    base = root / sc.scenario_type / "ego_vehicle"
    return base / "label" / sc.scenario_name / f"{stem}.txt", base / "calib" / sc.scenario_name / f"{stem}.pkl"


def _meta(root: Path, sc: fx.Scenario) -> Path:
    return root / sc.scenario_type / "meta" / f"{sc.scenario_name}.txt"


def _assert_truth(scene, sc: fx.Scenario) -> None:
    """The scene equals the fixture's right-handed truth (ego box centre, agents' poses and velocities)."""
    np.testing.assert_allclose(scene.ego_box_centers()[:, :2], sc.ego.poses[:, :2], atol=1e-9)
    np.testing.assert_allclose(wrap_angle(scene.ego_poses[:, 2] - sc.ego.poses[:, 2]), 0.0, atol=1e-9)
    np.testing.assert_allclose(scene.ego_velocities, sc.ego.velocities, atol=1e-9)
    assert sorted(scene.agent_ids.tolist()) == sorted(tr.actor_id for tr in sc.others)
    for tr in sc.others:
        n = scene.agent_index(tr.actor_id)
        np.testing.assert_allclose(scene.agent_poses[n, :, :2], tr.poses[:, :2], atol=1e-9)
        np.testing.assert_allclose(wrap_angle(scene.agent_poses[n, :, 2] - tr.poses[:, 2]), 0.0, atol=1e-9)
        np.testing.assert_allclose(scene.agent_velocities[n], tr.velocities, atol=1e-9)
        np.testing.assert_allclose(scene.agent_sizes[n], tr.size[:2])


# ---------------------------------------------------------------------------------- the fixture vs public code


def test_public_fixture_matches_the_public_pipeline(tmp_path):
    """Apply the public converter's literal steps to the fixture's ``"one_frame"`` rows and check them against
    what the public camera model needs: it lifts images into the lidar frame with the unflipped calib
    (``projects/mmdet3d_plugin/datasets/pipelines/loading.py`` line 531, ``inv(lidar_to_camera_matrix)``), so the
    converted box centre must be the CARLA-local centre ``inv(ego_to_world @ lidar_to_ego) @ world``; its mmdet3d
    rotates corners by ``-yaw`` (``mmdet3d/core/bbox/structures/utils.py`` lines 48-53, 63), so after the
    converter's negation (line 252) the box's long axis points along ``(cos, sin)`` of the yaw as written, which
    must be the direction of the velocity as written."""
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    label, calib_path = _paths(tmp_path, sc, 10)
    calib = pickle.loads(calib_path.read_bytes())
    lidar = calib["ego_to_world"] @ calib["lidar_to_ego"]
    lines = [ln.rstrip("\n") for ln in label.read_text().splitlines()]
    checked = 0
    for line in lines[1:]:
        if len(line.split(" ")) <= 1:  # carla_converter.py line 235
            continue
        bbox = list(map(float, line.split(" ")[1:8]))  # lines 240-242
        written_vel = list(map(float, line.split(" ")[8:10]))
        bbox[6] = -bbox[6]  # line 252
        actor = int(line.split(" ")[-3])
        if actor == -100:
            continue
        tr = next(t for t in sc.others if t.actor_id == actor)
        x, y, *_ = fx.to_carla(tr.poses[9], tr.velocities[9])
        point = np.linalg.inv(lidar) @ np.array([x, y, 0.5 * tr.size[2], 1.0])  # CARLA-local centre, unflipped
        np.testing.assert_allclose(bbox[:3], point[:3], atol=1e-9)
        corner_axis = np.array([[1.0, 0.0]]) @ np.array([[math.cos(bbox[6]), -math.sin(bbox[6])],
                                                          [math.sin(bbox[6]), math.cos(bbox[6])]])  # utils.py 48-63
        if math.hypot(*written_vel) > 0.5:
            np.testing.assert_allclose(corner_axis[0], np.array(written_vel) / math.hypot(*written_vel), atol=1e-9)
        checked += 1
    assert checked == 4


# ------------------------------------------------------------------------------------------- paths and names


def test_padded_frame_names_load_and_calib_follows_the_label_stem(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    label, calib = _paths(tmp_path, sc, 7)
    assert label.name == f"{sc.scenario_name}_007.txt" and calib.exists()
    scene = _read(tmp_path, sc)
    assert scene.meta.extra["frames"] == tuple(sc.frames) and scene.num_frames == 40
    _assert_truth(scene, sc)
    # a calib file named from int(frame) instead of the stem is not looked for: remove the padded one -> error
    calib.rename(calib.with_name(f"{sc.scenario_name}_7.pkl"))
    with pytest.raises(DeepAccidentFormatError, match="_007.pkl.*calib file does not exist"):
        read_scenario(tmp_path, sc.scenario_type, sc.scenario_name)


def test_unpadded_frame_names_load_the_same(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path / "a", sc)
    fx.write(tmp_path / "b", sc, padded=False)
    assert _paths(tmp_path / "b", sc, 7, padded=False)[0].exists()
    a, b = _read(tmp_path / "a", sc), _read(tmp_path / "b", sc)
    np.testing.assert_array_equal(a.agent_poses, b.agent_poses)
    np.testing.assert_array_equal(a.ego_poses, b.ego_poses)
    assert a.meta.collision_frame == b.meta.collision_frame is not None


def test_writer_writes_padded_names(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path / "in", sc)
    scene = _read(tmp_path / "in", sc)
    result = write_scenario(scene, tmp_path / "out", first_frame=1)
    label_dir = tmp_path / "out" / result.scenario_type / "ego_vehicle" / "label" / result.scenario_name
    calib_dir = label_dir.parent.parent / "calib" / result.scenario_name
    names = sorted(p.stem for p in label_dir.iterdir())
    assert names[0] == f"{result.scenario_name}_001" and names[-1] == f"{result.scenario_name}_040"
    assert sorted(p.stem for p in calib_dir.iterdir()) == names


# ---------------------------------------------------------------------------------- one frame convention


@pytest.mark.parametrize("builder", [fx.crossing_accident, fx.turning_normal])
def test_crossing_and_turning_traffic_read_as_the_truth(tmp_path, builder):
    sc = builder()
    fx.write(tmp_path, sc)
    scene = _read(tmp_path, sc)
    _assert_truth(scene, sc)
    check = scene.meta.extra["kinematics_check"]
    assert check["passed"] and check["heading_bad"] == 0 and check["velocity_bad"] == 0
    assert check["heading_samples"] > 50
    # not exactly 0: the fixture turns the ego about its box centre, the check looks at its rear axle
    assert check["max_heading_error_rad"] < 0.05 and check["max_velocity_error_mps"] < 0.5


def test_kinematic_check_flags_a_mirrored_convention(tmp_path):
    """The same traffic written under the ``"mixed"`` reading, one view (nothing to decide by), read under the
    default ``"one_frame"``: positions are mirrored against yaw and velocity; the reader warns, naming the
    scenario."""
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc, convention="mixed")
    with pytest.warns(DeepAccidentWarning, match=f"{sc.scenario_name}: kinematic check failed") as rec:
        scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name)
    check = scene.meta.extra["kinematics_check"]
    assert not check["passed"] and check["max_heading_error_rad"] > 2.5 and check["max_velocity_error_mps"] > 10
    assert any("agent 2671" in str(w.message) or "agent 77" in str(w.message) for w in rec)


def test_kinematic_check_on_parallel_traffic_alone_cannot_see_it(tmp_path):
    """Why crossing traffic (or a second view) is needed: an agent driving parallel to a straight ego reads
    consistently under both readings (only its lateral offset is mirrored)."""
    sc = fx.crossing_accident()
    sc.others = [fx.Track(5, "car", (4.5, 2.0, 1.5), *fx.straight(-15.0, 3.5, 0.0, 12.0, 40))]
    sc.meta_lines = fx.meta_lines("ClearNoon", None, 40, "none none", (fx.EGO_ID, 2690, fx.OTHER_ID, 2691))
    fx.write(tmp_path, sc, convention="mixed")
    scene = _read(tmp_path, sc)  # no warning: the check passes
    assert scene.meta.extra["kinematics_check"]["passed"]
    assert scene.agent_poses[0, 0, 1] == pytest.approx(-3.5)  # but the agent is on the wrong side


@pytest.mark.parametrize("scenario_type", ["unprotected_left_turn", "red_light_runner_left", "right_turn_vru",
                                           "pedestrian_occluded", "cut_in", "head_on_drift", "normal"])
def test_bank_written_and_read_back_passes_the_invariants(tmp_path, scenario_type):
    from envs.scenes.bank import generate_scene

    scene = generate_scene(scenario_type, seed=5)
    assert check_kinematics(scene).passed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepAccidentWarning)  # STATIC agents are not exportable (warned)
        result = write_scenario(scene, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepAccidentWarning)
        back = read_scenario(tmp_path, result.scenario_type, result.scenario_name)
    check = back.meta.extra["kinematics_check"]
    assert check["passed"] and check["heading_bad"] == 0 and check["velocity_bad"] == 0
    assert (back.meta.collision_frame, back.meta.colliding_agent_id) == (scene.meta.collision_frame,
                                                                         scene.meta.colliding_agent_id)
    assert back.ego_params == scene.ego_params


# ------------------------------------------------------------------------------------------ accident truth


def _first_overlap(sc: fx.Scenario, actor: int) -> int | None:
    tr = next(t for t in sc.others if t.actor_id == actor)
    e = box_corners(sc.ego.poses, sc.ego.size[0], sc.ego.size[1])
    c = box_corners(tr.poses, tr.size[0], tr.size[1])
    return next((t for t in range(len(sc.frames)) if Polygon(e[t]).intersects(Polygon(c[t]))), None)


def test_accident_from_meta_frame_from_overlap(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    scene = _read(tmp_path, sc)
    m, x = scene.meta, scene.meta.extra
    expected = _first_overlap(sc, fx.OTHER_ID)
    assert expected is not None
    assert m.is_accident and (m.colliding_agent_id, m.collision_frame) == (fx.OTHER_ID, expected)
    assert x["collision_frame_source"] == "overlap" and x["observer_collides"]
    assert x["collision_raw_frame"] == sc.frames[expected] and x["collision_disagreements"] == ()


def test_meta_collision_without_overlap_uses_minimum_distance(tmp_path):
    sc = fx.crossing_accident(gap=1.9)  # boxes pass ~0.2 m apart; meta still says collision
    fx.write(tmp_path, sc)
    assert _first_overlap(sc, fx.OTHER_ID) is None
    tr = sc.others[0]
    e = box_corners(sc.ego.poses, sc.ego.size[0], sc.ego.size[1])
    c = box_corners(tr.poses, tr.size[0], tr.size[1])
    d = [Polygon(e[t]).distance(Polygon(c[t])) for t in range(40)]
    with pytest.warns(DeepAccidentWarning, match=f"{sc.scenario_name}: meta and boxes disagree.*never overlap"):
        scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name)
    m, x = scene.meta, scene.meta.extra
    assert m.is_accident and (m.colliding_agent_id, m.collision_frame) == (fx.OTHER_ID, int(np.argmin(d)))
    assert x["collision_frame_source"] == "min_distance" and x["collision_frame_overlap"] is None
    assert x["collision_min_distance_m"] == pytest.approx(min(d), abs=1e-6) and 0 < min(d) < 0.5
    assert len(x["collision_disagreements"]) == 1


def test_overlap_without_meta_collision_stays_a_non_accident(tmp_path):
    sc = fx.crossing_accident()
    sc.meta_lines = fx.meta_lines("ClearNoon", None, 40, "none none", (fx.EGO_ID, 2690, fx.OTHER_ID, 2691))
    fx.write(tmp_path, sc)
    with pytest.warns(DeepAccidentWarning, match="meta reports no collision of ego_vehicle"):
        scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name)
    assert not scene.meta.is_accident and scene.meta.colliding_agent_id is None
    assert scene.meta.extra["first_overlap_any"] == [fx.OTHER_ID, _first_overlap(sc, fx.OTHER_ID)]


def test_meta_names_the_colliding_agent_by_v2x_name(tmp_path):
    """Collision ids that do not include the observer's id, but line 2 names ``ego`` and ``other``: the other
    actor is the ``other_vehicle`` id of the ``agents id`` line."""
    sc = fx.crossing_accident()
    sc.meta_lines[0] = "ClearNoon 9001 car 9002 car 3.2 same rear_side 40"
    fx.write(tmp_path, sc)
    scene = _read(tmp_path, sc)
    assert scene.meta.colliding_agent_id == fx.OTHER_ID and scene.meta.collision_frame is not None


# ------------------------------------------------------------------------------------------------ lenient


def test_lenient_one_missing_calib_skips_only_that_frame(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    truth = _read(tmp_path, sc)
    _paths(tmp_path, sc, 12)[1].unlink()
    with pytest.raises(DeepAccidentFormatError, match="_012.pkl"):
        read_scenario(tmp_path, sc.scenario_type, sc.scenario_name)
    with pytest.warns(DeepAccidentWarning, match=r"skipped 1 frame.*interpolated frames \[12\].*_012.pkl"):
        scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=False)
    x = scene.meta.extra
    assert x["frames"] == tuple(sc.frames) and x["interpolated_frames"] == (12,) and x["skipped_frames"] == 1
    # constant-velocity traffic: the interpolated frame equals the truth (the turning car 77: close to it)
    straight = [n for n in range(scene.num_agents) if scene.agent_ids[n] != 77]
    np.testing.assert_allclose(scene.agent_poses[straight, 11, :2], truth.agent_poses[straight, 11, :2], atol=1e-9)
    np.testing.assert_allclose(scene.agent_poses[:, 11, :2], truth.agent_poses[:, 11, :2], atol=0.05)
    np.testing.assert_allclose(scene.ego_poses, truth.ego_poses, atol=1e-9)
    assert scene.meta.collision_frame == truth.meta.collision_frame


def test_lenient_bad_frames_at_the_ends_shorten_the_scene(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    _paths(tmp_path, sc, 1)[1].write_bytes(b"\x80\x04trunc")
    _paths(tmp_path, sc, 40)[0].write_text("not a velocity line\n")
    with pytest.warns(DeepAccidentWarning, match="skipped 2 frame"):
        scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=False)
    assert scene.meta.extra["frames"] == tuple(range(2, 40)) and scene.meta.extra["interpolated_frames"] == ()


def test_lenient_long_interior_gap_refuses_the_scene(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    for k in range(11, 17):  # 6 frames = 0.6 s > 0.5 s
        _paths(tmp_path, sc, k)[1].unlink()
    with pytest.raises(DeepAccidentFormatError, match=r"frames 11\.\.16 are unusable.*refused.*_011.pkl") as e:
        read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=False)
    assert e.value.field == "frame"


def test_no_usable_frame_names_the_cause(tmp_path):
    sc = fx.crossing_accident()
    sc.frames = sc.frames[:3]
    sc.ego = fx.Track(-100, "car", (4.8, 2.1, 1.6), sc.ego.poses[:3], sc.ego.velocities[:3])
    sc.others = []
    fx.write(tmp_path, sc)
    for k in sc.frames:
        _paths(tmp_path, sc, k)[1].unlink()
    with pytest.raises(DeepAccidentFormatError, match=r"no usable frame \(3 skipped\); first reason: .*_001\.pkl.*"
                                                      "calib file does not exist"):
        read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=False)


# ------------------------------------------------------------------------------------- meta, classes, splits


@pytest.mark.parametrize("keep, line, field", [(3, 4, "road_type"), (5, 6, "ego_direction"),
                                                   (6, 7, "other_direction"), (1, 2, "colliding_agents")])
def test_meta_with_missing_lines_is_rejected(tmp_path, keep, line, field):
    sc = fx.crossing_accident()
    sc.meta_lines = sc.meta_lines[:keep]
    fx.write(tmp_path, sc)
    for strict in (True, False):
        with pytest.raises(DeepAccidentFormatError, match="missing line") as e:
            read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=strict)
        assert (Path(e.value.path), e.value.line, e.value.field) == (_meta(tmp_path, sc), line, field)


@pytest.mark.parametrize("index, text, field", [
    (1, "colliding agents: ego", "colliding_agents"),
    (2, "agents id: 2675 x 2671 2691", "agents_id"),
    (0, "ClearNoon 2675 car 2671 car 1.0 same rear_side", "scenario_length"),
    (0, "ClearNoon abc car 2671 car 1.0 same rear_side 40", "collision_actor_id"),
    (3, "four-way junction", "road_type"),
])
def test_malformed_meta_lines_are_rejected(tmp_path, index, text, field):
    sc = fx.crossing_accident()
    sc.meta_lines[index] = text
    fx.write(tmp_path, sc)
    with pytest.raises(DeepAccidentFormatError) as e:
        read_scenario(tmp_path, sc.scenario_type, sc.scenario_name)
    assert (e.value.line, e.value.field) == (index + 1, field) and str(_meta(tmp_path, sc)) in str(e.value)


def test_unknown_class_is_kept_warned_and_written_back(tmp_path):
    sc = fx.crossing_accident()
    sc.others[1].cls = "bus"  # the pedestrian track, renamed to a class outside carla_categories
    fx.write(tmp_path / "in", sc)
    for strict in (True, False):
        with pytest.warns(DeepAccidentWarning, match=r"unknown object class\(es\) \['bus'\] \(ids \[512\]\) kept as "
                                                     "VEHICLE"):
            scene = read_scenario(tmp_path / "in", sc.scenario_type, sc.scenario_name, strict=strict)
        n = scene.agent_index(512)
        assert scene.agent_classes[n] == AgentClass.VEHICLE and scene.agent_valid[n].all()
        assert scene.meta.extra["unknown_classes"] == {512: "bus"}
    result = write_scenario(scene, tmp_path / "out")
    label = tmp_path / "out" / result.scenario_type / "ego_vehicle" / "label" / result.scenario_name
    assert any(line.startswith("bus ") for line in next(label.iterdir()).read_text().splitlines())


@pytest.mark.parametrize("bad", ["../x", "type1/../../etc", ".."])
def test_split_lines_that_are_paths_are_rejected_when_parsed(tmp_path, bad):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    with open(tmp_path / "val.txt", "a") as f:
        f.write(f"{sc.scenario_type} {bad}\n")
    for strict in (True, False):
        with pytest.raises(DeepAccidentFormatError, match="not a valid DeepAccident name") as e:
            DeepAccidentDataset(tmp_path, "val", strict=strict)
        assert (Path(e.value.path), e.value.line, e.value.field) == (tmp_path / "val.txt", 2, "scenario_name")


# ------------------------------------------------------------------------------------------------- export


def test_export_command_writes_a_readable_folder(tmp_path, capsys):
    out = tmp_path / "da"
    assert export_main(["--out", str(out), "--num-scenes", "3", "--seed", "1"]) == 0
    assert "wrote 3 scenes" in capsys.readouterr().out
    ds = DeepAccidentDataset(out, "val")
    assert len(ds) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeepAccidentWarning)
        scenes = list(ds)
    assert any(s.meta.is_accident for s in scenes)
    assert all(s.meta.extra["kinematics_check"]["passed"] for s in scenes)
    # the writer writes ego_vehicle only, under the reading the reader falls back to: it round-trips under it
    assert all((s.meta.extra["frame_convention"], s.meta.extra["frame_convention_source"]) ==
               ("one_frame", "default: no scenario with two views") for s in scenes)
    names = os.listdir(out / ds.entries[0][0] / "ego_vehicle" / "label" / ds.entries[0][1])
    assert all(n.rsplit("_", 1)[1] == f"{int(n.rsplit('_', 1)[1][:-4]):03d}.txt" for n in names)


# ------------------------------------------------------------------------ issue 27: warnings, split=None, origins


def test_a_single_row_absorbed_by_its_tracks_majority_class_is_warned_naming_file_and_line(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    label, _ = _paths(tmp_path, sc, 12)
    lines = label.read_text().splitlines()
    n = next(i for i, ln in enumerate(lines) if ln.split(" ")[-3:-2] == ["512"])  # the pedestrian's row
    lines[n] = "bus " + lines[n].split(" ", 1)[1]
    label.write_text("\n".join(lines) + "\n")
    for strict in (True, False):
        with pytest.warns(DeepAccidentWarning) as rec:
            scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=strict)
        hits = [str(w.message) for w in rec if "majority class" in str(w.message)]
        assert len(hits) == 1 and f"{label}, line {n + 1}, field 'class': 'bus' of id 512" in hits[0]
        assert scene.agent_classes[scene.agent_index(512)] == AgentClass.PEDESTRIAN


def test_a_lenient_duplicate_frame_is_warned_naming_the_file(tmp_path):
    sc = fx.crossing_accident()
    fx.write(tmp_path, sc)
    label, _ = _paths(tmp_path, sc, 7)
    dup = label.with_name(f"{sc.scenario_name}_7.txt")
    dup.write_text(label.read_text())
    with pytest.warns(DeepAccidentWarning, match=rf"{dup}, line -, field 'frame': duplicate frame 7.*skipped"):
        scene = read_scenario(tmp_path, sc.scenario_type, sc.scenario_name, strict=False)
    assert scene.meta.extra["frames"] == tuple(sc.frames)


def test_split_none_means_every_scenario_folder(tmp_path):
    from envs.scenes.sources import make_source, open_source

    a, b = fx.crossing_accident(), fx.turning_normal()
    fx.write(tmp_path, a, split="train")
    fx.write(tmp_path, b, split="val")
    every = {(a.scenario_type, a.scenario_name), (b.scenario_type, b.scenario_name)}
    assert set(open_source("deepaccident", root=tmp_path, split=None).collection.entries) == every
    assert set(make_source(str(tmp_path), split=None).collection.entries) == every
    assert open_source("deepaccident", root=tmp_path).collection.entries == ((a.scenario_type, a.scenario_name),)
    assert len(make_source(str(tmp_path))) == 1  # the default stays train.txt


def test_origin_records_the_scenario_folder_and_survives_a_changed_split_file(tmp_path):
    from envs.scenes.sources import DeepAccidentOrigin, open_source, resolve

    a, b = fx.crossing_accident(), fx.turning_normal()
    fx.write(tmp_path, a)
    fx.write(tmp_path, b)
    src = open_source("deepaccident", root=tmp_path, split="val", strict=False)
    origin = src.origin(1).to_dict()
    assert (origin["scenario_type"], origin["scenario_name"], origin["index"]) == (b.scenario_type, b.scenario_name, 1)
    old = {k: v for k, v in origin.items() if k not in ("scenario_type", "scenario_name")}  # before issue 27
    (tmp_path / "val.txt").write_text(f"{b.scenario_type} {b.scenario_name}\n{a.scenario_type} {a.scenario_name}\n")
    assert resolve(origin).meta.extra["scenario_name"] == b.scenario_name  # by name: not shifted
    assert resolve(old).meta.extra["scenario_name"] == a.scenario_name  # old origins still resolve, by index
    (tmp_path / "val.txt").write_text(f"{a.scenario_type} {a.scenario_name}\n")  # dropped from the split
    assert resolve(origin).meta.extra["scenario_name"] == b.scenario_name
    with pytest.raises(Exception, match="Town99"):
        resolve(DeepAccidentOrigin(root=str(tmp_path), index=0, split="val", scenario_type=b.scenario_type,
                                   scenario_name="Town99_x"))
