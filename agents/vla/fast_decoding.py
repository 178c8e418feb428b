"""A lean KV-cached decoding loop for the VLA (LLaVA-style model, Llama decoder), used by
:meth:`agents.vla.policy.VLAPolicy.generate` in place of ``transformers``' ``generate``; same outputs, about half
the time (measured in ``benchmarks/bench_vla.py``, table in docs/vla.md).

Where ``generate`` spends the time on one CPU core, for a decoder this small (profiled: 2 layers of width 128, ~0.3 ms
of matrix work per token): about 1.5 ms per generated token of Python around the model (output dataclasses,
``prepare_inputs_for_generation``, mask building, the logits-processor call re-deriving the grammar state from all
tokens so far), and, for ``G`` samples, the vision tower and the prompt prefill run on ``G`` copies of the input
(``num_return_sequences`` expands the inputs before the prefill). :func:`decode`:

1. prefills each distinct input once with the ``transformers`` model itself (vision tower, projector, prompt; a
   ``DynamicCache``), then copies the cache's keys / values into one preallocated buffer per layer with a row per
   output (``input_index``), room for ``max_new_tokens`` more;
2. per generated token, runs the decoder layers' own submodules (``q_proj`` ... ``mlp``, so LoRA-wrapped layers work
   unchanged) on the new tokens only, attention by ``scaled_dot_product_attention`` over the buffer (a key mask for
   left padding), then the final norm and the LM head;
3. applies the output grammar from an incremental state (:class:`agents.vla.decoding.GrammarState`) and picks the
   next tokens exactly as ``generate`` does: ``argmax`` (greedy) or ``torch.multinomial`` on the softmax of the
   grammar-masked logits divided by the temperature, one call on all rows per step (rows already finished included),
   so the random stream, and hence a seeded group, is the one ``generate`` draws.

Only models whose decoder layers are ``LlamaDecoderLayer`` with ``sdpa`` attention are supported, with
``transformers`` >= 5 (:func:`unsupported_reason`); :class:`~agents.vla.policy.VLAPolicy` falls back to ``generate``
for any other (e.g. a pretrained VLM with another decoder). Outputs equal ``generate``'s: the same tokens (tested on
greedy and seeded groups against a golden file written by ``generate``, ``tests/test_vla_decoding_pinned.py``) and
log-probabilities within 1e-5 (float reassociation: the prefill runs on ``B`` rows rather than ``B * G``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from agents.vla.decoding import ActionGrammar, GrammarState


def _base_model(model: Any) -> Any:
    """The ``transformers`` model under a ``peft`` wrapper (the model itself otherwise)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _parts(model: Any) -> tuple[Any, Any]:
    """``(language model, LM head)`` of a LLaVA-style model."""
    base = _base_model(model)
    return base.model.language_model, base.get_output_embeddings()


def unsupported_reason(model: Any) -> str | None:
    """None when :func:`decode` supports ``model``, else why not (the caller then uses ``generate``)."""
    import transformers
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    if int(transformers.__version__.split(".")[0]) < 5:  # the cache API used here (``cache=``, ``Cache.layers``)
        return f"transformers {transformers.__version__} < 5"
    try:
        lm, head = _parts(model)
        layers = list(lm.layers)
    except AttributeError:
        return f"{type(_base_model(model)).__name__} has no model.language_model.layers / output embeddings"
    if head is None or not layers or not all(isinstance(layer, LlamaDecoderLayer) for layer in layers):
        return "decoder layers are not LlamaDecoderLayer"
    impl = getattr(lm.config, "_attn_implementation", None)
    if impl != "sdpa":  # the step attends with SDPA: the same kernel as the model's own layers
        return f"attention implementation {impl!r} (supported: sdpa)"
    if getattr(lm.config, "sliding_window", None):
        return "sliding-window attention"
    return None


@dataclass
class Decoded:
    """Output of :func:`decode` (``N`` rows, ``S`` generated steps).

    Attributes:
        sequences: ``(N, S)`` int64 generated ids, the pad id after EOS.
        token_logprobs: ``(N, S)`` float32 log-probabilities of the generated tokens under the grammar-masked,
            temperature-scaled distribution they were picked from (greedy: temperature 1); padding included (the
            caller masks it).
    """

    sequences: torch.Tensor
    token_logprobs: torch.Tensor


class _KVBuffers:
    """Per-layer key / value buffers ``(N, kv_heads, P + max_new, head_dim)`` filled from a prefill cache."""

    def __init__(self, cache: Any, n_layers: int, index: torch.Tensor, max_new: int) -> None:
        self.keys, self.values = [], []
        for i in range(n_layers):
            layer = cache.layers[i]
            for src, dst in ((layer.keys, self.keys), (layer.values, self.values)):
                rows = src.index_select(0, index)
                buf = rows.new_zeros((rows.shape[0], rows.shape[1], rows.shape[2] + max_new, rows.shape[3]))
                buf[:, :, : rows.shape[2]] = rows
                dst.append(buf)


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, n_rep: int,
               scale: float) -> torch.Tensor:
    """One query token per row: ``q (N, H, 1, D)`` over ``k, v (N, KV, L, D)`` with a key mask ``(N, L)`` (None: all
    keys); grouped-query heads packed as ``transformers``' SDPA path does. Returns ``(N, 1, H * D)``."""
    n, h, _, d = q.shape
    if mask is None:
        out = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=n_rep > 1)
    else:
        qp = q.reshape(n, h // n_rep, n_rep, d) if n_rep > 1 else q
        out = torch.nn.functional.scaled_dot_product_attention(qp, k, v, attn_mask=mask[:, None, None, :],
                                                               scale=scale)
    return out.reshape(n, h, 1, d).transpose(1, 2).reshape(n, 1, h * d)


@torch.no_grad()
def decode(model: Any, batch: dict[str, torch.Tensor], grammar: ActionGrammar, max_new_tokens: int,
           num_samples: int = 1, temperature: float | None = None, eos: int = 2, pad: int = 0,
           after_action: bool = False) -> Decoded:
    """Generate ``num_samples`` outputs per input under ``grammar`` (module docstring).

    Args:
        model: a supported model (:func:`unsupported_reason` is None), in eval mode.
        batch: ``input_ids`` / ``attention_mask`` ``(B, P)`` left-padded, ``pixel_values`` ``(B, 3, H, W)``.
        grammar: the output grammar.
        max_new_tokens: most generated tokens per row.
        num_samples: outputs per input (rows ``i * num_samples + g``).
        temperature: None for greedy, else the sampling temperature.
        eos, pad: EOS id (ends a row) and the id written after it.
        after_action: the prompts already end with ``<action>`` (the label head's sentence, teacher-forced): the
            grammar starts at the action tokens (:class:`agents.vla.decoding.GrammarState`).

    Returns:
        :class:`Decoded` with ``N = B * num_samples`` rows.
    """
    lm, head = _parts(model)
    layers = list(lm.layers)
    input_ids, attention = batch["input_ids"], batch["attention_mask"]
    B, P = input_ids.shape
    device = input_ids.device
    prompt_pos = (attention.long().cumsum(-1) - 1).masked_fill(attention == 0, 0)
    out = model(input_ids=input_ids, attention_mask=attention, pixel_values=batch["pixel_values"],
                position_ids=prompt_pos, use_cache=True, logits_to_keep=1)
    index = torch.arange(B, device=device).repeat_interleave(num_samples)
    N = B * num_samples
    kv = _KVBuffers(out.cache, len(layers), index, max_new_tokens)
    key_mask = None
    if not bool(attention.all()):
        key_mask = torch.ones((N, P + max_new_tokens), dtype=torch.bool, device=device)
        key_mask[:, :P] = attention.bool().index_select(0, index)
    position = prompt_pos[:, -1].index_select(0, index)[:, None] + 1  # (N, 1)
    attn0 = layers[0].self_attn
    n_heads = attn0.config.num_attention_heads
    n_kv = attn0.config.num_key_value_heads
    head_dim, scale, n_rep = attn0.head_dim, attn0.scaling, n_heads // n_kv
    rope = _rotary_fn(attn0)
    steps = [_LayerStep(layer) for layer in layers]
    embed, final_norm, head_fn = _call(lm.embed_tokens), _call(lm.norm), _call(head)
    # rotary cos / sin of every position to come, in one call (elementwise: the values of one call per step)
    positions = position + torch.arange(max_new_tokens, device=device)[None]  # (N, max_new)
    cos_all, sin_all = lm.rotary_emb(_dtype_probe(out.logits, model), positions)
    logits = out.logits[:, -1].float().index_select(0, index)
    state = GrammarState(grammar, N, device, after_action=after_action)
    finished = torch.zeros(N, dtype=torch.bool, device=device)
    tokens_out, logps = [], []
    for step in range(max_new_tokens):
        scores = state.mask(logits)
        if temperature is not None:
            scores = scores / temperature
            next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            next_tokens = torch.argmax(scores, dim=-1)
        next_tokens = torch.where(finished, torch.full_like(next_tokens, pad), next_tokens)
        logps.append(torch.log_softmax(scores, dim=-1).gather(-1, next_tokens[:, None]).squeeze(-1))
        tokens_out.append(next_tokens)
        finished = finished | (next_tokens == eos)
        state.advance(next_tokens)
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        # ---- one decoder step on the new tokens (column P + step of the buffers)
        col = P + step
        hidden = embed(next_tokens[:, None])
        cos, sin = cos_all[:, step : step + 1], sin_all[:, step : step + 1]
        mask = None if key_mask is None else key_mask[:, : col + 1]
        for i, f in enumerate(steps):
            h = f.ln1(hidden)
            q = f.q(h).view(N, 1, n_heads, head_dim).transpose(1, 2)
            k = f.k(h).view(N, 1, n_kv, head_dim).transpose(1, 2)
            v = f.v(h).view(N, 1, n_kv, head_dim).transpose(1, 2)
            q, k = rope(q, k, cos, sin)
            kv.keys[i][:, :, col] = k[:, :, 0]
            kv.values[i][:, :, col] = v[:, :, 0]
            a = _attention(q, kv.keys[i][:, :, : col + 1], kv.values[i][:, :, : col + 1], mask, n_rep, scale)
            hidden = hidden + f.o(a)
            hidden = hidden + f.mlp(f.ln2(hidden))
        logits = head_fn(final_norm(hidden)[:, -1]).float()
    return Decoded(sequences=torch.stack(tokens_out, dim=1), token_logprobs=torch.stack(logps, dim=1).float())


def _dtype_probe(logits: torch.Tensor, model: Any) -> torch.Tensor:
    """An empty tensor of the decoder's dtype (the rotary embedding casts cos / sin to its input's dtype)."""
    dtype = next(_parts(model)[0].parameters()).dtype
    return logits.new_empty((0,), dtype=dtype)


def _call(module: Any) -> Any:
    """``module.forward`` when the module has no hooks (skips ``nn.Module.__call__``'s bookkeeping, ~5 us a call;
    for a plain ``nn.Linear`` the ``F.linear`` it calls), else the module itself."""
    hooks = (module._forward_hooks, module._forward_pre_hooks, torch.nn.modules.module._global_forward_hooks,
             torch.nn.modules.module._global_forward_pre_hooks)
    if any(hooks):
        return module
    if type(module) is torch.nn.Linear:
        weight, bias = module.weight, module.bias
        return lambda x: torch.nn.functional.linear(x, weight, bias)
    return module.forward


class _LayerStep:
    """The submodules of one ``LlamaDecoderLayer`` a decoding step calls, bound once."""

    def __init__(self, layer: Any) -> None:
        from transformers.models.llama.modeling_llama import LlamaMLP

        attn = layer.self_attn
        self.ln1, self.ln2 = _call(layer.input_layernorm), _call(layer.post_attention_layernorm)
        self.q, self.k, self.v, self.o = (_call(attn.q_proj), _call(attn.k_proj), _call(attn.v_proj),
                                          _call(attn.o_proj))
        mlp = layer.mlp
        if type(mlp) is LlamaMLP:  # its forward, with the linear layers called without __call__ too
            gate, up, down, act = _call(mlp.gate_proj), _call(mlp.up_proj), _call(mlp.down_proj), mlp.act_fn
            self.mlp = lambda x: down(act(gate(x)) * up(x))
        else:
            self.mlp = _call(mlp)


def _rotary_fn(attn: Any) -> Any:
    """The ``apply_rotary_pos_emb`` of the attention module's own ``transformers`` module."""
    import sys

    return sys.modules[type(attn).__module__].apply_rotary_pos_emb
