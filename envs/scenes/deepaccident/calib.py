"""Calibration pickles ``<agent>/calib/<name>/<name>_<frame>.pkl``, loaded with a restricted unpickler.

Unpickling can run code; the unpickler below only resolves numpy array/dtype/scalar constructors and ordered dicts,
which narrows the risk but does not make untrusted files safe: **read calibration only from a data root you trust**.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from envs.scenes.deepaccident.errors import DeepAccidentFormatError

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
