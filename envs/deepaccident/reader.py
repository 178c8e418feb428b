"""Read DeepAccident scenarios into :class:`~envs.scene.Scene` objects.

Only the observing agent's ``label`` and ``calib`` folders and the scenario's ``meta`` file are read (images, lidar
and BEV files are ignored; the other V2X agents' folders are optional). DeepAccident has no HD map, so
``Scene.map`` is None: map-based scores (drivable area, driving direction, lanes, route progress) are unavailable
for these scenes unless the user supplies a map.

Calibration pickles are loaded with a restricted unpickler that only accepts numpy arrays/dtypes/scalars and
builtin containers; unpickling still deserves caution: **read only from a data root you trust**.

Frame and pose conventions are those of :mod:`envs.deepaccident.transforms` (CARLA's left-handed frames become
right-handed by negating world y and yaw, as the official converter negates label yaw and vy). The ego pose stored
in the scene is the **rear-axle** pose: the ``ego_to_world`` origin is taken as the ego box centre and moved back by
``ego_params.rear_axle_to_center`` (:func:`rewards.geometry.center_to_rear_axle`).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.deepaccident.collision import first_overlap
from envs.deepaccident.errors import DeepAccidentFormatError, DeepAccidentWarning
from envs.deepaccident.layout import (
    KEY_FRAME_STRIDE,
    RAW_DT,
    check_name,
    frame_file,
    list_frames,
    meta_path,
    read_split_file,
    sensor_dir,
)
from envs.deepaccident.calib import load_calib
from envs.deepaccident.labels import CLASS_MAP, EGO_ROW_ID, STATIC_DECORATION_MIN_ID, LabelRow, parse_label_file
from envs.deepaccident.meta import MetaInfo, agent_full_name, parse_meta
from envs.deepaccident.transforms import ego_center_pose, ego_velocity_to_world, labels_to_world
from envs.scene import Scene, SceneMeta
from rewards.geometry import NAVSIM_EGO, VehicleParameters, center_to_rear_axle

MAX_SKIP_REASONS = 50
"""At most this many skip reasons are kept in ``meta.extra["skip_reasons"]`` (the counts are always complete)."""


@dataclass
class _Frame:
    """One parsed frame: its number, the observer's line-1 velocity, object rows and CARLA matrices."""

    number: int
    ego_velocity: tuple[float, float]
    rows: list[LabelRow]
    ego_to_world: np.ndarray
    lidar_to_ego: np.ndarray


class _Skips:
    """Counts and reasons of what ``strict=False`` skipped."""

    def __init__(self) -> None:
        self.frames = 0
        self.lines = 0
        self.reasons: list[str] = []

    def add(self, reason: str, *, frames: int = 0, lines: int = 0) -> None:
        self.frames += frames
        self.lines += lines
        self.reasons.append(reason)


def _longest_run(numbers: list[int], step: int) -> tuple[int, int]:
    """``[start, stop)`` indices of the longest run of ``numbers`` increasing by exactly ``step`` (ties: latest)."""
    best = (0, 1)
    start = 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + step:
            if i - start >= best[1] - best[0]:
                best = (start, i)
            start = i
    return best


def _select_frames(
    label_dir: Path, scenario_name: str, strict: bool, key_frames_only: bool, skips: _Skips
) -> list[tuple[int, Path]]:
    """Frame numbers to read: duplicates and gaps are errors (``strict``) or skipped (later trimmed to one run)."""
    frames = list_frames(label_dir, scenario_name)
    unique: list[tuple[int, Path]] = []
    for number, path in frames:
        if unique and unique[-1][0] == number:
            err = DeepAccidentFormatError(path, None, "frame", f"duplicate frame {number} (also {unique[-1][1].name})")
            if strict:
                raise err
            skips.add(str(err), frames=1)
            continue
        if strict and unique and number != unique[-1][0] + 1:
            raise DeepAccidentFormatError(
                label_dir, None, "frame", f"frame numbers have a gap: {unique[-1][0]} is followed by {number}"
            )
        unique.append((number, path))
    if not key_frames_only:
        return unique
    last = unique[-1][0]
    return [(n, p) for n, p in unique if (last - n) % KEY_FRAME_STRIDE == 0]


def _read_frames(
    root: Path, scenario_type: str, scenario_name: str, agent: str, selected: list[tuple[int, Path]], strict: bool,
    skips: _Skips,
) -> tuple[list[_Frame], int]:
    """Parse label and calib files of the selected frames; returns the frames and the count of id -1 rows."""
    calib_dir = sensor_dir(root, scenario_type, agent, "calib", scenario_name)
    frames: list[_Frame] = []
    unidentified = 0
    for number, label_path in selected:
        try:
            label = parse_label_file(label_path, strict=strict)
            calib = load_calib(frame_file(calib_dir, scenario_name, number, "pkl"))
        except DeepAccidentFormatError as exc:
            if strict:
                raise
            skips.add(str(exc), frames=1)
            continue
        for reason in label.skipped:
            skips.add(reason, lines=1)
        unidentified += label.unidentified
        frames.append(_Frame(number, label.ego_velocity, label.rows, calib["ego_to_world"], calib["lidar_to_ego"]))
    return frames, unidentified


def _tracks(frames: list[_Frame]) -> dict:
    """Join rows by id across frames and move them to the right-handed world frame."""
    T = len(frames)
    obs: dict[int, list[tuple[int, np.ndarray, np.ndarray, float, float, str]]] = {}
    ego_sizes: list[tuple[float, float]] = []
    for t, fr in enumerate(frames):
        rows = [r for r in fr.rows if r.obj_id != EGO_ROW_ID]
        ego_sizes += [(r.box[3], r.box[4]) for r in fr.rows if r.obj_id == EGO_ROW_ID]
        if not rows:
            continue
        poses, vels = labels_to_world(
            np.array([r.box for r in rows]), np.array([r.velocity for r in rows]), fr.ego_to_world, fr.lidar_to_ego
        )
        for r, p, v in zip(rows, poses, vels):
            obs.setdefault(r.obj_id, []).append((t, p, v, r.box[3], r.box[4], r.cls))
    ids = sorted(obs)
    N = len(ids)
    poses = np.zeros((N, T, 3))
    vels = np.zeros((N, T, 2))
    valid = np.zeros((N, T), dtype=bool)
    sizes = np.zeros((N, 2))
    classes = np.zeros(N, dtype=np.int8)
    class_conflicts = []
    for n, obj_id in enumerate(ids):
        seen = obs[obj_id]
        ts = np.array([s[0] for s in seen])
        poses[n, ts] = np.array([s[1] for s in seen])
        vels[n, ts] = np.array([s[2] for s in seen])
        valid[n, ts] = True
        # Pad unobserved frames with the nearest earlier observation (the first one before the first sighting).
        idx = np.maximum.accumulate(np.where(valid[n], np.arange(T), -1))
        idx[idx < 0] = ts[0]
        poses[n] = poses[n, idx]
        sizes[n] = np.median([[s[3], s[4]] for s in seen], axis=0)
        mapped = Counter(int(CLASS_MAP[s[5]]) for s in seen)
        classes[n] = mapped.most_common(1)[0][0]
        if len(mapped) > 1:
            class_conflicts.append(obj_id)
    return dict(
        ids=np.array(ids, dtype=np.int64), classes=classes, sizes=sizes, poses=poses, velocities=vels, valid=valid,
        ego_sizes=ego_sizes, class_conflicts=class_conflicts,
    )


def _collision(
    meta: MetaInfo, agent: str, tracks: dict, ego_centers: np.ndarray, ego_size: np.ndarray
) -> tuple[int | None, int | None, str]:
    """``(colliding_agent_id, collision_frame index, note)`` from meta plus a box-overlap search."""
    if not meta.collision:
        return None, None, "meta reports no collision (all 7 collision tokens are -1)"
    observer_id = meta.agent_actor_ids.get(agent)
    names = [agent_full_name(n) for n in (meta.colliding_agents or ())]
    by_id = observer_id is not None and observer_id in meta.collision_actor_ids
    if not (by_id or agent in names):
        return None, None, (
            f"the collision in meta does not involve {agent} (actor ids {meta.collision_actor_ids}, "
            f"colliding agents {meta.colliding_agents})"
        )
    ids = tracks["ids"].tolist()
    others = [i for i in meta.collision_actor_ids if i is not None and i != observer_id and i in ids]
    args = (ego_centers, ego_size, tracks["poses"], tracks["sizes"], tracks["valid"])
    if by_id and len(others) == 1:
        row = ids.index(others[0])
        hit = first_overlap(*args, candidates=[row])
        if hit is None:
            return others[0], None, (
                f"meta names actor {others[0]} as the colliding object but its box never overlaps the ego box in the "
                "frames read"
            )
        return others[0], hit[1], f"colliding actor {others[0]} from meta; frame of first box overlap"
    hit = first_overlap(*args)
    if hit is None:
        return None, None, (
            f"{agent} collides per meta but the other actor ({meta.collision_actor_ids}) is not among the label tracks "
            "and no box overlaps the ego box"
        )
    return int(ids[hit[0]]), hit[1], "colliding object and frame found by first box overlap with the ego box"


def read_scenario(
    root: str | os.PathLike,
    scenario_type: str,
    scenario_name: str,
    *,
    strict: bool = True,
    key_frames_only: bool = False,
    agent: str = "ego_vehicle",
    ego_params: VehicleParameters = NAVSIM_EGO,
) -> Scene:
    """Read one scenario as seen by ``agent``.

    Args:
        root: the DeepAccident data root (holding ``train.txt`` and the ``<scenario_type>/`` folders).
        scenario_type: folder name, e.g. ``type1_subtype1_accident`` (stored as ``meta.scenario_type``).
        scenario_name: e.g. ``Town03_type001_subtype0001_scenario00030``; its first ``_`` token is the town.
        strict: raise :class:`DeepAccidentFormatError` on any bad frame or line; otherwise skip and count it in
            ``meta.extra["skipped_frames"]`` / ``["skipped_lines"]`` (with a :class:`DeepAccidentWarning`) and keep
            the longest contiguous run of usable frames. A missing meta file or an empty scenario raise in both modes.
        key_frames_only: keep frames with ``(last - frame) % 5 == 0`` (2 Hz, aligned to the last frame as the
            official converter does); ``dt`` is then 0.5 s instead of 0.1 s.
        agent: the observing V2X agent whose labels and calib are read.
        ego_params: ego geometry used for the rear-axle conversion.

    Returns:
        a :class:`Scene` with ``map=None``, ``meta.source="deepaccident"``; agents are the label tracks joined by
        CARLA actor id (the observer's own ``-100`` row and id ``-1`` rows excluded), sorted by id; unobserved
        frames are padded with the nearest earlier (else the first) observed pose and zero velocity.
    """
    root = Path(root)
    for kind, value in (("scenario_type", scenario_type), ("scenario_name", scenario_name), ("agent", agent)):
        check_name(kind, value)
    meta = parse_meta(meta_path(root, scenario_type, scenario_name))
    label_dir = sensor_dir(root, scenario_type, agent, "label", scenario_name)
    skips = _Skips()
    selected = _select_frames(label_dir, scenario_name, strict, key_frames_only, skips)
    frames, unidentified = _read_frames(root, scenario_type, scenario_name, agent, selected, strict, skips)
    step = KEY_FRAME_STRIDE if key_frames_only else 1
    if not frames:
        raise DeepAccidentFormatError(label_dir, None, "frame", f"no usable frame ({skips.frames} skipped)")
    start, stop = _longest_run([f.number for f in frames], step)
    if stop - start < len(frames):
        dropped = [f.number for f in frames[:start] + frames[stop:]]
        skips.add(f"{label_dir}, line -, field 'frame': frames {dropped} dropped to keep one contiguous run",
                  frames=len(dropped))
        frames = frames[start:stop]

    centers = np.array([ego_center_pose(f.ego_to_world) for f in frames])
    ego_vel = np.array([ego_velocity_to_world(f.ego_velocity, f.ego_to_world) for f in frames])
    tracks = _tracks(frames)
    ego_size = (np.median(tracks["ego_sizes"], axis=0) if tracks["ego_sizes"]
                else np.array([ego_params.length, ego_params.width]))
    colliding_id, collision_frame, note = _collision(meta, agent, tracks, centers, ego_size)

    if skips.frames or skips.lines:
        warnings.warn(
            f"{scenario_type}/{scenario_name}: skipped {skips.frames} frame(s) and {skips.lines} line(s); "
            f"first: {skips.reasons[0]}",
            DeepAccidentWarning,
            stacklevel=2,
        )
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
        "collision_note": note,
        "collision_raw_frame": None if collision_frame is None else frames[collision_frame].number,
        "frames": tuple(f.number for f in frames),
        "key_frames_only": key_frames_only,
        "ego_box_size": tuple(float(v) for v in ego_size),
        "ego_box_size_source": "label row -100" if tracks["ego_sizes"] else "ego_params",
        "static_decoration_ids": tuple(int(i) for i in ids if i > STATIC_DECORATION_MIN_ID),
        "class_conflict_ids": tuple(tracks["class_conflicts"]),
        "unidentified_rows": unidentified,
        "skipped_frames": skips.frames,
        "skipped_lines": skips.lines,
        "skip_reasons": tuple(skips.reasons[:MAX_SKIP_REASONS]),
        "map_note": "DeepAccident has no HD map: map=None, map-based scores are unavailable",
    }
    suffix = "" if agent == "ego_vehicle" else f"/{agent}"
    return Scene(
        scene_id=f"deepaccident/{scenario_type}/{scenario_name}{suffix}" + ("@2Hz" if key_frames_only else ""),
        dt=RAW_DT * step,
        ego_poses=center_to_rear_axle(centers, ego_params),
        ego_velocities=ego_vel,
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
            colliding_agent_id=colliding_id,
            collision_frame=collision_frame,
            extra=extra,
        ),
        ego_params=ego_params,
    )


class DeepAccidentDataset(Sequence):
    """Scenarios of a DeepAccident root, read lazily (one :func:`read_scenario` call per item).

    Args:
        root: the data root.
        split: ``"train"``, ``"val"``, ``"test"`` (any ``<root>/<split>.txt``, e.g. ``"train_mini"``), or None for
            every ``<root>/<type>/<agent>/label/<name>/`` folder, sorted (hidden folders excluded).
        strict: passed to :func:`read_scenario`; also, a split line naming an absent scenario raises
            (``strict``) or is skipped, counted in :attr:`skipped_entries` and warned about.
        key_frames_only, agent, ego_params: passed to :func:`read_scenario`.

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
        ego_params: VehicleParameters = NAVSIM_EGO,
    ) -> None:
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

    def __getitem__(self, index: int) -> Scene:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"DeepAccidentDataset indices must be integers, got {type(index).__name__}")
        scenario_type, scenario_name = self.entries[index]
        return read_scenario(
            self.root, scenario_type, scenario_name, strict=self.strict, key_frames_only=self.key_frames_only,
            agent=self.agent, ego_params=self.ego_params,
        )

    def __iter__(self) -> Iterator[Scene]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"DeepAccidentDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
