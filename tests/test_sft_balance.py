"""Class-balanced SFT (``agents.sft.balance``, ``train.sft.label_balance``): the sampler gives every label class its
exact share of an epoch, deterministically, and the Trainer's data loader draws from it; the label-first curriculum
(``agents.sft.curriculum``, ``train.sft.label_first_steps``) masks exactly the action tokens and EOS."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from agents.sft.balance import (
    HAZARD_CLASS,
    NO_HAZARD_CLASS,
    BalancedSampler,
    balance_classes,
    balanced_indices,
    class_shares,
    class_slots,
    dataset_sampler,
)
from agents.sft.data import LABEL_COLUMNS, SFTDataset
from agents.sft.trainer import SFTConfig, _balanced, training_arguments
from counterfactual.language import NO_HAZARD_EXPLANATION

# 9 no-hazard expert rows, 3 hazard rows (1 expert, 2 pairs; one pair without a positive): a 3:1 SYNTHETIC view
RISK = ["none"] * 9 + ["low", "high", "medium"]
KIND = ["expert"] * 10 + ["pair", "pair"]
HAS_TRAJ = [True] * 11 + [False]


def _table(size: int = 4):
    from datasets import Dataset

    n = len(RISK)
    cols = {
        "kind": KIND, "bev": np.zeros((n, size, size, 3), np.uint8).tolist(), "prompt": [f"p{i}" for i in range(n)],
        "explanation": [NO_HAZARD_EXPLANATION if r == "none" else f"hazard {r} {i}" for i, r in enumerate(RISK)],
        "trajectory": [[0.0] * 24] * n, "negative": [[0.0] * 24] * n, "has_trajectory": HAS_TRAJ,
    }
    cols.update({name: [""] * n for name in LABEL_COLUMNS})
    cols["risk_level"] = RISK
    return Dataset.from_dict(cols)


def test_hazard_balance_gives_the_rare_class_exactly_half_and_repeats_it_evenly():
    classes = balance_classes(RISK, "hazard")
    assert classes.count(NO_HAZARD_CLASS) == 9 and classes.count(HAZARD_CLASS) == 3
    for epoch in range(3):
        idx = balanced_indices(classes, seed=7, epoch=epoch)
        assert len(idx) == 12
        assert class_shares(classes, idx) == {HAZARD_CLASS: 0.5, NO_HAZARD_CLASS: 0.5}  # exact, not in expectation
        counts = Counter(idx.tolist())
        assert all(counts[i] == 2 for i in (9, 10, 11))  # each rare example twice (6 slots / 3 examples)
        assert all(counts[i] <= 1 for i in range(9))  # 6 of the 9 frequent ones, none twice
    np.testing.assert_array_equal(balanced_indices(classes, 7, 1), balanced_indices(classes, 7, 1))  # deterministic
    assert not np.array_equal(balanced_indices(classes, 7, 0), balanced_indices(classes, 7, 1))  # epochs differ
    assert not np.array_equal(balanced_indices(classes, 7, 0), balanced_indices(classes, 8, 0))  # seeds differ


def test_risk_balance_splits_the_epoch_over_the_levels_present():
    classes = balance_classes(RISK, "risk")
    assert class_slots(classes) == {"high": 3, "low": 3, "medium": 3, "none": 3}
    assert class_slots(classes, total=14) == {"high": 4, "low": 4, "medium": 3, "none": 3}  # remainder: first names
    shares = class_shares(classes, balanced_indices(classes, seed=0))
    assert shares == {"high": 0.25, "low": 0.25, "medium": 0.25, "none": 0.25}
    assert balance_classes(["", "none", "low"], "hazard") == [NO_HAZARD_CLASS, NO_HAZARD_CLASS, HAZARD_CLASS]
    with pytest.raises(ValueError, match="label_balance"):
        balance_classes(RISK, "none")


def test_views_balance_by_the_label_of_each_examples_row():
    table = _table()
    pos, neg = SFTDataset(table, "positive"), SFTDataset(table, "negative")
    # positive view: 11 drive examples (the pair without a positive has none), 9 of them no-hazard
    assert pos.item_labels("risk_level") == RISK[:11]
    # negative view: + critique of both pairs + correction of the pair with a positive, all stating their hazard
    assert neg.item_labels("risk_level") == RISK[:11] + ["high", "medium", "high"]
    sampler = dataset_sampler(neg, "hazard", seed=3)
    assert len(sampler) == 14 and class_shares(sampler.classes, list(sampler)) == {HAZARD_CLASS: 0.5,
                                                                                  NO_HAZARD_CLASS: 0.5}
    assert dataset_sampler(pos, "none", seed=3) is None
    with pytest.raises(ValueError, match="item_labels"):
        pos.item_labels("colour")
    with pytest.raises(ValueError, match="SFTConfig.label_balance"):
        SFTConfig(label_balance="hazzard")


def test_the_trainer_draws_its_batches_from_the_balanced_sampler(tmp_path):
    import torch
    from transformers import Trainer

    dataset = SFTDataset(_table(), "positive")  # 11 examples: 9 no-hazard, 2 hazard
    config = SFTConfig(max_steps=6, batch_size=11, label_balance="hazard", progress=False, tensorboard=False,
                       seed=5)
    trainer = _balanced(Trainer)(model=torch.nn.Linear(1, 1), args=training_arguments(tmp_path, config, 11),
                                 train_dataset=dataset,
                                 data_collator=lambda examples: {"risk": [e.explanation for e in examples]})
    trainer.balanced_sampler = dataset_sampler(dataset, config.label_balance, config.seed)
    loader = trainer.get_train_dataloader()
    for epoch in (0, 1):
        loader.set_epoch(epoch)
        drawn = [text for batch in loader for text in batch["risk"]]
        expected = [dataset[i].explanation for i in balanced_indices(trainer.balanced_sampler.classes, 5, epoch)]
        assert drawn == expected  # the sampler's indices, in its order, epoch by epoch
        hazard = sum(text != NO_HAZARD_EXPLANATION for text in drawn)
        assert (hazard, len(drawn) - hazard) == (6, 5)  # 11 slots: the odd one to "hazard" (first by name)


def _tiny_policy():
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig

    trajs = np.cumsum(np.random.default_rng(0).normal(0.5, 0.2, (64, 8, 3)), axis=1)
    policy = VLAPolicy.build(TrajectoryCodebook.fit(trajs, CodebookConfig(size=8, mode="segment")),
                             VLAConfig.tiny(seed=0), TokenizerConfig(corpus_size=200), max_text_tokens=40)
    return policy, trajs


def test_label_first_steps_mask_the_action_tokens_and_eos_only():
    from agents.sft.curriculum import action_token_ids, label_only
    from agents.sft.data import Example, VLACollator

    policy, trajs = _tiny_policy()
    bev = np.zeros((32, 32, 3), np.uint8)  # VLAConfig.tiny's image size
    examples = [Example(bev=bev, prompt="go straight", task="drive", explanation=NO_HAZARD_EXPLANATION,
                        trajectory=trajs[0], negative=None),
                Example(bev=bev, prompt="go straight", task="critique", explanation=NO_HAZARD_EXPLANATION,
                        trajectory=None, negative=trajs[1])]
    labels = VLACollator(policy.processor)(examples)["labels"]
    kept = label_only(labels, action_token_ids(policy.tokens))
    tokens = policy.tokens
    for row, full in zip(kept, labels):
        target = full[full != -100].tolist()
        left = row[row != -100].tolist()
        assert target[: len(left)] == left  # a prefix of the target: the sentence (and <action>), nothing else
        assert tokens.eos not in left and not set(left) & set(tokens.codes.tolist())
        assert set(target[len(left):]) <= set(tokens.codes.tolist()) | {tokens.eos}
    assert kept[0][kept[0] != -100].tolist()[-1] == tokens.action  # drive: the sentence, then <action>
    assert int((labels[1] != -100).sum() - (kept[1] != -100).sum()) == 1  # critique: only its EOS masked
    with pytest.raises(ValueError, match="label_first_steps"):
        SFTConfig(label_first_steps=-1)


def test_train_sft_applies_the_curriculum_and_the_balance(tmp_path):
    import json

    from agents.sft.trainer import train_sft

    dataset = SFTDataset(_table(32), "positive")
    first = {}
    for k in (0, 2):
        config = SFTConfig(max_steps=2, batch_size=4, logging_steps=1, warmup_steps=0, progress=False,
                           tensorboard=False, label_balance="hazard", label_first_steps=k)
        result = train_sft(_tiny_policy()[0], dataset, tmp_path / f"k{k}", config)
        first[k] = result.losses[0][1]
        summary = json.loads((tmp_path / f"k{k}" / "sft_result.json").read_text())
        assert summary["label_balance"] == {"counts": {"hazard": 2, "no_hazard": 9},
                                            "shares": {"hazard": 0.5455, "no_hazard": 0.4545}}
    # same model, data and order: the label-only loss of step 1 is not the full target's (action tokens masked)
    assert abs(first[0] - first[2]) > 0.05, first
