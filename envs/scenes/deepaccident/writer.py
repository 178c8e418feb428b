"""Export a :class:`~envs.scenes.scene.Scene` to the DeepAccident layout (labels, calib and meta of ``ego_vehicle``).

What is written for ``<root>/<type>/.../<name>`` (frames ``first_frame .. first_frame + T - 1``):

* ``ego_vehicle/label/<name>/<name>_<frame:03d>.txt`` (frame numbers zero-padded as in the real data,
  :data:`~envs.scenes.deepaccident.layout.FRAME_DIGITS`): line 1 the ego velocity; the ego's own row (id -100, box =
  ``scene.ego_params`` length/width at the ego box centre); one row per valid, non-static agent with the exact
  13-token format, ``num_lidar_pts`` (default 100) and ``camera_visible``. Values are written under the
  ``"one_frame"`` reading (:data:`~envs.scenes.deepaccident.transforms.DEFAULT_CONVENTION`: rows in the calib's
  CARLA lidar frame). Only ``ego_vehicle`` is written, so no second view decides: the reader falls back to that same
  reading (``meta.extra["frame_convention_source"]`` says so), and the files round-trip.
* ``ego_vehicle/calib/<name>/<name>_<frame:03d>.pkl`` (the label file's stem): ``ego_to_world`` (planar, CARLA
  left-handed), ``lidar_to_ego`` (identity rotation, lidar :data:`LIDAR_HEIGHT` above the ego origin) and plausible
  synthetic ``lidar_to_<Camera_X>`` / ``intrinsic_<Camera_X>`` for the six cameras (1600x900, 70 degree field of
  view).
* ``meta/<name>.txt``: weather token, 7 collision tokens (all -1 without a collision), the scenario length,
  ``colliding agents:`` (``ego other`` when the ego hits a vehicle, which then takes the ``other_vehicle`` slot of
  ``agents id:``; ``ego none`` for a pedestrian or cyclist; ``none none`` without a collision), ``agents id:`` (the
  ego's actor id, -1 for absent V2X vehicles), junction type, spawn side and the two directions (``unknown`` unless
  the scene's ``meta.extra`` has them).
* ``<split>.txt``: the ``<type> <name>`` line, added once (the file is rewritten atomically).

Not written: images, lidar sweeps, BEV masks, and the other V2X agents' folders. Agents of class ``STATIC`` have no
DeepAccident class: they are skipped, counted in :attr:`WriteResult.skipped_static_ids` and warned about. Agents a
reader kept with an unknown class name (``meta.extra["unknown_classes"]``) are written with that name. Frames
use 10 Hz numbering, so only scenes with ``dt == 0.1`` can be written. Collision tokens are synthesised from
``meta.colliding_agent_id`` / ``collision_frame`` (token 6 holds the collision time [s]; tokens 7-8, undocumented
upstream, are written ``unknown``); raw tokens of a scene read from DeepAccident are not copied back.

Each file is written to a temp file and renamed; the label and calib folders are built beside their target and
swapped in, so a crash never leaves a half-written scenario in place of an existing one.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.scenes.deepaccident.errors import DeepAccidentWarning
from envs.scenes.deepaccident.labels import EGO_ROW_ID, UNIDENTIFIED_ID
from envs.atomic import atomic_write_bytes, atomic_write_text
from envs.scenes.deepaccident.layout import (
    CAMERAS,
    RAW_DT,
    check_name,
    frame_file,
    meta_path,
    sensor_dir,
)
from envs.scenes.deepaccident.transforms import (
    planar_ego_to_world,
    world_to_labels,
    world_velocity_to_label,
)
from envs.scenes.scene import AgentClass, Scene
from rewards.geometry import rear_axle_to_center

LIDAR_HEIGHT = 1.9
"""Height of the written lidar above the ego frame origin [m] (synthetic extrinsic)."""

EXPORT_CLASS = {AgentClass.VEHICLE: "car", AgentClass.PEDESTRIAN: "pedestrian", AgentClass.CYCLIST: "cyclist"}
"""SafeAlign class -> DeepAccident label class (STATIC has none)."""

BOX_HEIGHT = {AgentClass.VEHICLE: 1.6, AgentClass.PEDESTRIAN: 1.8, AgentClass.CYCLIST: 1.6}
"""Box heights written per class [m] (Scene has no heights)."""

EGO_HEIGHT = 1.6
"""Height of the ego's own -100 row [m]."""

_CAMERA_YAW_DEG = {"Camera_Front": 0.0, "Camera_FrontLeft": -55.0, "Camera_FrontRight": 55.0, "Camera_Back": 180.0,
                   "Camera_BackLeft": -110.0, "Camera_BackRight": 110.0}
"""Synthetic camera headings in the CARLA lidar frame (x forward, y right: left is negative)."""


@dataclass(frozen=True)
class WriteResult:
    """What :func:`write_scenario` wrote.

    Attributes:
        root: data root.
        scenario_type, scenario_name: the scenario's folder and name.
        frames: frame numbers written.
        ego_actor_id: the ego's actor id on the meta ``agents id:`` line.
        skipped_static_ids: ids of STATIC agents left out.
    """

    root: Path
    scenario_type: str
    scenario_name: str
    frames: tuple[int, ...]
    ego_actor_id: int
    skipped_static_ids: tuple[int, ...]


def _token(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-") or "x"


def _fmt(value: float) -> str:
    """Shortest exact decimal of a float (``repr``), so a write/read round trip is lossless."""
    return repr(float(value))


def _camera_calib() -> dict[str, np.ndarray]:
    width, height, fov = 1600.0, 900.0, np.deg2rad(70.0)
    focal = 0.5 * width / np.tan(0.5 * fov)
    intrinsic = np.array([[focal, 0.0, 0.5 * width], [0.0, focal, 0.5 * height], [0.0, 0.0, 1.0]])
    out = {}
    for cam in CAMERAS:
        a = np.deg2rad(_CAMERA_YAW_DEG[cam])
        m = np.eye(4)
        # rows: camera right, down, forward expressed in the lidar frame
        m[:3, :3] = [[-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, -1.0], [np.cos(a), np.sin(a), 0.0]]
        out[f"lidar_to_{cam}"] = m
        out[f"intrinsic_{cam}"] = intrinsic.copy()
    return out


def _default_names(scene: Scene) -> tuple[str, str]:
    m = scene.meta
    if m.source == "deepaccident" and "scenario_name" in m.extra:
        return m.scenario_type, str(m.extra["scenario_name"])
    outcome = "accident" if m.is_accident else "normal"
    return f"{_token(m.source)}_{_token(m.scenario_type)}_{outcome}", f"Synthetic_{_token(scene.scene_id)}"


def _meta_text(scene: Scene, ego_actor_id: int, last_frame: int, kinds: dict[int, str],
               classes: dict[int, AgentClass]) -> str:
    m, extra = scene.meta, scene.meta.extra

    def word(key: str, default: str) -> str:
        value = extra.get(key)
        return value if isinstance(value, str) and value.strip() and "\n" not in value else default

    weather = word("weather_time", "ClearNoon")
    if len(weather.split()) != 1:
        weather = "ClearNoon"
    other_vehicle_id = -1
    if m.collision_frame is None:
        tokens = ["-1"] * 7
        colliding = "none none"
    else:
        other = m.colliding_agent_id
        tokens = [str(ego_actor_id), "car", "-1" if other is None else str(other),
                  "unknown" if other is None else kinds.get(other, "unknown"),
                  _fmt(m.collision_frame * scene.dt), "unknown", "unknown"]
        if other is not None and classes.get(other) == AgentClass.VEHICLE:
            colliding, other_vehicle_id = "ego other", other
        else:
            colliding = "ego none"
    return "\n".join([
        " ".join([weather, *tokens, str(last_frame)]),
        f"colliding agents: {colliding}",
        f"agents id: {ego_actor_id} -1 {other_vehicle_id} -1",
        f"road_type: {word('junction_type', 'unknown')}",
        f"another_vehicle_spawn_side: {word('spawn_side', 'unknown')}",
        f"ego_vehicle_direction: {word('ego_direction', 'unknown')}",
        f"other_vehicle_direction: {word('other_direction', 'unknown')}",
    ]) + "\n"


def _swap_in(staged: Path, target: Path) -> None:
    """Move the staged folder onto ``target``; an existing ``target`` is kept aside until the move succeeded."""
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = None
    if target.exists():
        backup = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        backup.rmdir()
        os.replace(target, backup)
    try:
        os.replace(staged, target)
    except BaseException:
        if backup is not None:
            os.replace(backup, target)
        raise
    if backup is not None:
        shutil.rmtree(backup)


def _add_to_split(root: Path, split: str, line: str) -> None:
    path = root / f"{check_name('split', split)}.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    if line in (ln.strip() for ln in lines):
        return
    lines = [ln for ln in lines if ln.strip()] + [line]
    atomic_write_text(path, "\n".join(lines) + "\n")


def write_scenario(
    scene: Scene,
    root: str | os.PathLike,
    scenario_type: str | None = None,
    scenario_name: str | None = None,
    split: str | None = "train",
    camera_visible: bool = True,
    *,
    first_frame: int = 1,
    num_lidar_pts: int = 100,
    overwrite: bool = False,
) -> WriteResult:
    """Write ``scene`` as a DeepAccident scenario seen by ``ego_vehicle`` (see the module docstring for the files).

    Args:
        scene: a 10 Hz scene (``dt == 0.1``).
        root: data root (created if needed).
        scenario_type: folder name; default: the scene's own for DeepAccident scenes, else
            ``<source>_<scenario_type>_<accident|normal>``.
        scenario_name: default: the scene's own for DeepAccident scenes, else ``Synthetic_<scene id>`` (the
            reader takes its first ``_`` token, ``Synthetic``, as the town).
        split: split file to list the scenario in, or None.
        camera_visible: the ``camera_visible`` token of every row.
        first_frame: number of the first frame; frames are contiguous.
        num_lidar_pts: the ``num_lidar_pts`` token of every row.
        overwrite: replace an existing scenario of the same type and name (otherwise ``FileExistsError``).

    Raises:
        ValueError: ``dt`` is not 0.1 s, a name is not one path component, or an agent id is -100 or -1 (reserved).
        FileExistsError: the scenario exists and ``overwrite`` is False.
    """
    if abs(scene.dt - RAW_DT) > 1e-9:
        raise ValueError(f"scene {scene.scene_id}: dt={scene.dt} s; DeepAccident frames are {RAW_DT} s apart")
    root = Path(root)
    d_type, d_name = _default_names(scene)
    stype = check_name("scenario_type", scenario_type or d_type)
    sname = check_name("scenario_name", scenario_name or d_name)
    ids = scene.agent_ids.tolist()
    reserved = sorted({EGO_ROW_ID, UNIDENTIFIED_ID} & set(ids))
    if reserved:
        raise ValueError(
            f"scene {scene.scene_id}: agent ids {reserved} are reserved by DeepAccident (ego row, unknown)"
        )
    label_dir = sensor_dir(root, stype, "ego_vehicle", "label", sname)
    calib_dir = sensor_dir(root, stype, "ego_vehicle", "calib", sname)
    mpath = meta_path(root, stype, sname)
    if not overwrite and any(p.exists() for p in (label_dir, calib_dir, mpath)):
        raise FileExistsError(f"scenario {stype}/{sname} already exists under {root} (pass overwrite=True)")

    classes = [AgentClass(int(c)) for c in scene.agent_classes]
    export = [n for n, c in enumerate(classes) if c in EXPORT_CLASS]
    static_ids = tuple(int(ids[n]) for n, c in enumerate(classes) if c not in EXPORT_CLASS)
    raw = scene.meta.extra.get("unknown_classes") if scene.meta.source == "deepaccident" else None
    raw_names = {int(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
    names = {n: raw_names.get(int(ids[n]), EXPORT_CLASS.get(c, "")) for n, c in enumerate(classes)}
    if static_ids:
        warnings.warn(f"scene {scene.scene_id}: {len(static_ids)} STATIC agent(s) {list(static_ids)} have no "
                      "DeepAccident class and are not written", DeepAccidentWarning, stacklevel=2)
    observer = scene.meta.extra.get("observer_actor_id") if scene.meta.source == "deepaccident" else None
    ego_actor_id = observer if isinstance(observer, int) and observer not in ids and observer > 0 else \
        max([0, *ids]) + 1

    T = scene.num_frames
    frames = tuple(range(first_frame, first_frame + T))
    centers = rear_axle_to_center(scene.ego_poses, scene.ego_params)
    lidar_to_ego = np.eye(4)
    lidar_to_ego[2, 3] = LIDAR_HEIGHT
    cameras = _camera_calib()
    ego_size = (scene.ego_params.length, scene.ego_params.width)
    heights = np.array([BOX_HEIGHT[classes[n]] for n in export])
    vis = "True" if camera_visible else "False"

    stage_label = Path(tempfile.mkdtemp(prefix=f".{sname}.label-", dir=_mkdir(label_dir.parent)))
    stage_calib = Path(tempfile.mkdtemp(prefix=f".{sname}.calib-", dir=_mkdir(calib_dir.parent)))
    try:
        for t, number in enumerate(frames):
            e2w = planar_ego_to_world(centers[t])
            v_ego = world_velocity_to_label(scene.ego_velocities[t], e2w, lidar_to_ego)
            lines = [f"{_fmt(v_ego[0])} {_fmt(v_ego[1])}"]
            xyz, yaw, vel = world_to_labels(centers[t:t + 1], scene.ego_velocities[t:t + 1], [0.5 * EGO_HEIGHT],
                                            e2w, lidar_to_ego)
            lines.append(_row("car", xyz[0], ego_size, EGO_HEIGHT, yaw[0], vel[0], EGO_ROW_ID, num_lidar_pts, vis))
            rows = [n for n in export if scene.agent_valid[n, t]]
            if rows:
                xyz, yaw, vel = world_to_labels(scene.agent_poses[rows, t], scene.agent_velocities[rows, t],
                                                heights[[export.index(n) for n in rows]] * 0.5, e2w, lidar_to_ego)
                for k, n in enumerate(rows):
                    lines.append(_row(names[n], xyz[k], scene.agent_sizes[n],
                                      BOX_HEIGHT[classes[n]], yaw[k], vel[k], ids[n], num_lidar_pts, vis))
            atomic_write_text(frame_file(stage_label, sname, number, "txt"), "\n".join(lines) + "\n")
            calib = {"ego_to_world": e2w, "lidar_to_ego": lidar_to_ego.copy(), **cameras}
            atomic_write_bytes(frame_file(stage_calib, sname, number, "pkl"), pickle.dumps(calib, protocol=4))
        _swap_in(stage_label, label_dir)
        _swap_in(stage_calib, calib_dir)
    finally:
        for stage in (stage_label, stage_calib):
            if stage.exists():
                shutil.rmtree(stage)
    kinds = {ids[n]: names[n] for n in export}
    atomic_write_text(mpath, _meta_text(scene, ego_actor_id, frames[-1], kinds, {ids[n]: classes[n] for n in export}))
    if split is not None:
        _add_to_split(root, split, f"{stype} {sname}")
    return WriteResult(root, stype, sname, frames, ego_actor_id, static_ids)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _row(cls: str, xyz, size, height: float, yaw: float, vel, obj_id: int, pts: int, vis: str) -> str:
    """One 13-token label row."""
    nums = [*xyz, size[0], size[1], height, yaw, vel[0], vel[1]]
    return " ".join([cls, *(_fmt(v) for v in nums), str(int(obj_id)), str(int(pts)), vis])
