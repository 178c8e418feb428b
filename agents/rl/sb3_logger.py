"""SB3's logger without its stray temp folders.

Stable-Baselines3 configures a run's logger in ``_setup_learn`` with ``utils.configure_logger``, which calls
``logger.configure(folder=None, ...)`` whenever no ``tensorboard_log`` is given; that creates an **empty folder
``$TMPDIR/SB3-<date-time>`` on every ``learn()``** (``$SB3_LOGDIR`` aside), although nothing is written to it (the
formats are ``stdout`` or none). A pipeline run without TensorBoard, every test and every benchmark left one per
RL row (583 of them in ``/tmp`` after a day of this project's runs).

:class:`NoTempLogDir` is a mixin for SB3 algorithms: when no ``tensorboard_log`` is set and no custom logger was
given (``set_logger``), ``learn`` gets a folderless :class:`stable_baselines3.common.logger.Logger` with SB3's own
formats for that case (stdout at ``verbose >= 1``, nothing at 0), so the outputs are unchanged and no folder is
made. With ``tensorboard_log`` SB3's own configuration runs as before.
"""

from __future__ import annotations

import sys
from typing import Any

from stable_baselines3.common.logger import HumanOutputFormat, Logger


def folderless_logger(verbose: int) -> Logger:
    """SB3's logger of a run without TensorBoard (stdout at ``verbose >= 1``, no output at 0), with no folder."""
    return Logger(folder=None, output_formats=[HumanOutputFormat(sys.stdout)] if verbose >= 1 else [])


class NoTempLogDir:
    """Mixin (before the SB3 algorithm class in the bases): ``learn`` without ``tensorboard_log`` makes no temp
    folder (module docstring)."""

    def _setup_learn(self, *args: Any, **kwargs: Any):
        custom = self._custom_logger
        if not custom and self.tensorboard_log is None:
            self._logger = folderless_logger(self.verbose)
            self._custom_logger = True  # SB3's _setup_learn keeps a custom logger
        try:
            return super()._setup_learn(*args, **kwargs)
        finally:
            self._custom_logger = custom
