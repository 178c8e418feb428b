"""Supervised fine-tuning of the VLA on ``transformers.Trainer``.

:func:`train_sft` runs the Trainer on an :class:`agents.sft.data.SFTDataset` with the
:class:`~agents.sft.data.VLACollator`: next-token cross-entropy on the output part (label text, action tokens,
EOS; the prompt and the image tokens are masked with -100), AdamW with warm-up and cosine decay, a fixed step
budget (so the positive-only and negative-enhanced views get the same number of updates), TensorBoard logs under
``<output_dir>/runs``, checkpoints ``<output_dir>/checkpoint-<step>`` (each a loadable policy folder: weights,
processor, codebook, optimizer and scheduler state), resume from the latest checkpoint, and a progress bar.

Multi-GPU / multi-node (data-parallel, DDP): the Trainer runs under ``torchrun`` and ``accelerate launch`` as is.
:attr:`SFTConfig.batch_size` is per process, so N processes train on N x ``batch_size`` examples per step; set
:attr:`SFTConfig.global_batch_size` (CLI ``--global-batch-size``) or ``batch_size = global / N`` to keep the
1-process recipe::

    python -m agents.sft.train --prepare-only --mode negative --pairs pairs.parquet --out outputs/sft  # cache once
    torchrun --nproc_per_node 4 -m agents.sft.train --mode negative --pairs pairs.parquet --out outputs/sft \
        --global-batch-size 16
    accelerate launch --num_processes 4 -m agents.sft.train ... --global-batch-size 16

On CPUs (gloo): ``torchrun --nproc_per_node 2 ...``, or ``accelerate launch --multi_gpu --num_processes 2 ...``
(which runs torch's launcher; the Trainer still takes the CPU when there is no CUDA); ``accelerate launch --cpu
--num_processes 2`` starts one process unless MPI is set up (``--mpirun_hostfile``).

What makes an N-process run the 1-process run (checked by ``tests/test_sft_distributed.py``: 2 CPU processes vs 1,
same global batch, same per-step losses to float precision): every process draws the same seeded permutation
(``data_seed``; accelerate's seedable sampler) and takes every N-th per-device batch of it, so a step's global batch
is the same examples as the 1-process batch; the last incomplete global batch of each epoch is dropped (so no
process pads its batch with repeated examples, and every step averages exactly the global batch; a view shorter than
one global batch keeps it, and then N processes no longer see what one sees); the loss is
normalised by the label tokens of the whole global batch (``average_tokens_across_devices``), not averaged per
process; the CPU backend is gloo; only the main process writes the final policy and ``sft_result.json`` (the
Trainer writes checkpoints and TensorBoard logs from the main process too).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from transformers import TrainerCallback

from agents.sft.data import SFTDataset, VLACollator
from agents.vla.policy import VLAPolicy
from agents.vla.processor import write_json


@dataclass(frozen=True)
class SFTConfig:
    """Optimisation settings; every field is documented."""

    max_steps: int = 800
    """Optimizer steps (the same for both data views)."""
    batch_size: int = 16
    """Examples per step and process (device); the global batch of a data-parallel run of N processes is N x this,
    unless :attr:`global_batch_size` is set."""
    global_batch_size: int | None = None
    """Examples per optimizer step over all processes, or None (``batch_size`` per process). When set, each of the N
    processes takes ``global_batch_size / N`` (a ValueError when N does not divide it) and ``batch_size`` is not used,
    so one config trains the same recipe on any number of processes."""
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
    aux_label_weight: float = 0.0
    """Weight ``w`` of the auxiliary per-field label classification loss (``L = L_text + w * mean_f CE_f``; a
    :class:`agents.sft.label_head.LabelHead` on the decoder's image-token states, trained jointly and saved beside
    the model). 0 (default): text loss only, as before. Single-process runs only."""
    aux_label_position: str = "image"
    """What the auxiliary head reads: ``image`` (the image tokens' states at the input of the last decoder layer)
    or ``prompt`` (the last prompt token's final state, which predicts the label sentence's first word); see
    :mod:`agents.sft.label_head`."""
    aux_label_layer: int | None = None
    """Decoder ``hidden_states`` index the auxiliary head reads (None: -2 for ``image``, -1 for ``prompt``)."""
    label_balance: str = "none"
    """Class balance of the training examples (:mod:`agents.sft.balance`): ``none`` (the shuffled view, every example
    once per epoch), ``hazard`` (no-hazard and hazard targets each fill half of every epoch) or ``risk`` (each risk
    level present fills an equal share); rare classes repeated, frequent ones subsampled, for both data views."""
    label_first_steps: int = 0
    """Label-first curriculum (:mod:`agents.sft.curriculum`): the first K steps train the label sentence only (action
    tokens and EOS masked), then the full target. 0 (default): the full target from the start. Single-process runs
    only."""

    label_head_read: str = "tower"
    """What the policy's label head reads when the policy states its label with it (``VLAConfig.label_source =
    "head"``; fitted here before the decoder's steps, :func:`agents.sft.label_head.fit_policy_label_head`): ``tower``
    (the frozen tower's patch features flattened, what the readability probe reads) or ``tower_mean`` (averaged
    over the patches). Not used by a ``"text"`` policy."""

    def __post_init__(self) -> None:
        if self.label_head_read not in ("tower", "tower_mean"):
            raise ValueError(f"SFTConfig.label_head_read: expected 'tower' or 'tower_mean', got "
                             f"{self.label_head_read!r}")
        for name in ("max_steps", "batch_size", "logging_steps", "save_steps", "save_total_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SFTConfig.{name}: expected an int >= 1, got {value!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"SFTConfig.learning_rate: expected > 0, got {self.learning_rate!r}")
        if isinstance(self.label_first_steps, bool) or not isinstance(self.label_first_steps, int) \
                or self.label_first_steps < 0:
            raise ValueError(f"SFTConfig.label_first_steps: expected an int >= 0, got {self.label_first_steps!r}")
        if not (self.aux_label_weight >= 0 and math.isfinite(self.aux_label_weight)):
            raise ValueError(f"SFTConfig.aux_label_weight: expected a finite value >= 0, got {self.aux_label_weight!r}")
        from agents.sft.balance import LABEL_BALANCE

        if self.label_balance not in LABEL_BALANCE:
            raise ValueError(f"SFTConfig.label_balance: expected one of {LABEL_BALANCE}, got {self.label_balance!r}")
        if self.aux_label_position not in ("image", "prompt"):
            raise ValueError(f"SFTConfig.aux_label_position: expected 'image' or 'prompt', got "
                             f"{self.aux_label_position!r}")
        g = self.global_batch_size
        if g is not None and (isinstance(g, bool) or not isinstance(g, int) or g < 1):
            raise ValueError(f"SFTConfig.global_batch_size: expected None or an int >= 1, got {g!r}")

    def per_device_batch_size(self, processes: int) -> int:
        """Examples per step and process for a run of ``processes`` data-parallel processes (see
        :attr:`global_batch_size`)."""
        if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
            raise ValueError(f"processes: expected an int >= 1, got {processes!r}")
        if self.global_batch_size is None:
            return self.batch_size
        if self.global_batch_size % processes:
            raise ValueError(f"SFTConfig.global_batch_size: {self.global_batch_size} examples do not split evenly over "
                             f"{processes} processes; use a multiple of {processes}")
        return self.global_batch_size // processes


@dataclass
class SFTResult:
    """What a training run produced.

    Attributes:
        output_dir: the run folder.
        final_dir: the trained policy folder (``<output_dir>/final``).
        losses: ``(step, loss)`` of every logged training step.
        train_seconds: wall time of ``Trainer.train`` [s].
        examples: examples per task in the training view.
        processes: data-parallel processes of the run (1 without ``torchrun`` / ``accelerate launch``).
        global_batch_size: examples per optimizer step over all processes.
        is_main_process: whether this process wrote ``final_dir`` and ``sft_result.json`` (the others only train).
    """

    output_dir: Path
    final_dir: Path
    losses: list[tuple[int, float]]
    train_seconds: float
    examples: dict[str, int]
    processes: int = 1
    global_batch_size: int = 0
    is_main_process: bool = True


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


def launched_processes() -> int:
    """Processes of this launch: ``WORLD_SIZE`` (set by ``torchrun`` and ``accelerate launch``), 1 when unset."""
    import os

    text = os.environ.get("WORLD_SIZE", "1")
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"WORLD_SIZE: expected an int >= 1, got {text!r}")
    return n


def data_parallel_devices(args: Any) -> int:
    """Devices that split a step's batch in a run with these ``TrainingArguments``: the processes (``WORLD_SIZE``
    under ``torchrun`` / ``accelerate launch``) times the GPUs each drives (1 on CPU or with one GPU per process)."""
    return int(args.world_size) * max(1, int(args.n_gpu))


def training_arguments(output_dir: str | Path, config: SFTConfig, examples: int | None = None):
    """The ``transformers.TrainingArguments`` of a run (see the module docstring): the per-device batch from
    :meth:`SFTConfig.per_device_batch_size` over :func:`data_parallel_devices`, the last incomplete global batch of
    each epoch dropped unless the training view (``examples`` long; None: unknown) is shorter than one global batch,
    gloo as the distributed backend of a multi-process launch without CUDA (accelerate would take MPI where torch has
    it), the loss normalised over the label tokens of all processes."""
    from transformers import TrainingArguments

    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(output_dir), max_steps=config.max_steps, per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate, lr_scheduler_type="cosine", warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, logging_steps=config.logging_steps,
        logging_first_step=True, save_strategy="steps", save_steps=config.save_steps,
        save_total_limit=config.save_total_limit, report_to=["tensorboard"] if config.tensorboard else "none",
        seed=config.seed, data_seed=config.seed, use_cpu=not cuda,
        ddp_backend="gloo" if not cuda and launched_processes() > 1 else None,
        average_tokens_across_devices=True, remove_unused_columns=False, dataloader_num_workers=0,
        disable_tqdm=not config.progress, label_names=["labels"], save_only_model=False,
    )
    devices = data_parallel_devices(args)
    args.per_device_train_batch_size = config.per_device_batch_size(devices)
    args.dataloader_drop_last = examples is None or examples >= args.per_device_train_batch_size * devices
    return args


def _balanced(trainer_class: type) -> type:
    """``trainer_class`` with :class:`agents.sft.balance.BalancedSamplerMixin` (its ``balanced_sampler``, when set,
    replaces the random sampler of the training view) and :class:`agents.sft.curriculum.LabelFirstMixin` (its
    ``label_first_steps``, when > 0, masks the action tokens of the first steps)."""
    from agents.sft.balance import BalancedSamplerMixin
    from agents.sft.curriculum import LabelFirstMixin

    return type(f"Balanced{trainer_class.__name__}", (BalancedSamplerMixin, LabelFirstMixin, trainer_class), {})


class _LabelHeadCheckpoints(TrainerCallback):
    """A callback writing the policy's label head into every checkpoint folder the Trainer
    saves (``checkpoint-<step>``), so each checkpoint of a ``label_source="head"`` policy is a loadable policy
    folder and a resumed run keeps the head."""

    def __init__(self, policy: VLAPolicy) -> None:
        self.policy = policy

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        from agents.sft.label_head import CLASSIFIER_STEM, save_label_head

        if state.is_world_process_zero and self.policy.label_head is not None:
            save_label_head(self.policy.label_head, Path(args.output_dir) / f"checkpoint-{state.global_step}",
                            CLASSIFIER_STEM)
        return control


def train_sft(policy: VLAPolicy, dataset: SFTDataset, output_dir: str | Path, config: SFTConfig = SFTConfig(),
              resume: bool | str | Path = False, callbacks: Sequence[Any] = ()) -> SFTResult:
    """Fine-tune ``policy.model`` on ``dataset`` (see the module docstring) and save the policy to
    ``<output_dir>/final`` (the main process of a multi-process launch writes it and ``sft_result.json``; every
    process returns after they are written).

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
    args = training_arguments(output_dir, config, examples=len(dataset))
    resume_from: str | bool | None = None
    if resume:
        if resume is True:
            last = latest_checkpoint(output_dir)
            resume_from = None if last is None else str(last)
        else:
            resume_from = str(resume)
    from agents.sft.balance import dataset_sampler, describe

    sampler = dataset_sampler(dataset, config.label_balance, config.seed)
    callbacks = list(callbacks)
    head_record: dict[str, Any] | None = None
    if policy.label_source == "head":
        from agents.sft.label_head import CLASSIFIER_STEM, fit_policy_label_head, load_label_head as load_head

        loaded = load_head(resume_from, CLASSIFIER_STEM) if resume_from else None
        if loaded is not None:
            policy.label_head = loaded.to(policy.device)
            head_record = {"loaded_from": str(resume_from)}
        else:
            head_record = fit_policy_label_head(policy, dataset, config.label_head_read, seed=config.seed)
        callbacks.append(_LabelHeadCheckpoints(policy))
    common = dict(model=policy.model, args=args, train_dataset=dataset, processing_class=policy.processor,
                  callbacks=callbacks)
    if config.aux_label_weight > 0:
        from agents.sft.label_head import AuxLabelTrainer, LabeledCollator, LabelHead, load_label_head

        head = load_label_head(resume_from) if resume_from else None
        image_tokens = getattr(policy.model.config, "image_seq_length", None)
        if not image_tokens:
            raise ValueError("SFTConfig.aux_label_weight > 0: the model's config names no image_seq_length (image "
                             "tokens per example), which the label head needs")
        if head is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                head = LabelHead.for_model(policy.model, image_tokens, config.aux_label_layer,
                                           config.aux_label_position)
        trainer = _balanced(AuxLabelTrainer)(**common, data_collator=LabeledCollator(policy.processor),
                                             label_head=head.to(args.device), aux_weight=config.aux_label_weight,
                                             image_token=policy.tokens.image)
    else:
        trainer = _balanced(Trainer)(**common, data_collator=VLACollator(policy.processor))
    trainer.balanced_sampler = sampler
    if config.label_first_steps > 0:
        from agents.sft.curriculum import action_token_ids

        trainer.label_first_steps = config.label_first_steps
        trainer.label_first_ids = action_token_ids(policy.tokens)
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume_from)
    seconds = time.perf_counter() - t0
    final = output_dir / "final"
    devices = data_parallel_devices(args)
    losses = [(int(e["step"]), float(e["loss"])) for e in trainer.state.log_history if "loss" in e]
    result = SFTResult(output_dir=output_dir, final_dir=final, losses=losses, train_seconds=seconds,
                       examples=dataset.counts(), processes=devices,
                       global_batch_size=args.per_device_train_batch_size * devices,
                       is_main_process=trainer.is_world_process_zero())
    if result.is_main_process:  # one writer; the other processes wait below until the files are there
        policy.save_pretrained(final)
        if config.aux_label_weight > 0:
            from agents.sft.label_head import save_label_head

            save_label_head(trainer.label_head, final)
        summary = {"mode": dataset.mode, "config": asdict(config), "losses": losses, "train_seconds": seconds,
                   "examples": result.examples, "final_dir": str(final), "processes": devices,
                   "global_batch_size": result.global_batch_size,
                   "label_balance": None if sampler is None else describe(sampler),
                   "label_source": policy.label_source, "label_head": head_record}
        write_json(output_dir / "sft_result.json", summary)
    trainer.accelerator.wait_for_everyone()
    return result
