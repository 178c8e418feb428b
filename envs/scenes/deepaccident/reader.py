"""Read DeepAccident scenarios into :class:`~envs.scenes.scene.Scene` objects.

Only the observing agent's ``label`` and ``calib`` folders and the scenario's ``meta`` file are read (images, lidar
and BEV files are ignored; the other V2X agents' folders are optional). DeepAccident has no HD map, so
``Scene.map`` is None: map-based scores (drivable area, driving direction, lanes, route progress) are unavailable
for these scenes unless the user supplies a map.

* **Paths.** Frames are listed from the label files; every other per-frame file is named from the label file's
  own stem (``<stem>.pkl``), as the converter does (``carla_converter.py`` lines 139-160), so zero-padded
  (``..._scenario00021_024``) and unpadded names both load.
* **Frames.** Two readings of a label row, :mod:`envs.scenes.deepaccident.transforms`; the data decides between
  them (``frame_convention="auto"``, :mod:`envs.scenes.deepaccident.views`): on a scenario with two views or more,
  the reading under which every object seen by two observers lands on one world pose; otherwise the reading the
  dataset decided from its other scenarios, else :data:`~envs.scenes.deepaccident.transforms.DEFAULT_CONVENTION`.
  A forced reading (``"one_frame"`` / ``"mixed"``) that makes the views disagree is an error naming the scenario
  and the residual. The reading, why, and the residuals are in ``meta.extra["frame_convention"]``,
  ``["frame_convention_source"]``, ``["frame_residual_m"]`` and ``["frame_check"]``. The ego box is the label row -100 (else the
  public default box at the lidar origin); ``Scene.ego_params`` takes that box's length and width (see
  :func:`ego_params_for_box`), so the reader's collision search, the scorer and the renderer all use one ego box.
  The kinematic invariants (:mod:`envs.scenes.deepaccident.checks`) run on every scene read; a failure is warned about,
  naming the scenario, and kept in ``meta.extra["kinematics_check"]``.
* **Accidents.** Whether and with whom from the meta file; the frame from box overlap, else minimum distance
  (:mod:`envs.scenes.deepaccident.accident`); disagreements warned and kept in ``meta.extra``.
* **Lenient mode** (``strict=False``): a bad label line is skipped; a frame whose label or calib file is missing or
  unreadable is skipped alone. Skipped frames at the start or end shorten the scene. An interior run of skipped
  frames spanning at most :data:`MAX_INTERPOLATED_GAP` seconds is filled by linear interpolation (ego; agents seen
  on both sides, others invalid there) and listed in ``meta.extra["interpolated_frames"]``; a longer interior run
  **refuses** the scene (``DeepAccidentFormatError`` naming the frames and the first reason), rather than splitting
  it into scenes whose collision facts no longer match the meta file.

Calibration pickles are loaded with a restricted unpickler that only accepts numpy arrays/dtypes/scalars and
builtin containers; unpickling still deserves caution: **read only from a data root you trust**.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.scenes.deepaccident.accident import locate_collision
from envs.scenes.deepaccident.calib import load_calib
from envs.scenes.deepaccident.checks import KinematicsCheckConfig, check_kinematics
from envs.scenes.deepaccident.errors import DeepAccidentFormatError, DeepAccidentWarning
from envs.scenes.deepaccident.labels import (
    CLASS_MAP,
    EGO_ROW_ID,
    STATIC_DECORATION_MIN_ID,
    LabelRow,
    agent_class,
    parse_label_file,
)
from envs.scenes.deepaccident.layout import (
    KEY_FRAME_STRIDE,
    RAW_DT,
    check_name,
    list_frames,
    meta_path,
    read_split_file,
    sensor_dir,
    sibling_file,
)
from envs.scenes.deepaccident.meta import parse_meta
from envs.scenes.deepaccident.transforms import DEFAULT_CONVENTION, check_convention, labels_to_world
from envs.scenes.deepaccident.views import (
    AUTO,
    VIEW_TOLERANCE,
    available_views,
    check_views,
    choose_convention,
)
from envs.scenes.scene import Scene, SceneMeta
from rewards.geometry import (
    NAVSIM_EGO,
    VehicleParameters,
    center_to_rear_axle,
    wrap_angle,
)

LOG = logging.getLogger("envs.scenes.deepaccident")

MAX_CLASS_WARNINGS = 20
"""At most this many rows absorbed by their track's majority class are warned about one by one per scene."""

DATASET_SCAN_LIMIT = 10
"""A dataset in ``auto`` mode decides its reading from at most this many scenarios with two views or more."""

MAX_SKIP_REASONS = 50
"""At most this many skip reasons are kept in ``meta.extra["skip_reasons"]`` (the counts are always complete)."""

MAX_INTERPOLATED_GAP = 0.5
"""Lenient mode: longest interior run of unusable frames filled by interpolation [s] (5 raw frames, 1 key frame)."""

DEFAULT_CHECK = KinematicsCheckConfig()
"""Thresholds of the kinematic checks :func:`read_scenario` runs by default."""

PUBLIC_DEFAULT_EGO_BOX = (3.99, 1.85)
"""Ego box length, width [m] the public dataset class uses when a frame has no -100 row
(``DeepAccident_dataset.py`` lines 594 and 850)."""


def ego_params_for_box(length: float, width: float) -> VehicleParameters:
    """Ego geometry for a labelled ego box: NAVSIM's Pacifica (:data:`~rewards.geometry.NAVSIM_EGO`) when the box
    has its size (within 1 mm), else that size with the wheelbase and rear-axle offset scaled by the length ratio."""
    if abs(length - NAVSIM_EGO.length) < 1e-3 and abs(width - NAVSIM_EGO.width) < 1e-3:
        return NAVSIM_EGO
    ratio = length / NAVSIM_EGO.length
    return VehicleParameters(length=float(length), width=float(width), wheelbase=NAVSIM_EGO.wheelbase * ratio,
                             rear_axle_to_center=NAVSIM_EGO.rear_axle_to_center * ratio)


@dataclass
class _Frame:
    """One parsed frame: its number, the ego box pose and velocity, other rows in the world frame."""

    number: int
    ego_center: np.ndarray  # (3,) right-handed world box-centre pose
    ego_velocity: np.ndarray  # (2,) right-handed world velocity
    ego_size: tuple[float, float] | None  # the -100 row's length, width (None: no single -100 row)
    rows: list[LabelRow]  # object rows (no -100)
    poses: np.ndarray  # (K, 3) world box-centre poses of ``rows``
    velocities: np.ndarray  # (K, 2)
    unidentified: int  # rows with id -1 (skipped)
    path: Path  # the label file


class _Skips:
    """Counts and reasons of what ``strict=False`` skipped (``bad``: frame number -> reason, per skipped frame)."""

    def __init__(self) -> None:
        self.frames = 0
        self.lines = 0
        self.reasons: list[str] = []
        self.bad: dict[int, str] = {}

    def add(self, reason: str, *, frames: int = 0, lines: int = 0, frame: int | None = None) -> None:
        self.frames += frames
        self.lines += lines
        self.reasons.append(reason)
        if frame is not None:
            self.bad.setdefault(frame, reason)


def _select_frames(
    label_dir: Path, scenario_name: str, strict: bool, key_frames_only: bool, skips: _Skips
) -> tuple[list[tuple[int, Path]], list[int]]:
    """Label files to read and the frame-number grid of the scene.

    Duplicated frame numbers (``_7`` and ``_007``) and gaps are errors (``strict``); otherwise a duplicate is
    skipped and a missing number is a skipped frame (the gap logic of :func:`read_scenario` applies). Key frames are
    those with ``(last - frame) % 5 == 0``, ``last`` being the largest label frame (``carla_converter.py`` lines
    144-150).
    """
    unique: list[tuple[int, Path]] = []
    for number, path in list_frames(label_dir, scenario_name):
        if unique and unique[-1][0] == number:
            err = DeepAccidentFormatError(path, None, "frame", f"duplicate frame {number} (also {unique[-1][1].name})")
            if strict:
                raise err
            skips.add(str(err))
            warnings.warn(f"{err} (skipped: the first file of frame {number} is read)", DeepAccidentWarning,
                          stacklevel=3)
            continue
        if strict and unique and number != unique[-1][0] + 1:
            raise DeepAccidentFormatError(
                label_dir, None, "frame", f"frame numbers have a gap: {unique[-1][0]} is followed by {number}"
            )
        unique.append((number, path))
    step = KEY_FRAME_STRIDE if key_frames_only else 1
    last = unique[-1][0]
    selected = [(n, p) for n, p in unique if (last - n) % step == 0]
    present = {n for n, _ in selected}
    grid = list(range(selected[0][0], last + 1, step))
    for n in grid:
        if n not in present:
            skips.add(f"{label_dir}, line -, field 'frame': no label file for frame {n}", frames=1, frame=n)
    return selected, grid


def _parse_frame(number: int, label_path: Path, calib_dir: Path, strict: bool, skips: _Skips,
                 convention: str) -> _Frame:
    """Label and calib of one frame (the calib path from the label file's stem), moved to the world frame."""
    label = parse_label_file(label_path, strict=strict)
    calib = load_calib(sibling_file(calib_dir, label_path.stem, "pkl"))
    for reason in label.skipped:
        skips.add(reason, lines=1)
    e2w, l2e = calib["ego_to_world"], calib["lidar_to_ego"]
    ego_rows = [r for r in label.rows if r.obj_id == EGO_ROW_ID]
    rows = [r for r in label.rows if r.obj_id != EGO_ROW_ID]
    # One conversion for the object rows, the ego box and the line-1 velocity (a zero box carrying it). The ego box
    # is the -100 row when there is exactly one (DeepAccident_dataset.py lines 844-848), else the default box at the
    # lidar origin with yaw 0 (lines 849-850).
    ego_box = ego_rows[0].box if len(ego_rows) == 1 else (0.0,) * 7
    boxes = np.array([*(r.box for r in rows), ego_box, (0.0,) * 7]).reshape(-1, 7)
    vels = np.array([*(r.velocity for r in rows), (0.0, 0.0), label.ego_velocity]).reshape(-1, 2)
    poses, velocities = labels_to_world(boxes, vels, e2w, l2e, convention)
    ego_size = (ego_rows[0].box[3], ego_rows[0].box[4]) if len(ego_rows) == 1 else None
    ego_pose, ego_velocity = poses[-2], velocities[-1]
    poses, vels = poses[:-2], velocities[:-2]
    return _Frame(number, ego_pose, ego_velocity, ego_size, rows, poses, vels, label.unidentified, label_path)


def _fill_gaps(
    grid: list[int], frames: dict[int, _Frame], label_dir: Path, dt: float, skips: _Skips
) -> tuple[list[int], list[int], list[tuple[int, int, int, float]]]:
    """Trim unusable frames at both ends; check interior runs.

    Returns:
        the trimmed grid, the interpolated frame numbers, and per interpolated frame ``(t, a, b, w)``: its index in
        the trimmed grid, the indices of its usable neighbours and the weight of ``b``.

    Raises:
        DeepAccidentFormatError: no usable frame, or an interior run longer than :data:`MAX_INTERPOLATED_GAP`.
    """
    usable = [i for i, n in enumerate(grid) if n in frames]
    if not usable:
        first = skips.reasons[0] if skips.reasons else "-"
        raise DeepAccidentFormatError(label_dir, None, "frame",
                                      f"no usable frame ({skips.frames} skipped); first reason: {first}")
    grid = grid[usable[0]:usable[-1] + 1]
    max_run = round(MAX_INTERPOLATED_GAP / dt)
    interpolated: list[int] = []
    weights: list[tuple[int, int, int, float]] = []
    i = 0
    while i < len(grid):
        if grid[i] in frames:
            i += 1
            continue
        j = i
        while grid[j] not in frames:
            j += 1
        run = grid[i:j]
        if len(run) > max_run:
            first = skips.bad.get(run[0], "-")
            raise DeepAccidentFormatError(
                label_dir, None, "frame",
                f"frames {run[0]}..{run[-1]} are unusable: {len(run)} consecutive frames > {max_run} "
                f"({MAX_INTERPOLATED_GAP} s), too long to interpolate; the scene is refused (first reason: {first})"
            )
        for k, n in enumerate(run, start=1):
            interpolated.append(n)
            weights.append((i + k - 1, i - 1, j, k / (len(run) + 1)))
        i = j
    return grid, interpolated, weights


def _lerp_pose(a: np.ndarray, b: np.ndarray, w: float) -> np.ndarray:
    """Poses ``(..., 3)`` interpolated linearly in position and along the shorter arc in yaw."""
    out = a + w * (b - a)
    out[..., 2] = wrap_angle(a[..., 2] + w * wrap_angle(b[..., 2] - a[..., 2]))
    return out


def _assemble(grid: list[int], frames: dict[int, _Frame], weights: list[tuple[int, int, int, float]]) -> dict:
    """Ego arrays and agent tracks (joined by id) on ``grid``; interpolated frames filled from their neighbours."""
    T = len(grid)
    index = {n: t for t, n in enumerate(grid)}
    centers = np.zeros((T, 3))
    ego_vel = np.zeros((T, 2))
    obs: dict[int, list[tuple[int, np.ndarray, np.ndarray, float, float, str, str]]] = {}
    ego_sizes: list[tuple[float, float]] = []
    for n, fr in frames.items():
        t = index.get(n)
        if t is None:
            continue
        centers[t], ego_vel[t] = fr.ego_center, fr.ego_velocity
        if fr.ego_size is not None:
            ego_sizes.append(fr.ego_size)
        for r, p, v in zip(fr.rows, fr.poses, fr.velocities):
            obs.setdefault(r.obj_id, []).append((t, p, v, r.box[3], r.box[4], r.cls, f"{fr.path}, line {r.line}"))
    ids = sorted(obs)
    N = len(ids)
    poses = np.zeros((N, T, 3))
    vels = np.zeros((N, T, 2))
    valid = np.zeros((N, T), dtype=bool)
    sizes = np.zeros((N, 2))
    classes = np.zeros(N, dtype=np.int8)
    raw_classes: dict[int, str] = {}
    class_conflicts = []
    absorbed: list[str] = []
    for n, obj_id in enumerate(ids):
        seen = obs[obj_id]
        ts = np.array([s[0] for s in seen])
        poses[n, ts] = np.array([s[1] for s in seen])
        vels[n, ts] = np.array([s[2] for s in seen])
        valid[n, ts] = True
        sizes[n] = np.median([[s[3], s[4]] for s in seen], axis=0)
        names = Counter(s[5] for s in seen)
        raw = names.most_common(1)[0][0]
        classes[n] = int(agent_class(raw))
        if raw not in CLASS_MAP:
            raw_classes[obj_id] = raw
        if len({int(agent_class(c)) for c in names}) > 1:
            class_conflicts.append(obj_id)
        for s in sorted(seen, key=lambda s: s[0]):  # rows whose class the majority overrides, by file and line
            if s[5] != raw and (s[5] not in CLASS_MAP or agent_class(s[5]) != agent_class(raw)):
                absorbed.append(f"{s[6]}, field 'class': {s[5]!r} of id {obj_id} differs from the track's majority "
                                f"class {raw!r} ({names[raw]} of {len(seen)} rows); the track keeps {raw!r}")
    for t, a, b, w in weights:  # interior gaps: interpolate the ego, and agents seen on both sides
        centers[t] = _lerp_pose(centers[a], centers[b], w)
        ego_vel[t] = ego_vel[a] + w * (ego_vel[b] - ego_vel[a])
        both = valid[:, a] & valid[:, b]
        poses[both, t] = _lerp_pose(poses[both, a], poses[both, b], w)
        vels[both, t] = vels[both, a] + w * (vels[both, b] - vels[both, a])
        valid[both, t] = True
    for n in range(N):  # pad unobserved frames with the nearest earlier observation (the first one before)
        idx = np.maximum.accumulate(np.where(valid[n], np.arange(T), -1))
        idx[idx < 0] = np.flatnonzero(valid[n])[0]
        poses[n] = poses[n, idx]
    return dict(
        centers=centers, ego_velocities=ego_vel, ego_sizes=ego_sizes, ids=np.array(ids, dtype=np.int64),
        classes=classes, sizes=sizes, poses=poses, velocities=vels, valid=valid, raw_classes=raw_classes,
        class_conflicts=class_conflicts, absorbed=absorbed,
    )


def read_scenario(
    root: str | os.PathLike,
    scenario_type: str,
    scenario_name: str,
    *,
    strict: bool = True,
    key_frames_only: bool = False,
    agent: str = "ego_vehicle",
    ego_params: VehicleParameters | None = None,
    check: KinematicsCheckConfig | None = DEFAULT_CHECK,
    frame_convention: str = AUTO,
    undecided_convention: str = DEFAULT_CONVENTION,
    undecided_source: str = "default: no second view decides",
    view_tolerance: float = VIEW_TOLERANCE,
) -> Scene:
    """Read one scenario as seen by ``agent`` (see the module docstring for paths, frames, accidents, leniency).

    Args:
        root: the DeepAccident data root (holding ``train.txt`` and the ``<scenario_type>/`` folders).
        scenario_type: folder name, e.g. ``type1_subtype1_accident`` (stored as ``meta.scenario_type``).
        scenario_name: e.g. ``Town03_type001_subtype0001_scenario00030``; its first ``_`` token is the town.
        strict: raise :class:`DeepAccidentFormatError` on any bad frame or line; otherwise skip it (counted in
            ``meta.extra["skipped_frames"]`` / ``["skipped_lines"]``, with a :class:`DeepAccidentWarning`). A
            missing or malformed meta file or an empty scenario raise in both modes.
        key_frames_only: keep frames with ``(last - frame) % 5 == 0`` (2 Hz, aligned to the last frame as the
            official converter does); ``dt`` is then 0.5 s instead of 0.1 s.
        agent: the observing V2X agent whose labels and calib are read.
        ego_params: ego geometry; None (default): from the labelled ego box (:func:`ego_params_for_box`; the public
            default box when no frame has a -100 row).
        check: thresholds of the kinematic invariant checks, or None to skip them.
        frame_convention: ``"auto"`` (the scenario's views decide, :func:`~envs.scenes.deepaccident.views.
            choose_convention`), or a reading of :data:`~envs.scenes.deepaccident.transforms.CONVENTIONS` forced
            (checked against the views all the same: a disagreement raises, naming the scenario and the residual).
        undecided_convention, undecided_source: ``auto`` only: the reading (and the reason recorded) when the views
            cannot decide (one view, no shared object, or both readings agree); :class:`DeepAccidentDataset` passes
            the reading its other scenarios decided.
        view_tolerance: largest cross-view residual [m] that still agrees.

    Returns:
        a :class:`Scene` with ``map=None``, ``meta.source="deepaccident"``; agents are the label tracks joined by
        CARLA actor id (the observer's own ``-100`` row and id ``-1`` rows excluded), sorted by id; unobserved
        frames are padded with the nearest earlier (else the first) observed pose and zero velocity.
    """
    root = Path(root)
    for kind, value in (("scenario_type", scenario_type), ("scenario_name", scenario_name), ("agent", agent)):
        check_name(kind, value)
    if frame_convention != AUTO:
        check_convention(frame_convention)
    meta = parse_meta(meta_path(root, scenario_type, scenario_name))
    label_dir = sensor_dir(root, scenario_type, agent, "label", scenario_name)
    views = check_views(root, scenario_type, scenario_name, meta, strict=strict)
    convention, convention_source = choose_convention(
        frame_convention, views, label_dir, fallback=undecided_convention, fallback_source=undecided_source,
        strict=strict, tolerance=view_tolerance)
    calib_dir = sensor_dir(root, scenario_type, agent, "calib", scenario_name)
    dt = RAW_DT * (KEY_FRAME_STRIDE if key_frames_only else 1)
    skips = _Skips()
    selected, grid = _select_frames(label_dir, scenario_name, strict, key_frames_only, skips)
    frames: dict[int, _Frame] = {}
    for number, label_path in selected:
        try:
            frames[number] = _parse_frame(number, label_path, calib_dir, strict, skips, convention)
        except DeepAccidentFormatError as exc:
            if strict:
                raise
            skips.add(str(exc), frames=1, frame=number)
    grid, interpolated, weights = _fill_gaps(grid, frames, label_dir, dt, skips)
    tracks = _assemble(grid, frames, weights)
    unidentified = sum(frames[n].unidentified for n in grid if n in frames)

    if ego_params is None:
        box = np.median(tracks["ego_sizes"], axis=0) if tracks["ego_sizes"] else PUBLIC_DEFAULT_EGO_BOX
        ego_params = ego_params_for_box(float(box[0]), float(box[1]))
    ego_size = np.array([ego_params.length, ego_params.width])
    centers = tracks["centers"]
    facts = locate_collision(meta, agent, tracks["ids"], tracks["poses"], tracks["sizes"], tracks["valid"], centers,
                             ego_size)
    name = f"{scenario_type}/{scenario_name}"
    if skips.frames or skips.lines:
        warnings.warn(
            f"{name}: skipped {skips.frames} frame(s) and {skips.lines} line(s)"
            + (f", interpolated frames {interpolated}" if interpolated else "") + f"; first: {skips.reasons[0]}",
            DeepAccidentWarning, stacklevel=2,
        )
    if facts.disagreements:
        warnings.warn(f"{name}: meta and boxes disagree: " + "; ".join(facts.disagreements), DeepAccidentWarning,
                      stacklevel=2)
    for text in tracks["absorbed"][:MAX_CLASS_WARNINGS]:
        warnings.warn(f"{name}: {text}", DeepAccidentWarning, stacklevel=2)
    if len(tracks["absorbed"]) > MAX_CLASS_WARNINGS:
        warnings.warn(f"{name}: {len(tracks['absorbed']) - MAX_CLASS_WARNINGS} more row(s) absorbed by their track's "
                      "majority class", DeepAccidentWarning, stacklevel=2)
    if tracks["raw_classes"]:
        warnings.warn(f"{name}: unknown object class(es) {sorted(set(tracks['raw_classes'].values()))} (ids "
                      f"{sorted(tracks['raw_classes'])}) kept as {agent_class('?').name}", DeepAccidentWarning,
                      stacklevel=2)
    ids = tracks["ids"]
    extra = {
        "scenario_name": scenario_name,
        "agent": agent,
        "town": scenario_name.split("_")[0],
        "weather_time": meta.weather_time,
        "weather": meta.weather,
        "time_of_day": meta.time_of_day,
        "collision": meta.collision,
        "collision_tokens": meta.collision_tokens,
        "collision_status": meta.collision_status,
        "collision_actor_ids": meta.collision_actor_ids,
        "collision_actor_kinds": meta.collision_actor_kinds,
        "colliding_agents": meta.colliding_agents,
        "colliding_agents_line": meta.colliding_agents_line,
        "agent_actor_ids": dict(meta.agent_actor_ids),
        "observer_actor_id": meta.agent_actor_ids.get(agent),
        "junction_type": meta.junction_type,
        "spawn_side": meta.spawn_side,
        "ego_direction": meta.ego_direction,
        "other_direction": meta.other_direction,
        "scenario_length": meta.scenario_length,
        "meta_fields": dict(meta.fields),
        "meta_notes": meta.notes,
        **facts.as_extra(),
        "collision_raw_frame": None if facts.frame is None else grid[facts.frame],
        "frames": tuple(grid),
        "interpolated_frames": tuple(interpolated),
        "key_frames_only": key_frames_only,
        "ego_box_size": tuple(float(v) for v in ego_size),
        "ego_box_source": "label row -100" if tracks["ego_sizes"] else "public default box at the lidar origin",
        "static_decoration_ids": tuple(int(i) for i in ids if i > STATIC_DECORATION_MIN_ID),
        "unknown_classes": {int(k): v for k, v in tracks["raw_classes"].items()},
        "class_conflict_ids": tuple(tracks["class_conflicts"]),
        "class_absorbed_rows": tuple(tracks["absorbed"][:MAX_SKIP_REASONS]),
        "frame_convention": convention,
        "frame_convention_source": convention_source,
        "frame_residual_m": views.residual_m.get(convention) if views.comparisons else None,
        "frame_check": {**views.as_dict(), "tolerance_m": float(view_tolerance)},
        "unidentified_rows": unidentified,
        "skipped_frames": skips.frames,
        "skipped_lines": skips.lines,
        "skip_reasons": tuple(skips.reasons[:MAX_SKIP_REASONS]),
        "map_note": "DeepAccident has no HD map: map=None, map-based scores are unavailable",
    }
    suffix = "" if agent == "ego_vehicle" else f"/{agent}"
    scene = Scene(
        scene_id=f"deepaccident/{scenario_type}/{scenario_name}{suffix}" + ("@2Hz" if key_frames_only else ""),
        dt=dt,
        ego_poses=center_to_rear_axle(centers, ego_params),
        ego_velocities=tracks["ego_velocities"],
        agent_ids=ids,
        agent_classes=tracks["classes"],
        agent_sizes=tracks["sizes"],
        agent_poses=tracks["poses"],
        agent_velocities=tracks["velocities"],
        agent_valid=tracks["valid"],
        map=None,
        meta=SceneMeta(
            source="deepaccident",
            scenario_type=scenario_type,
            colliding_agent_id=facts.colliding_agent_id,
            collision_frame=facts.frame,
            extra=extra,
        ),
        ego_params=ego_params,
    )
    if check is None:
        return scene
    result = check_kinematics(scene, check)
    if not result.passed:
        warnings.warn(f"{name}: kinematic check failed (frame convention?): {result.summary()}; worst: "
                      + "; ".join(result.worst), DeepAccidentWarning, stacklevel=2)
    return dataclasses.replace(scene, meta=dataclasses.replace(
        scene.meta, extra={**scene.meta.extra, "kinematics_check": result.as_dict()}))


class DeepAccidentDataset(Sequence):
    """Scenarios of a DeepAccident root, read lazily (one :func:`read_scenario` call per item).

    Args:
        root: the data root.
        split: ``"train"``, ``"val"``, ``"test"`` (any ``<root>/<split>.txt``, e.g. ``"train_mini"``), or None for
            every ``<root>/<type>/<agent>/label/<name>/`` folder, sorted (hidden folders excluded).
        strict: passed to :func:`read_scenario`; also, a split line naming an absent scenario raises
            (``strict``) or is skipped, counted in :attr:`skipped_entries` and warned about. A split line whose
            names are paths (``../x``) always raises, naming the split file and line.
        key_frames_only, agent, ego_params: passed to :func:`read_scenario`.
        frame_convention: ``"auto"`` (default) or a forced reading, passed to :func:`read_scenario`. In ``auto`` the
            dataset also decides one reading for scenarios whose own views cannot (:attr:`convention`): from the
            first of its scenarios (at most :data:`DATASET_SCAN_LIMIT` with two views or more, in entry order)
            whose views decide, else :data:`~envs.scenes.deepaccident.transforms.DEFAULT_CONVENTION`. The choice
            is logged once per dataset (logger ``envs.scenes.deepaccident``), when the first scene is read.

    Attributes:
        entries: ``(scenario_type, scenario_name)`` pairs, in split-file order.
        skipped_entries: reasons for split lines skipped under ``strict=False``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = "train",
        strict: bool = True,
        *,
        key_frames_only: bool = False,
        agent: str = "ego_vehicle",
        ego_params: VehicleParameters | None = None,
        frame_convention: str = AUTO,
    ) -> None:
        if frame_convention != AUTO:
            check_convention(frame_convention)
        self.frame_convention = frame_convention
        self._convention: tuple[str, str, dict | None] | None = None
        self.root = Path(root)
        self.split = split
        self.strict = strict
        self.key_frames_only = key_frames_only
        self.agent = check_name("agent", agent)
        self.ego_params = ego_params
        if not self.root.is_dir():
            raise DeepAccidentFormatError(self.root, None, "root", "data root does not exist")
        skipped: list[str] = []
        if split is None:
            entries = [
                (type_dir.name, scen.name)
                for type_dir in sorted(p for p in self.root.iterdir() if p.is_dir())
                if (type_dir / agent / "label").is_dir()
                for scen in sorted(p for p in (type_dir / agent / "label").iterdir()
                                   if p.is_dir() and not p.name.startswith("."))  # skip a writer's staging folders
            ]
        else:
            split_path = self.root / f"{check_name('split', split)}.txt"
            entries = []
            for line, stype, sname in read_split_file(split_path):
                label_dir = sensor_dir(self.root, stype, agent, "label", sname)
                if not label_dir.is_dir():
                    err = DeepAccidentFormatError(
                        split_path, line, "scenario_name", f"scenario {stype}/{sname} is absent: no folder {label_dir}"
                    )
                    if strict:
                        raise err
                    skipped.append(str(err))
                    continue
                entries.append((stype, sname))
        if skipped:
            warnings.warn(f"skipped {len(skipped)} split entries; first: {skipped[0]}", DeepAccidentWarning,
                          stacklevel=2)
        self.entries: tuple[tuple[str, str], ...] = tuple(entries)
        self.skipped_entries: tuple[str, ...] = tuple(skipped)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def convention(self) -> tuple[str, str, dict | None]:
        """The dataset's reading ``(reading, source, frame_check of the deciding scenario or None)``, decided once
        (class docstring) and logged once."""
        if self._convention is None:
            self._convention = self._decide_convention()
            reading, source, found = self._convention
            detail = "" if found is None else f"; residual_m {found['residual_m']} over {found['comparisons']} " \
                                               f"shared (frame, object) views {list(found['views'])}"
            LOG.log(logging.WARNING if source.startswith("default") else logging.INFO,
                    "DeepAccident %s (split %s): frame convention %r (%s%s)", self.root, self.split, reading, source,
                    detail)
        return self._convention

    def _decide_convention(self) -> tuple[str, str, dict | None]:
        if self.frame_convention != AUTO:
            return self.frame_convention, "forced", None
        tried = 0
        for stype, sname in self.entries:
            if tried >= DATASET_SCAN_LIMIT:
                break
            if len(available_views(self.root, stype, sname)) < 2:
                continue
            tried += 1
            try:
                meta = parse_meta(meta_path(self.root, stype, sname))
                found = check_views(self.root, stype, sname, meta, strict=False)
            except DeepAccidentFormatError:
                continue
            decided = found.decided()
            if decided is not None:
                return decided, f"dataset: cross-view check of {stype}/{sname}", found.as_dict()
        why = "no scenario with two views" if not tried else f"no view check of {tried} scenario(s) decides"
        return DEFAULT_CONVENTION, f"default: {why}", None

    def __getitem__(self, index: int) -> Scene:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"DeepAccidentDataset indices must be integers, got {type(index).__name__}")
        scenario_type, scenario_name = self.entries[index]
        reading, source, _ = self.convention
        return read_scenario(
            self.root, scenario_type, scenario_name, strict=self.strict, key_frames_only=self.key_frames_only,
            agent=self.agent, ego_params=self.ego_params, frame_convention=self.frame_convention,
            undecided_convention=reading, undecided_source=source,
        )

    def index_of_entry(self, scenario_type: str | None, scenario_name: str) -> int:
        """Index of the scenario folder ``scenario_name`` (of ``scenario_type`` when given); ``KeyError`` naming it
        when the dataset does not list it."""
        for i, (stype, sname) in enumerate(self.entries):
            if sname == scenario_name and (scenario_type is None or stype == scenario_type):
                return i
        raise KeyError(f"{self!r}: no scenario {scenario_type}/{scenario_name}")

    def __iter__(self) -> Iterator[Scene]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"DeepAccidentDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
