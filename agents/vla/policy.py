"""The VLA policy: observation (BEV + text prompt) -> safety-label text -> action tokens -> trajectory.

:class:`VLAPolicy` is a :class:`agents.base.Policy` (``requires_privileged = False``: it sees the observation and the
prompt only) around a ``transformers`` image-text model and a :class:`~agents.vla.processor.VLAProcessor`. The
methods GRPO builds on:

* :meth:`VLAPolicy.act` ``(PolicyInput) -> (8, 3) float32``: greedy decision (the last output is kept in
  :attr:`VLAPolicy.last_output`, e.g. for language accuracy);
* :meth:`VLAPolicy.predict` ``(inputs) -> VLAOutput``: greedy, batched;
* :meth:`VLAPolicy.sample` ``(inputs, G, temperature) -> VLAOutput``: ``G`` sampled outputs per input, rows grouped
  by input (row ``i * G + g``), with trajectories ``(B * G, 8, 3)``, texts, generated token ids and their
  sampling-time log-probabilities;
* :meth:`VLAPolicy.log_prob` ``(inputs, sequences) -> LogProbs``: teacher-forced log-probabilities with gradients,
  per token (``tokens (N, S)``) and per sequence (``sequence (N,)`` = the sum over the sequence's tokens);
* :meth:`VLAPolicy.target_sequences` ``(explanations, trajectories) -> (N, S)`` token ids of given outputs (e.g.
  GRPO's anchor positive and negative with their labels), to score with :meth:`log_prob`;
  :meth:`VLAPolicy.concat_sequences` stacks sequences of different widths for one :meth:`log_prob` call.

Every generation follows the output grammar (:mod:`agents.vla.decoding`), and :meth:`log_prob` applies the same
grammar and temperature, so the log-probability of a sampled sequence equals the sum of the log-probabilities of
its tokens at sampling time (tested).

Label source (:attr:`VLAPolicy.label_source`, recorded in the policy folder): ``"text"`` (default) -- the decoder
writes the label sentence and the action tokens; ``"head"`` -- the label head (:mod:`agents.vla.label_head`, a
per-field classifier on the frozen vision tower's patch features, fitted during SFT) states the label, the template
(:func:`counterfactual.language.label_sentence`) writes it, the sentence and ``<action>`` are appended to the prompt
(teacher-forced) and the decoder generates only the action tokens and EOS (greedy or sampled, both decoders). The
outputs' ``sequences`` / ``texts`` hold the whole emitted continuation (sentence, ``<action>``, codes, EOS); the
forced tokens have log-probability 0 in :attr:`VLAOutput.token_logprobs` and in :meth:`VLAPolicy.log_prob` (the
head's argmax is deterministic), so the two still agree and GRPO trains the action tokens only.

Speed (:attr:`VLAPolicy.decoder`): ``"fast"`` (the default where supported: LLaVA with a Llama decoder, LoRA
included) decodes with :func:`agents.vla.fast_decoding.decode` (each input prefilled once, G samples from its
cache) and teacher-forces with each input's image and prompt run once per call (:meth:`log_prob`); ``"transformers"``
uses ``model.generate`` and one full forward pass per row. Same tokens, log-probabilities within 1e-5 (tested);
measured in docs/vla.md (decision throughput).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from agents.base import Policy, PolicyInput
from agents.vla.codebook import TrajectoryCodebook
from agents.vla.decoding import ActionGrammar, GrammarLogitsProcessor
from agents.vla.fast_decoding import decode, unsupported_reason
from agents.vla.format import parse_output, target_text
from agents.vla.label_head import CLASSIFIER_STEM, LabelHead, check_label_source, decide, load_label_head, \
    projector_input, save_label_head
from agents.vla.tokenizer import ACTION
from agents.vla.model import VISION_MODULES, VLAConfig, apply_lora, build_model, freeze_modules, load_model
from agents.vla.processor import VLAProcessor, image_of
from agents.vla.tokenizer import TokenizerConfig, build_tokenizer
from envs.observation import text_prompt
from envs.prompt_state import check_prompt_options
from envs.spaces import NUM_POSES


@dataclass
class VLAOutput:
    """Generated outputs of a batch (``N`` rows = inputs x samples per input).

    Attributes:
        trajectories: ``(N, 8, 3)`` float32 ego-frame trajectories [m, m, rad] decoded from the action tokens.
        texts: ``N`` label texts (before ``<action>``).
        codes: ``(N, L)`` int64 codeword indices.
        sequences: ``(N, S)`` generated token ids (after the prompt), padded with the pad id after EOS.
        mask: ``(N, S)`` bool, True on generated tokens up to and including EOS.
        token_logprobs: ``(N, S)`` log-probabilities of the generated tokens at generation time (grammar and
            temperature applied; greedy: at temperature 1), 0 on padding.
        input_index: ``(N,)`` index of the input each row belongs to.
    """

    trajectories: np.ndarray
    texts: list[str]
    codes: np.ndarray
    sequences: torch.Tensor
    mask: torch.Tensor
    token_logprobs: torch.Tensor
    input_index: np.ndarray

    @property
    def logprobs(self) -> torch.Tensor:
        """``(N,)`` sequence log-probabilities at generation time."""
        return self.token_logprobs.sum(dim=1)


@dataclass
class LogProbs:
    """Teacher-forced log-probabilities of given sequences (with gradients).

    Attributes:
        sequence: ``(N,)`` sum of the token log-probabilities.
        tokens: ``(N, S)`` per-token log-probabilities, 0 where ``mask`` is False.
        mask: ``(N, S)`` bool, the sequence's tokens (up to and including EOS).
        action_mask: ``(N, S)`` bool, the action tokens.
    """

    sequence: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    action_mask: torch.Tensor


def _sequence_mask(sequences: torch.Tensor, pad: int, eos: int) -> torch.Tensor:
    """True on tokens up to and including the first EOS, and never on padding."""
    is_eos = (sequences == eos).long()
    after_eos = (torch.cumsum(is_eos, dim=1) - is_eos) > 0
    return (sequences != pad) & ~after_eos


class VLAPolicy(Policy):
    """A vision-language-action driving policy (see the module docstring).

    Args:
        model: a ``transformers`` image-text-to-text model (``LlavaForConditionalGeneration`` by default), possibly
            wrapped by ``peft``.
        processor: the :class:`VLAProcessor` (tokenizer, image processor, codebook).
        name: label in results tables.
    """

    requires_privileged = False
    can_sample = True

    def __init__(self, model: Any, processor: VLAProcessor, name: str = "vla") -> None:
        self.model = model
        self.processor = processor
        self.name = name
        freeze_modules(model, processor.frozen_modules)
        self.codebook: TrajectoryCodebook = processor.codebook
        self.tokens = processor.tokens
        logits_size = int(model.get_output_embeddings().weight.shape[0])
        self.grammar = ActionGrammar(self.tokens, logits_size, self.codebook.tokens_per_trajectory,
                                     processor.max_text_tokens, processor.tokenizer.all_special_ids)
        self.last_output: VLAOutput | None = None
        """The output of the latest :meth:`act` call."""
        self.label_head: LabelHead | None = None
        """The label head (``label_source="head"``; fitted by :func:`agents.sft.trainer.train_sft`, saved and loaded
        with the folder as ``label_classifier.safetensors`` / ``.json``), or None."""
        self._decoder = "transformers" if unsupported_reason(model) else "fast"

    DECODERS = ("fast", "transformers")

    @property
    def label_source(self) -> str:
        """Where the stated label comes from: ``"text"`` (the decoder's free text) or ``"head"`` (:attr:`label_head`
        + the template; see the module docstring). Recorded in the policy folder; ``ValueError`` for another
        value."""
        return self.processor.label_source

    @label_source.setter
    def label_source(self, value: str) -> None:
        self.processor.label_source = check_label_source(value, "VLAPolicy.label_source")

    @property
    def decoder(self) -> str:
        """How :meth:`generate` decodes and :meth:`log_prob` teacher-forces: ``"fast"``
        (:func:`agents.vla.fast_decoding.decode` and the shared-prompt pass; the default for LLaVA models with a Llama
        decoder) or ``"transformers"`` (``model.generate`` and one full pass per row; any model). Both give the same
        outputs; set it to ``"transformers"`` to compare (``ValueError`` for another value, or ``"fast"`` on a model
        the fast decoder does not support)."""
        return self._decoder

    @decoder.setter
    def decoder(self, value: str) -> None:
        if value not in self.DECODERS:
            raise ValueError(f"VLAPolicy.decoder: expected one of {self.DECODERS}, got {value!r}")
        reason = unsupported_reason(self.model) if value == "fast" else None
        if reason:
            raise ValueError(f"VLAPolicy.decoder='fast' is not available for this model: {reason}")
        self._decoder = value

    # ------------------------------------------------------------------ construction and files
    @classmethod
    def build(cls, codebook: TrajectoryCodebook, config: VLAConfig = VLAConfig(),
              tokenizer_config: TokenizerConfig = TokenizerConfig(), max_text_tokens: int = 48,
              name: str = "vla") -> "VLAPolicy":
        """The default VLA: our tokenizer (trained offline) + a tiny random-init LLaVA of ``config``; its prompt
        state (:attr:`prompt_state`, recorded in the folder it is saved to) is the tokenizer's
        (``tokenizer_config.prompt_state`` / ``prompt_agents``: the prompts it is built for)."""
        from transformers import LlavaProcessor
        from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

        tokenizer = build_tokenizer(codebook.size, tokenizer_config)
        size = config.image_size
        image_processor = LlavaImageProcessorPil(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        llava_processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                         patch_size=config.patch_size, vision_feature_select_strategy="default",
                                         num_additional_image_tokens=1)
        processor = VLAProcessor(llava_processor, codebook, max_text_tokens,
                                 frozen_modules=() if config.train_vision else VISION_MODULES,
                                 prompt_state=tokenizer_config.prompt_state,
                                 prompt_agents=tokenizer_config.prompt_agents,
                                 vision_init=config.vision_init, label_source=config.label_source)
        return cls(build_model(config, processor.tokens), processor, name)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, codebook: TrajectoryCodebook | None = None,
                        lora: bool | Mapping[str, Any] | Any = False, dtype: torch.dtype | None = None,
                        max_text_tokens: int | None = None, name: str = "vla") -> "VLAPolicy":
        """Load a policy folder (:meth:`save_pretrained`) or a pretrained VLM from a local folder.

        Args:
            path: the folder. A pretrained VLM's folder (any ``AutoModelForImageTextToText`` with an
                ``AutoProcessor``) needs ``codebook``; its tokenizer gains the VLA tokens and its embeddings are
                resized. A LoRA policy folder (``adapter_config.json``) loads its base model from the path recorded
                in the adapter config and the adapter on top.
            codebook: action codebook for a pretrained VLM's folder (ignored when the folder has its own).
            lora: add LoRA adapters: True (defaults of :func:`agents.vla.model.apply_lora`), a mapping of its
                keyword arguments, or a ``peft.LoraConfig``.
            dtype: model dtype (default: the checkpoint's).
            max_text_tokens: override the label-text limit.
            name: label in results tables.
        """
        path = Path(path)
        processor = VLAProcessor.from_pretrained(path, codebook, max_text_tokens)
        adapter = path / "adapter_config.json"
        if adapter.is_file():
            from peft import PeftModel

            base_path = json.loads(adapter.read_text()).get("base_model_name_or_path")
            if not base_path or not Path(base_path).is_dir():
                raise ValueError(f"{adapter}: base model folder {base_path!r} not found (a LoRA policy folder needs "
                                 "its base model)")
            model = PeftModel.from_pretrained(load_model(base_path, processor.tokens, dtype), str(path),
                                              is_trainable=True)
        else:
            model = load_model(path, processor.tokens, dtype)
            if lora is not False and lora is not None:
                new_ids = [processor.tokens.negative, processor.tokens.action, *processor.tokens.tasks.values(),
                           *processor.tokens.codes.tolist()]
                if lora is True:
                    model = apply_lora(model, new_ids)
                elif isinstance(lora, Mapping):
                    model = apply_lora(model, new_ids, **lora)
                else:
                    model = apply_lora(model, new_ids, lora_config=lora)
        policy = cls(model, processor, name)
        policy.label_head = load_label_head(path, CLASSIFIER_STEM)
        if policy.label_source == "head" and policy.label_head is None:
            raise ValueError(f"{path}: label_source 'head' is recorded but {CLASSIFIER_STEM}.safetensors is missing")
        return policy

    @property
    def prompt_state(self) -> tuple[str, int]:
        """``(prompt_state, prompt_agents)`` the policy is trained on and reads (:mod:`envs.prompt_state`): recorded
        in its folder by :meth:`save_pretrained`, read back by :meth:`from_pretrained` (``("none", 4)`` for a folder
        that records none). Set it to the training rows' state when training with another one (e.g. fine-tuning a
        loaded folder); ``ValueError`` for an unknown state."""
        return self.processor.prompt_state, self.processor.prompt_agents

    @prompt_state.setter
    def prompt_state(self, value: tuple[str, int]) -> None:
        state, agents = value
        self.processor.prompt_state, self.processor.prompt_agents = check_prompt_options(
            "VLAPolicy.prompt_state", state, agents)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the model (or, for a LoRA model, its adapter), the processor, the codebook, the prompt state
        (:attr:`prompt_state`), the label source and the label head (when there is one) to folder ``path``;
        :meth:`from_pretrained` reads it back."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(path))
        self.processor.save_pretrained(path)
        if self.label_head is not None:
            save_label_head(self.label_head, path, CLASSIFIER_STEM)
        return path

    # ------------------------------------------------------------------ inputs
    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def encode(self, inputs: Sequence[PolicyInput], task: str = "drive",
               negatives: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Model inputs of ``B`` policy inputs (left-padded), on the model's device; ``negatives (B, 8, 3)`` for the
        ``critique`` / ``correct`` tasks."""
        if len(inputs) == 0:
            raise ValueError("inputs: expected at least one PolicyInput")
        images, prompts = [], []
        for i, inp in enumerate(inputs):
            images.append(image_of(inp.observation))
            prompt = inp.prompt or text_prompt(inp.observation)
            prompts.append(self.processor.prompt(prompt, task, None if negatives is None else negatives[i]))
        batch = self.processor.encode_prompts(images, prompts)
        dtype = next(self.model.parameters()).dtype
        return {k: v.to(self.device, dtype=dtype if k == "pixel_values" else v.dtype) for k, v in batch.items()}

    # ------------------------------------------------------------------ generation
    def generate(self, inputs: Sequence[PolicyInput], num_samples: int = 1,
                 temperature: float | None = None) -> VLAOutput:
        """Generate ``num_samples`` outputs per input: greedy when ``temperature`` is None, else sampled at that
        temperature (no top-k / top-p)."""
        if temperature is not None and not temperature > 0:
            raise ValueError(f"temperature: expected > 0 or None (greedy), got {temperature!r}")
        if num_samples < 1 or (temperature is None and num_samples != 1):
            raise ValueError(f"num_samples: expected 1 for greedy decoding and >= 1 for sampling, got {num_samples}")
        batch = self.encode(inputs)
        max_new = self.processor.max_text_tokens + self.codebook.tokens_per_trajectory + 2
        forced: list[list[int]] | None = None
        was_training = self.model.training
        self.model.eval()
        try:
            if self.label_source == "head":
                forced = self._head_prefix(batch["pixel_values"])
                batch = self._append_to_prompts(batch, forced)
                max_new = self.codebook.tokens_per_trajectory + 1
            after_action = forced is not None
            if self.decoder == "fast":
                out = decode(self.model, batch, self.grammar, max_new, num_samples, temperature, self.tokens.eos,
                             self.tokens.pad, after_action=after_action)
                sequences, token_lp = out.sequences.cpu(), out.token_logprobs.cpu()
            else:
                sequences, token_lp = self._generate_transformers(batch, num_samples, temperature, max_new,
                                                                  after_action)
        finally:
            self.model.train(was_training)
        if forced is not None:
            sequences, token_lp = self._prepend(forced, sequences, token_lp, num_samples)
        mask = _sequence_mask(sequences, self.tokens.pad, self.tokens.eos)
        token_lp = token_lp.masked_fill(~mask, 0.0)
        return self._output(sequences, mask, token_lp, len(inputs), num_samples)

    # ------------------------------------------------------------------ the label head
    def head_labels(self, pixel_values: torch.Tensor) -> list[dict[str, str | None]]:
        """The label fields the label head states for ``pixel_values (B, 3, H, W)`` (the model's image input), under
        the consistency rule of :func:`agents.vla.label_head.decide` (``ValueError`` when the policy has no head)."""
        if self.label_head is None:
            raise ValueError("VLAPolicy: label_source 'head' needs a fitted label head (agents.sft.trainer.train_sft "
                             "fits it; a policy folder keeps it as label_classifier.safetensors), and this policy has "
                             "none")
        patches = projector_input(self.model, pixel_values)
        head = self.label_head.to(patches.device).eval()
        with torch.no_grad():
            return decide(head(head.tower_read(patches)))

    def _head_prefix(self, pixel_values: torch.Tensor) -> list[list[int]]:
        """Per input, the token ids of the head's label sentence followed by ``<action>`` (what is teacher-forced)."""
        from counterfactual.language import label_sentence

        sentences = [label_sentence(fields) for fields in self.head_labels(pixel_values)]
        ids = self.processor.encode_targets([s + ACTION for s in sentences])
        for s, row in zip(sentences, ids):
            if len(row) - 1 > self.processor.max_text_tokens:
                raise ValueError(f"label sentence of {len(row) - 1} tokens exceeds max_text_tokens="
                                 f"{self.processor.max_text_tokens}: {s!r}")
        return ids

    def _append_to_prompts(self, batch: dict[str, torch.Tensor], forced: Sequence[Sequence[int]]
                           ) -> dict[str, torch.Tensor]:
        """``batch`` with each row's ``forced`` ids appended after its prompt, left-padded again."""
        ids, attention = batch["input_ids"], batch["attention_mask"]
        rows = [ids[i][attention[i].bool()].tolist() + list(forced[i]) for i in range(len(ids))]
        width = max(len(r) for r in rows)
        new_ids = torch.full((len(rows), width), self.tokens.pad, dtype=ids.dtype)
        new_attention = torch.zeros((len(rows), width), dtype=attention.dtype)
        for i, row in enumerate(rows):
            new_ids[i, width - len(row):] = torch.tensor(row, dtype=ids.dtype)
            new_attention[i, width - len(row):] = 1
        return {**batch, "input_ids": new_ids.to(ids.device), "attention_mask": new_attention.to(ids.device)}

    def _prepend(self, forced: Sequence[Sequence[int]], sequences: torch.Tensor, token_lp: torch.Tensor,
                 num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sequences, token log-probs)`` ``(N, S')`` of the whole continuation: each row's forced ids (its
        input's, log-probability 0) then its generated tokens, right-padded with the pad id."""
        n_rows = sequences.shape[0]
        width = max(len(f) for f in forced) + sequences.shape[1]
        out = torch.full((n_rows, width), self.tokens.pad, dtype=sequences.dtype)
        lp = torch.zeros((n_rows, width), dtype=token_lp.dtype)
        for n in range(n_rows):
            prefix = forced[n // num_samples]
            out[n, : len(prefix)] = torch.tensor(prefix, dtype=sequences.dtype)
            out[n, len(prefix): len(prefix) + sequences.shape[1]] = sequences[n]
            lp[n, len(prefix): len(prefix) + sequences.shape[1]] = token_lp[n]
        return out, lp

    def _generate_transformers(self, batch: dict[str, torch.Tensor], num_samples: int, temperature: float | None,
                               max_new: int, after_action: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sequences (N, S), token log-probs (N, S))`` by ``transformers``' ``generate`` (the reference the fast
        decoder is tested against, and the path of models it does not support)."""
        from transformers import GenerationConfig, LogitsProcessorList

        prompt_length = batch["input_ids"].shape[1]
        sampling = temperature is not None
        config = GenerationConfig(  # top_k=0 disables transformers' default top-k of 50 when sampling
            do_sample=sampling, temperature=temperature, top_k=0 if sampling else None, top_p=1.0 if sampling else None,
            num_return_sequences=num_samples, max_new_tokens=max_new,
            pad_token_id=self.tokens.pad, eos_token_id=self.tokens.eos, bos_token_id=self.tokens.bos,
            output_scores=True, return_dict_in_generate=True,
        )
        with torch.no_grad():
            out = self.model.generate(**batch, generation_config=config, logits_processor=LogitsProcessorList(
                [GrammarLogitsProcessor(self.grammar, prompt_length, after_action)]))
        sequences = out.sequences[:, prompt_length:].cpu()
        scores = torch.stack(out.scores, dim=1).float().cpu()  # (N, S, V), grammar and temperature applied
        token_lp = torch.log_softmax(scores, dim=-1).gather(-1, sequences.unsqueeze(-1)).squeeze(-1)
        return sequences, token_lp

    def _output(self, sequences: torch.Tensor, mask: torch.Tensor, token_lp: torch.Tensor, n_inputs: int,
                num_samples: int) -> VLAOutput:
        """Parse generated rows into a :class:`VLAOutput`."""
        tokens_per_traj = self.codebook.tokens_per_trajectory
        texts, codes = [], []
        for row in sequences.numpy():
            parsed = parse_output(row, self.processor.tokenizer, self.tokens, tokens_per_traj)
            if not parsed.complete:  # cannot happen under the grammar with this max_new_tokens
                raise RuntimeError(f"generation did not produce {tokens_per_traj} action token(s): {row.tolist()}")
            texts.append(parsed.text)
            codes.append(parsed.codes)
        codes_arr = np.stack(codes).astype(np.int64)
        return VLAOutput(
            trajectories=self.codebook.decode(codes_arr), texts=texts, codes=codes_arr, sequences=sequences,
            mask=mask, token_logprobs=token_lp, input_index=np.repeat(np.arange(n_inputs), num_samples),
        )

    def predict(self, inputs: Sequence[PolicyInput]) -> VLAOutput:
        """Greedy outputs of a batch of inputs."""
        return self.generate(inputs)

    def sample(self, inputs: Sequence[PolicyInput], G: int, temperature: float = 1.0) -> VLAOutput:
        """``G`` sampled outputs per input (rows grouped by input: row ``i * G + g``); trajectories ``(B*G, 8, 3)``."""
        return self.generate(inputs, num_samples=G, temperature=temperature)

    def act(self, inp: PolicyInput) -> np.ndarray:
        """Trajectory ``(8, 3)`` float32 for one input: greedy, or one sample at :attr:`temperature` with
        ``set_decisions("sampled")``; the full output is kept in :attr:`last_output`."""
        if self.decisions == "sampled":
            with self.decision_rng():
                self.last_output = self.generate([inp], num_samples=1, temperature=self.temperature)
        else:
            self.last_output = self.generate([inp])
        return self.last_output.trajectories[0]

    # ------------------------------------------------------------------ teacher forcing
    def target_sequences(self, explanations: Sequence[str], trajectories: np.ndarray) -> torch.Tensor:
        """Token ids ``(N, S)`` (right-padded) of the outputs ``explanation<action><codes></s>`` for given label texts
        and ``(N, 8, 3)`` trajectories (encoded with the codebook), e.g. GRPO's anchors.

        Raises:
            ValueError: an explanation longer than the grammar's ``max_text_tokens``.
        """
        trajectories = np.asarray(trajectories, dtype=np.float64).reshape(-1, NUM_POSES, 3)
        if len(explanations) != len(trajectories):
            raise ValueError(f"target_sequences: {len(explanations)} explanations for {len(trajectories)} "
                             "trajectories")
        codes = self.codebook.encode(trajectories)
        ids = self.processor.encode_targets([target_text(e, c) for e, c in zip(explanations, codes)])
        for e, row in zip(explanations, ids):
            n_text = len(row) - self.codebook.tokens_per_trajectory - 2
            if n_text > self.processor.max_text_tokens:
                raise ValueError(f"explanation of {n_text} tokens exceeds max_text_tokens="
                                 f"{self.processor.max_text_tokens}: {e!r}")
        out = torch.full((len(ids), max(len(r) for r in ids)), self.tokens.pad, dtype=torch.long)
        for i, row in enumerate(ids):
            out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return out

    def concat_sequences(self, *sequences: torch.Tensor) -> torch.Tensor:
        """Stack ``(N_i, S_i)`` output sequences row-wise, right-padding with the pad id to the widest (e.g. sampled
        outputs and anchor :meth:`target_sequences` into one :meth:`log_prob` call)."""
        width = max(int(s.shape[1]) for s in sequences)
        padded = [torch.nn.functional.pad(torch.as_tensor(s, dtype=torch.long).cpu(), (0, width - s.shape[1]),
                                          value=self.tokens.pad) for s in sequences]
        return torch.cat(padded, dim=0)

    def log_prob(self, inputs: Sequence[PolicyInput], sequences: torch.Tensor, temperature: float = 1.0,
                 input_index: Sequence[int] | np.ndarray | None = None) -> LogProbs:
        """Teacher-forced log-probabilities of output sequences (gradients flow into the model).

        Args:
            inputs: ``B`` policy inputs.
            sequences: ``(N, S)`` output token ids (as in :attr:`VLAOutput.sequences` or from
                :meth:`target_sequences`), padded with the pad id after EOS.
            temperature: the temperature the logits are divided by (use the sampling temperature to reproduce
                :attr:`VLAOutput.token_logprobs`).
            input_index: ``(N,)`` input of each row; default: ``N / B`` consecutive rows per input (the layout of
                :meth:`sample`).

        Returns:
            :class:`LogProbs`; ``sequence[n] == tokens[n].sum()``.
        """
        sequences = torch.as_tensor(sequences, dtype=torch.long).cpu()
        n_rows = sequences.shape[0]
        if input_index is None:
            if n_rows % len(inputs):
                raise ValueError(f"log_prob: {n_rows} sequences are not a multiple of {len(inputs)} inputs; pass "
                                 "input_index")
            index = torch.arange(len(inputs)).repeat_interleave(n_rows // len(inputs))
        else:
            index = torch.as_tensor(np.asarray(input_index), dtype=torch.long)
            if index.shape != (n_rows,) or index.min() < 0 or index.max() >= len(inputs):
                raise ValueError(f"log_prob: input_index must be ({n_rows},) indices into {len(inputs)} inputs")
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0, got {temperature!r}")
        batch = self.encode(inputs)
        mask = _sequence_mask(sequences, self.tokens.pad, self.tokens.eos)
        device = self.device
        seq = sequences.masked_fill(~mask, self.tokens.pad).to(device)
        index = index.to(device)
        if self.decoder == "fast":
            logits = self._output_logits_shared_prompt(batch, seq, mask.to(device), index)
        else:
            logits = self._output_logits(batch, seq, mask.to(device), index)
        logits = logits.float() / temperature
        logits = self.grammar.mask(logits, self.grammar.categories_for_sequences(seq))
        token_lp = torch.log_softmax(logits, dim=-1).gather(-1, seq.unsqueeze(-1)).squeeze(-1)
        mask = mask.to(device)
        token_lp = token_lp.masked_fill(~mask, 0.0)
        if self.label_source == "head":  # the label sentence and <action> are forced: log-probability 0
            is_action = (seq == self.tokens.action).long()
            token_lp = token_lp.masked_fill((torch.cumsum(is_action, dim=1) - is_action) == 0, 0.0)
        action_mask = mask & torch.isin(seq, torch.as_tensor(self.tokens.codes, device=device))
        return LogProbs(sequence=token_lp.sum(dim=1), tokens=token_lp, mask=mask, action_mask=action_mask)

    def _output_logits(self, batch: dict[str, torch.Tensor], seq: torch.Tensor, mask: torch.Tensor,
                       index: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, S, V)`` predicting each token of ``seq (N, S)``: one forward pass of prompt + output per row
        (the vision tower and the prompt recomputed for every row)."""
        prompt_ids, prompt_mask = batch["input_ids"][index], batch["attention_mask"][index]
        attention = torch.cat([prompt_mask, mask.long()], dim=1)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
        out = self.model(input_ids=torch.cat([prompt_ids, seq], dim=1), attention_mask=attention,
                         pixel_values=batch["pixel_values"][index], position_ids=positions, use_cache=False)
        start = prompt_ids.shape[1] - 1
        return out.logits[:, start : start + seq.shape[1]]

    def _output_logits_shared_prompt(self, batch: dict[str, torch.Tensor], seq: torch.Tensor, mask: torch.Tensor,
                                     index: torch.Tensor) -> torch.Tensor:
        """As :meth:`_output_logits`, with each distinct input's image and prompt run once: a prefill pass over the
        ``B`` prompts (``(B, P)``, with its key / value cache, gradients kept), the cache's rows gathered by
        ``index (N,)``, then one pass over the ``N`` outputs attending to it. Equal to the per-row pass up to float
        reassociation (tested within 1e-5), about half its work for GRPO's groups of ``G + 2`` rows per state."""
        prompt_ids, prompt_mask = batch["input_ids"], batch["attention_mask"]
        prompt_pos = (prompt_mask.cumsum(dim=1) - 1).clamp(min=0)
        prefix = self.model(input_ids=prompt_ids, attention_mask=prompt_mask, pixel_values=batch["pixel_values"],
                            position_ids=prompt_pos, use_cache=True, logits_to_keep=1)
        cache = prefix.cache
        cache.batch_select_indices(index)
        attention = torch.cat([prompt_mask.index_select(0, index), mask.long()], dim=1)
        positions = ((attention.cumsum(dim=1) - 1).clamp(min=0))[:, prompt_ids.shape[1]:]
        first = prefix.logits[:, -1:].index_select(0, index)
        if seq.shape[1] == 1:
            return first
        out = self.model(input_ids=seq[:, :-1], attention_mask=attention[:, :-1], position_ids=positions[:, :-1],
                         cache=cache, use_cache=True)
        return torch.cat([first, out.logits], dim=1)
