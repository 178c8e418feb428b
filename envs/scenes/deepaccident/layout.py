"""DeepAccident folder layout: names, paths, frame listing, split files and atomic writes.

Layout (``docs/data_preparation.md`` and ``tools/data_converter/carla_converter.py`` of tianqi-wang1996/DeepAccident)::

    <root>/train.txt | val.txt | test.txt     one scenario per line: "<scenario_type> <scenario_name>"
    <root>/<scenario_type>/meta/<scenario_name>.txt
    <root>/<scenario_type>/<agent>/<sensor>/<scenario_name>/<scenario_name>_<frame>.<ext>

Only ``<agent>/label`` and ``<agent>/calib`` of the observing agent are read here; images, lidar sweeps and BEV
masks are neither read nor written.
"""

from __future__ import annotations

import re
from pathlib import Path

from envs.scenes.deepaccident.errors import DeepAccidentFormatError

AGENTS = ("ego_vehicle", "ego_vehicle_behind", "other_vehicle", "other_vehicle_behind", "infrastructure")
"""The five V2X agents of a scenario; the order of the first four is the order of the meta ``agents id:`` line."""

CAMERAS = (
    "Camera_Front", "Camera_FrontLeft", "Camera_FrontRight", "Camera_Back", "Camera_BackLeft", "Camera_BackRight",
)
"""Camera names used as calib keys ``lidar_to_<camera>`` / ``intrinsic_<camera>``."""

SPLITS = ("train", "val", "test")

RAW_DT = 0.1
"""Raw frame step [s] (10 Hz)."""

KEY_FRAME_STRIDE = 5
"""The official converter keeps frames with ``(last_frame - frame) % 5 == 0`` (2 Hz)."""

FRAME_DIGITS = 3
"""Frame numbers in real file names are zero-padded to 3 digits: ``<scenario_name>_024`` (the names quoted in
``projects/mmdet3d_plugin/datasets/DeepAccident_dataset.py`` lines 202-206 and 1609-1613, e.g.
``..._Town04_type001_subtype0002_scenario00021_024``). The reader accepts any number of digits (the converter parses
``int(frame_name.split('_')[-1])``, ``carla_converter.py`` lines 144-147 and 165) and never rebuilds a name from an
int; the writer pads."""

_NAME_RE = re.compile(r"^[^\s/\\]+$")


def check_name(kind: str, value: str) -> str:
    """A scenario type/name/agent must be one path component without whitespace (the split file is space separated)."""
    if not isinstance(value, str) or not _NAME_RE.match(value) or value in (".", ".."):
        raise ValueError(f"{kind}: {value!r} is not a valid DeepAccident name (one path component, no whitespace)")
    return value


def meta_path(root: Path, scenario_type: str, scenario_name: str) -> Path:
    """``<root>/<type>/meta/<name>.txt``."""
    return Path(root) / scenario_type / "meta" / f"{scenario_name}.txt"


def sensor_dir(root: Path, scenario_type: str, agent: str, sensor: str, scenario_name: str) -> Path:
    """``<root>/<type>/<agent>/<sensor>/<name>`` (sensor ``label``, ``calib``, ``lidar01``, cameras...)."""
    return Path(root) / scenario_type / agent / sensor / scenario_name


def frame_stem(scenario_name: str, frame: int) -> str:
    """The file stem the dataset uses for a frame: ``<name>_<frame zero-padded to FRAME_DIGITS>`` (writer side)."""
    return f"{scenario_name}_{int(frame):0{FRAME_DIGITS}d}"


def frame_file(folder: Path, scenario_name: str, frame: int, ext: str) -> Path:
    """``<folder>/<name>_<frame, padded>.<ext>`` (used by the writer; the reader derives every per-frame path from
    the label file's own stem with :func:`sibling_file`)."""
    return Path(folder) / f"{frame_stem(scenario_name, frame)}.{ext}"


def sibling_file(folder: Path, stem: str, ext: str) -> Path:
    """``<folder>/<stem>.<ext>``: a per-frame file of another sensor, named from the label file's stem exactly as the
    converter does (``frame_name + '.pkl'``, ``carla_converter.py`` lines 156-160, 203, 225)."""
    return Path(folder) / f"{stem}.{ext}"


def list_frames(label_dir: Path, scenario_name: str) -> list[tuple[int, Path]]:
    """Frame numbers and label files ``<name>_<frame>.txt`` in ``label_dir``, sorted by (frame, file name).

    Duplicated frame numbers (``_7`` and ``_07``) appear twice; the caller decides.

    Raises:
        DeepAccidentFormatError: folder missing, a ``.txt`` file not named ``<name>_<int>.txt``, or no label file
            (an empty scenario folder).
    """
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise DeepAccidentFormatError(label_dir, None, "label", "scenario label folder does not exist")
    prefix = f"{scenario_name}_"
    out: list[tuple[int, Path]] = []
    for path in sorted(label_dir.iterdir()):
        if path.suffix != ".txt" or not path.is_file():
            continue
        stem = path.stem
        tail = stem[len(prefix):] if stem.startswith(prefix) else ""
        if not re.fullmatch(r"-?\d+", tail):
            raise DeepAccidentFormatError(path, None, "frame", f"file name is not '{prefix}<frame>.txt'")
        out.append((int(tail), path))
    if not out:
        raise DeepAccidentFormatError(label_dir, None, "label", "empty scenario folder: no label files")
    out.sort(key=lambda fp: (fp[0], fp[1].name))
    return out


def read_split_file(path: Path) -> list[tuple[int, str, str]]:
    """Entries ``(line_number, scenario_type, scenario_name)`` of a split file; blank lines are ignored.

    The converter reads ``line.rstrip().split(' ')[0]`` and ``[1]`` (``carla_converter.py`` lines 41-50) and joins
    them into paths unchecked; here each token must be one path component (no ``/`` or ``\\``, not ``.`` or
    ``..``), so a split file cannot point outside the data root.

    Raises:
        DeepAccidentFormatError: missing file; a line that is not exactly two space-separated tokens (field
            ``scenario``); a token that is a path (field ``scenario_type`` or ``scenario_name``), naming the line.
    """
    path = Path(path)
    if not path.is_file():
        raise DeepAccidentFormatError(path, None, "split", "split file does not exist")
    entries = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 2:
                raise DeepAccidentFormatError(
                    path, i, "scenario", f"expected '<scenario_type> <scenario_name>', got {line.rstrip()!r}"
                )
            for kind, token in zip(("scenario_type", "scenario_name"), tokens):
                try:
                    check_name(kind, token)
                except ValueError as exc:
                    raise DeepAccidentFormatError(path, i, kind, f"{exc} (split entries are names, not paths)") \
                        from None
            entries.append((i, tokens[0], tokens[1]))
    return entries


