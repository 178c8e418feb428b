"""DeepAccident reader and writer: scenario folders <-> :class:`~envs.scenes.scene.Scene`.

DeepAccident (tianqi-wang1996/DeepAccident) is a V2X accident dataset generated in CARLA at 10 Hz. This package reads
the observing agent's labels, calibration and the scenario meta file into a Scene (``map=None``: the dataset has no
HD map) and writes Scenes back in the same layout. Only read calibration pickles from a data root you trust.

Modules: :mod:`~envs.scenes.deepaccident.layout` (paths, split files, atomic writes); :mod:`~envs.scenes.deepaccident.labels`,
:mod:`~envs.scenes.deepaccident.meta`, :mod:`~envs.scenes.deepaccident.calib` (file parsers); :mod:`~envs.scenes.deepaccident.transforms`
(the two readings of the files' frames); :mod:`~envs.scenes.deepaccident.views` (the cross-view check that decides
between them); :mod:`~envs.scenes.deepaccident.collision`
(box overlap and distance); :mod:`~envs.scenes.deepaccident.accident` (accident truth from meta, frame from the boxes);
:mod:`~envs.scenes.deepaccident.checks` (kinematic invariants of any scene); :mod:`~envs.scenes.deepaccident.reader`;
:mod:`~envs.scenes.deepaccident.writer`. ``python -m envs.scenes.deepaccident --out DIR --num-scenes N`` writes bank scenes as a
DeepAccident folder (:mod:`envs.scenes.deepaccident.__main__`).
"""

from envs.scenes.deepaccident.accident import CollisionFacts, locate_collision
from envs.scenes.deepaccident.calib import load_calib
from envs.scenes.deepaccident.checks import (
    KinematicsCheck,
    KinematicsCheckConfig,
    check_kinematics,
)
from envs.scenes.deepaccident.errors import DeepAccidentFormatError, DeepAccidentWarning
from envs.scenes.deepaccident.labels import (
    CLASS_MAP,
    EGO_ROW_ID,
    UNKNOWN_CLASS,
    parse_label_file,
)
from envs.scenes.deepaccident.layout import AGENTS, CAMERAS, SPLITS
from envs.scenes.deepaccident.meta import parse_meta
from envs.scenes.deepaccident.reader import (
    DeepAccidentDataset,
    ego_params_for_box,
    read_scenario,
)
from envs.scenes.deepaccident.writer import WriteResult, write_scenario

__all__ = [
    "AGENTS",
    "CAMERAS",
    "CLASS_MAP",
    "EGO_ROW_ID",
    "SPLITS",
    "UNKNOWN_CLASS",
    "CollisionFacts",
    "DeepAccidentDataset",
    "DeepAccidentFormatError",
    "DeepAccidentWarning",
    "KinematicsCheck",
    "KinematicsCheckConfig",
    "WriteResult",
    "check_kinematics",
    "ego_params_for_box",
    "load_calib",
    "locate_collision",
    "parse_label_file",
    "parse_meta",
    "read_scenario",
    "write_scenario",
]
