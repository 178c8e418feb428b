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
* :func:`save_label_head` / :func:`load_label_head`: ``label_head.safetensors`` + ``label_head.json`` beside the
  model in a policy / checkpoint folder. The head is used in training only: the policy generates text as before and
  ``VLAPolicy.from_pretrained`` ignores these files; a resumed run reloads the head from its checkpoint.

* :class:`AuxLabelTrainer`: the ``transformers.Trainer`` of :func:`agents.sft.trainer.train_sft` when the weight is
  > 0: loss ``L = L_text + w * mean_f CE_f`` (``aux_label_loss`` logged beside ``loss``), the head's parameters as an
  extra AdamW group under the same schedule, the head written into every checkpoint and the final folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import Trainer

from agents.sft.data import LABEL_COLUMNS, VLACollator
from counterfactual.schema import ACTIONS, AGENT_CLASSES, CONFLICT_TYPES, NO_ACTION, RISK_LEVELS, SECTORS

HEAD_WEIGHTS = "label_head.safetensors"
"""Weights file of the head inside a policy / checkpoint folder."""
HEAD_CONFIG = "label_head.json"
"""Settings file of the head inside a policy / checkpoint folder."""
POSITIONS = ("image", "prompt")
"""Read-outs of :class:`LabelHead` (see the module docstring)."""
NONE_CLASS = ""
"""Class of a field the sentence does not name (the no-hazard sentence's agent class, sector, conflict type; a
field the parser finds ambiguous)."""
FIELD_CLASSES: Mapping[str, tuple[str, ...]] = {
    "risk_agent_class": (NONE_CLASS, *AGENT_CLASSES),
    "sector": (NONE_CLASS, *SECTORS),
    "risk_level": (NONE_CLASS, *RISK_LEVELS),
    "conflict_type": (NONE_CLASS, *CONFLICT_TYPES),
    "action": (NONE_CLASS, *ACTIONS, NO_ACTION),
}
"""Classes of each label field: ``""`` (not named) then the schema's values (:mod:`counterfactual.schema`)."""


@dataclass(frozen=True)
class LabelHeadConfig:
    """Shape of the head; every field is documented."""

    image_tokens: int
    """Image tokens per example (:attr:`agents.vla.model.VLAConfig.image_tokens`)."""
    hidden_size: int
    """Width of the decoder's hidden states."""
    layer: int | None = None
    """Index into the decoder's ``hidden_states`` tuple (0: the embeddings, i.e. the projector output; -1: the last
    layer's normed output). None: -2 (the input of the last layer) for ``image``, -1 for ``prompt``."""
    position: str = "image"
    """Read-out: ``image`` (flattened image-token states) or ``prompt`` (the last prompt token's state); see the
    module docstring."""

    def __post_init__(self) -> None:
        for name in ("image_tokens", "hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LabelHeadConfig.{name}: expected an int >= 1, got {value!r}")
        if self.layer is not None and (isinstance(self.layer, bool) or not isinstance(self.layer, int)):
            raise ValueError(f"LabelHeadConfig.layer: expected an int or None, got {self.layer!r}")
        if self.position not in POSITIONS:
            raise ValueError(f"LabelHeadConfig.position: expected one of {POSITIONS}, got {self.position!r}")

    @property
    def hidden_layer(self) -> int:
        """The ``hidden_states`` index read (:attr:`layer`, or the position's default)."""
        if self.layer is not None:
            return self.layer
        return -2 if self.position == "image" else -1

    @property
    def features(self) -> int:
        """Input width of the classifiers."""
        return self.image_tokens * self.hidden_size if self.position == "image" else self.hidden_size


class LabelHead(torch.nn.Module):
    """Per-field linear classifiers over the flattened image-token hidden states (see the module docstring).

    Args:
        config: sizes and the hidden-state layer read.
    """

    def __init__(self, config: LabelHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.heads = torch.nn.ModuleDict({f: torch.nn.Linear(config.features, len(FIELD_CLASSES[f]))
                                          for f in LABEL_COLUMNS})

    @classmethod
    def for_model(cls, model: Any, image_tokens: int, layer: int | None = None,
                  position: str = "image") -> "LabelHead":
        """A head sized for ``model``'s decoder (its ``text_config.hidden_size``) and ``image_tokens`` per example,
        on the model's device."""
        cfg = getattr(model.config, "text_config", model.config)
        head = cls(LabelHeadConfig(image_tokens=int(image_tokens), hidden_size=int(cfg.hidden_size), layer=layer,
                                   position=position))
        return head.to(next(model.parameters()).device)

    def image_states(self, hidden_states: Sequence[torch.Tensor], input_ids: torch.Tensor,
                     image_token: int) -> torch.Tensor:
        """``(B, image_tokens * hidden)`` the chosen layer's states at the image-token positions, flattened.

        Args:
            hidden_states: the model's ``hidden_states`` (each ``(B, S, hidden)``).
            input_ids: ``(B, S)`` token ids (the image positions hold ``image_token``).
            image_token: id of the image placeholder token.
        """
        states = hidden_states[self.config.hidden_layer]
        mask = input_ids == image_token
        counts = mask.sum(dim=1)
        if not bool((counts == self.config.image_tokens).all()):
            raise ValueError(f"LabelHead: expected {self.config.image_tokens} image tokens per row, got "
                             f"{counts.tolist()}")
        return states[mask].reshape(states.shape[0], -1)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{field: (B, classes) logits}`` of ``(B, image_tokens * hidden)`` features."""
        return {f: head(features) for f, head in self.heads.items()}

    def prompt_states(self, hidden_states: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """``(B, hidden)`` the chosen layer's state at each row's last prompt token: the position before the first
        target token (``labels (B, S)``, -100 on the prompt)."""
        states = hidden_states[self.config.hidden_layer]
        is_target = labels != -100
        if not bool(is_target.any(dim=1).all()):
            raise ValueError("LabelHead: a training row has no target token")
        last_prompt = is_target.float().argmax(dim=1) - 1
        return states[torch.arange(states.shape[0], device=states.device), last_prompt]

    def loss(self, hidden_states: Sequence[torch.Tensor], input_ids: torch.Tensor, image_token: int,
             targets: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over the fields of the cross-entropy of ``targets (B, F)`` class indices (field order
        :data:`agents.sft.data.LABEL_COLUMNS`); ``labels (B, S)`` (the LM labels) locate the prompt's end for the
        ``prompt`` read-out."""
        if self.config.position == "prompt":
            if labels is None:
                raise ValueError("LabelHead: the prompt read-out needs the LM labels")
            features = self.prompt_states(hidden_states, labels)
        else:
            features = self.image_states(hidden_states, input_ids, image_token)
        logits = self(features.float())
        terms = [torch.nn.functional.cross_entropy(logits[f], targets[:, i]) for i, f in enumerate(LABEL_COLUMNS)]
        return torch.stack(terms).mean()


def label_targets(explanations: Sequence[str]) -> torch.Tensor:
    """``(B, F)`` int64 class indices (:data:`FIELD_CLASSES`) of the fields a target sentence states, read with
    :func:`counterfactual.language.parse_explanation`."""
    from counterfactual.language import parse_explanation

    rows = []
    for text in explanations:
        parsed = parse_explanation(text)
        row = []
        for f in LABEL_COLUMNS:
            value = parsed.get(f) or NONE_CLASS
            if value not in FIELD_CLASSES[f]:
                raise ValueError(f"label_targets: field {f}={value!r} of {text!r} is not one of {FIELD_CLASSES[f]}")
            row.append(FIELD_CLASSES[f].index(value))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), len(LABEL_COLUMNS))


class LabeledCollator(VLACollator):
    """:class:`agents.sft.data.VLACollator` plus ``label_targets`` ``(B, F)`` (:func:`label_targets` of each
    example's target sentence; parsed once per distinct sentence)."""

    def __init__(self, processor: Any) -> None:
        super().__init__(processor)
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, examples: Sequence[Any]) -> dict[str, Any]:
        batch = super().__call__(examples)
        for ex in examples:
            if ex.explanation not in self._cache:
                self._cache[ex.explanation] = label_targets([ex.explanation])[0]
        batch["label_targets"] = torch.stack([self._cache[ex.explanation] for ex in examples])
        return batch


def save_label_head(head: LabelHead, folder: str | Path) -> Path:
    """Write ``head`` to ``folder`` (:data:`HEAD_WEIGHTS`, :data:`HEAD_CONFIG`); returns the weights path."""
    from safetensors.torch import save_file

    from agents.vla.processor import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(folder / HEAD_WEIGHTS))
    write_json(folder / HEAD_CONFIG, {**asdict(head.config), "fields": {f: list(FIELD_CLASSES[f])
                                                                         for f in LABEL_COLUMNS}})
    return folder / HEAD_WEIGHTS


def load_label_head(folder: str | Path) -> LabelHead | None:
    """The head saved in ``folder``, or None when it has none (a run without the auxiliary loss)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / HEAD_WEIGHTS).is_file():
        return None
    if not (folder / HEAD_CONFIG).is_file():
        raise ValueError(f"{folder / HEAD_WEIGHTS}: found without its settings file {HEAD_CONFIG}")
    settings = json.loads((folder / HEAD_CONFIG).read_text())
    fields = settings.pop("fields", None)
    expected = {f: list(FIELD_CLASSES[f]) for f in LABEL_COLUMNS}
    if fields != expected:
        raise ValueError(f"{folder / HEAD_CONFIG}: fields {fields!r} differ from this code's classes {expected!r}")
    head = LabelHead(LabelHeadConfig(**settings))
    head.load_state_dict(load_file(str(folder / HEAD_WEIGHTS)))
    return head


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
