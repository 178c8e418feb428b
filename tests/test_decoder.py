"""The decoder levers of SFT (issue #29): the auxiliary per-field label loss (trains, saves, loads, resumes), the
per-field label accuracy logged during training, and the blank-BEV option of the VLA evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.sft.data import LABEL_COLUMNS, SFTDataset, VLACollator
from agents.sft.label_head import FIELD_CLASSES, HEAD_WEIGHTS, LabeledCollator, label_targets, load_label_head
from agents.sft.label_monitor import LabelAccuracyCallback, monitor_subset
from agents.sft.trainer import SFTConfig, latest_checkpoint, train_sft
from agents.vla.evaluate import generate_texts, language_accuracy
from agents.vla.policy import VLAPolicy
from counterfactual.language import NO_HAZARD_EXPLANATION
from tests.sft_helpers import tiny_vla

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_label_targets_read_the_sentence(sft_table):
    targets = label_targets([NO_HAZARD_EXPLANATION])
    assert targets.shape == (1, len(LABEL_COLUMNS))
    named = {f: FIELD_CLASSES[f][int(targets[0, i])] for i, f in enumerate(LABEL_COLUMNS)}
    assert named == {"risk_agent_class": "", "sector": "", "risk_level": "none", "conflict_type": "",
                     "action": "keep_lane"}
    # on the rendered rows the parsed sentence gives the stored label columns back
    rows = [i for i, k in enumerate(sft_table["kind"]) if k == "pair"]
    got = label_targets([sft_table["explanation"][i] for i in rows])
    for j, i in enumerate(rows):
        for k, f in enumerate(LABEL_COLUMNS):
            assert FIELD_CLASSES[f][int(got[j, k])] == sft_table[f][i]


def test_labeled_collator_adds_targets(sft_table, sft_codebook):
    policy = tiny_vla(sft_codebook)
    data = SFTDataset(sft_table, "negative")
    examples = [data[i] for i in range(len(data))]
    plain = VLACollator(policy.processor)(examples)
    batch = LabeledCollator(policy.processor)(examples)
    assert torch.equal(batch["input_ids"], plain["input_ids"]) and torch.equal(batch["labels"], plain["labels"])
    assert batch["label_targets"].shape == (len(examples), len(LABEL_COLUMNS))


def test_aux_label_loss_trains_saves_and_resumes(sft_table, sft_codebook, tmp_path):
    """With a weight, the head's loss falls (first logged value vs last, 0.8x margin; measured 0.67x on seed 0),
    the head is written into the checkpoints and the final folder and reloads equal, and the final folder is still
    a policy folder; a resumed run continues from the checkpoint's head."""
    policy = tiny_vla(sft_codebook)
    config = SFTConfig(max_steps=30, batch_size=8, learning_rate=3e-2, warmup_steps=2, logging_steps=5,
                       save_steps=15, progress=False, tensorboard=False, aux_label_weight=3.0)
    result = train_sft(policy, SFTDataset(sft_table, "positive"), tmp_path / "run", config)
    with open(tmp_path / "run" / "checkpoint-30" / "trainer_state.json") as fh:
        import json
        history = json.load(fh)["log_history"]
    aux = [e["aux_label_loss"] for e in history if "aux_label_loss" in e]
    assert len(aux) >= 3 and aux[-1] < 0.8 * aux[0], aux
    head = load_label_head(result.final_dir)
    assert head is not None and (latest_checkpoint(tmp_path / "run") / HEAD_WEIGHTS).is_file()
    reloaded = load_label_head(tmp_path / "run" / "checkpoint-30")  # the same step's head, written by the Trainer
    for (name, a), (_, b) in zip(head.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    VLAPolicy.from_pretrained(result.final_dir)  # the head files do not disturb loading the policy
    resumed = VLAPolicy.from_pretrained(latest_checkpoint(tmp_path / "run"))
    more = train_sft(resumed, SFTDataset(sft_table, "positive"), tmp_path / "run",
                     SFTConfig(**{**config.__dict__, "max_steps": 35}), resume=True)
    assert [s for s, _ in more.losses if s > 30]
    assert not torch.equal(load_label_head(more.final_dir).heads["risk_level"].weight,
                           head.heads["risk_level"].weight)


def test_aux_label_loss_at_the_prompt_end_trains(sft_table, sft_codebook, tmp_path):
    """The ``prompt`` read-out (the last prompt token's state): the head's loss falls (0.8x margin) and it saves
    and reloads with its read-out."""
    config = SFTConfig(max_steps=20, batch_size=8, learning_rate=3e-2, warmup_steps=2, logging_steps=5,
                       save_steps=100, progress=False, tensorboard=False, aux_label_weight=3.0,
                       aux_label_position="prompt")
    result = train_sft(tiny_vla(sft_codebook), SFTDataset(sft_table, "positive"), tmp_path / "run", config)
    import json

    history = json.loads((tmp_path / "run" / "checkpoint-20" / "trainer_state.json").read_text())["log_history"]
    aux = [e["aux_label_loss"] for e in history if "aux_label_loss" in e]
    assert aux[-1] < 0.8 * aux[0], aux
    head = load_label_head(result.final_dir)
    assert head.config.position == "prompt" and head.config.hidden_layer == -1
    assert head.heads["sector"].in_features == head.config.hidden_size


def test_aux_weight_zero_keeps_the_plain_trainer(sft_table, sft_codebook, tmp_path):
    result = train_sft(tiny_vla(sft_codebook), SFTDataset(sft_table, "positive"), tmp_path / "run",
                       SFTConfig(max_steps=2, batch_size=4, progress=False, tensorboard=False))
    assert load_label_head(result.final_dir) is None
    with pytest.raises(ValueError, match="aux_label_weight"):
        SFTConfig(aux_label_weight=-1.0)


def test_label_accuracy_is_logged_during_training(sft_table, sft_codebook, tmp_path):
    policy = tiny_vla(sft_codebook)
    subset = monitor_subset(sft_table, 6)
    assert len(subset) == 6 and set(subset["kind"]) == {"pair", "expert"}
    callback = LabelAccuracyCallback(policy, subset, every_steps=2)
    config = SFTConfig(max_steps=4, batch_size=4, logging_steps=2, progress=False, save_steps=100)
    train_sft(policy, SFTDataset(sft_table, "positive"), tmp_path / "run", config, callbacks=[callback])
    assert [h["step"] for h in callback.history] == [2, 4]
    for entry in callback.history:
        for name in (*LABEL_COLUMNS, "language", "risk"):
            assert 0.0 <= entry[f"label_accuracy/{name}"] <= 1.0 or np.isnan(entry[f"label_accuracy/{name}"])
    assert any((tmp_path / "run" / "runs" / "label_accuracy").glob("events.out.tfevents.*"))
    assert policy.model.training  # the callback restores training mode


def test_blank_bev_changes_the_inputs(sft_table, sft_codebook, monkeypatch):
    policy = tiny_vla(sft_codebook)
    seen: list[np.ndarray] = []
    original = policy.predict

    def spy(inputs):
        seen.extend(np.asarray(x.observation["bev"]) for x in inputs)
        return original(inputs)

    monkeypatch.setattr(policy, "predict", spy)
    sub = monitor_subset(sft_table, 4)
    generate_texts(policy, sub)
    real = list(seen)
    seen.clear()
    reports = language_accuracy(policy, sub, blank_bev=True)
    assert len(seen) == len(real) == 4
    assert all(b.shape == r.shape and b.dtype == np.uint8 and not b.any() for b, r in zip(seen, real))
    assert any(r.any() for r in real)
    assert reports[0].name.endswith("(blank BEV)")


def test_pipeline_sft_node_takes_the_aux_weight():
    from hydra import compose, initialize_config_module

    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=["train.sft.aux_label_weight=0.5", "tensorboard=false"])
    typed = typed_config(cfg)
    assert isinstance(typed.train.sft, SFTConfig) and typed.train.sft.aux_label_weight == 0.5


def test_bench_decoder_smoke(tmp_path, capsys):
    """The benchmark runs end to end on a tiny split (2 steps) and writes real and blank-BEV accuracies."""
    import json

    from benchmarks.bench_decoder import main

    out = tmp_path / "r.json"
    assert main(["--train-scenes", "4", "--eval-scenes", "2", "--max-steps", "2", "--batch-size", "4",
                 "--codebook-scenes", "4", "--aux-weight", "1", "--aux-position", "prompt",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert set(run) >= {"eval", "train_seconds"} and set(run["eval"]) == {"3737"}
    assert set(run["eval"]["3737"]) == {"real", "blank"}
    assert set(run["eval"]["3737"]["real"]["fields"]) == set(LABEL_COLUMNS)
    assert "seed 0" in capsys.readouterr().out
