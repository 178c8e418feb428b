"""Label files ``<agent>/label/<name>/<name>_<frame>.txt``: rows as written, with errors naming file, line, field.

Values are returned **as written**; what they mean (the two readings of the row's y) and the conversion to
SafeAlign's right-handed world frame live in :mod:`envs.scenes.deepaccident.transforms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from envs.scenes.deepaccident.errors import DeepAccidentFormatError
from envs.scenes.scene import AgentClass

CLASS_MAP: dict[str, AgentClass] = {
    "car": AgentClass.VEHICLE,
    "van": AgentClass.VEHICLE,
    "truck": AgentClass.VEHICLE,
    "cyclist": AgentClass.CYCLIST,
    "motorcycle": AgentClass.CYCLIST,
    "pedestrian": AgentClass.PEDESTRIAN,
}
"""DeepAccident label classes (``carla_categories``, ``carla_converter.py`` line 19) to SafeAlign classes."""

UNKNOWN_CLASS = AgentClass.VEHICLE
"""SafeAlign class of a row whose class is not in :data:`CLASS_MAP` (e.g. a CARLA blueprint the collection script
did not categorise). The public dataset class keeps such boxes with label -1 (``DeepAccident_dataset.py`` lines
563-568); here they are kept too, as VEHICLE: labelled objects are CARLA actors, which move, so they stay obstacles
the scorer counts in full (NC 0 when hit at fault; STATIC would give 0.5 and is reserved for objects known not to
move, which the writer cannot export) and the renderer draws in the vehicles channel. The raw class name is kept
(``meta.extra["unknown_classes"]``, id -> name), written back by the writer, and warned about."""

EGO_ROW_ID = -100
"""Id of the observing agent's own row (``DeepAccident_dataset.py``: "ego vehicle are marked as -100")."""

UNIDENTIFIED_ID = -1
"""Rows with id -1 are marked invalid by the official dataset class; they cannot be tracked and are skipped."""

STATIC_DECORATION_MIN_ID = 20000
"""Per the dataset author (DeepAccident issue #14), ids above 20000 are CARLA's static decoration (parked) objects."""

LABEL_FIELDS = ("class", "x", "y", "z", "l", "w", "h", "yaw", "vx", "vy", "id", "num_lidar_pts", "camera_visible")
"""Tokens of a label row, in order (13)."""

@dataclass(frozen=True)
class LabelRow:
    """One object row of a label file, as written (observing agent's lidar frame; yaw and vy with CARLA's
    left-handed sign, y under one of two readings: :mod:`envs.scenes.deepaccident.transforms`).

    Attributes:
        cls: class name as written (a key of :data:`CLASS_MAP`, or an unknown name: see :data:`UNKNOWN_CLASS`).
        box: ``(7,)`` x, y, z [m], length, width, height [m], yaw [rad].
        velocity: ``(2,)`` vx, vy [m/s].
        obj_id: CARLA actor id (-100: the observing agent itself).
        num_lidar_pts: lidar points on the object.
        camera_visible: visible in a camera.
        line: 1-based line number in the file.
    """

    cls: str
    box: tuple[float, ...]
    velocity: tuple[float, float]
    obj_id: int
    num_lidar_pts: int
    camera_visible: bool
    line: int


@dataclass
class LabelFile:
    """A parsed label file.

    Attributes:
        ego_velocity: ``(2,)`` line 1 ``<vx> <vy>`` [m/s] as written (read with the rows' convention).
        rows: valid object rows (the -100 row included).
        skipped: one ``"<path>, line <n>, field ...: ..."`` reason per skipped row (``strict=False`` only).
        unidentified: rows with id -1 (skipped, counted).
    """

    ego_velocity: tuple[float, float]
    rows: list[LabelRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    unidentified: int = 0


def _float(path: Path, line: int, name: str, token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise DeepAccidentFormatError(path, line, name, f"not a number: {token!r}") from None
    if not math.isfinite(value):
        raise DeepAccidentFormatError(path, line, name, f"non-finite value (NaN/inf): {token!r}")
    return value


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def agent_class(cls: str) -> AgentClass:
    """SafeAlign class of a label class name (:data:`UNKNOWN_CLASS` for names outside :data:`CLASS_MAP`)."""
    return CLASS_MAP.get(cls, UNKNOWN_CLASS)


def _int(path: Path, line: int, name: str, token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise DeepAccidentFormatError(path, line, name, f"not an integer: {token!r}") from None


def parse_label_row(path: Path, line: int, text: str) -> LabelRow:
    """Parse one object row ``<class> <x> <y> <z> <l> <w> <h> <yaw> <vx> <vy> <id> <num_lidar_pts> <camera_visible>``.

    Raises:
        DeepAccidentFormatError: wrong token count, a class token that is a number, non-numeric or non-finite
            number, size not positive (length, width) or negative (height), bad id, camera_visible not
            ``True``/``False``. An unknown class name is kept (:data:`UNKNOWN_CLASS`).
    """
    tokens = text.split()
    if len(tokens) != len(LABEL_FIELDS):
        raise DeepAccidentFormatError(path, line, "tokens", f"expected {len(LABEL_FIELDS)} tokens, got {len(tokens)}")
    cls = tokens[0]
    if _is_number(cls):
        raise DeepAccidentFormatError(path, line, "class", f"expected a class name, got the number {cls!r}")
    nums = [_float(path, line, name, tok) for name, tok in zip(LABEL_FIELDS[1:10], tokens[1:10])]
    for name, value in zip(("l", "w"), nums[3:5]):
        if value <= 0:
            raise DeepAccidentFormatError(path, line, name, f"box size must be positive, got {value!r}")
    if nums[5] < 0:
        raise DeepAccidentFormatError(path, line, "h", f"box size must not be negative, got {nums[5]!r}")
    obj_id = _int(path, line, "id", tokens[10])
    pts = _int(path, line, "num_lidar_pts", tokens[11])
    if tokens[12] not in ("True", "False"):
        raise DeepAccidentFormatError(path, line, "camera_visible", f"expected True or False, got {tokens[12]!r}")
    return LabelRow(cls, tuple(nums[:7]), (nums[7], nums[8]), obj_id, pts, tokens[12] == "True", line)


def parse_label_file(path: Path, *, strict: bool = True) -> LabelFile:
    """Parse ``<agent>/label/<name>/<name>_<frame>.txt``.

    Line 1 is the observing agent's velocity ``<vx> <vy>``; each further non-blank line is an object row
    (blank lines are ignored, as the official converter skips lines of one token or fewer).

    Args:
        path: the label file.
        strict: raise on a bad row; otherwise skip it and record the reason in :attr:`LabelFile.skipped`.

    Raises:
        DeepAccidentFormatError: missing/empty file or bad line 1 (always: the frame is unusable), a bad row or a
            duplicated id (``strict`` only).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DeepAccidentFormatError(path, None, "label", "label file does not exist") from None
    except UnicodeDecodeError as exc:
        raise DeepAccidentFormatError(path, None, "label", f"not UTF-8 text ({exc.reason})") from None
    lines = text.splitlines()
    if not lines:
        raise DeepAccidentFormatError(path, 1, "ego_velocity", "empty label file")
    head = lines[0].split()
    if len(head) != 2:
        raise DeepAccidentFormatError(path, 1, "ego_velocity", f"expected '<vx> <vy>', got {lines[0]!r}")
    out = LabelFile((_float(path, 1, "vx", head[0]), _float(path, 1, "vy", head[1])))
    seen: dict[int, int] = {}
    for i, raw in enumerate(lines[1:], start=2):
        if not raw.split():
            continue
        try:
            row = parse_label_row(path, i, raw)
            if row.obj_id in seen and row.obj_id != UNIDENTIFIED_ID:
                raise DeepAccidentFormatError(path, i, "id", f"id {row.obj_id} repeats line {seen[row.obj_id]}")
        except DeepAccidentFormatError as exc:
            if strict:
                raise
            out.skipped.append(str(exc))
            continue
        if row.obj_id == UNIDENTIFIED_ID:
            out.unidentified += 1
            continue
        seen[row.obj_id] = i
        out.rows.append(row)
    return out

