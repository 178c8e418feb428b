"""Class-balanced SFT: a sampler that gives every label class the same share of each epoch's training examples.

On the outcome-varied bank (``env=world_v2``) most SFT decisions are labelled "no hazard" from the geometry, and a
VLA trained on the plain shuffled view writes the no-hazard sentence for every held-out pair (language 0, risk = the
majority's; README, "World v2"). :attr:`agents.sft.trainer.SFTConfig.label_balance` (Hydra
``train.sft.label_balance``, CLI ``--label-balance``) resamples the training view so the label classes contribute
comparably to the loss:

* ``"none"`` (default): the Trainer's shuffled view, every example once per epoch (as before);
* ``"hazard"``: two classes, the examples whose target states no hazard (risk level ``none``) and those that state
  one (low / medium / high);
* ``"risk"``: one class per risk level present (``none``, ``low``, ``medium``, ``high``).

An example's class is the label of the row it is made from (:meth:`agents.sft.data.SFTDataset.item_labels`), so in
the negative-enhanced view the failure-feedback and correction examples (pair rows: a hazard) count with their class
like the drive examples: the same rule for both views.

:class:`BalancedSampler` draws an epoch of ``len(dataset)`` indices in which class ``c`` (of ``C`` present) fills
exactly :func:`class_slots` ``[c]`` = ``N // C`` slots (the first ``N % C`` classes one more): a rare class's
examples are repeated (each as evenly as the slots allow: whole random permutations of the class, then part of one),
a frequent class's are subsampled (a random subset each epoch); the slots are then shuffled together. The draw is a
pure function of ``(seed, epoch, classes)`` (``set_epoch`` is called by the Trainer every epoch), so a resumed run and
every process of a data-parallel launch draw the same indices. :class:`BalancedSamplerMixin` puts it into a
``transformers.Trainer`` through the Trainer's ``_get_train_sampler`` hook.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

LABEL_BALANCE = ("none", "hazard", "risk")
"""Values of :attr:`agents.sft.trainer.SFTConfig.label_balance` (see the module docstring)."""
NO_HAZARD_CLASS = "no_hazard"
"""``hazard`` mode: the class of examples whose target's risk level is ``none``."""
HAZARD_CLASS = "hazard"
"""``hazard`` mode: the class of examples whose target names a risk (low / medium / high)."""


def balance_classes(risk_levels: Sequence[str], mode: str) -> list[str]:
    """The class of every example under ``mode`` (:data:`LABEL_BALANCE`).

    Args:
        risk_levels: ``(N,)`` risk level of each example's target (``none``, ``low``, ``medium``, ``high``; ``""`` is
            read as ``none``: a target that names no risk).
        mode: ``hazard`` (:data:`NO_HAZARD_CLASS` / :data:`HAZARD_CLASS`) or ``risk`` (the risk level itself).
    """
    if mode not in LABEL_BALANCE or mode == "none":
        raise ValueError(f"label_balance: expected one of {LABEL_BALANCE[1:]} to name classes, got {mode!r}")
    levels = [str(r) or "none" for r in risk_levels]
    if mode == "risk":
        return levels
    return [NO_HAZARD_CLASS if r == "none" else HAZARD_CLASS for r in levels]


def class_slots(classes: Sequence[str], total: int | None = None) -> dict[str, int]:
    """Slots of each class (sorted by name) in an epoch of ``total`` examples (default ``len(classes)``): ``total //
    C`` each, the first ``total % C`` classes one more."""
    names = sorted(set(classes))
    if not names:
        raise ValueError("label_balance: no examples to balance")
    total = len(classes) if total is None else int(total)
    base, extra = divmod(total, len(names))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(names)}


def balanced_indices(classes: Sequence[str], seed: int, epoch: int = 0) -> np.ndarray:
    """``(N,)`` int64 example indices of one balanced epoch (see the module docstring), ``N = len(classes)``.

    Args:
        classes: the class of every example (:func:`balance_classes`).
        seed: the run's data seed.
        epoch: the epoch (each draws other repeats / subsets and another order).
    """
    classes = list(classes)
    rng = np.random.default_rng([int(seed), int(epoch)])
    members: dict[str, np.ndarray] = {}
    for i, c in enumerate(classes):
        members.setdefault(c, []).append(i)  # type: ignore[attr-defined]
    picks = []
    for name, slots in class_slots(classes).items():
        pool = np.asarray(members[name], dtype=np.int64)
        rounds = -(-slots // len(pool))  # whole permutations, the last one cut
        picks.append(np.concatenate([rng.permutation(pool) for _ in range(rounds)])[:slots])
    return rng.permutation(np.concatenate(picks))


def class_shares(classes: Sequence[str], indices: Sequence[int]) -> dict[str, float]:
    """Share of each class (sorted by name) among the examples at ``indices`` (fractions summing to 1)."""
    drawn = [classes[int(i)] for i in indices]
    return {name: drawn.count(name) / len(drawn) for name in sorted(set(classes))}


class BalancedSampler(torch.utils.data.Sampler):
    """A ``torch.utils.data.Sampler`` over a training view: every epoch, :func:`balanced_indices` of ``classes``.

    Args:
        classes: the class of every example of the view (:func:`balance_classes`), ``(N,)``.
        seed: the data seed (:attr:`agents.sft.trainer.SFTConfig.seed`).
    """

    def __init__(self, classes: Sequence[str], seed: int) -> None:
        self.classes = list(classes)
        if not self.classes:
            raise ValueError("BalancedSampler: the training view is empty")
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose indices the next iteration draws (the Trainer calls it before every epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self) -> Iterator[int]:
        return iter(balanced_indices(self.classes, self.seed, self.epoch).tolist())


def dataset_sampler(dataset: Any, mode: str, seed: int) -> BalancedSampler | None:
    """The balanced sampler of an :class:`agents.sft.data.SFTDataset` (None for ``mode="none"``)."""
    if mode not in LABEL_BALANCE:
        raise ValueError(f"label_balance: expected one of {LABEL_BALANCE}, got {mode!r}")
    if mode == "none":
        return None
    return BalancedSampler(balance_classes(dataset.item_labels("risk_level"), mode), seed)


def describe(sampler: BalancedSampler) -> Mapping[str, Any]:
    """``{"counts": examples per class, "shares": share per class in an epoch}`` (for logs and ``sft_result.json``)."""
    counts = {name: sampler.classes.count(name) for name in sorted(set(sampler.classes))}
    slots = class_slots(sampler.classes)
    return {"counts": counts, "shares": {k: round(v / len(sampler.classes), 4) for k, v in slots.items()}}


class BalancedSamplerMixin:
    """Mix into a ``transformers.Trainer`` (before it in the bases): ``balanced_sampler`` (a :class:`BalancedSampler`
    or None) replaces the Trainer's random sampler of the training view."""

    balanced_sampler: BalancedSampler | None = None

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.balanced_sampler is not None and (train_dataset is None or train_dataset is self.train_dataset):
            return self.balanced_sampler
        return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
