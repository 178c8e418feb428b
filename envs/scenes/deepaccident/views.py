"""The cross-view check that decides which reading of DeepAccident's frames holds (issue 27).

DeepAccident records each scenario from several V2X observers (``ego_vehicle``, ``ego_vehicle_behind``,
``other_vehicle``, ``other_vehicle_behind``, ``infrastructure``), each with its own labels and calib. Two facts must
hold under the right reading (:data:`~envs.scenes.deepaccident.transforms.CONVENTIONS`):

* an object id seen by two observers in one frame lands on one world position;
* a co-recorded vehicle's own box (its ``-100`` row, put in the world with **its** calib) lands where the other
  observers' labels put its actor id (``agents id:`` line of the meta file).

The two readings differ by mirroring every box across its observer's lidar x axis, so the wrong one disagrees by
about twice the objects' lateral offsets, unless every observer's axis is the same line (then both agree and the
scenario cannot tell). :func:`check_views` measures, per reading, the largest planar distance between two
observers' world positions of one object in one frame (the *residual*, [m]); :func:`choose_convention` picks the
reading. Frames are sampled every :data:`CHECK_STRIDE` raw frames (the key-frame rate).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from envs.scenes.deepaccident.calib import load_calib
from envs.scenes.deepaccident.errors import DeepAccidentFormatError, DeepAccidentWarning
from envs.scenes.deepaccident.labels import EGO_ROW_ID, parse_label_file
from envs.scenes.deepaccident.layout import AGENTS, KEY_FRAME_STRIDE, list_frames, sensor_dir, sibling_file
from envs.scenes.deepaccident.meta import MetaInfo
from envs.scenes.deepaccident.transforms import CONVENTIONS, check_convention, labels_to_world

VIEW_TOLERANCE = 0.10
"""Largest residual [m] at which two views still agree. Every observer's labels come from the same CARLA tick, so
the right reading agrees to the labels' precision; the wrong one is off by metres."""

CHECK_STRIDE = KEY_FRAME_STRIDE
"""Every this many frames (aligned to the last common frame) are compared."""

AUTO = "auto"
"""``frame_convention="auto"``: let :func:`choose_convention` decide."""


@dataclass(frozen=True)
class ViewCheck:
    """What :func:`check_views` found for one scenario.

    Attributes:
        scenario: ``<type>/<name>``.
        views: the observers with a label folder for the scenario.
        frames_checked: frame numbers compared (seen by two views or more).
        comparisons: (frame, object) groups seen by two views or more.
        residual_m: per reading, the largest planar distance between two views of one object in one frame [m]
            (None when nothing could be compared).
        worst: per reading, where that residual occurs (frame, id, the two observers).
        skipped: unreadable (observer, frame) files skipped (lenient mode only).
    """

    scenario: str
    views: tuple[str, ...]
    frames_checked: int = 0
    comparisons: int = 0
    residual_m: dict[str, float | None] = field(default_factory=lambda: {c: None for c in CONVENTIONS})
    worst: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    def agreeing(self, tolerance: float = VIEW_TOLERANCE) -> tuple[str, ...]:
        """The readings whose residual is at most ``tolerance`` (empty when nothing was compared)."""
        if not self.comparisons:
            return ()
        return tuple(c for c in CONVENTIONS if self.residual_m[c] is not None and self.residual_m[c] <= tolerance)

    def decided(self, tolerance: float = VIEW_TOLERANCE) -> str | None:
        """The one reading that agrees, or None (nothing compared, both agree, or neither does)."""
        ok = self.agreeing(tolerance)
        return ok[0] if len(ok) == 1 else None

    def as_dict(self) -> dict:
        return {"views": self.views, "frames_checked": self.frames_checked, "comparisons": self.comparisons,
                "residual_m": dict(self.residual_m), "worst": dict(self.worst), "skipped": len(self.skipped)}


def available_views(root: str | os.PathLike, scenario_type: str, scenario_name: str) -> tuple[str, ...]:
    """Observers (:data:`~envs.scenes.deepaccident.layout.AGENTS` order) with a label folder for the scenario."""
    return tuple(a for a in AGENTS if sensor_dir(Path(root), scenario_type, a, "label", scenario_name).is_dir())


def check_views(
    root: str | os.PathLike,
    scenario_type: str,
    scenario_name: str,
    meta: MetaInfo,
    *,
    strict: bool = True,
    stride: int = CHECK_STRIDE,
) -> ViewCheck:
    """Residuals of both readings over the scenario's views (module docstring).

    Args:
        root, scenario_type, scenario_name: the scenario.
        meta: its parsed meta file (``agent_actor_ids`` maps an observer's ``-100`` row to its actor id).
        strict: a malformed label or calib file of any view raises; otherwise that (view, frame) is skipped.
        stride: compare every ``stride``-th frame seen by two views or more, counted back from the last.

    Raises:
        DeepAccidentFormatError: (``strict``) a malformed file of one of the views, naming it.
    """
    root = Path(root)
    name = f"{scenario_type}/{scenario_name}"
    views = available_views(root, scenario_type, scenario_name)
    if len(views) < 2:
        return ViewCheck(name, views)
    files: dict[str, dict[int, Path]] = {}
    skipped: list[str] = []
    for agent in views:
        by_number: dict[int, Path] = {}
        try:
            listed = list_frames(sensor_dir(root, scenario_type, agent, "label", scenario_name), scenario_name)
        except DeepAccidentFormatError as exc:
            if strict:
                raise
            skipped.append(str(exc))
            continue
        for number, path in listed:
            by_number.setdefault(number, path)
        files[agent] = by_number
    counts: dict[int, int] = {}
    for by_number in files.values():
        for number in by_number:
            counts[number] = counts.get(number, 0) + 1
    shared = sorted(n for n, c in counts.items() if c >= 2)
    frames = shared[::-1][::max(1, int(stride))][::-1]
    # (reading, frame, id) -> [(observer, xy)]
    seen: dict[tuple[str, int, int], list[tuple[str, np.ndarray]]] = {}
    for number in frames:
        for agent in files:
            path = files[agent].get(number)
            if path is None:
                continue
            try:
                label = parse_label_file(path, strict=strict)
                calib = load_calib(sibling_file(sensor_dir(root, scenario_type, agent, "calib", scenario_name),
                                                path.stem, "pkl"))
            except DeepAccidentFormatError as exc:
                if strict:
                    raise
                skipped.append(str(exc))
                continue
            ids, boxes, vels = [], [], []
            for row in label.rows:
                obj_id = row.obj_id
                if obj_id == EGO_ROW_ID:  # the observer's own box: compared under its actor id
                    obj_id = meta.agent_actor_ids.get(agent, -1)
                    if obj_id is None or obj_id <= 0:
                        continue
                ids.append(obj_id)
                boxes.append(row.box)
                vels.append(row.velocity)
            if not ids:
                continue
            for reading in CONVENTIONS:
                poses, _ = labels_to_world(np.array(boxes), np.array(vels), calib["ego_to_world"],
                                           calib["lidar_to_ego"], reading)
                for obj_id, pose in zip(ids, poses):
                    seen.setdefault((reading, number, obj_id), []).append((agent, pose[:2]))
    residual: dict[str, float | None] = {c: None for c in CONVENTIONS}
    worst: dict[str, str] = {}
    comparisons = 0
    for (reading, number, obj_id), obs in seen.items():
        if len(obs) < 2:
            continue
        if reading == CONVENTIONS[0]:
            comparisons += 1
        for i in range(len(obs)):
            for j in range(i + 1, len(obs)):
                d = float(np.hypot(*(obs[i][1] - obs[j][1])))
                if residual[reading] is None or d > residual[reading]:
                    residual[reading] = d
                    worst[reading] = f"frame {number}, id {obj_id}, {obs[i][0]} vs {obs[j][0]}: {d:.3f} m"
    return ViewCheck(name, views, len(frames), comparisons, residual, worst, tuple(skipped))


def _fmt(check: ViewCheck) -> str:
    parts = [f"{c}: {'-' if check.residual_m[c] is None else f'{check.residual_m[c]:.3f} m'}" for c in CONVENTIONS]
    return "residual " + ", ".join(parts)


def choose_convention(
    requested: str,
    check: ViewCheck,
    where: str | os.PathLike,
    *,
    fallback: str,
    fallback_source: str,
    strict: bool = True,
    tolerance: float = VIEW_TOLERANCE,
) -> tuple[str, str]:
    """The reading to use for a scenario and why (``(reading, source)``).

    * ``requested`` a reading (forced): it, unless the views disagree under it (residual > ``tolerance``): then a
      :class:`DeepAccidentFormatError` naming the scenario and the residual, in both modes.
    * ``"auto"``: the one reading the views agree under (source ``"cross-view check"``); when nothing could be
      compared or both agree, ``fallback`` (source ``fallback_source``); when neither agrees, an error (``strict``)
      or a :class:`DeepAccidentWarning` and the reading with the smaller residual.

    Args:
        where: the path errors name (the observing agent's label folder).
    """
    if requested != AUTO:
        check_convention(requested)
        r = check.residual_m.get(requested)
        if check.comparisons and r is not None and r > tolerance:
            raise DeepAccidentFormatError(
                where, None, "frame_convention",
                f"scenario {check.scenario}: the forced reading {requested!r} makes its views disagree: residual "
                f"{r:.3f} m > {tolerance} m ({check.worst.get(requested, '')}; {_fmt(check)}); use "
                f"frame_convention='auto'")
        return requested, "forced"
    decided = check.decided(tolerance)
    if decided is not None:
        return decided, "cross-view check"
    if check.comparisons and not check.agreeing(tolerance):
        detail = (f"scenario {check.scenario}: no reading makes its views {list(check.views)} agree within "
                  f"{tolerance} m ({_fmt(check)}; worst: {'; '.join(check.worst.values())})")
        if strict:
            raise DeepAccidentFormatError(where, None, "frame_convention", detail)
        best = min(CONVENTIONS, key=lambda c: check.residual_m[c] if check.residual_m[c] is not None else np.inf)
        warnings.warn(f"{detail}; using {best!r}, the smaller residual", DeepAccidentWarning, stacklevel=3)
        return best, "cross-view check (no reading agrees; the smaller residual)"
    return check_convention(fallback), fallback_source
