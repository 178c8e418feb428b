"""DeepAccident reader/writer on synthetic fixtures written by the tests in the exact on-disk layout.

No real DeepAccident data is used: every folder below is synthetic, written into ``tmp_path``, here with unpadded
frame names (``<name>_7.txt``; padded names and crossing traffic are in ``test_deepaccident_public.py``). The
expected world values are worked out by hand from the numbers written to disk under the ``"one_frame"`` reading
(the default for a scenario with one view, :mod:`envs.scenes.deepaccident.transforms`): label rows and calib
matrices both CARLA-native (left-handed lidar frame: x forward, y right); right-handed world = CARLA world with y and
yaw negated.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from envs.scenes.deepaccident import (
    DeepAccidentDataset,
    DeepAccidentFormatError,
    DeepAccidentWarning,
    load_calib,
    read_scenario,
    write_scenario,
)
from envs.scenes.scene import AgentClass, Scene, SceneMeta
from rewards.geometry import NAVSIM_EGO, box_corners

ACC = ("type1_subtype1_accident", "Town03_type001_subtype0001_scenario00001")
NORM = ("type1_subtype1_normal", "Town04_type001_subtype0001_scenario00002")
ACC_FRAMES = range(3, 14)  # contiguous, not starting at 0 or 1
NORM_FRAMES = range(1, 6)
R = NAVSIM_EGO.rear_axle_to_center

# ----------------------------------------------------------------------------------------- synthetic fixtures


def _label_dir(root: Path, key: tuple[str, str]) -> Path:
    return root / key[0] / "ego_vehicle" / "label" / key[1]


def _label_path(root: Path, key: tuple[str, str], frame: int) -> Path:
    return _label_dir(root, key) / f"{key[1]}_{frame}.txt"


def _calib_path(root: Path, key: tuple[str, str], frame: int) -> Path:
    return root / key[0] / "ego_vehicle" / "calib" / key[1] / f"{key[1]}_{frame}.pkl"


def _meta_path(root: Path, key: tuple[str, str]) -> Path:
    return root / key[0] / "meta" / f"{key[1]}.txt"


def _carla_e2w(x: float, y: float, yaw_deg: float) -> np.ndarray:
    """CARLA-style ego_to_world: rotation about z by the CARLA yaw, translation (x, y, 0)."""
    c, s = math.cos(math.radians(yaw_deg)), math.sin(math.radians(yaw_deg))
    return np.array([[c, -s, 0, x], [s, c, 0, y], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _lidar_to_ego() -> np.ndarray:
    m = np.eye(4)
    m[2, 3] = 1.9
    return m


def _write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)


def _row(cls, x, y, l, w, yaw, vx, vy, obj_id, pts=120, vis="True", z=-1.0, h=1.5) -> str:
    return f"{cls} {x} {y} {z} {l} {w} {h} {yaw} {vx} {vy} {obj_id} {pts} {vis}"


def write_synthetic_root(root: Path) -> None:
    """Two synthetic scenarios in the DeepAccident layout, plus train.txt / val.txt.

    Accident scenario (frames 3..13): the ego drives along CARLA +y (CARLA yaw 90 deg) at 1 m per frame from
    (100, 50 + k). Object 501 (car 4.5 x 2.0) stands still at CARLA (100.5, 65), 0.5 m to the ego's left (label y
    -0.5: CARLA's y points right): in the lidar frame it sits at (15 - k, 0.5), so with the ego row's 4.0 m length the boxes first overlap at
    frame 11. Pedestrian 777 is seen on frames 5..9 only, to the ego's right (label y > 0), facing away to the right
    and walking that way at 1.5 m/s (label yaw +pi/2 and vy +1.5: CARLA's clockwise sign). Motorcycle 42 follows 8 m
    behind at the ego's speed. One id -1 row on frame 4. Every object moves consistently with its velocity.
    """
    a_type, a_name = ACC
    for k in ACC_FRAMES:
        rows = [
            "10.0 0.0",
            _row("car", 0.0, 0.0, 4.0, 1.8, 0.0, 10.0, 0.0, -100),
            _row("car", 15 - k, -0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501),
            _row("motorcycle", -8.0, 0.0, 2.0, 0.8, 0.0, 10.0, 0.0, 42),
        ]
        if 5 <= k <= 9:
            rows.append(_row("pedestrian", 12.0 - k, 3.0 + 0.15 * (k - 7), 0.6, 0.6, math.pi / 2, 0.0, 1.5, 777,
                             vis="False"))
        if k == 4:
            rows.append(_row("car", 30.0, 0.0, 4.0, 2.0, 0.0, 0.0, 0.0, -1))
        _write(_label_path(root, ACC, k), "\n".join(rows) + "\n")
        calib = {"ego_to_world": _carla_e2w(100.0, 50.0 + k, 90.0), "lidar_to_ego": _lidar_to_ego(),
                 "intrinsic_Camera_Front": np.eye(3), "lidar_to_Camera_Front": np.eye(4)}
        _write(_calib_path(root, ACC, k), pickle.dumps(calib))
    _write(_meta_path(root, ACC), "\n".join([
        "MidRainSunset 2675 car 501 car 1095.9534535970056 same rear_side 13",
        "colliding agents: ego other",
        "agents id: 2675 2690 2671 2691",
        "road_type: four-way junction",
        "another_vehicle_spawn_side: opposite",
        "ego_vehicle_direction: right",
        "other_vehicle_direction: left",
    ]) + "\n")

    for k in NORM_FRAMES:
        rows = [
            "5.0 0.0",
            _row("van", 20.0 + 0.3 * math.cos(0.5) * (k - 1) - 0.5 * (k - 1), 4.0 + 0.3 * math.sin(0.5) * (k - 1),
                 5.0, 2.1, 0.5, 3 * math.cos(0.5), 3 * math.sin(0.5), 8),
            _row("truck", -30.0 - 0.5 * (k - 1), -4.0, 8.0, 2.6, 0.0, 0.0, 0.0, 20045),
            "",
        ]
        _write(_label_path(root, NORM, k), "\n".join(rows))
        _write(_calib_path(root, NORM, k), pickle.dumps({"ego_to_world": _carla_e2w(0.5 * k, 0.0, 0.0),
                                                         "lidar_to_ego": _lidar_to_ego()}))
    _write(_meta_path(root, NORM), "\n".join([
        "ClearNoon -1 -1 -1 -1 -1 -1 -1 5",
        "colliding agents: none none",
        "agents id: 3001 3002 3003 3004",
        "road_type: three-way junction",
        "another_vehicle_spawn_side: same",
        "ego_vehicle_direction: straight",
        "other_vehicle_direction: left",
    ]) + "\n")
    _write(root / "train.txt", f"{ACC[0]} {ACC[1]}\n{NORM[0]} {NORM[1]}\n")
    _write(root / "val.txt", f"{NORM[0]} {NORM[1]}\n")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    write_synthetic_root(tmp_path)
    return tmp_path


def _check_error(excinfo, path: Path, line: int | None, field: str) -> None:
    err = excinfo.value
    assert isinstance(err, ValueError)
    assert (Path(err.path), err.line, err.field) == (Path(path), line, field), str(err)
    msg = str(err)
    assert str(path) in msg and repr(field) in msg
    assert (f"line {line}," if line is not None else "line -,") in msg


def _replace_line(path: Path, line: int, new: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n")


# ------------------------------------------------------------------------------------------------ reading


def test_accident_scenario_poses_classes_velocities(root):
    scene = read_scenario(root, *ACC)
    assert isinstance(scene, Scene) and scene.map is None
    assert scene.meta.source == "deepaccident" and scene.meta.scenario_type == ACC[0]
    assert scene.dt == pytest.approx(0.1) and scene.num_frames == 11
    k = np.arange(3, 14)
    # the ego geometry is the labelled -100 box (4.0 x 1.8), NAVSIM's proportions scaled to its length
    assert (scene.ego_params.length, scene.ego_params.width) == (4.0, 1.8)
    r = scene.ego_params.rear_axle_to_center
    assert r == pytest.approx(R * 4.0 / NAVSIM_EGO.length)
    # ego centre (CARLA (100, 50 + k), yaw 90 deg) -> right-handed (100, -50 - k), yaw -90 deg; rear axle r behind
    expected_ego = np.stack([np.full(11, 100.0), -50.0 - k + r, np.full(11, -math.pi / 2)], axis=1)
    np.testing.assert_allclose(scene.ego_poses, expected_ego, atol=1e-9)
    np.testing.assert_allclose(scene.ego_velocities, np.tile([0.0, -10.0], (11, 1)), atol=1e-9)

    assert scene.agent_ids.tolist() == [42, 501, 777]  # -100 (ego) and -1 rows are not agents
    assert scene.agent_classes.tolist() == [AgentClass.CYCLIST, AgentClass.VEHICLE, AgentClass.PEDESTRIAN]
    np.testing.assert_allclose(scene.agent_sizes, [[2.0, 0.8], [4.5, 2.0], [0.6, 0.6]])
    car = scene.agent_index(501)
    np.testing.assert_allclose(scene.agent_poses[car], np.tile([100.5, -65.0, -math.pi / 2], (11, 1)), atol=1e-9)
    np.testing.assert_allclose(scene.agent_velocities[car], 0.0, atol=1e-9)
    moto = scene.agent_index(42)
    np.testing.assert_allclose(scene.agent_poses[moto, :, 1], -42.0 - k, atol=1e-9)
    np.testing.assert_allclose(scene.agent_velocities[moto], np.tile([0.0, -10.0], (11, 1)), atol=1e-9)

    ped = scene.agent_index(777)
    assert scene.agent_valid[ped].tolist() == [2 <= t <= 6 for t in range(11)]
    # frame 7 (t = 4): label (5, -3) = CARLA lidar (5, 3), i.e. CARLA (100, 57) + (-3, 5); heading CARLA 180 deg
    # -> right-handed (97, -62), yaw pi, walking (-1.5, 0) (west, the way it faces)
    t = 4
    np.testing.assert_allclose(scene.agent_poses[ped, t, :2], [97.0, -62.0], atol=1e-9)
    assert abs(math.remainder(scene.agent_poses[ped, t, 2] - math.pi, 2 * math.pi)) < 1e-9
    np.testing.assert_allclose(scene.agent_velocities[ped, t], [-1.5, 0.0], atol=1e-9)
    # padding: finite poses equal to the first / last seen ones, zero velocity
    np.testing.assert_allclose(scene.agent_poses[ped, 0], scene.agent_poses[ped, 2])
    np.testing.assert_allclose(scene.agent_poses[ped, 10], scene.agent_poses[ped, 6])
    np.testing.assert_allclose(scene.agent_velocities[ped, 0], 0.0)


def test_accident_meta_and_collision(root):
    scene = read_scenario(root, *ACC)
    m, x = scene.meta, scene.meta.extra
    assert m.colliding_agent_id == 501 and m.collision_frame == 8 and m.is_accident  # frame 11 = index 8
    assert x["collision_raw_frame"] == 11
    assert (x["town"], x["weather"], x["time_of_day"]) == ("Town03", "MidRain", "Sunset")
    assert x["collision_tokens"] == ("2675", "car", "501", "car", "1095.9534535970056", "same", "rear_side")
    assert x["collision_status"] == "collides_between_vehicles"
    assert x["colliding_agents"] == ("ego", "other") and x["observer_actor_id"] == 2675
    assert (x["junction_type"], x["spawn_side"]) == ("four-way junction", "opposite")
    assert (x["ego_direction"], x["other_direction"]) == ("right", "left")
    assert x["scenario_length"] == 13 and x["frames"] == tuple(range(3, 14))
    assert x["ego_box_size"] == (4.0, 1.8) and x["unidentified_rows"] == 1
    assert x["skipped_frames"] == 0 and x["skipped_lines"] == 0
    assert x["collision_frame_source"] == "overlap" and x["collision_frame_overlap"] == 8
    assert x["collision_disagreements"] == () and x["kinematics_check"]["passed"]
    assert json.loads(json.dumps(dict(x)))["town"] == "Town03"  # extra stays plain, serialisable data


def test_normal_scenario(root):
    scene = read_scenario(root, *NORM)
    assert scene.meta.collision_frame is None and scene.meta.colliding_agent_id is None
    x = scene.meta.extra
    assert x["collision"] is False and x["collision_status"] == "no_collision" and "no collision" in x["collision_note"]
    assert x["town"] == "Town04" and x["junction_type"] == "three-way junction"
    assert scene.agent_ids.tolist() == [8, 20045]
    assert scene.agent_classes.tolist() == [AgentClass.VEHICLE, AgentClass.VEHICLE]
    assert x["static_decoration_ids"] == (20045,)
    # ego yaw 0 at (0.5, 0), no -100 row: the ego box is the public default at the lidar origin
    assert x["ego_box_source"].startswith("public default") and scene.ego_params.length == 3.99
    np.testing.assert_allclose(scene.ego_box_centers()[0], [0.5, 0.0, 0.0], atol=1e-9)
    # van at label (20, -4) (4 m to the right), label yaw 0.5 and vy > 0 (CARLA's clockwise sign): right-handed
    # (20.5, -4), yaw -0.5, moving along its heading
    np.testing.assert_allclose(scene.agent_poses[0, 0], [20.5, -4.0, -0.5], atol=1e-9)
    np.testing.assert_allclose(scene.agent_velocities[0, 0], [3 * math.cos(0.5), -3 * math.sin(0.5)], atol=1e-9)


def test_accident_folder_without_collision_in_meta(root):
    _replace_line(_meta_path(root, ACC), 1, "ClearNight -1 -1 -1 -1 -1 -1 -1 13")
    _replace_line(_meta_path(root, ACC), 2, "colliding agents: none none")
    with pytest.warns(DeepAccidentWarning, match=f"{ACC[1]}: meta and boxes disagree: agent 501's box overlaps"):
        scene = read_scenario(root, *ACC)
    assert scene.meta.collision_frame is None and scene.meta.colliding_agent_id is None
    assert scene.meta.extra["collision"] is False and scene.meta.extra["time_of_day"] == "Night"
    assert scene.meta.extra["first_overlap_any"] == [501, 8]  # the boxes' view is kept beside meta's


def test_collision_not_involving_the_ego(root):
    _replace_line(_meta_path(root, ACC), 1, "ClearNoon 2690 car 2691 car 12.5 same rear_side 13")
    _replace_line(_meta_path(root, ACC), 2, "colliding agents: ego_behind other_behind")
    with pytest.warns(DeepAccidentWarning, match="no collision of ego_vehicle"):
        scene = read_scenario(root, *ACC)
    assert scene.meta.collision_frame is None and scene.meta.colliding_agent_id is None
    assert "does not involve ego_vehicle" in scene.meta.extra["collision_note"]


def test_collision_found_by_overlap_when_meta_id_unknown(root):
    _replace_line(_meta_path(root, ACC), 1, "ClearNoon 2675 car 999 car 12.5 same rear_side 13")
    with pytest.warns(DeepAccidentWarning, match="colliding actor 999 has no label track"):
        scene = read_scenario(root, *ACC)
    assert (scene.meta.colliding_agent_id, scene.meta.collision_frame) == (501, 8)
    assert "overlap" in scene.meta.extra["collision_note"]
    assert scene.meta.extra["collision_frame_source"] == "overlap_any_agent"


def test_key_frames_only_aligned_to_last_frame(root):
    scene = read_scenario(root, *ACC, key_frames_only=True)
    assert scene.dt == pytest.approx(0.5) and scene.meta.extra["frames"] == (3, 8, 13)
    r = scene.ego_params.rear_axle_to_center
    np.testing.assert_allclose(scene.ego_poses[:, 1], [-53.0 + r, -58.0 + r, -63.0 + r], atol=1e-9)
    assert scene.meta.collision_frame == 2  # first key frame with overlap: 13


def test_dataset_split_and_all(root):
    train = DeepAccidentDataset(root, "train")
    assert len(train) == 2 and train.entries == (ACC, NORM)
    scenes = list(train)
    assert [s.meta.scenario_type for s in scenes] == [ACC[0], NORM[0]]
    assert train[-1].meta.extra["scenario_name"] == NORM[1]
    assert len(DeepAccidentDataset(root, "val")) == 1
    assert DeepAccidentDataset(root, None).entries == (ACC, NORM)
    with pytest.raises(TypeError):
        train["0"]


# ------------------------------------------------------------------------------------- malformed input


def test_missing_meta(root):
    os.remove(_meta_path(root, ACC))
    with pytest.raises(DeepAccidentFormatError) as e:
        read_scenario(root, *ACC)
    _check_error(e, _meta_path(root, ACC), None, "meta")


def test_meta_line_too_few_tokens(root):
    _replace_line(_meta_path(root, ACC), 1, "ClearNoon -1 -1 -1")
    with pytest.raises(DeepAccidentFormatError) as e:
        read_scenario(root, *ACC)
    _check_error(e, _meta_path(root, ACC), 1, "collision_status")


@pytest.mark.parametrize(
    "new_row, field",
    [
        (_row("car", "abc", 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501), "x"),
        (_row("car", 5.0, 0.5, 4.5, 2.0, 0.0, "fast", 0.0, 501), "vx"),
        (_row("car", 5.0, 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501) + " extra", "tokens"),
        ("car 5.0 0.5", "tokens"),
        (_row("car", 5.0, 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501, vis="yes"), "camera_visible"),
        (_row("car", 5.0, "nan", 4.5, 2.0, 0.0, 0.0, 0.0, 501), "y"),
        (_row("car", 5.0, 0.5, 4.5, 2.0, "inf", 0.0, 0.0, 501), "yaw"),
        (_row("car", 5.0, 0.5, -4.5, 2.0, 0.0, 0.0, 0.0, 501), "l"),
        (_row("car", 5.0, 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501, h=-1.0), "h"),
        (_row("car", 5.0, 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, "5x1"), "id"),
        (_row("3.5", 5.0, 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501), "class"),
    ],
)
def test_bad_label_row(root, new_row, field):
    path = _label_path(root, ACC, 6)
    _replace_line(path, 3, new_row)
    with pytest.raises(DeepAccidentFormatError) as e:
        read_scenario(root, *ACC)
    _check_error(e, path, 3, field)


def test_duplicate_id_in_a_frame(root):
    path = _label_path(root, ACC, 6)
    _replace_line(path, 3, _row("car", 5.0, 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 42))
    with pytest.raises(DeepAccidentFormatError, match="id 42 repeats line 3") as e:
        read_scenario(root, *ACC)
    _check_error(e, path, 4, "id")  # the motorcycle row on line 4 is the second id 42


def test_bad_ego_velocity_line(root):
    path = _label_path(root, ACC, 5)
    _replace_line(path, 1, "10.0")
    with pytest.raises(DeepAccidentFormatError) as e:
        read_scenario(root, *ACC)
    _check_error(e, path, 1, "ego_velocity")


def test_frame_gap(root):
    os.remove(_label_path(root, ACC, 7))
    with pytest.raises(DeepAccidentFormatError, match="gap: 6 is followed by 8") as e:
        read_scenario(root, *ACC)
    _check_error(e, _label_dir(root, ACC), None, "frame")


def test_duplicate_frame(root):
    dup = _label_dir(root, ACC) / f"{ACC[1]}_07.txt"
    dup.write_text(_label_path(root, ACC, 7).read_text())
    with pytest.raises(DeepAccidentFormatError, match="duplicate frame 7") as e:
        read_scenario(root, *ACC)
    assert e.value.field == "frame" and Path(e.value.path).parent == _label_dir(root, ACC)


def test_split_names_absent_scenario(root):
    with open(root / "train.txt", "a") as f:
        f.write("type1_subtype2_accident Town05_type001_subtype0002_scenario00009\n")
    with pytest.raises(DeepAccidentFormatError) as e:
        DeepAccidentDataset(root, "train")
    _check_error(e, root / "train.txt", 3, "scenario_name")
    with pytest.warns(DeepAccidentWarning):
        lenient = DeepAccidentDataset(root, "train", strict=False)
    assert len(lenient) == 2 and len(lenient.skipped_entries) == 1


def test_empty_scenario_folder(root):
    for frame in NORM_FRAMES:
        os.remove(_label_path(root, NORM, frame))
    with pytest.raises(DeepAccidentFormatError, match="empty scenario folder") as e:
        read_scenario(root, *NORM)
    _check_error(e, _label_dir(root, NORM), None, "label")


class _RunsCode:
    def __reduce__(self):
        return (os.getpid, ())


@pytest.mark.parametrize(
    "content, field",
    [
        ("truncated", "pickle"),
        (pickle.dumps([np.eye(4)]), "pickle"),
        (pickle.dumps({"lidar_to_ego": np.eye(4)}), "ego_to_world"),
        (pickle.dumps({"ego_to_world": np.eye(3), "lidar_to_ego": np.eye(4)}), "ego_to_world"),
        (pickle.dumps({"ego_to_world": np.eye(4), "lidar_to_ego": np.eye(4), "x": _RunsCode()}), "pickle"),
    ],
)
def test_bad_calib(root, content, field):
    path = _calib_path(root, ACC, 9)
    if content == "truncated":
        content = path.read_bytes()[:40]
    path.write_bytes(content)
    with pytest.raises(DeepAccidentFormatError) as e:
        read_scenario(root, *ACC)
    _check_error(e, path, None, field)


def test_calib_loader_keeps_camera_matrices_and_reads_old_protocols(root):
    calib = load_calib(_calib_path(root, ACC, 3))
    assert set(calib) >= {"ego_to_world", "lidar_to_ego", "intrinsic_Camera_Front"}
    path = _calib_path(root, ACC, 4)
    expected = load_calib(path)["ego_to_world"]
    for protocol in (2, 5):  # protocol 2 stores array bytes via _codecs.encode
        path.write_bytes(pickle.dumps({"ego_to_world": expected, "lidar_to_ego": np.eye(4)}, protocol=protocol))
        np.testing.assert_array_equal(load_calib(path)["ego_to_world"], expected)


# ----------------------------------------------------------------------------------------- strict=False


def test_lenient_skips_and_counts(root):
    # behaviour changed on purpose (issue 17): one bad calib no longer drops the frames before it; the frame is
    # interpolated from its neighbours
    _replace_line(_label_path(root, ACC, 10), 4, _row("car", 1, 1, 4, 2, 0, 0, 0, 42, vis="maybe"))
    _replace_line(_label_path(root, ACC, 11), 3, _row("car", "x", 0.5, 4.5, 2.0, 0.0, 0.0, 0.0, 501))
    _calib_path(root, ACC, 5).write_bytes(b"\x80\x04trunc")
    with pytest.raises(DeepAccidentFormatError):
        read_scenario(root, *ACC)
    with pytest.warns(DeepAccidentWarning, match="skipped 1 frame"):
        scene = read_scenario(root, *ACC, strict=False)
    x = scene.meta.extra
    assert x["frames"] == tuple(range(3, 14)) and x["interpolated_frames"] == (5,)
    assert x["skipped_frames"] == 1 and x["skipped_lines"] == 2
    assert any("'camera_visible'" in r for r in x["skip_reasons"]) and any("'x'" in r for r in x["skip_reasons"])
    assert any("pickle" in r and "_5.pkl" in r for r in x["skip_reasons"])
    moto, car = scene.agent_index(42), scene.agent_index(501)
    assert not scene.agent_valid[moto, 10 - 3] and not scene.agent_valid[car, 11 - 3]
    assert scene.agent_valid[moto].sum() == 10
    # frame 5 (t = 2) is the mean of frames 4 and 6 for the ego and the agents seen on both sides
    np.testing.assert_allclose(scene.ego_poses[2], 0.5 * (scene.ego_poses[1] + scene.ego_poses[3]), atol=1e-9)
    np.testing.assert_allclose(scene.agent_poses[moto, 2], 0.5 * (scene.agent_poses[moto, 1] +
                                                                  scene.agent_poses[moto, 3]), atol=1e-9)
    # car 501's row on frame 11 (index 8) was skipped: its first overlap with the ego is now frame 12
    assert scene.agent_valid[moto, 2] and scene.meta.collision_frame == 9


def test_lenient_missing_label_is_interpolated(root):
    os.remove(_label_path(root, ACC, 10))
    with pytest.warns(DeepAccidentWarning, match="interpolated frames \\[10\\]"):
        scene = read_scenario(root, *ACC, strict=False)
    assert scene.meta.extra["frames"] == tuple(range(3, 14)) and scene.meta.extra["skipped_frames"] == 1


# ------------------------------------------------------------------------------------------------- writing


def _hand_built_scene(T: int = 30) -> Scene:
    """A turning ego; a car that enters its path (first box overlap at frame 20), a pedestrian seen on frames 5..24,
    a cyclist and a static cone (not exportable)."""
    t = np.arange(T) * 0.1
    yaw = 0.4 + 0.05 * t
    speed = 8.0
    ego = np.stack([10 + speed * t * np.cos(0.4), -3 + speed * t * np.sin(0.4), yaw], axis=1)
    ego_v = np.stack([speed * np.cos(yaw), speed * np.sin(yaw)], axis=1)
    centers = ego.copy()
    centers[:, 0] += R * np.cos(yaw)
    centers[:, 1] += R * np.sin(yaw)
    # the car drives along the ego's left normal at frame 20 and reaches the ego box there
    c20, n20 = centers[20], np.array([-np.sin(yaw[20]), np.cos(yaw[20])])
    car_speed = 5.0
    car_xy = c20[:2] + n20[None, :] * (3.2 + car_speed * (20 - np.arange(T)) * 0.1)[:, None]
    car_yaw = math.atan2(-n20[1], -n20[0])
    car = np.column_stack([car_xy, np.full(T, car_yaw)])
    ped = np.column_stack([40 - 0.1 * np.arange(T), 12 + 0.05 * np.arange(T), np.full(T, -2.0)])
    cyc = np.column_stack([np.linspace(-20, 10, T), np.full(T, 30.0), np.full(T, 0.0)])  # rides east, facing east
    cone = np.tile([5.0, 5.0, 0.0], (T, 1))
    poses = np.stack([car, ped, cyc, cone])
    vels = np.zeros((4, T, 2))
    vels[0] = -n20 * car_speed
    vels[1] = [-1.0, 0.5]
    vels[2] = [30 / ((T - 1) * 0.1), 0.0]
    valid = np.ones((4, T), dtype=bool)
    valid[1, :5] = valid[1, 25:] = False
    scene = Scene(
        scene_id="synthetic/cut_in/000042",
        dt=0.1,
        ego_poses=ego,
        ego_velocities=ego_v,
        agent_ids=[3, 17, 4, 900],
        agent_classes=[AgentClass.VEHICLE, AgentClass.PEDESTRIAN, AgentClass.CYCLIST, AgentClass.STATIC],
        agent_sizes=[[4.6, 1.9], [0.7, 0.7], [1.8, 0.7], [0.4, 0.4]],
        agent_poses=poses,
        agent_velocities=vels,
        agent_valid=valid,
        map=None,
        meta=SceneMeta("synthetic", "cut_in", colliding_agent_id=3, collision_frame=20,
                       extra={"weather_time": "CloudySunset", "junction_type": "four-way junction"}),
    )
    return scene


def _first_overlap_frame(scene: Scene, row: int) -> int:
    """Independent overlap check with shapely polygons (not the reader's SAT)."""
    from shapely.geometry import Polygon

    ego_boxes = box_corners(scene.ego_box_centers(), scene.ego_params.length, scene.ego_params.width)
    boxes = box_corners(scene.agent_poses[row], *scene.agent_sizes[row])
    return next(t for t in range(scene.num_frames) if Polygon(ego_boxes[t]).intersection(Polygon(boxes[t])).area > 0)


def test_round_trip(tmp_path):
    scene = _hand_built_scene()
    assert _first_overlap_frame(scene, 0) == 20  # the fixture really collides at its collision frame
    with pytest.warns(DeepAccidentWarning, match="STATIC"):
        result = write_scenario(scene, tmp_path, first_frame=101)
    assert result.skipped_static_ids == (900,) and result.frames == tuple(range(101, 131))
    assert (tmp_path / "train.txt").read_text() == f"{result.scenario_type} {result.scenario_name}\n"
    back = read_scenario(tmp_path, result.scenario_type, result.scenario_name)
    assert back.dt == pytest.approx(scene.dt) and back.num_frames == scene.num_frames
    np.testing.assert_allclose(back.ego_poses, scene.ego_poses, atol=1e-6)
    np.testing.assert_allclose(back.ego_velocities, scene.ego_velocities, atol=1e-6)
    assert sorted(back.agent_ids.tolist()) == [3, 4, 17]
    for i, agent_id in enumerate(back.agent_ids):
        j = scene.agent_index(int(agent_id))
        m = scene.agent_valid[j]
        assert back.agent_classes[i] == scene.agent_classes[j]
        assert back.agent_valid[i].tolist() == m.tolist()
        np.testing.assert_allclose(back.agent_sizes[i], scene.agent_sizes[j], atol=1e-6)
        d = back.agent_poses[i, m] - scene.agent_poses[j, m]
        d[:, 2] = np.remainder(d[:, 2] + np.pi, 2 * np.pi) - np.pi
        np.testing.assert_allclose(d, 0.0, atol=1e-6)
        np.testing.assert_allclose(back.agent_velocities[i, m], scene.agent_velocities[j, m], atol=1e-6)
    assert (back.meta.colliding_agent_id, back.meta.collision_frame) == (3, 20)
    assert back.meta.extra["weather_time"] == "CloudySunset"
    assert back.meta.extra["junction_type"] == "four-way junction"
    assert back.meta.extra["town"] == "Synthetic"


def test_write_normal_scene_and_overwrite(tmp_path):
    normal = replace(_hand_built_scene(), meta=SceneMeta("synthetic", "cut_in"), scene_id="synthetic/normal/1")
    key = ("type1_subtype1_normal", "Town01_x_y_z")
    with pytest.warns(DeepAccidentWarning):
        first = write_scenario(normal, tmp_path, *key, split="val")
    assert first.frames == tuple(range(1, 31))
    meta_lines = _meta_path(tmp_path, key).read_text().splitlines()
    assert meta_lines[0].split()[1:8] == ["-1"] * 7 and meta_lines[1] == "colliding agents: none none"
    with pytest.raises(FileExistsError):
        write_scenario(normal, tmp_path, *key, split="val")
    shorter = replace(
        normal, ego_poses=normal.ego_poses[:10], ego_velocities=normal.ego_velocities[:10],
        agent_poses=normal.agent_poses[:, :10], agent_velocities=normal.agent_velocities[:, :10],
        agent_valid=normal.agent_valid[:, :10],
    )
    with pytest.warns(DeepAccidentWarning):
        write_scenario(shorter, tmp_path, *key, split="val", overwrite=True)
    assert len(list(_label_dir(tmp_path, key).iterdir())) == 10  # the old 30 frames were replaced, not merged
    back = DeepAccidentDataset(tmp_path, "val")
    assert len(back) == 1 and back[0].num_frames == 10 and back[0].meta.collision_frame is None
    assert (tmp_path / "val.txt").read_text() == f"{key[0]} {key[1]}\n"
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))  # no temp files left behind


def test_writer_rejects_unsupported_scenes(tmp_path):
    scene = _hand_built_scene()
    with pytest.raises(ValueError, match="dt=0.5"):
        write_scenario(replace(scene, dt=0.5), tmp_path)
    with pytest.raises(ValueError, match="reserved"):
        write_scenario(replace(scene, agent_ids=[3, 17, -100, 900]), tmp_path)
    with pytest.raises(ValueError, match="scenario_name"):
        write_scenario(scene, tmp_path, scenario_name="two words")
    assert not list(tmp_path.iterdir())


def test_read_then_write_then_read_real_layout_fixture(root, tmp_path_factory):
    scene = read_scenario(root, *ACC)
    out = tmp_path_factory.mktemp("export")
    result = write_scenario(scene, out)
    assert (result.scenario_type, result.scenario_name) == ACC and result.ego_actor_id == 2675
    again = read_scenario(out, *ACC)
    np.testing.assert_allclose(again.ego_poses, scene.ego_poses, atol=1e-6)
    m = scene.agent_valid
    np.testing.assert_allclose(again.agent_poses[m], scene.agent_poses[m], atol=1e-6)
    assert (again.meta.colliding_agent_id, again.meta.collision_frame) == (501, 8)


@pytest.mark.parametrize("scenario_type", ["rear_end", "pedestrian_occluded", "unprotected_left_turn", "normal"])
def test_bank_scenes_round_trip_through_the_layout(tmp_path, scenario_type):
    """Built-in synthetic scenes -> DeepAccident layout -> reader: same ego, agents (static ones are not
    representable and are skipped with a warning) and collision."""
    import warnings

    from envs.scenes.bank import generate_scene

    scene = generate_scene(scenario_type, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeepAccidentWarning)
        result = write_scenario(scene, tmp_path)
    back = read_scenario(tmp_path, result.scenario_type, result.scenario_name)
    assert back.meta.source == "deepaccident" and back.map is None and back.num_frames == scene.num_frames
    np.testing.assert_allclose(back.ego_poses[:, :2], scene.ego_poses[:, :2], atol=1e-6)
    np.testing.assert_allclose(np.cos(back.ego_poses[:, 2] - scene.ego_poses[:, 2]), 1.0, atol=1e-9)
    kept = [j for j in range(scene.num_agents) if scene.agent_classes[j] != AgentClass.STATIC]
    assert sorted(back.agent_ids.tolist()) == sorted(scene.agent_ids[kept].tolist())
    assert set(result.skipped_static_ids) == set(scene.agent_ids.tolist()) - set(back.agent_ids.tolist())
    for i, agent_id in enumerate(back.agent_ids):
        j = scene.agent_index(int(agent_id))
        assert back.agent_classes[i] == scene.agent_classes[j]
        np.testing.assert_allclose(back.agent_poses[i, :, :2], scene.agent_poses[j, :, :2], atol=1e-6)
        np.testing.assert_allclose(back.agent_velocities[i], scene.agent_velocities[j], atol=1e-6)
    assert back.meta.collision_frame == scene.meta.collision_frame
    assert back.meta.colliding_agent_id == scene.meta.colliding_agent_id
