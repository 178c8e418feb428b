"""The VLA's label from a classifier (``VLAConfig.label_source="head"``, issue #29): the head's sentence round-trips
through the parser to the head's fields, the head is fitted during SFT, saved and reloaded with the policy (same
decisions), the greedy / sampled and fast / ``transformers`` paths agree, the blank-BEV evaluation runs, and old
folders load as ``"text"``."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from agents.base import PolicyInput
from agents.sft.data import SFTDataset
from agents.sft.trainer import SFTConfig, train_sft
from agents.vla.evaluate import generate_texts, language_accuracy
from agents.vla.label_head import FIELD_CLASSES, FIELDS, decide
from agents.vla.model import VLAConfig
from agents.vla.policy import VLAPolicy
from agents.vla.processor import VLA_FILE
from counterfactual.language import NO_HAZARD_EXPLANATION, NO_HAZARD_FIELDS, label_sentence, parse_explanation
from counterfactual.schema import ACTIONS, AGENT_CLASSES, CONFLICT_TYPES, NO_ACTION, RISK_LEVELS, SECTORS
from tests.sft_helpers import tiny_vla

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _parsed(text: str) -> dict:
    p = parse_explanation(text)
    return {f: p[f] for f in FIELDS}


def test_label_sentence_round_trips_every_label():
    """Every hazard label of the schema (all field combinations) and several synonym seeds parse back to its
    fields; risk ``none`` gives the no-hazard sentence whatever the other fields say."""
    hazard = [r for r in RISK_LEVELS if r != "none"]
    combos = itertools.product(AGENT_CLASSES, SECTORS, hazard, CONFLICT_TYPES, ACTIONS + (NO_ACTION,))
    for k, (cls, sector, risk, conflict, action) in enumerate(combos):
        fields = {"risk_agent_class": cls, "sector": sector, "risk_level": risk, "conflict_type": conflict,
                  "action": action}
        for seed in ((0, 1, 2) if k % 7 == 0 else (0,)):  # every template / synonym choice on a seventh of them
            assert _parsed(label_sentence(fields, seed)) == fields
    assert label_sentence({"risk_level": "none", "risk_agent_class": "pedestrian", "action": "brake"}) \
        == NO_HAZARD_EXPLANATION
    with pytest.raises(ValueError, match="risk_agent_class"):
        label_sentence({"risk_level": "high", "risk_agent_class": None, "sector": "left",
                        "conflict_type": "crossing", "action": "brake"})


def test_decide_applies_the_consistency_rule():
    """The head's argmax becomes fields whose sentence parses back to them: a hazard level names every field (the
    not-named class is never picked), the no-hazard level gives the no-hazard fields."""
    rng = np.random.default_rng(0)
    logits = {f: torch.as_tensor(rng.normal(size=(200, len(FIELD_CLASSES[f]))), dtype=torch.float32)
              for f in FIELDS}
    logits["risk_agent_class"][:, 0] = 100.0  # the not-named class is the raw argmax everywhere
    decided = decide(logits)
    assert {d["risk_level"] for d in decided} == set(RISK_LEVELS)
    for fields in decided:
        if fields["risk_level"] == "none":
            assert fields == dict(NO_HAZARD_FIELDS)
        else:
            assert all(fields[f] for f in FIELDS)
        assert _parsed(label_sentence(fields)) == fields


@pytest.fixture(scope="module")
def head_run(sft_table, sft_codebook, tmp_path_factory):
    """A tiny label_source="head" policy after a 4-step SFT (the head fitted before the steps)."""
    policy = tiny_vla(sft_codebook, label_source="head")
    out = tmp_path_factory.mktemp("head_run")
    result = train_sft(policy, SFTDataset(sft_table, "positive"), out,
                       SFTConfig(max_steps=4, batch_size=4, save_steps=2, progress=False, tensorboard=False))
    return policy, result


def _inputs(table, n=6, blank=False):
    bev = np.asarray(table.with_format("numpy")["bev"], dtype=np.uint8)[:n]
    if blank:
        bev = np.zeros_like(bev)
    return [PolicyInput(observation={"bev": b}, prompt=p) for b, p in zip(bev, list(table["prompt"])[:n])]


def test_head_policy_states_the_heads_label(head_run, sft_table):
    """The emitted text is the template's sentence of the head's fields (parsed back to them), followed by exactly
    the codebook's action tokens; the forced part has log-probability 0."""
    policy, result = head_run
    assert policy.label_head is not None and policy.label_head.config.position == "tower"
    summary = json.loads((result.output_dir / "sft_result.json").read_text())
    assert summary["label_source"] == "head" and set(summary["label_head"]["l2"]) == set(FIELDS)
    inputs = _inputs(sft_table)
    out = policy.predict(inputs)
    fields = policy.head_labels(policy.encode(inputs)["pixel_values"])
    assert out.texts == [label_sentence(f) for f in fields]
    assert [_parsed(t) for t in out.texts] == [{k: f[k] for k in FIELDS} for f in fields]
    assert out.codes.shape == (len(inputs), policy.codebook.tokens_per_trajectory)
    action_pos = (out.sequences == policy.tokens.action).long().argmax(dim=1)
    for n, pos in enumerate(action_pos.tolist()):
        assert torch.all(out.token_logprobs[n, : pos + 1] == 0)
        assert torch.all(out.token_logprobs[n, pos + 1: int(out.mask[n].sum())] <= 0)


def test_head_policy_paths_agree(head_run, sft_table):
    """Fast and ``transformers`` decoders give the same greedy and seeded sampled tokens; ``log_prob`` of a sampled
    group equals its sampling-time log-probabilities (the forced label counted as 0 in both)."""
    policy, _ = head_run
    inputs = _inputs(sft_table, 4)
    fast = policy.predict(inputs)
    policy.decoder = "transformers"
    try:
        ref = policy.predict(inputs)
        torch.manual_seed(3)
        sampled_ref = policy.sample(inputs, G=3, temperature=1.0)
    finally:
        policy.decoder = "fast"
    assert torch.equal(fast.sequences, ref.sequences) and fast.texts == ref.texts
    torch.manual_seed(3)
    sampled = policy.sample(inputs, G=3, temperature=1.0)
    assert torch.equal(sampled.sequences, sampled_ref.sequences)
    assert sampled.texts == [t for t in fast.texts for _ in range(3)]  # the label does not depend on sampling
    with torch.no_grad():
        lp = policy.log_prob(inputs, sampled.sequences, temperature=1.0)
    assert torch.allclose(lp.tokens.cpu(), sampled.token_logprobs, atol=2e-4)


def test_head_policy_reloads_and_decides_identically(head_run, sft_table, tmp_path):
    policy, result = head_run
    settings = json.loads((result.final_dir / VLA_FILE).read_text())
    assert settings["label_source"] == "head" and (result.final_dir / "label_classifier.safetensors").is_file()
    assert (result.output_dir / "checkpoint-4" / "label_classifier.safetensors").is_file()
    reloaded = VLAPolicy.from_pretrained(result.final_dir)
    assert reloaded.label_source == "head"
    inputs = _inputs(sft_table)
    a, b = policy.predict(inputs), reloaded.predict(inputs)
    assert a.texts == b.texts and torch.equal(a.sequences, b.sequences)
    np.testing.assert_array_equal(a.trajectories, b.trajectories)
    checkpoint = VLAPolicy.from_pretrained(result.output_dir / "checkpoint-4")  # a checkpoint is a policy folder
    assert checkpoint.predict(inputs).texts == a.texts


def test_head_policy_blank_bev(head_run, sft_table):
    """The blank-BEV evaluation runs through the head: every blank row states the head's label of an all-zero
    image, and the accuracy report scores the emitted text."""
    policy, _ = head_run
    blank = generate_texts(policy, sft_table, blank_bev=True)
    zeros = _inputs(sft_table, 1, blank=True)
    expected = label_sentence(policy.head_labels(policy.encode(zeros)["pixel_values"])[0])
    assert set(blank) == {expected}
    report = language_accuracy(policy, sft_table, blank_bev=True)[0]
    assert report.name.endswith("(blank BEV)") and 0.0 <= report.risk_accuracy <= 1.0


def test_old_folders_load_as_text(sft_codebook, tmp_path):
    policy = tiny_vla(sft_codebook)
    folder = policy.save_pretrained(tmp_path / "old")
    settings = json.loads((folder / VLA_FILE).read_text())
    assert settings.pop("label_source") == "text"
    (folder / VLA_FILE).write_text(json.dumps(settings))  # a folder written before the option existed
    old = VLAPolicy.from_pretrained(folder)
    assert old.label_source == "text" and old.label_head is None
    settings["label_source"] = "head"  # recorded, but the head's files are missing
    (folder / VLA_FILE).write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="label_classifier"):
        VLAPolicy.from_pretrained(folder)
    settings["label_source"] = "classifier"
    (folder / VLA_FILE).write_text(json.dumps(settings))
    with pytest.raises(ValueError, match="label_source 'classifier'"):
        VLAPolicy.from_pretrained(folder)


def test_bad_options_name_the_field(sft_codebook):
    with pytest.raises(ValueError, match="VLAConfig.label_source"):
        VLAConfig(label_source="classifier")
    with pytest.raises(ValueError, match="label_head_read"):
        SFTConfig(label_head_read="pooled")
    with pytest.raises(ValueError, match="label head"):
        tiny_vla(sft_codebook, label_source="head").head_labels(torch.zeros(1, 3, 32, 32))
