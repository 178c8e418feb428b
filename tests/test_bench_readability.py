"""Smoke test of ``benchmarks.bench_readability`` on a tiny split (SYNTHETIC bank), and the claims its probe rests
on: the feature is what the projector receives, and the VLA's vision tower does not depend on the codebook."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks import bench_readability as bench


def test_main_prints_every_field_and_predictor(tmp_path, capsys):
    rc = bench.main(["--train-scenes", "4", "--eval-scenes", "4", "--cnn-steps", "3", "--probe-steps", "10",
                     "--cache-dir", str(tmp_path), "--no-progress"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("accuracy %"))
    assert lines[head].split()[2:] == list(bench.PREDICTORS)
    body = lines[head + 2: head + 2 + len(bench.FIELDS) + len(bench.SUMMARY_ROWS)]
    assert [line.split()[0] for line in body] == [*bench.FIELDS, *bench.SUMMARY_ROWS]
    for line in body:
        cells = line.split()[1:]
        assert len(cells) == len(bench.PREDICTORS)
        assert all(c == "n/a" or 0.0 <= float(c) <= 100.0 for c in cells), line
    assert any(line.startswith("probe: tower features 4096 per image") for line in lines)


def test_tower_features_are_the_projector_input():
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy

    bevs = np.random.default_rng(0).integers(0, 256, size=(3, 128, 128, 3), dtype=np.uint8)
    features = bench.tower_features(bevs, seed=0)
    assert features.shape == (3, 64 * 64)
    policy = VLAPolicy.build(bench._stand_in_codebook(0), VLAConfig(seed=0))
    prompts = [policy.processor.prompt("go") for _ in bevs]
    pixels = policy.processor.encode_prompts(list(bevs), prompts)["pixel_values"]
    with torch.no_grad():
        hidden = policy.model.model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:]
    np.testing.assert_allclose(features, hidden.reshape(3, -1).numpy(), rtol=1e-5, atol=1e-5)


def test_vision_tower_does_not_depend_on_the_codebook():
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy

    walks = np.cumsum(np.random.default_rng(1).normal(scale=0.3, size=(64, 8, 3)), axis=1)
    towers = []
    for size in (16, 64):
        codebook = TrajectoryCodebook.fit(walks, CodebookConfig(size=size, mode="segment"))
        towers.append(VLAPolicy.build(codebook, VLAConfig(seed=0)).model.model.vision_tower.state_dict())
    assert towers[0].keys() == towers[1].keys()
    assert all(torch.equal(towers[0][k], towers[1][k]) for k in towers[0])
