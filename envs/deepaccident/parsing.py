"""Parsers for the three DeepAccident text/binary files: label rows, meta file and calib pickle.

Every parser raises :class:`~envs.deepaccident.errors.DeepAccidentFormatError` naming the file, the 1-based line
and the field. Values are returned **as written** (CARLA's left-handed frames); conversion to SafeAlign's
right-handed world frame lives in :mod:`envs.deepaccident.transforms`.
"""

from __future__ import annotations

import io
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.deepaccident.errors import DeepAccidentFormatError
from envs.scene import AgentClass

# ----------------------------------------------------------------------------------------------- classes / ids
CLASS_MAP: dict[str, AgentClass] = {
    "car": AgentClass.VEHICLE,
    "van": AgentClass.VEHICLE,
    "truck": AgentClass.VEHICLE,
    "cyclist": AgentClass.CYCLIST,
    "motorcycle": AgentClass.CYCLIST,
    "pedestrian": AgentClass.PEDESTRIAN,
}
"""DeepAccident label classes (``carla_categories`` in ``carla_converter.py``) to SafeAlign classes."""

EGO_ROW_ID = -100
"""Id of the observing agent's own row (``DeepAccident_dataset.py``: "ego vehicle are marked as -100")."""

UNIDENTIFIED_ID = -1
"""Rows with id -1 are marked invalid by the official dataset class; they cannot be tracked and are skipped."""

STATIC_DECORATION_MIN_ID = 20000
"""Per the dataset author (DeepAccident issue #14), ids above 20000 are CARLA's static decoration (parked) objects."""

LABEL_FIELDS = ("class", "x", "y", "z", "l", "w", "h", "yaw", "vx", "vy", "id", "num_lidar_pts", "camera_visible")
"""Tokens of a label row, in order (13)."""

NO_COLLISION = ("-1",) * 7


@dataclass(frozen=True)
class LabelRow:
    """One object row of a label file, as written (observing agent's lidar frame, CARLA left-handed).

    Attributes:
        cls: class name, a key of :data:`CLASS_MAP`.
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
        ego_velocity: ``(2,)`` line 1 ``<vx> <vy>`` [m/s] as written (observing agent's frame, left-handed).
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


def _int(path: Path, line: int, name: str, token: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise DeepAccidentFormatError(path, line, name, f"not an integer: {token!r}") from None


def parse_label_row(path: Path, line: int, text: str) -> LabelRow:
    """Parse one object row ``<class> <x> <y> <z> <l> <w> <h> <yaw> <vx> <vy> <id> <num_lidar_pts> <camera_visible>``.

    Raises:
        DeepAccidentFormatError: wrong token count, unknown class, non-numeric or non-finite number, size not
            positive (length, width) or negative (height), bad id, camera_visible not ``True``/``False``.
    """
    tokens = text.split()
    if len(tokens) != len(LABEL_FIELDS):
        raise DeepAccidentFormatError(path, line, "tokens", f"expected {len(LABEL_FIELDS)} tokens, got {len(tokens)}")
    cls = tokens[0]
    if cls not in CLASS_MAP:
        raise DeepAccidentFormatError(path, line, "class", f"unknown class {cls!r}; known: {sorted(CLASS_MAP)}")
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


# ----------------------------------------------------------------------------------------------------- meta
AGENT_ORDER = ("ego_vehicle", "ego_vehicle_behind", "other_vehicle", "other_vehicle_behind")
"""Order of the ids on the meta ``agents id:`` line (``DeepAccident_dataset.py``)."""

SHORT_AGENT_NAMES = {"ego": "ego_vehicle", "ego_behind": "ego_vehicle_behind", "other": "other_vehicle",
                     "other_behind": "other_vehicle_behind"}
"""Short names used on the ``colliding agents:`` line (``none``: an actor outside the four V2X vehicles)."""


def agent_full_name(name: str) -> str:
    """``ego`` -> ``ego_vehicle`` etc.; other names unchanged."""
    return SHORT_AGENT_NAMES.get(name, name)


@dataclass(frozen=True)
class MetaInfo:
    """Scenario facts from ``<type>/meta/<name>.txt``.

    Line 1 of a real file (DeepAccident issue #29)::

        MidRainSunset 2675 car 2671 car 1095.9534535970056 same rear_side 66
        colliding agents: ego other
        agents id: 2675 2690 2671 2691
        road_type: four-way junction
        another_vehicle_spawn_side: opposite
        ego_vehicle_direction: right
        other_vehicle_direction: left

    Tokens 2..8 of line 1 are the collision status (all ``-1``: no collision). ``DeepAccident_dataset.py`` reads
    tokens 2..5 as ``id1 kind1 id2 kind2`` of the two colliding actors; the meaning of tokens 6..8 is not
    documented and they are kept raw. ``other_files/DeepAccident_split_data.py`` reads the last token of line 1
    as the scenario length.

    Attributes:
        weather_time: token 1, e.g. ``ClearNoon``.
        weather: ``weather_time`` without its time-of-day suffix (``MidRain``), or the whole token if no suffix.
        time_of_day: ``Noon``, ``Sunset``, ``Night`` or None.
        collision_tokens: the 7 raw status tokens.
        collision: True unless all 7 are ``-1``.
        collision_actor_ids: the two actor ids (None where not an int).
        collision_actor_kinds: the two actor kinds (e.g. ``car``, ``pedestrian``).
        collision_status: the official loader's category: ``no_collision``, ``collides_with_pedestrian``,
            ``collides_between_vehicles``.
        scenario_length: last token of line 1 when there are more than 8 tokens and it is an int, else None.
        colliding_agents: names on line 2 after ``colliding agents:`` (e.g. ``("ego", "other")``), or None.
        colliding_agents_line: line 2 raw ("" if absent).
        agent_actor_ids: V2X agent name -> CARLA actor id from ``agents id:`` (ego, ego_behind, other,
            other_behind order, per ``DeepAccident_dataset.py``); empty if the line is missing or malformed.
        fields: every ``key: value`` line, by key.
        junction_type: value of line 4 (e.g. ``four-way junction``), or None.
        spawn_side: value of line 5, or None.
        ego_direction: value of the second-to-last line, or None.
        other_direction: value of the last line, or None.
        notes: what could not be parsed (defensive parsing never raises for lines 2+).
    """

    weather_time: str
    weather: str
    time_of_day: str | None
    collision_tokens: tuple[str, ...]
    collision: bool
    collision_actor_ids: tuple[int | None, int | None]
    collision_actor_kinds: tuple[str, str]
    collision_status: str
    scenario_length: int | None
    colliding_agents: tuple[str, ...] | None
    colliding_agents_line: str
    agent_actor_ids: dict[str, int]
    fields: dict[str, str]
    junction_type: str | None
    spawn_side: str | None
    ego_direction: str | None
    other_direction: str | None
    notes: tuple[str, ...]


TIMES_OF_DAY = ("Noon", "Sunset", "Night")


def _maybe_int(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def _value(line: str) -> str | None:
    return line.split(": ", 1)[1].strip() if ": " in line else None


def parse_meta(path: Path) -> MetaInfo:
    """Parse a meta file (see :class:`MetaInfo`).

    Raises:
        DeepAccidentFormatError: missing file (field ``meta``), or line 1 with fewer than 8 tokens
            (field ``collision_status``).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DeepAccidentFormatError(path, None, "meta", "meta file does not exist") from None
    except UnicodeDecodeError as exc:
        raise DeepAccidentFormatError(path, None, "meta", f"not UTF-8 text ({exc.reason})") from None
    tokens = lines[0].split() if lines else []
    if len(tokens) < 8:
        raise DeepAccidentFormatError(
            path, 1, "collision_status", f"expected '<WeatherTime>' and 7 collision tokens, got {len(tokens)} tokens"
        )
    notes: list[str] = []
    weather_time = tokens[0]
    time_of_day = next((t for t in TIMES_OF_DAY if weather_time.endswith(t)), None)
    weather = weather_time[: -len(time_of_day)] if time_of_day else weather_time
    if time_of_day is None:
        notes.append(f"line 1: weather token {weather_time!r} has no Noon/Sunset/Night suffix")
    status = tuple(tokens[1:8])
    collision = status != NO_COLLISION
    kinds = (status[1], status[3])
    if "-1" in kinds:
        category = "no_collision"
    elif "pedestrian" in kinds:
        category = "collides_with_pedestrian"
    else:
        category = "collides_between_vehicles"
    if collision and category == "no_collision":
        notes.append("line 1: collision tokens are not all -1 but an actor kind is -1")
    scenario_length = _maybe_int(tokens[-1]) if len(tokens) > 8 else None

    fields: dict[str, str] = {}
    for line in lines[1:]:
        if ": " in line:
            key, value = line.split(": ", 1)
            fields[key.strip()] = value.strip()
    line2 = lines[1] if len(lines) > 1 else ""
    colliding = None
    if line2.startswith("colliding agents:"):
        colliding = tuple(line2.split(":", 1)[1].split())
    else:
        notes.append(f"line 2: expected 'colliding agents: <a> <b>', got {line2!r}")
    actor_ids: dict[str, int] = {}
    ids_line = lines[2] if len(lines) > 2 else ""
    if "id: " in ids_line:
        parsed = [_maybe_int(t) for t in ids_line.split("id: ")[-1].split()]
        if parsed and all(p is not None for p in parsed):
            actor_ids = {name: int(p) for name, p in zip(AGENT_ORDER, parsed)}
    if not actor_ids:
        notes.append(f"line 3: expected 'agents id: <ego> <ego_behind> <other> <other_behind>', got {ids_line!r}")
    junction = _value(lines[3]) if len(lines) > 3 else None
    spawn = _value(lines[4]) if len(lines) > 4 else None
    ego_dir = _value(lines[-2]) if len(lines) > 5 else None
    other_dir = _value(lines[-1]) if len(lines) > 5 else None
    if junction is None or ego_dir is None or other_dir is None:
        notes.append("lines 4-7: junction type or directions missing")
    return MetaInfo(
        weather_time=weather_time,
        weather=weather,
        time_of_day=time_of_day,
        collision_tokens=status,
        collision=collision,
        collision_actor_ids=(_maybe_int(status[0]), _maybe_int(status[2])),
        collision_actor_kinds=kinds,
        collision_status=category,
        scenario_length=scenario_length,
        colliding_agents=colliding,
        colliding_agents_line=line2,
        agent_actor_ids=actor_ids,
        fields=fields,
        junction_type=junction,
        spawn_side=spawn,
        ego_direction=ego_dir,
        other_direction=other_dir,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------------- calib
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("collections", "OrderedDict"),
    ("_codecs", "encode"),
}
"""The only globals a calib pickle may reference: numpy arrays, dtypes and scalars, ordered dicts, and
``_codecs.encode`` (protocol-2 pickles store array bytes as ``_codecs.encode(str, "latin1")``)."""


class _CalibUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global outside :data:`_ALLOWED_GLOBALS` (no code execution by ``find_class``).

    This narrows, but does not remove, the risk of unpickling: read calibration only from a data root you trust.
    """

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"forbidden global {module}.{name} (only numpy arrays and dicts are allowed)")
        return super().find_class(module, name)


CALIB_KEYS = ("ego_to_world", "lidar_to_ego")


def load_calib(path: Path) -> dict[str, np.ndarray]:
    """Load ``<agent>/calib/<name>/<name>_<frame>.pkl`` with a restricted unpickler.

    Returns:
        the pickled dict; ``ego_to_world`` and ``lidar_to_ego`` are checked to be finite ``(4, 4)`` float arrays
        (CARLA's left-handed frames: the observing agent to world, the lidar to the agent).

    Raises:
        DeepAccidentFormatError: missing, truncated or unsafe pickle, not a dict (field ``pickle``), a missing key
            or a bad matrix (field = the key).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DeepAccidentFormatError(path, None, "calib", "calib file does not exist") from None
    try:
        obj = _CalibUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError) as exc:
        raise DeepAccidentFormatError(path, None, "pickle", f"cannot unpickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DeepAccidentFormatError(path, None, "pickle", f"expected a dict, got {type(obj).__name__}")
    for key in CALIB_KEYS:
        if key not in obj:
            raise DeepAccidentFormatError(path, None, key, "missing key")
        try:
            mat = np.asarray(obj[key], dtype=np.float64)
        except (TypeError, ValueError):
            raise DeepAccidentFormatError(path, None, key, "not a numeric matrix") from None
        if mat.shape != (4, 4):
            raise DeepAccidentFormatError(path, None, key, f"expected shape (4, 4), got {mat.shape}")
        if not np.all(np.isfinite(mat)):
            raise DeepAccidentFormatError(path, None, key, "non-finite value (NaN/inf)")
        obj[key] = mat
    return obj
