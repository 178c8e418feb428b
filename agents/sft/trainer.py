"""Supervised fine-tuning of the VLA on ``transformers.Trainer``.

:func:`train_sft` runs the Trainer on an :class:`agents.sft.data.SFTDataset` with the
:class:`~agents.sft.data.VLACollator`: next-token cross-entropy on the output part (label text, action tokens,
EOS; the prompt and the image tokens are masked with -100), AdamW with warm-up and cosine decay, a fixed step
budget (so the positive-only and negative-enhanced views get the same number of updates), TensorBoard logs under
``<output_dir>/runs``, checkpoints ``<output_dir>/checkpoint-<step>`` (each a loadable policy folder: weights,
processor, codebook, optimizer and scheduler state), resume from the latest checkpoint, and a progress bar.

Multi-GPU / multi-node: the Trainer runs under ``torchrun`` and ``accelerate launch`` as is (data-parallel; the
batch size is per device)::

    torchrun --nproc_per_node 4 -m agents.sft.train --mode negative --pairs pairs.parquet --out outputs/sft
    accelerate launch --num_processes 4 -m agents.sft.train --mode negative --pairs pairs.parquet --out outputs/sft

Render the sample cache once before a multi-process run (``--prepare-only``), so that the ranks do not render it
concurrently.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from agents.sft.data import SFTDataset, VLACollator
from agents.vla.policy import VLAPolicy
from agents.vla.processor import write_json


@dataclass(frozen=True)
class SFTConfig:
    """Optimisation settings; every field is documented."""

    max_steps: int = 800
    """Optimizer steps (the same for both data views)."""
    batch_size: int = 16
    """Examples per step and device."""
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (1e-3 suits the tiny model from scratch; use ~1e-4 for LoRA on a pretrained VLM)."""
    warmup_steps: int = 20
    """Linear warm-up steps."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    seed: int = 0
    """Seed of the data order and dropout (the model's initialisation has its own seed)."""
    logging_steps: int = 10
    """Steps between logged losses (TensorBoard, log history)."""
    save_steps: int = 200
    """Steps between checkpoints."""
    save_total_limit: int = 2
    """Checkpoints kept."""
    progress: bool = True
    """Show the progress bar."""
    tensorboard: bool = True
    """Log to TensorBoard (``<output_dir>/runs``)."""

    def __post_init__(self) -> None:
        for name in ("max_steps", "batch_size", "logging_steps", "save_steps", "save_total_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SFTConfig.{name}: expected an int >= 1, got {value!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"SFTConfig.learning_rate: expected > 0, got {self.learning_rate!r}")


@dataclass
class SFTResult:
    """What a training run produced.

    Attributes:
        output_dir: the run folder.
        final_dir: the trained policy folder (``<output_dir>/final``).
        losses: ``(step, loss)`` of every logged training step.
        train_seconds: wall time of ``Trainer.train``.
        examples: examples per task in the training view.
    """

    output_dir: Path
    final_dir: Path
    losses: list[tuple[int, float]]
    train_seconds: float
    examples: dict[str, int]


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op CPU threads: ``threads``, or by default 1 on a machine without CUDA (measured on the
    shared 2-core machine: a 400-step run took 1229 s with torch's default of 2 threads and 400 s with 1, the
    second thread mostly spinning while other processes held the cores). Returns the number set."""
    n = int(threads) if threads else (torch.get_num_threads() if torch.cuda.is_available() else 1)
    torch.set_num_threads(n)
    return n


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The ``checkpoint-<step>`` folder with the highest step in ``output_dir``, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    last = get_last_checkpoint(str(output_dir))
    return None if last is None else Path(last)


def training_arguments(output_dir: str | Path, config: SFTConfig):
    """The ``transformers.TrainingArguments`` of a run."""
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, logging_steps=config.logging_steps,
        logging_first_step=True, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, report_to=["tensorboard"] if config.tensorboard else "none",
        seed=config.seed, data_seed=config.seed, use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not config.progress,
        label_names=["labels"], save_only_model=False,
    )


def train_sft(policy: VLAPolicy, dataset: SFTDataset, output_dir: str | Path, config: SFTConfig = SFTConfig(),
              resume: bool | str | Path = False, callbacks: Sequence[Any] = ()) -> SFTResult:
    """Fine-tune ``policy.model`` on ``dataset`` (see the module docstring) and save the policy to
    ``<output_dir>/final``.

    Args:
        policy: the policy to train (its model is updated in place).
        dataset: the training view.
        output_dir: run folder (checkpoints, TensorBoard logs, ``final``, ``sft_result.json``).
        config: optimisation settings.
        resume: continue from a checkpoint: True for the latest in ``output_dir``, or a checkpoint path. The policy
            must have been built like the checkpoint's (e.g. ``VLAPolicy.from_pretrained(checkpoint)``).
        callbacks: extra ``transformers.TrainerCallback`` objects.
    """
    import time

    from transformers import Trainer

    output_dir = Path(output_dir)
    if len(dataset) == 0:
        raise ValueError(f"train_sft: the {dataset.mode!r} training view is empty")
    trainer = Trainer(
        model=policy.model, args=training_arguments(output_dir, config), train_dataset=dataset,
        data_collator=VLACollator(policy.processor), processing_class=policy.processor, callbacks=list(callbacks),
    )
    resume_from: str | bool | None = None
    if resume:
        if resume is True:
            last = latest_checkpoint(output_dir)
            resume_from = None if last is None else str(last)
        else:
            resume_from = str(resume)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - t0
    final = policy.save_pretrained(output_dir / "final")
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    result = SFTResult(output_dir=output_dir, final_dir=final, losses=losses, train_seconds=seconds,
                       examples=dataset.counts())
    summary = {"mode": dataset.mode, "config": asdict(config), "losses": losses, "train_seconds": seconds,
               "examples": result.examples, "final_dir": str(final)}
    write_json(output_dir / "sft_result.json", summary)
    return result
