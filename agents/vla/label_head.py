"""Per-field label classifiers of the VLA: the auxiliary SFT head and the **label head** the policy states its
safety label with (issue #29).

The VLA writes its safety label as free text, and its decoder memorises the training sentences instead of reading
its image, while a linear probe on the same frozen vision tower reads much more of the label
(``benchmarks/bench_readability.py``, docs/vla.md). This module holds the classifier both uses share:

* :class:`LabelHead`: one linear classifier per label field (:data:`FIELDS`, classes :data:`FIELD_CLASSES`) over one
  of four read-outs (:attr:`LabelHeadConfig.position`):

  - ``"image"`` / ``"prompt"``: the decoder's hidden states (the auxiliary SFT loss,
    :mod:`agents.sft.label_head`: the image tokens' states at the input of the last layer, flattened, or the last
    prompt token's final state);
  - ``"tower"`` / ``"tower_mean"``: the frozen vision tower's patch features, what the projector takes
    (:func:`projector_input`, ``(B, patches, channels)``), flattened (``(B, patches * channels)``, the probe's
    features) or averaged over the patches (``(B, channels)``), standardised with the training rows' mean and
    scale (buffers ``shift`` / ``scale``, saved with the weights). These are the **label head** of a policy with
    ``label_source="head"`` (:attr:`agents.vla.model.VLAConfig.label_source`), fitted during SFT by
    :func:`fit_label_head` (multinomial logistic regression per field, the L2 penalty chosen on a scene-disjoint
    inner validation quarter of the training rows, then refitted on all of them; deterministic; with more features than
    rows the fit runs in the span of the training rows, which is exact for an L2-penalised linear model).

* :func:`decide` + :func:`counterfactual.language.label_sentence`: the head's logits -> label fields -> the label
  sentence, written by the project's one template. The consistency rule: the risk level is read first (argmax over
  ``none / low / medium / high``); ``none`` gives the no-hazard fields and the no-hazard sentence whatever the other
  fields' logits say; a hazard level takes each other field's argmax over its **named** values (the not-named class
  ``""``, which only the no-hazard sentence has, is excluded), so every sentence states a complete label.
* :func:`label_targets`: ``(B, F)`` class indices of target sentences, read with
  :func:`counterfactual.language.parse_explanation` (the parser the evaluation scores text with).
* :func:`save_label_head` / :func:`load_label_head`: ``<stem>.safetensors`` + ``<stem>.json`` in a policy /
  checkpoint folder (``label_head``: the auxiliary head; ``label_classifier``: the policy's label head).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from counterfactual.accuracy import LANGUAGE_FIELDS
from counterfactual.schema import ACTIONS, AGENT_CLASSES, CONFLICT_TYPES, NO_ACTION, RISK_LEVELS, SECTORS

FIELDS = LANGUAGE_FIELDS
"""Label fields, in head order (the five of the language accuracy; ``agents.sft.data.LABEL_COLUMNS``)."""
HEAD_STEM = "label_head"
"""File stem of the auxiliary SFT head inside a policy / checkpoint folder."""
HEAD_WEIGHTS = f"{HEAD_STEM}.safetensors"
"""Weights file of the auxiliary head."""
HEAD_CONFIG = f"{HEAD_STEM}.json"
"""Settings file of the auxiliary head."""
CLASSIFIER_STEM = "label_classifier"
"""File stem of the policy's label head (``label_source="head"``) inside a policy / checkpoint folder."""
POSITIONS = ("image", "prompt", "tower", "tower_mean")
"""Read-outs of :class:`LabelHead` (see the module docstring)."""
TOWER_POSITIONS = ("tower", "tower_mean")
"""The read-outs of the vision tower's patch features (the policy's label head)."""
LABEL_SOURCES = ("text", "head")
"""Where a policy's stated label comes from: its decoder's free text, or the label head + template."""
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
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
"""L2 penalties tried for the label head and the readability probe (coefficient of the summed squared weights,
beside the mean cross-entropy)."""


def check_label_source(value: Any, where: str) -> str:
    """``value`` if it is one of :data:`LABEL_SOURCES` (``ValueError`` naming ``where`` and the value otherwise)."""
    if value not in LABEL_SOURCES:
        raise ValueError(f"{where}: label_source {value!r}, expected one of {LABEL_SOURCES}")
    return str(value)


@dataclass(frozen=True)
class LabelHeadConfig:
    """Shape of the head; every field is documented."""

    image_tokens: int
    """Image tokens (patches) per example (:attr:`agents.vla.model.VLAConfig.image_tokens`)."""
    hidden_size: int
    """Width of the states read: the decoder's hidden size (``image`` / ``prompt``) or the vision tower's
    (``tower`` / ``tower_mean``)."""
    layer: int | None = None
    """Index into the decoder's ``hidden_states`` tuple (0: the embeddings, i.e. the projector output; -1: the last
    layer's normed output). None: -2 (the input of the last layer) for ``image``, -1 for ``prompt``; not used by the
    tower read-outs."""
    position: str = "image"
    """Read-out: ``image``, ``prompt``, ``tower`` or ``tower_mean`` (see the module docstring)."""

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
        flat = self.position in ("image", "tower")
        return self.image_tokens * self.hidden_size if flat else self.hidden_size


class LabelHead(torch.nn.Module):
    """Per-field linear classifiers (see the module docstring).

    Args:
        config: sizes and the read-out.
    """

    def __init__(self, config: LabelHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.heads = torch.nn.ModuleDict({f: torch.nn.Linear(config.features, len(FIELD_CLASSES[f]))
                                          for f in FIELDS})
        if config.position in TOWER_POSITIONS:  # standardisation of the tower features (fitted with the weights)
            self.register_buffer("shift", torch.zeros(config.features))
            self.register_buffer("scale", torch.ones(config.features))

    @classmethod
    def for_model(cls, model: Any, image_tokens: int, layer: int | None = None,
                  position: str = "image") -> "LabelHead":
        """A head sized for ``model`` (the decoder's ``text_config.hidden_size``, or for a tower read-out the
        tower's ``vision_config.hidden_size``) and ``image_tokens`` per example, on the model's device."""
        key = "vision_config" if position in TOWER_POSITIONS else "text_config"
        cfg = getattr(model.config, key, model.config)
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

    def tower_read(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, features)`` standardised read-out of the tower's patch features ``(B, patches, channels)``
        (:func:`projector_input`): flattened (``tower``) or averaged over the patches (``tower_mean``)."""
        if self.config.position not in TOWER_POSITIONS:
            raise ValueError(f"LabelHead.tower_read: the head reads {self.config.position!r}, not the tower")
        if patches.ndim != 3 or patches.shape[1] != self.config.image_tokens \
                or patches.shape[2] != self.config.hidden_size:
            raise ValueError(f"LabelHead.tower_read: expected patch features (B, {self.config.image_tokens}, "
                             f"{self.config.hidden_size}), got {tuple(patches.shape)}")
        x = patches.float().reshape(patches.shape[0], -1) if self.config.position == "tower" \
            else patches.float().mean(dim=1)
        return (x - self.shift) / self.scale

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{field: (B, classes) logits}`` of ``(B, features)`` features."""
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
        :data:`FIELDS`); ``labels (B, S)`` (the LM labels) locate the prompt's end for the ``prompt`` read-out."""
        if self.config.position == "prompt":
            if labels is None:
                raise ValueError("LabelHead: the prompt read-out needs the LM labels")
            features = self.prompt_states(hidden_states, labels)
        elif self.config.position == "image":
            features = self.image_states(hidden_states, input_ids, image_token)
        else:
            raise ValueError(f"LabelHead.loss: the {self.config.position!r} read-out is fitted by fit_label_head, "
                             "not trained through the decoder")
        logits = self(features.float())
        terms = [torch.nn.functional.cross_entropy(logits[f], targets[:, i]) for i, f in enumerate(FIELDS)]
        return torch.stack(terms).mean()


def label_targets(explanations: Sequence[str]) -> torch.Tensor:
    """``(B, F)`` int64 class indices (:data:`FIELD_CLASSES`) of the fields a target sentence states, read with
    :func:`counterfactual.language.parse_explanation`."""
    from counterfactual.language import parse_explanation

    rows = []
    for text in explanations:
        parsed = parse_explanation(text)
        row = []
        for f in FIELDS:
            value = parsed.get(f) or NONE_CLASS
            if value not in FIELD_CLASSES[f]:
                raise ValueError(f"label_targets: field {f}={value!r} of {text!r} is not one of {FIELD_CLASSES[f]}")
            row.append(FIELD_CLASSES[f].index(value))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), len(FIELDS))


# ------------------------------------------------------------------------------------------------ files
def save_label_head(head: LabelHead, folder: str | Path, stem: str = HEAD_STEM) -> Path:
    """Write ``head`` to ``folder`` (``<stem>.safetensors``, ``<stem>.json``); returns the weights path."""
    from safetensors.torch import save_file

    from envs.atomic import atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(folder / f"{stem}.safetensors"))
    settings = {**asdict(head.config), "fields": {f: list(FIELD_CLASSES[f]) for f in FIELDS}}
    atomic_write_text(folder / f"{stem}.json", json.dumps(settings, indent=2, sort_keys=True))
    return folder / f"{stem}.safetensors"


def load_label_head(folder: str | Path, stem: str = HEAD_STEM) -> LabelHead | None:
    """The head saved in ``folder`` under ``stem``, or None when it has none."""
    from safetensors.torch import load_file

    folder = Path(folder)
    weights, settings_file = folder / f"{stem}.safetensors", folder / f"{stem}.json"
    if not weights.is_file():
        return None
    if not settings_file.is_file():
        raise ValueError(f"{weights}: found without its settings file {settings_file.name}")
    settings = json.loads(settings_file.read_text())
    fields = settings.pop("fields", None)
    expected = {f: list(FIELD_CLASSES[f]) for f in FIELDS}
    if fields != expected:
        raise ValueError(f"{settings_file}: fields {fields!r} differ from this code's classes {expected!r}")
    head = LabelHead(LabelHeadConfig(**settings))
    head.load_state_dict(load_file(str(weights)))
    return head


# ------------------------------------------------------------------------------------------ tower read-out
def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def projector_input(model: Any, pixel_values: torch.Tensor) -> torch.Tensor:
    """``float32 (B, patches, channels)``: what a LLaVA-style model's projector receives for ``pixel_values (B, 3,
    H, W)`` (the vision tower's selected layer, CLS dropped by the feature-select strategy): the features the
    readability probe and the label head read (``(B, 64, 64)`` for the default :class:`agents.vla.model.VLAConfig`)."""
    base = _base_model(model)
    inner = base.model
    captured: list[torch.Tensor] = []
    hook = inner.multi_modal_projector.register_forward_pre_hook(
        lambda _module, args: captured.append(args[0].detach().float()))
    try:
        base.get_image_features(pixel_values=pixel_values, vision_feature_layer=base.config.vision_feature_layer,
                                vision_feature_select_strategy=base.config.vision_feature_select_strategy)
    finally:
        hook.remove()
    if len(captured) != 1:
        raise RuntimeError(f"projector_input: expected one projector call, saw {len(captured)}")
    return captured[0]


# ------------------------------------------------------------------------------------------ fitting
def fit_logistic(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, steps: int = 200) -> torch.Tensor:
    """Weights ``(D + 1, C)`` (last row: bias) of a multinomial logistic regression on ``x (N, D)``, ``y (N,)``
    minimising mean cross-entropy + ``l2 * ||W||^2`` (bias not penalised), by full-batch L-BFGS from zero
    (deterministic)."""
    xb = torch.cat([x, torch.ones(len(x), 1)], dim=1)
    w = torch.zeros(xb.shape[1], classes, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xb @ w, y) + l2 * (w[:-1] ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach()


def logistic_predict(w: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    """``int64 (N,)`` argmax class of ``x (N, D)`` under weights ``w (D + 1, C)`` (:func:`fit_logistic`)."""
    return (torch.cat([x, torch.ones(len(x), 1)], dim=1) @ w).argmax(dim=1).numpy()


def select_l2(x: torch.Tensor, y: torch.Tensor, classes: int, groups: Sequence[str], grid: Sequence[float] = L2_GRID,
              seed: int = 0, steps: int = 200) -> tuple[float, dict[float, float]]:
    """The L2 penalty of ``grid`` with the best accuracy on a group-disjoint quarter of the rows
    (:func:`counterfactual.accuracy.split_by_scene` of ``groups``, e.g. scene ids) when fitted on the rest (ties: the
    larger penalty; the largest when either side would be empty). Returns ``(penalty, {penalty: accuracy})``."""
    from counterfactual.accuracy import split_by_scene

    index = [{"scene_id": str(s), "i": i} for i, s in enumerate(groups)]
    fit_part, val_part = split_by_scene(index, eval_fraction=0.25, seed=seed)
    fit_idx = torch.tensor([r["i"] for r in fit_part], dtype=torch.long)
    val_idx = np.array([r["i"] for r in val_part], dtype=np.int64)
    if not len(fit_idx) or not len(val_idx):
        return float(grid[-1]), {}
    scores = {}
    for l2 in grid:
        w = fit_logistic(x[fit_idx], y[fit_idx], classes, l2, steps)
        scores[float(l2)] = float(np.mean(logistic_predict(w, x[val_idx]) == y.numpy()[val_idx]))
    return max((acc, l2) for l2, acc in scores.items())[1], scores


def fit_label_head(patches: torch.Tensor, targets: torch.Tensor, groups: Sequence[str], position: str = "tower",
                   grid: Sequence[float] = L2_GRID, seed: int = 0, steps: int = 200) -> tuple[LabelHead, dict]:
    """Fit the policy's label head on the training rows.

    Args:
        patches: ``(N, patches, channels)`` tower features of the training rows' BEVs (:func:`projector_input`).
        targets: ``(N, F)`` class indices (:func:`label_targets` of the rows' target sentences).
        groups: ``N`` scene ids (the inner validation quarter keeps whole scenes).
        position: ``tower`` (flattened patches) or ``tower_mean`` (averaged over the patches).
        grid: L2 penalties tried per field (the weight decay of the logistic regression).
        seed: seed of the inner validation split.
        steps: L-BFGS iterations per fit.

    Returns:
        ``(head, record)``: the head (weights of the classes seen in training; a class never seen gets bias -1e4,
        so it is never the argmax) and ``{"l2": {field: chosen penalty}, "validation": {field: {penalty:
        accuracy}}, "rows": N}``.
    """
    if position not in TOWER_POSITIONS:
        raise ValueError(f"fit_label_head: position {position!r}, expected one of {TOWER_POSITIONS}")
    if patches.ndim != 3 or len(patches) != len(targets) or len(groups) != len(targets):
        raise ValueError(f"fit_label_head: patches {tuple(patches.shape)}, targets {tuple(targets.shape)} and "
                         f"{len(groups)} groups do not match (expected (N, patches, channels), (N, F), N)")
    if len(targets) == 0:
        raise ValueError("fit_label_head: no training rows")
    head = LabelHead(LabelHeadConfig(image_tokens=int(patches.shape[1]), hidden_size=int(patches.shape[2]),
                                     position=position))
    raw = patches.float().reshape(len(patches), -1) if position == "tower" else patches.float().mean(dim=1)
    shift, scale = raw.mean(dim=0), raw.std(dim=0, unbiased=False) + 1e-6
    head.shift.copy_(shift)
    head.scale.copy_(scale)
    x = (raw - shift) / scale
    basis = None
    if x.shape[1] > x.shape[0]:  # fit in the rows' span: exact for an L2 penalty, D -> N columns
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        basis = vh.T  # (D, N) orthonormal: w = basis @ beta, ||w|| = ||beta||, x @ w = (x @ basis) @ beta
        x = x @ basis
    record: dict[str, Any] = {"l2": {}, "validation": {}, "rows": int(len(targets)), "position": position}
    with torch.no_grad():
        for j, f in enumerate(FIELDS):
            seen = sorted({int(v) for v in targets[:, j].tolist()})
            remap = torch.full((len(FIELD_CLASSES[f]),), -1, dtype=torch.long)
            remap[torch.tensor(seen)] = torch.arange(len(seen))
            y = remap[targets[:, j]]
            linear = head.heads[f]
            linear.weight.zero_()
            linear.bias.fill_(-1e4)
            if len(seen) == 1:  # one class in training: it is the answer
                linear.bias[seen[0]] = 0.0
                record["l2"][f], record["validation"][f] = None, {}
                continue
            with torch.enable_grad():
                l2, scores = select_l2(x, y, len(seen), groups, grid, seed, steps)
                w = fit_logistic(x, y, len(seen), l2, steps)
            weights = w[:-1] if basis is None else basis @ w[:-1]
            linear.weight[torch.tensor(seen)] = weights.T
            linear.bias[torch.tensor(seen)] = w[-1]
            record["l2"][f], record["validation"][f] = l2, scores
    return head, record


# ------------------------------------------------------------------------------------------ decision
def decide(logits: Mapping[str, torch.Tensor]) -> list[dict[str, str | None]]:
    """Label fields of each row from the head's ``{field: (B, classes) logits}`` under the consistency rule (module
    docstring): risk level first; ``none`` -> the no-hazard fields
    (:data:`counterfactual.language.NO_HAZARD_FIELDS`); a hazard level -> every other field's argmax over its named
    values. Returns ``B`` dicts ``{field: value or None}``."""
    from counterfactual.language import NO_HAZARD_FIELDS

    named = {f: torch.as_tensor(logits[f]).detach().float().cpu().clone() for f in FIELDS}
    for f in FIELDS:
        named[f][:, FIELD_CLASSES[f].index(NONE_CLASS)] = float("-inf")
    picks = {f: named[f].argmax(dim=1).tolist() for f in FIELDS}
    out = []
    for i in range(len(picks["risk_level"])):
        risk = FIELD_CLASSES["risk_level"][picks["risk_level"][i]]
        if risk == "none":
            out.append(dict(NO_HAZARD_FIELDS))
        else:
            out.append({f: FIELD_CLASSES[f][picks[f][i]] for f in FIELDS})
    return out
