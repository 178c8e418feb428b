"""Label-first SFT curriculum: the first K optimizer steps train the label sentence only, then the full target.

:attr:`agents.sft.trainer.SFTConfig.label_first_steps` ``K`` > 0 (Hydra ``train.sft.label_first_steps``, CLI
``--label-first-steps``): while the Trainer's ``global_step < K``, the labels of the action tokens and the closing
EOS of every target (``{explanation}<action><act>×8</s>``, :mod:`agents.vla.format`) are set to -100, so the loss is
the next-token cross-entropy of the label sentence and the ``<action>`` separator alone (mean over those tokens); from
step K on the loss is the usual one over the whole target. A failure-feedback target (``{explanation}</s>``) loses
its EOS only. The idea: the decoder's first updates go to stating the label from the image before the 8 action
tokens (whose loss dominates early: 9 of ~26 target tokens, each a 256-way choice) claim its capacity.

One process only (the loss of a masked step is the mean over this process's remaining tokens; a data-parallel launch
stops with an error), as :class:`agents.sft.label_head.AuxLabelTrainer`; combinable with it and with class balance.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch


def label_only(labels: torch.Tensor, masked_ids: torch.Tensor) -> torch.Tensor:
    """``labels (B, S)`` with every position whose id is in ``masked_ids (M,)`` set to -100 (a new tensor)."""
    return labels.masked_fill(torch.isin(labels, masked_ids.to(labels.device)), -100)


def action_token_ids(tokens: Any) -> torch.Tensor:
    """``(K + 1,)`` ids a label-first step masks: every action-code token and EOS (of a
    :class:`agents.vla.tokenizer.VLATokens`)."""
    ids: Sequence[int] = [int(i) for i in tokens.codes] + [int(tokens.eos)]
    return torch.tensor(sorted(set(ids)), dtype=torch.long)


class LabelFirstMixin:
    """Mix into a ``transformers.Trainer`` (before it in the bases): ``label_first_steps`` and ``label_first_ids``
    (:func:`action_token_ids`) set after construction; see the module docstring."""

    label_first_steps: int = 0
    label_first_ids: torch.Tensor | None = None

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        if self.label_first_steps > 0 and self.state.global_step < self.label_first_steps:  # type: ignore[attr-defined]
            if self.accelerator.num_processes > 1:  # type: ignore[attr-defined]
                raise ValueError("SFTConfig.label_first_steps > 0: one process only (this launch has "
                                 f"{self.accelerator.num_processes})")  # type: ignore[attr-defined]
            assert self.label_first_ids is not None
            inputs = {**inputs, "labels": label_only(inputs["labels"], self.label_first_ids)}
            num_items_in_batch = None  # mean over the remaining (label) tokens
        return super().compute_loss(model, inputs, return_outputs=return_outputs,  # type: ignore[misc]
                                    num_items_in_batch=num_items_in_batch)
