"""The fast VLA decoder (:mod:`agents.vla.fast_decoding`) and the shared-prompt teacher forcing give what
``transformers``' ``generate`` and the per-row forward pass give: the same tokens (greedy, and seeded groups), the
same log-probabilities within 1e-5, the same gradients; also with LoRA adapters. Tiny VLA on SYNTHETIC bank
observations (seconds)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from agents.vla.decoding import GrammarState
from agents.vla.fast_decoding import unsupported_reason
from agents.vla.model import apply_lora
from tests.test_vla_decoding_pinned import pinned_setup

ATOL = 1e-5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def setup():
    return pinned_setup()


def _both(policy, fn):
    """``fn()`` with the ``transformers`` decoder, then with the fast one (same torch seed before each)."""
    out = {}
    for decoder in ("transformers", "fast"):
        policy.decoder = decoder
        torch.manual_seed(123)
        out[decoder] = fn()
    policy.decoder = "fast"
    return out["transformers"], out["fast"]


def _assert_same_generation(ref, fast):
    assert torch.equal(ref.sequences, fast.sequences)
    assert torch.equal(ref.mask, fast.mask)
    torch.testing.assert_close(fast.token_logprobs, ref.token_logprobs, atol=ATOL, rtol=0)
    assert ref.texts == fast.texts
    np.testing.assert_array_equal(ref.trajectories, fast.trajectories)


def test_default_policy_uses_the_fast_decoder(setup):
    policy, _ = setup
    assert policy.decoder == "fast" and unsupported_reason(policy.model) is None
    assert "language_model" in unsupported_reason(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("temperature", [None, 1.0, 0.7])
def test_fast_decoder_equals_generate(setup, temperature):
    """Greedy and seeded sampling, one input (no padding) and three left-padded inputs, G = 1 and 5."""
    policy, inputs = setup
    for batch in (inputs[1:2], inputs):
        for G in ((1,) if temperature is None else (1, 5)):
            ref, fast = _both(policy, lambda: policy.generate(batch, G, temperature))
            _assert_same_generation(ref, fast)


def test_shared_prompt_log_prob_equals_per_row_pass(setup):
    """Sampled outputs and anchor-like targets of three inputs, rows in any order: values and gradients."""
    policy, inputs = setup
    torch.manual_seed(5)
    sampled = policy.sample(inputs, G=3, temperature=1.0)
    trajs = np.stack([np.stack([np.linspace(1, 8, 8), np.zeros(8), np.zeros(8)], axis=1)] * 2)
    anchors = policy.target_sequences(["A car ahead, so the ego should brake."] * 2, trajs)
    seqs = policy.concat_sequences(sampled.sequences, anchors)
    index = np.concatenate([sampled.input_index, [2, 0]])
    perm = np.random.default_rng(0).permutation(len(index))
    results = []
    policy.model.train()
    try:
        for decoder in ("transformers", "fast"):
            policy.decoder = decoder
            policy.model.zero_grad()
            lp = policy.log_prob(inputs, seqs[perm], temperature=0.8, input_index=index[perm])
            (lp.sequence * torch.linspace(0.5, 1.5, len(perm))).sum().backward()
            grads = {n: p.grad.clone() for n, p in policy.model.named_parameters() if p.grad is not None}
            results.append((lp, grads))
    finally:
        policy.decoder = "fast"
        policy.model.zero_grad()
        policy.model.eval()
    (ref, ref_grads), (fast, fast_grads) = results
    assert torch.equal(ref.mask, fast.mask) and torch.equal(ref.action_mask, fast.action_mask)
    torch.testing.assert_close(fast.tokens.detach(), ref.tokens.detach(), atol=ATOL, rtol=0)
    assert ref_grads.keys() == fast_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        torch.testing.assert_close(fast_grads[name], g, atol=1e-6 + 1e-4 * float(g.abs().max()), rtol=0, msg=name)


def test_fast_decoder_with_lora_adapters(setup):
    """A LoRA-wrapped model (adapters perturbed away from their zero init) decodes the same both ways."""
    policy, inputs = setup
    from agents.vla.policy import VLAPolicy

    model = apply_lora(copy.deepcopy(policy.model), r=4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    lora_policy = VLAPolicy(model, policy.processor)
    assert lora_policy.decoder == "fast"
    ref, fast = _both(lora_policy, lambda: lora_policy.generate(inputs, 4, 1.0))
    _assert_same_generation(ref, fast)
    plain = policy.predict(inputs[:1])
    assert not torch.equal(lora_policy.predict(inputs[:1]).token_logprobs, plain.token_logprobs)  # adapters act


def test_grammar_state_matches_the_categories_of_the_tokens_so_far(setup):
    policy, _ = setup
    grammar, tokens = policy.grammar, policy.tokens
    rng = np.random.default_rng(0)
    text_ids = [i for i in range(tokens.vocab_size) if grammar.table[0, i] and i != tokens.action]
    rows = []
    for n_text in (0, 3, 39, 40):
        rows.append(list(rng.choice(text_ids, n_text)) + [tokens.action] + list(rng.choice(tokens.codes, 8))
                    + [tokens.eos])
    width = max(len(r) for r in rows)
    seqs = torch.tensor([r + [tokens.pad] * (width - len(r)) for r in rows])
    state = GrammarState(grammar, len(rows))
    for j in range(width):
        assert torch.equal(state.categories(), grammar.categories(seqs[:, :j])), j
        state.advance(seqs[:, j])


def test_unsupported_model_falls_back_to_generate(setup):
    """Eager attention (not the SDPA kernel the fast step uses): the policy decodes with ``generate``."""
    policy, inputs = setup
    from agents.vla.policy import VLAPolicy

    model = copy.deepcopy(policy.model)
    model.set_attn_implementation("eager")
    eager = VLAPolicy(model, policy.processor)
    assert "eager" in unsupported_reason(model) and eager.decoder == "transformers"
    with pytest.raises(ValueError, match="not available for this model: attention implementation 'eager'"):
        eager.decoder = "fast"
    with pytest.raises(ValueError, match="expected one of"):
        policy.decoder = "hf"
    out = eager.predict(inputs)
    assert out.trajectories.shape == (3, 8, 3) and out.mask.any(dim=1).all()
