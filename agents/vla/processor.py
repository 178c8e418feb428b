"""Image + text processing of the VLA: a ``transformers`` ``LlavaProcessor`` (BEV image + prompt) plus the action
codebook, saved and loaded together.

:class:`VLAProcessor` turns observations into model inputs and (image, prompt, target) samples into training
batches:

* :meth:`VLAProcessor.encode_prompts`: ``input_ids`` / ``attention_mask`` ``(B, P)`` **left**-padded (so that
  generation continues every row at the same position), ``pixel_values`` ``(B, 3, H, W)``;
* :meth:`VLAProcessor.encode_training`: prompt + target per row, **right**-padded, with ``labels`` = the target ids
  and ``-100`` on the prompt and the padding (the loss covers the label text, the action tokens and EOS). Right
  padding keeps every row's positions at ``0, 1, ...`` as in generation (whose position ids count only the
  attended tokens); left padding without position ids would shift positions by the padding, which depends on the
  target's length: a leak the model learns to read in training and cannot use at inference.

Files in a processor folder: what ``LlavaProcessor.save_pretrained`` writes (tokenizer, image processor,
``processor_config.json``; reloaded by ``transformers.AutoProcessor``), the codebook (:data:`CODEBOOK_FILE`) and
:data:`VLA_FILE` (format version, the generation limits, the frozen modules and the **prompt state** the policy
reads: ``prompt_state`` / ``prompt_agents``, :mod:`envs.prompt_state`; a folder written before they were recorded
reads as ``"none"`` / 4, what every policy of that time was trained with unless told otherwise).
:func:`recorded_prompt_state` reads them without loading the model; :func:`resolve_prompt_state` checks a
user-given value against them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from agents.vla.codebook import TrajectoryCodebook
from agents.vla.format import prompt_text
from agents.vla.tokenizer import VLATokens, add_vla_tokens
from envs.prompt_state import check_prompt_options

CODEBOOK_FILE = "action_codebook.npz"
"""Codebook file inside a model / processor folder."""
VLA_FILE = "safealign_vla.json"
"""VLA settings inside a model / processor folder."""
VLA_FORMAT_VERSION = "1"
"""Version of :data:`VLA_FILE` and of the sequence layout (:mod:`agents.vla.format`)."""
IGNORE_INDEX = -100
"""Label value ignored by the loss."""
DEFAULT_PROMPT_STATE = ("none", 4)
"""``(prompt_state, prompt_agents)`` of a folder that records none (written before they were recorded, or a
pretrained VLM's folder): the defaults of :class:`envs.observation.ObservationConfig`."""


def recorded_prompt_state(path: str | os.PathLike) -> tuple[str, int]:
    """``(prompt_state, prompt_agents)`` recorded in the policy folder ``path`` (its :data:`VLA_FILE`), without
    loading the model; :data:`DEFAULT_PROMPT_STATE` where the folder records none. ``ValueError`` naming the file
    for a folder that does not exist or a recorded value that is not valid."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such model / processor folder")
    settings = json.loads((path / VLA_FILE).read_text()) if (path / VLA_FILE).is_file() else {}
    return check_prompt_options(str(path / VLA_FILE), settings.get("prompt_state", DEFAULT_PROMPT_STATE[0]),
                                settings.get("prompt_agents", DEFAULT_PROMPT_STATE[1]))


def resolve_prompt_state(path: str | os.PathLike, prompt_state: str | None = None,
                         prompt_agents: int | None = None) -> tuple[str, int]:
    """The prompt state to observe the policy folder ``path`` with: the recorded one
    (:func:`recorded_prompt_state`) where ``prompt_state`` / ``prompt_agents`` are None (not given), else the given
    values, which must agree with the recorded ones (``ValueError`` naming the folder, the recorded and the given
    value: a policy observed with another prompt than it was trained on reads numbers it never saw, or misses
    them). ``prompt_agents`` is compared only where the state is ``"agents"`` (the only state that uses it)."""
    recorded, agents = recorded_prompt_state(path)
    if prompt_state is not None and prompt_state != recorded:
        raise ValueError(f"{Path(path) / VLA_FILE}: the policy was trained with prompt_state {recorded!r}, got "
                         f"{prompt_state!r}; leave the prompt state out to use the recorded one")
    if prompt_agents is not None and recorded == "agents" and prompt_agents != agents:
        raise ValueError(f"{Path(path) / VLA_FILE}: the policy was trained with prompt_agents {agents}, got "
                         f"{prompt_agents}; leave prompt_agents out to use the recorded one")
    return recorded, agents


def image_of(observation: Mapping[str, Any]) -> np.ndarray:
    """The ``uint8 (H, W, 3)`` BEV image of an observation (``ValueError`` when there is none or it is not RGB)."""
    bev = observation.get("bev") if isinstance(observation, Mapping) else None
    if bev is None:
        raise ValueError("observation: the VLA needs a 'bev' image (EnvConfig.bev / ObservationConfig.bev must not be "
                         "None)")
    bev = np.asarray(bev)
    if bev.ndim != 3 or bev.shape[2] != 3 or bev.dtype != np.uint8:
        raise ValueError(f"observation['bev']: expected uint8 (H, W, 3) RGB, got {bev.dtype} {bev.shape} (a semantic "
                         "BEV has other channels; use BEVConfig(mode='rgb'))")
    return bev


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (:func:`envs.atomic.atomic_write_text`: temp file, fsync,
    rename)."""
    from envs.atomic import atomic_write_text

    atomic_write_text(Path(path), json.dumps(data, indent=2, sort_keys=True))


class VLAProcessor:
    """``LlavaProcessor`` + action codebook + the VLA's token ids.

    Args:
        processor: a ``transformers`` image-text processor with ``tokenizer`` and ``image_processor`` (a
            ``LlavaProcessor`` for our models; a pretrained VLM's own processor otherwise).
        codebook: the action codebook.
        max_text_tokens: longest label text before ``<action>`` is forced in generation [tokens].
        frozen_modules: names of model submodules that stay frozen in training (saved with the settings so a
            reloaded policy trains the same parameters; see :attr:`agents.vla.model.VLAConfig.train_vision`).
        prompt_state, prompt_agents: the prompt state the policy is trained on and reads
            (:mod:`envs.prompt_state`: ``"none"``, ``"ego"`` or ``"agents"`` with that many agents), saved with the
            settings so that evaluation observes it the same way (:func:`resolve_prompt_state`).
        vision_init: the pretrained vision tower folder the model's tower was loaded from
            (:attr:`agents.vla.model.VLAConfig.vision_init`; None: random init), recorded in the settings file (the
            weights themselves are in the model's files).
        label_source: where the policy's stated label comes from (:attr:`agents.vla.model.VLAConfig.label_source`:
            ``"text"`` or ``"head"``), recorded in the settings file (a folder without it: ``"text"``).
    """

    def __init__(self, processor: Any, codebook: TrajectoryCodebook, max_text_tokens: int = 48,
                 frozen_modules: Sequence[str] = (), prompt_state: str = DEFAULT_PROMPT_STATE[0],
                 prompt_agents: int = DEFAULT_PROMPT_STATE[1], vision_init: str | None = None,
                 label_source: str = "text") -> None:
        from agents.vla.label_head import check_label_source

        self.processor = processor
        self.codebook = codebook
        self.max_text_tokens = int(max_text_tokens)
        self.frozen_modules = tuple(str(m) for m in frozen_modules)
        self.prompt_state, self.prompt_agents = check_prompt_options("VLAProcessor", prompt_state,
                                                                          prompt_agents)
        self.vision_init = None if vision_init is None else str(vision_init)
        self.label_source = check_label_source(label_source, "VLAProcessor")
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.tokens = VLATokens.from_tokenizer(self.tokenizer, codebook.size)

    # ------------------------------------------------------------------ text
    def prompt(self, prompt: str, task: str = "drive", negative: np.ndarray | None = None) -> str:
        """The input string of one sample (:func:`agents.vla.format.prompt_text`); ``negative`` ``(8, 3)`` is encoded
        with the codebook."""
        codes = None if negative is None else self.codebook.encode(negative)
        return prompt_text(prompt, task, codes)

    def encode_targets(self, targets: Sequence[str]) -> list[list[int]]:
        """Token ids of target strings (no special tokens added; the targets carry their own ``</s>``)."""
        return [self.tokenizer.encode(t, add_special_tokens=False) for t in targets]

    # ------------------------------------------------------------------ batches
    def encode_prompts(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Model inputs of ``B`` (image ``uint8 (H, W, 3)``, prompt string) pairs, left-padded."""
        if len(images) != len(prompts):
            raise ValueError(f"encode_prompts: {len(images)} images for {len(prompts)} prompts")
        batch = self.processor(text=list(prompts), images=list(images), return_tensors="pt", padding=True,
                               add_special_tokens=False)
        return {k: batch[k] for k in ("input_ids", "attention_mask", "pixel_values")}

    def encode_training(self, images: Sequence[np.ndarray], prompts: Sequence[str],
                        targets: Sequence[str]) -> dict[str, torch.Tensor]:
        """Training batch: prompt + target ids per row (right-padded), ``labels`` = target ids, ``-100`` elsewhere."""
        prompt_batch = self.processor(text=list(prompts), images=list(images), padding=False, add_special_tokens=False)
        target_ids = self.encode_targets(targets)
        rows = [list(p) + t for p, t in zip(prompt_batch["input_ids"], target_ids)]
        width = max(len(r) for r in rows)
        pad = self.tokens.pad
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, tgt) in enumerate(zip(rows, target_ids)):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention[i, : len(row)] = 1
            labels[i, len(row) - len(tgt) : len(row)] = torch.tensor(tgt, dtype=torch.long)
        pixel_values = prompt_batch["pixel_values"]
        if not isinstance(pixel_values, torch.Tensor):
            pixel_values = torch.as_tensor(np.stack([np.asarray(v) for v in pixel_values]))
        return {"input_ids": input_ids, "attention_mask": attention, "pixel_values": pixel_values, "labels": labels}

    # ------------------------------------------------------------------ files
    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the processor, the codebook and the VLA settings to folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.processor.save_pretrained(str(path))
        self.codebook.save(path / CODEBOOK_FILE)
        write_json(path / VLA_FILE, {"format_version": VLA_FORMAT_VERSION, "codebook": CODEBOOK_FILE,
                                     "max_text_tokens": self.max_text_tokens,
                                     "frozen_modules": list(self.frozen_modules),
                                     "prompt_state": self.prompt_state, "prompt_agents": self.prompt_agents,
                                     "vision_init": self.vision_init, "label_source": self.label_source})
        return path

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, codebook: TrajectoryCodebook | None = None,
                        max_text_tokens: int | None = None) -> "VLAProcessor":
        """Load a processor folder (``transformers.AutoProcessor``). A folder written by :meth:`save_pretrained`
        brings its codebook; a pretrained VLM's folder needs ``codebook``, and the VLA tokens are then added to its
        tokenizer (:func:`agents.vla.tokenizer.add_vla_tokens`)."""
        from transformers import AutoProcessor

        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"{path}: no such model / processor folder")
        settings: dict[str, Any] = {}
        if (path / VLA_FILE).is_file():
            settings = json.loads((path / VLA_FILE).read_text())
            if settings.get("format_version") != VLA_FORMAT_VERSION:
                raise ValueError(f"{path / VLA_FILE}: format_version {settings.get('format_version')!r}, this code "
                                 f"reads {VLA_FORMAT_VERSION!r}")
            if codebook is None:
                codebook = TrajectoryCodebook.load(path / settings.get("codebook", CODEBOOK_FILE))
        if codebook is None:
            raise ValueError(f"{path}: not a SafeAlign VLA folder (no {VLA_FILE}); pass the action codebook to add "
                             "its tokens to this pretrained model")
        processor = AutoProcessor.from_pretrained(str(path))
        if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
            raise ValueError(f"{path}: AutoProcessor gave {type(processor).__name__}, which is not an image-text "
                             "processor (needs .tokenizer and .image_processor)")
        add_vla_tokens(processor.tokenizer, codebook.size)
        limit = max_text_tokens if max_text_tokens is not None else settings.get("max_text_tokens", 48)
        state = check_prompt_options(str(path / VLA_FILE), settings.get("prompt_state", DEFAULT_PROMPT_STATE[0]),
                                     settings.get("prompt_agents", DEFAULT_PROMPT_STATE[1]))
        from agents.vla.label_head import check_label_source

        label_source = check_label_source(settings.get("label_source", "text"), str(path / VLA_FILE))
        return cls(processor, codebook, int(limit), settings.get("frozen_modules", ()), *state,
                   vision_init=settings.get("vision_init"), label_source=label_source)
