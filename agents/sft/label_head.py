"""Auxiliary per-field label classification during SFT: a head that reads the decoder's image tokens.

The VLA states its safety label as text, and the text loss alone leaves it below the majority answer while a linear
probe on the same frozen vision tower reads much more of the label (``benchmarks/bench_readability.py``). This
module adds a second training signal, on by :attr:`agents.sft.trainer.SFTConfig.aux_label_weight` > 0:

* :class:`LabelHead`: one linear classifier per label field (:data:`agents.sft.data.LABEL_COLUMNS`) over one of
  two read-outs (:attr:`LabelHeadConfig.position`):

  - ``"image"``: the decoder's hidden states at the image-token positions, flattened (so the position of a patch,
    e.g. the sector, is kept): ``(B, image_tokens * hidden)``. It reads the output of the **second-to-last** decoder
    layer (``hidden_states[-2]``), which the last layer's attention reads at the text positions; the last layer's
    output at the image positions is read by no other token, so a head there would train nothing the label text
    uses.
  - ``"prompt"``: the last layer's state at the last prompt token (the position that predicts the first word of
    the label sentence), ``(B, hidden)``: the classifier asks that position to hold the whole label before the
    sentence starts, and its gradient reaches the attention from the text to the image tokens.
* :class:`LabeledCollator`: the SFT collator plus ``label_targets (B, F)`` int64 class indices, read from each
  example's target sentence with :func:`counterfactual.language.parse_explanation` (the parser the evaluation
  scores generated text with; the no-hazard sentence names no agent class, sector or conflict: class ``""``).
* :func:`save_label_head` / :func:`load_label_head` (:mod:`agents.vla.label_head`, where :class:`LabelHead` lives
  beside the policy's own label head): ``label_head.safetensors`` + ``label_head.json`` beside the model in a
  policy / checkpoint folder. The head is used in training only: the policy generates text as before and
  ``VLAPolicy.from_pretrained`` ignores these files; a resumed run reloads the head from its checkpoint.

* :func:`fit_policy_label_head`: the policy's **label head** (``VLAConfig.label_source="head"``,
  :mod:`agents.vla.label_head`), fitted by :func:`agents.sft.trainer.train_sft` before the decoder's steps on every
  row of the training table (pairs and safe expert decisions, each once): the frozen tower's patch features of its
  BEV, the classes of its target sentence, the L2 penalty chosen on a scene-disjoint inner quarter of those rows.
  The tower is frozen, so the fit does not depend on the decoder's training.
* :class:`AuxLabelTrainer`: the ``transformers.Trainer`` of :func:`agents.sft.trainer.train_sft` when the weight is
  > 0: loss ``L = L_text + w * mean_f CE_f`` (``aux_label_loss`` logged beside ``loss``), the head's parameters as an
  extra AdamW group under the same schedule, the head written into every checkpoint and the final folder.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import Trainer

from agents.sft.data import VLACollator
from agents.vla.label_head import (  # noqa: F401 (re-exported: the head itself lives beside the policy that uses it)
    CLASSIFIER_STEM,
    FIELD_CLASSES,
    HEAD_CONFIG,
    HEAD_WEIGHTS,
    NONE_CLASS,
    LabelHead,
    LabelHeadConfig,
    label_targets,
    load_label_head,
    save_label_head,
)

POSITIONS = ("image", "prompt")
"""Read-outs of the auxiliary head (the decoder's states; see the module docstring)."""


def fit_policy_label_head(policy: Any, dataset: Any, read: str = "tower", seed: int = 0,
                          batch_size: int = 64) -> dict[str, Any]:
    """Fit ``policy.label_head`` on every row of ``dataset`` (:class:`agents.sft.data.SFTDataset`; see the module
    docstring) with :func:`agents.vla.label_head.fit_label_head`; ``read``: ``tower`` (flattened patches) or
    ``tower_mean``. Returns the fit's record (chosen L2 per field, inner-validation accuracies, rows, read-out,
    seconds)."""
    import time

    from agents.vla.label_head import fit_label_head, projector_input

    t0 = time.perf_counter()
    image_processor = policy.processor.processor.image_processor
    dtype = next(policy.model.parameters()).dtype
    was_training = policy.model.training
    policy.model.eval()
    chunks = []
    try:
        for start in range(0, len(dataset.bev), batch_size):
            pixels = image_processor(images=list(dataset.bev[start: start + batch_size]),
                                     return_tensors="pt")["pixel_values"]
            chunks.append(projector_input(policy.model, pixels.to(policy.device, dtype=dtype)).cpu())
    finally:
        policy.model.train(was_training)
    if not chunks:
        raise ValueError("fit_policy_label_head: the training table has no rows")
    with torch.random.fork_rng(devices=[]):
        head, record = fit_label_head(torch.cat(chunks), label_targets(dataset.explanation), dataset.scene_id,
                                      position=read, seed=seed)
    policy.label_head = head.to(policy.device)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    return record


class LabeledCollator(VLACollator):
    """:class:`agents.sft.data.VLACollator` plus ``label_targets`` ``(B, F)`` (:func:`label_targets` of each
    example's target sentence; parsed once per distinct sentence)."""

    def __init__(self, processor: Any) -> None:
        super().__init__(processor)
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, examples: Any) -> dict[str, Any]:
        batch = super().__call__(examples)
        for ex in examples:
            if ex.explanation not in self._cache:
                self._cache[ex.explanation] = label_targets([ex.explanation])[0]
        batch["label_targets"] = torch.stack([self._cache[ex.explanation] for ex in examples])
        return batch


class AuxLabelTrainer(Trainer):
    """``transformers.Trainer`` with the auxiliary label loss (see the module docstring).

    Args:
        label_head: the head (on the model's device).
        aux_weight: ``w`` of ``L = L_text + w * mean_f CE_f``.
        image_token: id of the image placeholder token in ``input_ids``.
        *args, **kwargs: ``transformers.Trainer``'s (the collator must give ``label_targets``:
            :class:`LabeledCollator`).
    """

    def __init__(self, *args: Any, label_head: LabelHead, aux_weight: float, image_token: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.accelerator.num_processes > 1:
            raise ValueError("SFTConfig.aux_label_weight > 0: the auxiliary label head is not synchronised across "
                             f"processes; run on one process (this launch has {self.accelerator.num_processes})")
        self.label_head = label_head
        self.aux_weight = float(aux_weight)
        self.image_token = int(image_token)
        self._aux_losses: list[float] = []

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """The Trainer's AdamW plus the head's parameters as one more group (no weight decay); the scheduler, made
        after, drives every group."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        params = [p for p in self.label_head.parameters() if id(p) not in owned]
        if params:
            optimizer.add_param_group({"params": params, "weight_decay": 0.0})
        return optimizer

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        """``L_text`` (the Trainer's) ``+ w * mean_f CE_f`` of the head on ``inputs["label_targets"]``."""
        targets = inputs.pop("label_targets")
        inputs = {**inputs, "output_hidden_states": True}
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True,
                                             num_items_in_batch=num_items_in_batch)
        self.label_head.train(model.training)
        aux = self.label_head.loss(outputs.hidden_states, inputs["input_ids"], self.image_token, targets,
                                   inputs.get("labels"))
        if model.training:
            self._aux_losses.append(float(aux.detach()))
        loss = loss + self.aux_weight * aux
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add ``aux_label_loss`` (mean since the last log) to the training logs."""
        if "loss" in logs and self._aux_losses:
            logs = {**logs, "aux_label_loss": round(sum(self._aux_losses) / len(self._aux_losses), 4)}
            self._aux_losses = []
        super().log(logs, *args, **kwargs)

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        """The Trainer's save, then the head (:func:`save_label_head`) into the same folder."""
        super()._save(output_dir, state_dict)
        save_label_head(self.label_head, output_dir if output_dir is not None else self.args.output_dir)
