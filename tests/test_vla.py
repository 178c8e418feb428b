"""The VLA: action codebook, tokenizer and processor round trips, generation under the output grammar, teacher-forced
log-probabilities, save/load, and the local pretrained-VLM + LoRA path. Tiny configurations (CPU, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import get_linear_schedule_with_warmup

from agents.base import PolicyInput
from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, chain_segments, kmeans, log_trajectories, segments_of
from agents.vla.format import parse_output, prompt_text, target_text
from counterfactual.language import NO_HAZARD_EXPLANATION, NO_HAZARD_FIELDS
from agents.vla.model import VLAConfig, build_model, count_parameters
from agents.vla.policy import VLAPolicy
from agents.vla.processor import VLAProcessor
from agents.vla.tokenizer import (
    ACTION,
    TokenizerConfig,
    VLATokens,
    action_token,
    build_tokenizer,
    grammar_corpus,
    isolated_phrases,
)
from counterfactual.language import parse_explanation
from envs.scenes.bank import ScenarioBank
from envs.observation import ObservationConfig, build_observation, text_prompt
from envs.render import BEVConfig
from envs.spaces import ACTION_HIGH, ACTION_LOW

TOK = TokenizerConfig(corpus_size=300)
OBS = ObservationConfig(bev=BEVConfig(height=32, width=32, meters_per_pixel=2.0, antialias=False))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scenes():
    bank = ScenarioBank(6, seed=0)
    return [bank[i] for i in range(len(bank))]


@pytest.fixture(scope="module")
def logs(scenes):
    return log_trajectories(scenes, stride=2)


@pytest.fixture(scope="module")
def codebook(logs):
    return TrajectoryCodebook.fit(logs, CodebookConfig(size=16, mode="segment"))


@pytest.fixture(scope="module")
def policy(codebook):
    return VLAPolicy.build(codebook, VLAConfig.tiny(), TOK, max_text_tokens=40)


@pytest.fixture(scope="module")
def inputs(scenes):
    out = []
    for scene, t, extra in zip(scenes[:3], (20, 31, 42), ("", " Drive safely.", "")):
        obs = build_observation(scene, t, config=OBS)
        out.append(PolicyInput(observation=obs, prompt=text_prompt(obs) + extra))  # prompts of different lengths
    return out


# ----------------------------------------------------------------------------------------------------- codebook
@pytest.mark.parametrize("mode", ["trajectory", "segment"])
def test_codebook_round_trip(mode, logs, tmp_path):
    book = TrajectoryCodebook.fit(logs, CodebookConfig(size=12, mode=mode, iterations=10))
    codes = book.encode(logs)
    assert codes.shape == (len(logs), book.tokens_per_trajectory) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 12
    decoded = book.decode(codes)
    assert decoded.shape == logs.shape and decoded.dtype == np.float32
    # a decoded trajectory is exactly representable: encoding it again gives the same codes
    np.testing.assert_array_equal(book.encode(decoded), codes)
    # quantisation beats the best constant trajectory by a wide margin
    ade = np.linalg.norm(decoded[..., :2] - logs[..., :2], axis=-1).mean()
    mean_traj = np.linalg.norm(logs[..., :2] - logs[..., :2].mean(axis=0), axis=-1).mean()
    assert ade < 0.5 * mean_traj
    book.save(tmp_path / "book.npz")
    again = TrajectoryCodebook.load(tmp_path / "book.npz")
    assert again.mode == mode and np.array_equal(again.codewords, book.codewords)
    np.testing.assert_array_equal(again.encode(logs), codes)
    (tmp_path / "bad.npz").write_bytes(b"not a codebook")
    with pytest.raises(ValueError, match="bad.npz"):
        TrajectoryCodebook.load(tmp_path / "bad.npz")
    with pytest.raises(ValueError, match="codes must be in"):
        book.decode(np.full((1, book.tokens_per_trajectory), 12))


def test_segments_chain_back(logs):
    np.testing.assert_allclose(chain_segments(segments_of(logs)), logs, atol=1e-9)


def test_kmeans_needs_enough_distinct_points():
    with pytest.raises(ValueError, match="distinct"):
        kmeans(np.zeros((50, 3)), 4, 5, np.random.default_rng(0))
    centers = kmeans(np.arange(40, dtype=float).reshape(20, 2), 4, 20, np.random.default_rng(0))
    assert len(np.unique(centers, axis=0)) == 4


# ---------------------------------------------------------------------------------------------------- tokenizer
def test_tokenizer_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tok = build_tokenizer(16, TOK)
    corpus = list(grammar_corpus(200, seed=5))  # unseen seed
    for sentence in corpus:
        ids = tok.encode(sentence, add_special_tokens=False)
        assert tok.decode(ids) == sentence
    # vocabulary phrases are whole tokens, never merged with their neighbours
    vocab = tok.get_vocab()
    for phrase in ("pedestrian", "on the left", "high collision risk", "keep the lane"):
        assert phrase.replace(" ", "\u0120") in vocab, phrase
    ids = tok.encode("A pedestrian on the left", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids)[1:] == ["pedestrian", "\u0120", "on\u0120the\u0120left"]
    # special tokens are single ids
    assert tok.encode(ACTION + action_token(3), add_special_tokens=False) == [vocab[ACTION], vocab[action_token(3)]]
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    for sentence in corpus[:20] + [prompt_text(corpus[0]) + target_text(corpus[1], [1, 2])]:
        assert again.encode(sentence, add_special_tokens=False) == tok.encode(sentence, add_special_tokens=False)
    assert len(isolated_phrases()) > 40


def test_no_hazard_sentence_parses():
    parsed = parse_explanation(NO_HAZARD_EXPLANATION)
    assert {k: parsed[k] for k in NO_HAZARD_FIELDS} == dict(NO_HAZARD_FIELDS)
    assert parsed["time_kind"] == "none"  # no time is stated (label schema 2.0 says which time a sentence gives)


def test_processor_round_trip(policy, inputs, tmp_path):
    from transformers import AutoProcessor

    proc = policy.processor
    images = [i.observation["bev"] for i in inputs]
    prompts = [proc.prompt(i.prompt) for i in inputs]
    batch = proc.encode_prompts(images, prompts)
    n_image = VLAConfig.tiny().image_tokens
    assert (batch["input_ids"] == proc.tokens.image).sum(dim=1).tolist() == [n_image] * len(inputs)
    assert batch["attention_mask"][:, -1].all()  # left padding
    proc.save_pretrained(tmp_path)
    assert type(AutoProcessor.from_pretrained(tmp_path)).__name__ == "LlavaProcessor"
    again = VLAProcessor.from_pretrained(tmp_path)
    assert again.max_text_tokens == proc.max_text_tokens
    assert np.array_equal(again.codebook.codewords, proc.codebook.codewords)
    for key, value in again.encode_prompts(images, prompts).items():
        assert torch.equal(value, batch[key]), key
    texts = ["No immediate risk.", "A car ahead, 8.0 m away, in a rear-end conflict, so the ego should brake.", "Go."]
    targets = [target_text(t, [1] * 8) for t in texts]
    train = again.encode_training(images, prompts, targets)
    labelled = train["labels"] != -100
    assert labelled.sum(dim=1).tolist() == [len(t) for t in again.encode_targets(targets)]
    # right padding: every row starts at position 0, as its prompt does in generation
    assert train["attention_mask"][:, 0].all() and not train["attention_mask"][:, -1].all()
    # a row's loss does not depend on the rows it is batched with (no padding leak through positions)
    model = policy.model
    with torch.no_grad():
        for i in range(len(texts)):
            n = int(train["attention_mask"][i].sum())
            alone = model(**{k: v[i : i + 1, :n] if v.ndim == 2 else v[i : i + 1] for k, v in train.items()}).loss
            logits = model(**{k: v for k, v in train.items() if k != "labels"}).logits[i]
            keep = train["labels"][i, 1:] != -100
            manual = torch.nn.functional.cross_entropy(logits[:-1][keep], train["labels"][i, 1:][keep])
            torch.testing.assert_close(manual, alone, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="not a SafeAlign VLA folder"):
        (tmp_path / "safealign_vla.json").unlink()
        VLAProcessor.from_pretrained(tmp_path)


# --------------------------------------------------------------------------------------------------- the model
def test_act_and_sample_follow_the_grammar(policy, inputs):
    traj = policy.act(inputs[0])
    assert traj.shape == (8, 3) and traj.dtype == np.float32
    assert np.all(traj >= ACTION_LOW) and np.all(traj <= ACTION_HIGH)
    assert isinstance(policy.last_output.texts[0], str)
    assert policy.requires_privileged is False
    torch.manual_seed(0)
    out = policy.sample(inputs, G=4, temperature=1.0)
    assert out.trajectories.shape == (12, 8, 3) and len(out.texts) == 12
    assert out.input_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    tokens = policy.tokens
    for row, mask in zip(out.sequences, out.mask):
        ids = row[mask].tolist()
        assert ids.count(tokens.action) == 1 and ids[-1] == tokens.eos
        cut = ids.index(tokens.action)
        assert cut <= policy.processor.max_text_tokens
        assert tokens.code_of(ids[cut + 1 : -1]).min() >= 0 and len(ids) - cut - 2 == 8
    parsed = parse_output(out.sequences[0], policy.processor.tokenizer, tokens, 8)
    assert parsed.complete and parsed.text == out.texts[0]
    np.testing.assert_array_equal(policy.codebook.decode(parsed.codes[None])[0], out.trajectories[0])


def test_sampled_decisions_repeat_per_seed_and_leave_the_global_rng(policy, inputs):
    """``set_decisions("sampled")``: act draws one sample at the temperature, seeded by (seed, k): the same seed
    repeats the same decisions, another seed gives others, the global torch RNG is untouched; greedy is restored."""
    greedy = [policy.act(inp).copy() for inp in inputs]
    try:
        runs = []
        for seed in (3, 3, 4):
            policy.set_decisions("sampled", temperature=2.0, seed=seed)
            torch.manual_seed(123)
            runs.append(np.stack([policy.act(inp) for inp in inputs for _ in range(4)]))
            torch.manual_seed(123)
            expected = torch.rand(1)
            torch.manual_seed(123)
            policy.act(inputs[0])
            assert torch.rand(1).item() == expected.item()  # the global generator is restored after a sample
        np.testing.assert_array_equal(runs[0], runs[1])
        assert not np.array_equal(runs[0], runs[2])
        # at temperature 2 the 12 sampled decisions are not all the greedy ones
        assert any(not np.array_equal(r, greedy[i // 4]) for i, r in enumerate(runs[0]))
        with pytest.raises(ValueError, match="temperature"):
            policy.set_decisions("sampled", temperature=0.0)
        with pytest.raises(ValueError, match="decisions"):
            policy.set_decisions("best")
    finally:
        policy.set_decisions("greedy")
    np.testing.assert_array_equal(np.stack([policy.act(inp) for inp in inputs]), np.stack(greedy))


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_log_prob_equals_sum_of_token_log_probs(policy, inputs, temperature):
    torch.manual_seed(1)
    out = policy.sample(inputs, G=3, temperature=temperature)
    lp = policy.log_prob(inputs, out.sequences, temperature=temperature)
    # teacher forcing (one batched forward, left-padded prompts of different lengths) == generation's own scores
    torch.testing.assert_close(lp.tokens.detach(), out.token_logprobs, atol=2e-4, rtol=0)
    torch.testing.assert_close(lp.sequence.detach(), out.logprobs, atol=1e-3, rtol=0)
    torch.testing.assert_close(lp.sequence, lp.tokens.sum(dim=1))
    assert lp.action_mask.sum(dim=1).tolist() == [8] * len(out.texts)
    policy.model.zero_grad()
    lp.sequence.mean().backward()
    grads = [p.grad for p in policy.model.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    policy.model.zero_grad()
    # a row's value does not depend on the other inputs of the batch (left padding + position ids)
    assert not policy.encode(inputs)["attention_mask"].all()
    for i in range(len(inputs)):
        rows = torch.as_tensor(out.input_index == i)
        alone = policy.log_prob(inputs[i : i + 1], out.sequences[rows], temperature=temperature).sequence.detach()
        torch.testing.assert_close(alone, lp.sequence.detach()[rows], atol=1e-3, rtol=0)
    # explicit input_index (rows in any order) gives the same values
    perm = torch.randperm(len(out.texts))
    lp2 = policy.log_prob(inputs, out.sequences[perm], temperature, input_index=out.input_index[perm.numpy()])
    torch.testing.assert_close(lp2.sequence.detach(), lp.sequence.detach()[perm], atol=1e-4, rtol=0)


def test_target_sequences_for_anchors(policy, inputs):
    text = "A car ahead, 8.0 m away, in a rear-end conflict with high collision risk, so the ego should brake."
    trajs = np.stack([np.stack([np.linspace(1, 8, 8), np.zeros(8), np.zeros(8)], axis=1)] * 3)
    seqs = policy.target_sequences([text] * 3, trajs)
    lp = policy.log_prob(inputs, seqs)
    assert torch.isfinite(lp.sequence).all() and (lp.sequence < 0).all()
    # a different input gives a different probability to the same output (the tiny random-init model barely reads
    # its input: inputs 0 and 1 differ by 7e-4 nats of 126, far above float32 noise, below allclose's 1.3e-3)
    assert abs(float((lp.sequence[0] - lp.sequence[1]).detach())) > 1e-4
    with pytest.raises(ValueError, match="max_text_tokens"):
        policy.target_sequences([text * 4], trajs[:1])
    # sampled outputs and anchors in one call (GRPO's group): same values as separately
    sampled = policy.sample(inputs[:1], G=2)
    both = policy.concat_sequences(sampled.sequences, seqs[:1])
    joint = policy.log_prob(inputs[:1], both, input_index=[0, 0, 0]).sequence.detach()
    torch.testing.assert_close(joint[:2], sampled.logprobs, atol=1e-3, rtol=0)
    torch.testing.assert_close(joint[2], lp.sequence[0].detach(), atol=1e-4, rtol=0)


def test_save_load_gives_identical_outputs(policy, inputs, tmp_path):
    policy.save_pretrained(tmp_path / "p")
    again = VLAPolicy.from_pretrained(tmp_path / "p")
    a, b = policy.predict(inputs), again.predict(inputs)
    assert torch.equal(a.sequences, b.sequences) and a.texts == b.texts
    np.testing.assert_array_equal(a.trajectories, b.trajectories)
    batch = policy.encode(inputs)
    with torch.no_grad():
        assert torch.equal(policy.model(**batch).logits, again.model(**batch).logits)


def test_pretrained_vlm_folder_with_lora(codebook, inputs, tmp_path):
    """A 'pretrained VLM' that knows nothing of the VLA (its own tokenizer, no action tokens) loads from a local
    folder, gains the tokens, and is fine-tuned with LoRA."""
    from transformers import LlavaProcessor, PreTrainedTokenizerFast
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    from agents.vla.tokenizer import BOS, EOS, IMAGE, PAD, train_text_tokenizer

    base_tok = PreTrainedTokenizerFast(tokenizer_object=train_text_tokenizer(TOK), bos_token=BOS, eos_token=EOS,
                                       pad_token=PAD, extra_special_tokens=[IMAGE])
    assert "<action>" not in base_tok.get_vocab()
    vlm_dir = tmp_path / "vlm"
    image_proc = LlavaImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=image_proc, tokenizer=base_tok, patch_size=16,
                   vision_feature_select_strategy="default", num_additional_image_tokens=1).save_pretrained(vlm_dir)
    fake = VLATokens(pad=base_tok.pad_token_id, bos=base_tok.bos_token_id, eos=base_tok.eos_token_id,
                     image=base_tok.convert_tokens_to_ids(IMAGE), negative=-1, action=-1, tasks={},
                     codes=np.zeros(0, dtype=np.int64), vocab_size=len(base_tok))
    config = VLAConfig(**{**VLAConfig.tiny().__dict__, "text_hidden_size": 32})
    build_model(config, fake).save_pretrained(vlm_dir)
    base_vocab = len(base_tok)

    with pytest.raises(ValueError, match="pass the action codebook"):
        VLAPolicy.from_pretrained(vlm_dir)
    policy = VLAPolicy.from_pretrained(vlm_dir, codebook=codebook, lora={"r": 4, "alpha": 8})
    assert policy.tokens.vocab_size == base_vocab + 5 + codebook.size
    assert policy.model.get_input_embeddings().weight.shape[0] >= policy.tokens.vocab_size
    trainable = {n for n, p in policy.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable), sorted(trainable)[:5]
    assert count_parameters(policy.model, trainable_only=True) < 0.5 * count_parameters(policy.model)
    assert policy.act(inputs[0]).shape == (8, 3)
    # one optimisation step changes the adapter only, and the outputs
    out = policy.sample(inputs[:1], G=2)
    opt = torch.optim.SGD([p for p in policy.model.parameters() if p.requires_grad], lr=1e-3)
    frozen = {n: p.detach().clone() for n, p in policy.model.named_parameters() if not p.requires_grad}
    before = policy.log_prob(inputs[:1], out.sequences).sequence.detach()
    (-policy.log_prob(inputs[:1], out.sequences).sequence.sum()).backward()
    opt.step()
    after = policy.log_prob(inputs[:1], out.sequences).sequence.detach()
    assert (after > before).all()
    assert all(torch.equal(p, frozen[n]) for n, p in policy.model.named_parameters() if not p.requires_grad)
    # the LoRA policy saves as an adapter + processor, and reloads on its base
    policy.save_pretrained(tmp_path / "lora_policy")
    assert json.loads((tmp_path / "lora_policy" / "adapter_config.json").read_text())["base_model_name_or_path"]
    again = VLAPolicy.from_pretrained(tmp_path / "lora_policy")
    a, b = policy.predict(inputs), again.predict(inputs)
    assert torch.equal(a.sequences, b.sequences)


def test_default_vla_learns_to_read_its_image(learning_seed, record_property):
    """A one-object image task the text cannot solve: the default (frozen random vision features) model learns it.
    Guards against the collapse measured when the vision tower and projector are trained from scratch.

    The claim is relative: held-out accuracy gains at least 0.2 over the better of the untrained model and the
    majority answer. Swept over seeds 0-19 (model initialisation, data, order; ``pytest tests/test_vla.py -m learning
    --learning-seeds 0-19``): gains 0.365 (seed 2) to 0.500; held-out accuracy 0.958-1.000. At a constant learning
    rate of 1e-3, seed 4 ended at the majority answer."""
    rng = np.random.default_rng(learning_seed)
    torch.manual_seed(learning_seed)
    book = TrajectoryCodebook(rng.normal(size=(16, 3)) * 0.1, "segment")
    policy = VLAPolicy.build(book, VLAConfig.tiny(seed=learning_seed), TOK, max_text_tokens=40)
    assert not any(p.requires_grad for p in policy.model.model.vision_tower.parameters())

    def images(n):
        out, labels = [], []
        for _ in range(n):
            img = np.full((32, 32, 3), (18, 18, 22), np.uint8)
            label = int(rng.integers(2))
            if label:  # a vehicle-sized box somewhere
                r, c = rng.integers(0, 22, 2)
                img[r : r + 10, c : c + 6] = (200, 60, 60)
            out.append(img)
            labels.append(label)
        return out, labels

    texts = [NO_HAZARD_EXPLANATION, "A car ahead, 8.0 m away, in a rear-end conflict with high collision risk, so "
                                     "the ego should brake."]
    train, labels = images(192)
    test, test_labels = images(96)
    prompt = "Plan the next 4 s as 8 waypoints."

    def accuracy() -> float:
        out = policy.predict([PolicyInput(observation={"bev": im}, prompt=prompt) for im in test])
        return float(np.mean([t.startswith("A car") == bool(y) for t, y in zip(out.texts, test_labels)]))

    before = accuracy()
    majority = float(max(np.mean(test_labels), 1.0 - np.mean(test_labels)))
    batch = policy.processor.encode_training(train, [policy.processor.prompt(prompt)] * len(train),
                                             [target_text(texts[y], [1] * 8) for y in labels])
    opt = torch.optim.Adam([p for p in policy.model.parameters() if p.requires_grad], lr=2e-3)
    steps = 800  # linear decay to 0, SFT's Trainer schedule: at a constant rate held-out accuracy swings 0.5-0.95
    schedule = get_linear_schedule_with_warmup(opt, num_warmup_steps=0, num_training_steps=steps)
    for _ in range(steps):
        idx = torch.as_tensor(rng.integers(0, len(train), 16))
        loss = policy.model(**{k: v[idx] for k, v in batch.items()}).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    after = accuracy()
    record_property("gain", after - max(before, majority))
    record_property("accuracy", after)
    assert after >= max(before, majority) + 0.2, (before, majority, after)
