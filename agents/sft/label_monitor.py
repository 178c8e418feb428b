"""Per-field label accuracy during SFT: a ``transformers.TrainerCallback`` that lets the policy generate its label
text on a small held-out subset every N steps and logs what it states correctly.

:class:`LabelAccuracyCallback` scores the greedy generations with the evaluation's own code
(:func:`agents.vla.evaluate.language_accuracy`: :func:`counterfactual.language.parse_explanation` against the rows'
labels), and writes ``label_accuracy/<field>``, ``label_accuracy/language`` and ``label_accuracy/risk`` (fractions
in [0, 1]) to TensorBoard under ``<output_dir>/runs/label_accuracy`` and into the Trainer's ``log_history``. CLI:
``python -m agents.sft.train ... --label-monitor-steps 200 [--label-monitor-rows 48]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback


def monitor_subset(table: Any, rows: int) -> Any:
    """``rows`` rows of a rendered sample table, evenly spread over it (all of them when it is shorter), so pair
    and expert rows both appear."""
    if rows < 1:
        raise ValueError(f"label monitor rows: expected >= 1, got {rows}")
    if len(table) <= rows:
        return table
    return table.select(np.linspace(0, len(table) - 1, rows).round().astype(int).tolist())


class LabelAccuracyCallback(TrainerCallback):
    """Every ``every_steps`` optimizer steps (and at the last step), the policy's per-field label accuracy on
    ``table`` (see the module docstring).

    Args:
        policy: the :class:`agents.vla.policy.VLAPolicy` being trained (its model is the Trainer's).
        table: held-out rendered sample rows (e.g. :func:`monitor_subset` of a held-out split).
        every_steps: steps between evaluations (>= 1).
        log_dir: TensorBoard folder (default: ``<output_dir>/runs/label_accuracy``).
    """

    def __init__(self, policy: Any, table: Any, every_steps: int, log_dir: str | Path | None = None) -> None:
        if isinstance(every_steps, bool) or not isinstance(every_steps, int) or every_steps < 1:
            raise ValueError(f"LabelAccuracyCallback.every_steps: expected an int >= 1, got {every_steps!r}")
        self.policy = policy
        self.table = table
        self.every_steps = every_steps
        self.log_dir = log_dir
        self.history: list[dict[str, float]] = []
        """Every evaluation: ``{"step": ..., "label_accuracy/<name>": ...}``."""
        self._writer: Any = None

    def measure(self) -> dict[str, float]:
        """``{name: accuracy}`` of the policy now (fields, ``language``, ``risk``); the model's train/eval mode is
        restored afterwards."""
        from agents.vla.evaluate import language_accuracy

        was_training = self.policy.model.training
        try:
            report = language_accuracy(self.policy, self.table)[0]
        finally:
            self.policy.model.train(was_training)
        return {**report.fields, "language": report.language_accuracy, "risk": report.risk_accuracy}

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        step = int(state.global_step)
        if step % self.every_steps and step != int(state.max_steps):
            return control
        if not state.is_world_process_zero:
            return control
        values = {f"label_accuracy/{k}": float(v) for k, v in self.measure().items()}
        entry = {"step": step, **values}
        self.history.append(entry)
        state.log_history.append(entry)
        if args.report_to and "tensorboard" in args.report_to:
            if self._writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self._writer = SummaryWriter(str(self.log_dir or Path(args.output_dir) / "runs" / "label_accuracy"))
            for name, value in values.items():
                if np.isfinite(value):
                    self._writer.add_scalar(name, value, step)
            self._writer.flush()
        return control

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return control
