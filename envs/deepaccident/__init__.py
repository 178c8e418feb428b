"""DeepAccident reader and writer: scenario folders <-> :class:`~envs.scene.Scene`.

DeepAccident (tianqi-wang1996/DeepAccident) is a V2X accident dataset generated in CARLA at 10 Hz. This package reads
the observing agent's labels, calibration and the scenario meta file into a Scene (``map=None``: the dataset has no
HD map) and writes Scenes back in the same layout. Only read calibration pickles from a data root you trust.

Modules: :mod:`~envs.deepaccident.layout` (paths, split files, atomic writes); :mod:`~envs.deepaccident.labels`,
:mod:`~envs.deepaccident.meta`, :mod:`~envs.deepaccident.calib` (file parsers); :mod:`~envs.deepaccident.transforms`
(CARLA left-handed <-> right-handed frames); :mod:`~envs.deepaccident.collision` (box overlap);
:mod:`~envs.deepaccident.reader`; :mod:`~envs.deepaccident.writer`.
"""

from envs.deepaccident.errors import DeepAccidentFormatError, DeepAccidentWarning
from envs.deepaccident.layout import AGENTS, CAMERAS, SPLITS
from envs.deepaccident.calib import load_calib
from envs.deepaccident.labels import CLASS_MAP, EGO_ROW_ID, parse_label_file
from envs.deepaccident.meta import parse_meta
from envs.deepaccident.reader import DeepAccidentDataset, read_scenario
from envs.deepaccident.writer import WriteResult, write_scenario

__all__ = [
    "AGENTS",
    "CAMERAS",
    "CLASS_MAP",
    "EGO_ROW_ID",
    "SPLITS",
    "DeepAccidentDataset",
    "DeepAccidentFormatError",
    "DeepAccidentWarning",
    "WriteResult",
    "load_calib",
    "parse_label_file",
    "parse_meta",
    "read_scenario",
    "write_scenario",
]
