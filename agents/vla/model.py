"""The VLA network, assembled from ``transformers`` classes: a LLaVA model (CLIP vision tower + projector + Llama
decoder), tiny and randomly initialised by default, or any image-text-to-text model loaded from a local folder.

* :class:`VLAConfig` + :func:`build_model`: ``LlavaForConditionalGeneration`` with a small ``CLIPVisionConfig``
  (the 128 px BEV as 64 patches of 16 px) and a small ``LlamaConfig`` (tied input/output embeddings). Nothing is
  downloaded; sizes were chosen by measurement (``benchmarks/bench_vla.py``, numbers in the README).
* :func:`load_model`: ``AutoModelForImageTextToText.from_pretrained`` of a local folder (ours, or a pretrained VLM
  a user names), embeddings resized to the tokenizer (which may have gained the VLA tokens).
* :func:`apply_lora`: LoRA adapters (``peft``) on the decoder's linear layers; the new tokens' embedding rows are
  trained with ``trainable_token_indices`` and an untied LM head is trained in full (``modules_to_save``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from agents.vla.tokenizer import VLATokens


@dataclass(frozen=True)
class VLAConfig:
    """Sizes of the default (tiny, random-init) VLA; every field is documented."""

    image_size: int = 128
    """Input image side [px]: the BEV of :class:`envs.render.BEVConfig` (128 px by default) is used as is."""
    patch_size: int = 16
    """Vision patch side [px] (128 / 16 = 64 image tokens)."""
    vision_hidden_size: int = 64
    """Width of the CLIP vision tower."""
    vision_layers: int = 2
    """Transformer layers of the vision tower."""
    vision_heads: int = 2
    """Attention heads of the vision tower."""
    text_hidden_size: int = 128
    """Width of the Llama decoder."""
    text_layers: int = 2
    """Decoder layers."""
    text_heads: int = 4
    """Decoder attention heads."""
    text_kv_heads: int = 2
    """Decoder key/value heads (grouped-query attention)."""
    text_intermediate_size: int = 384
    """Decoder MLP width."""
    max_positions: int = 512
    """Longest sequence (image tokens + prompt + output) [tokens]."""
    train_vision: bool = False
    """Train the vision tower and the projector. Off by default for this random-init model: measured on a synthetic
    one-object image task and on the bank's BEVs, training them jointly from scratch collapses every image token to
    nearly the same vector within a few hundred steps and the decoder never reads its image (held-out accuracy at
    chance), while frozen random features keep the image's content and the decoder learns to read them (100% held
    out on the synthetic task); see docs/vla.md."""
    projector_bias: bool = False
    """Biases in the vision-to-text projector. Off by default (measured: with biases, SFT from scratch grows them
    until every image token is the same vector after the decoder's RMSNorm, and the model never reads its image)."""
    seed: int = 0
    """Seed of the random initialisation."""
    vision_init: Optional[str] = None
    """A folder with a ``CLIPVisionModel`` saved by ``save_pretrained`` (e.g. ``python -m
    agents.vla.pretrain_vision``, a tower pretrained on BEV targets) whose weights replace the random tower; its
    config must match this one's tower (``ValueError`` naming the field otherwise). The projector and the decoder
    stay randomly initialised; ``train_vision`` still decides whether tower and projector train. None: the random
    tower (default). See docs/vla.md, "A BEV-pretrained vision tower"."""
    label_source: str = "text"
    """Where the policy's stated safety label comes from: ``"text"`` (default: the decoder writes the label sentence
    as free text) or ``"head"`` (a per-field classifier on the frozen vision tower's patch features,
    :mod:`agents.vla.label_head`, fitted during SFT, states the label; the project's template writes it as the label
    sentence, which is teacher-forced, and the decoder writes the action tokens after it). Recorded in the policy
    folder (``safealign_vla.json``); folders without it load as ``"text"``. See docs/vla.md, "The label from a
    classifier"."""

    def __post_init__(self) -> None:
        if self.image_size % self.patch_size:
            raise ValueError(f"VLAConfig: image_size {self.image_size} is not a multiple of patch_size "
                             f"{self.patch_size}")
        if self.text_hidden_size % self.text_heads or self.text_heads % self.text_kv_heads:
            raise ValueError("VLAConfig: text_hidden_size must divide by text_heads, text_heads by text_kv_heads")
        if self.vision_init is not None and not (isinstance(self.vision_init, str) and self.vision_init):
            raise ValueError(f"VLAConfig.vision_init: expected a folder path or None, got {self.vision_init!r}")
        from agents.vla.label_head import check_label_source

        check_label_source(self.label_source, "VLAConfig.label_source")

    @classmethod
    def tiny(cls, image_size: int = 32, seed: int = 0) -> "VLAConfig":
        """A minimal configuration for tests and smoke runs (~60k parameters; a 32 px image = 4 image tokens)."""
        return cls(image_size=image_size, patch_size=16, vision_hidden_size=16, vision_layers=1, vision_heads=2,
                   text_hidden_size=32, text_layers=1, text_heads=2, text_kv_heads=1, text_intermediate_size=64,
                   max_positions=256, seed=seed)

    @property
    def image_tokens(self) -> int:
        """Image tokens per image (patches; the CLS token is dropped)."""
        return (self.image_size // self.patch_size) ** 2


def build_model(config: VLAConfig, tokens: VLATokens):
    """A randomly initialised ``LlavaForConditionalGeneration`` for ``tokens``' vocabulary (seeded by
    ``config.seed``); with ``config.vision_init`` its vision tower is then loaded from that folder
    (:func:`load_vision_tower`)."""
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = vision_config(config)
    text = LlamaConfig(
        vocab_size=tokens.vocab_size, hidden_size=config.text_hidden_size,
        intermediate_size=config.text_intermediate_size, num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads, num_key_value_heads=config.text_kv_heads,
        max_position_embeddings=config.max_positions, pad_token_id=tokens.pad, bos_token_id=tokens.bos,
        eos_token_id=tokens.eos, tie_word_embeddings=True,
    )
    llava = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokens.image, image_seq_length=config.image_tokens,
        vision_feature_layer=-1, vision_feature_select_strategy="default", tie_word_embeddings=True,
        multimodal_projector_bias=config.projector_bias,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = LlavaForConditionalGeneration(llava)
    if config.vision_init:
        load_vision_tower(model, config.vision_init, config)
    _sync_generation_config(model, tokens)
    return model


def vision_config(config: VLAConfig):
    """The ``CLIPVisionConfig`` of the VLA's vision tower (the one :func:`build_model` builds; a tower pretrained
    with it, :mod:`agents.vla.pretrain_vision`, drops in)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        image_size=config.image_size, patch_size=config.patch_size, hidden_size=config.vision_hidden_size,
        intermediate_size=2 * config.vision_hidden_size, num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads, projection_dim=config.vision_hidden_size,
    )


VISION_CONFIG_FIELDS = {
    "image_size": "image_size", "patch_size": "patch_size", "hidden_size": "vision_hidden_size",
    "intermediate_size": "vision_hidden_size (x 2)", "num_hidden_layers": "vision_layers",
    "num_attention_heads": "vision_heads", "num_channels": None, "hidden_act": None,
}
"""``CLIPVisionConfig`` fields a pretrained tower must share with :func:`vision_config`, and the
:class:`VLAConfig` field that sets each (named in the mismatch error; None: fixed in the VLA)."""


def load_vision_tower(model: Any, path: str | os.PathLike, config: VLAConfig) -> None:
    """Replace ``model``'s vision tower (a ``LlavaForConditionalGeneration``) with the ``CLIPVisionModel`` saved in
    folder ``path`` (``save_pretrained``, e.g. by :mod:`agents.vla.pretrain_vision`); the projector and the decoder
    are left as they are.

    Raises:
        ValueError: ``path`` is not a ``CLIPVisionModel`` folder, or its config differs from the VLA's tower
            (:func:`vision_config` of ``config``) in a field of :data:`VISION_CONFIG_FIELDS` (the error names the
            field, both values and the ``VLAConfig`` field that sets it).
    """
    from transformers import CLIPVisionConfig, CLIPVisionModel

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"VLAConfig.vision_init: {folder} is not a saved vision tower (no config.json)")
    try:
        saved = CLIPVisionConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as err:
        raise ValueError(f"VLAConfig.vision_init: {folder / 'config.json'} is not a CLIPVisionConfig ({err})") from err
    wanted = vision_config(config)
    for name, vla_field in VISION_CONFIG_FIELDS.items():
        if getattr(saved, name) != getattr(wanted, name):
            source = f"set by VLAConfig.{vla_field}" if vla_field else "fixed in the VLA"
            raise ValueError(f"VLAConfig.vision_init: the tower in {folder} has {name}={getattr(saved, name)!r}, the "
                             f"VLA's tower {name}={getattr(wanted, name)!r} ({source}); pretrain it with the VLA's "
                             "VLAConfig")
    tower = CLIPVisionModel.from_pretrained(str(folder), local_files_only=True)
    model.model.vision_tower.load_state_dict(tower.state_dict())


def _sync_generation_config(model: Any, tokens: VLATokens) -> None:
    """Make the model's generation config name our pad / eos / bos ids (generate reads them from there)."""
    gen = model.generation_config
    gen.pad_token_id, gen.eos_token_id, gen.bos_token_id = tokens.pad, tokens.eos, tokens.bos


def load_model(path: str | os.PathLike, tokens: VLATokens, dtype: torch.dtype | None = None):
    """``AutoModelForImageTextToText.from_pretrained(path)`` (local files only) with the input/output embeddings
    resized to ``tokens.vocab_size`` when the tokenizer gained tokens."""
    from transformers import AutoModelForImageTextToText

    kwargs: dict[str, Any] = {"local_files_only": True}
    if dtype is not None:
        kwargs["dtype"] = dtype
    model = AutoModelForImageTextToText.from_pretrained(str(path), **kwargs)
    if model.get_input_embeddings().weight.shape[0] < tokens.vocab_size:
        model.resize_token_embeddings(tokens.vocab_size, mean_resizing=False)
    _sync_generation_config(model, tokens)
    return model


VISION_MODULES = ("model.vision_tower", "model.multi_modal_projector")
"""Submodules of ``LlavaForConditionalGeneration`` kept frozen when :attr:`VLAConfig.train_vision` is False."""


def freeze_modules(model: Any, names: Sequence[str]) -> None:
    """``requires_grad = False`` on the parameters of the named submodules (a model wrapped by ``peft`` freezes
    everything but its adapters already and is left alone)."""
    if hasattr(model, "peft_config"):
        return
    for name in names:
        model.get_submodule(name).requires_grad_(False)


DEFAULT_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
"""Default LoRA targets: every linear layer of the language model (the vision tower stays frozen)."""


def apply_lora(model: Any, new_token_ids: Sequence[int] = (), r: int = 16, alpha: int = 32, dropout: float = 0.0,
               target_modules: str | Sequence[str] = DEFAULT_LORA_TARGETS, lora_config: Any = None):
    """Wrap ``model`` with LoRA adapters (``peft.get_peft_model``).

    Args:
        model: the base model (frozen by peft except the adapters and the modules below).
        new_token_ids: ids of tokens added to a pretrained tokenizer: their input-embedding rows are trained
            (``trainable_token_indices``); if the LM head is not tied to the input embeddings it is trained in full
            (``modules_to_save``), so the new tokens can be emitted.
        r, alpha, dropout, target_modules: LoRA rank, scaling, dropout and target layers.
        lora_config: a ready ``peft.LoraConfig`` (overrides the other arguments).
    """
    from peft import LoraConfig, get_peft_model

    if lora_config is None:
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        lora_config = LoraConfig(
            r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules,
            trainable_token_indices={"embed_tokens": [int(i) for i in new_token_ids]} if len(new_token_ids) else None,
            modules_to_save=None if tied or not len(new_token_ids) else ["lm_head"],
        )
    return get_peft_model(model, lora_config)


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
