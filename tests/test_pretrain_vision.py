"""The BEV-pretrained vision tower (issue #29): dense targets, pretraining, and the VLA's ``vision_init`` option."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from agents.vla import pretrain_vision as pv
from agents.vla.model import VLAConfig
from agents.vla.policy import VLAPolicy
from benchmarks.bench_readability import _stand_in_codebook
from envs.observation import ObservationConfig
from envs.render import BEVConfig


def _small_observation(size: int = 32) -> ObservationConfig:
    """A ``size`` px BEV covering the default view (64 m x 64 m), for the tiny tower."""
    return dataclasses.replace(ObservationConfig(), bev=BEVConfig(height=size, width=size,
                                                                  meters_per_pixel=64.0 / size, antialias=False))


@pytest.fixture(scope="module")
def tiny_data():
    from envs.scenes.sources import open_source

    source = open_source("bank", num_scenes=3, seed=0)
    config = VLAConfig.tiny(image_size=32)
    bevs, targets = pv.render_dataset([source[i] for i in range(len(source))], _small_observation(32),
                                      config.patch_size, stride_s=1.0)
    return config, bevs, targets


def _saved_tower(path, config: VLAConfig, steps: int = 0, data=None):
    tower = pv.new_tower(dataclasses.replace(config, seed=123))
    if steps:
        bevs, targets = data
        pv.train_tower(tower, pv.DenseHead(config.vision_hidden_size), pv.pixel_values(bevs), targets, steps=steps,
                       batch_size=8)
    return pv.save_tower(tower, path, {"test": True})


def _image_features(policy: VLAPolicy, bevs: np.ndarray) -> torch.Tensor:
    model = policy.model.eval()
    with torch.no_grad():
        return model.model.vision_tower(pixel_values=pv.pixel_values(bevs), output_hidden_states=True
                                        ).hidden_states[-1][:, 1:]


def test_pixel_values_equal_the_vla_image_processor():
    policy = VLAPolicy.build(_stand_in_codebook(0), VLAConfig.tiny(image_size=32))
    bevs = np.random.default_rng(0).integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
    expected = policy.processor.processor.image_processor(images=list(bevs), return_tensors="pt")["pixel_values"]
    assert torch.allclose(pv.pixel_values(bevs), expected, atol=1e-5)


def test_dense_targets_follow_the_agents(tiny_data):
    from envs.scenes.sources import open_source

    scene = open_source("bank", num_scenes=1, seed=0)[0]
    obs = ObservationConfig()
    grid = pv.PatchGrid.of(obs, 16)  # 8 x 8 patches of the default 128 px BEV
    t = pv.decision_frames(scene, 1.0)[0]
    tg = pv.dense_targets(scene, t, grid)
    assert tg.occupancy.shape == (1, 3, 64) and tg.velocity.shape == (1, 2, 64) and tg.risk.shape == (1, 64)
    # every agent whose centre is in view occupies the patch holding its centre, now; nothing else is occupied
    from rewards.geometry import world_to_local

    x_min, x_max, y_min, y_max = obs.bev.view_extent
    centres = set()
    for i in np.flatnonzero(scene.agent_valid[:, t]):
        x, y = world_to_local(scene.agent_poses[i, t, :2], scene.ego_poses[t])
        if x_min < x < x_max and y_min < y < y_max:
            centres.add(int(grid.patch_of(np.array([x, y]))))
    assert centres and all(tg.occupancy[0, 0, p] == 1 for p in centres)
    assert tg.occupancy[0, 0].sum() < 4 * len(centres) + 4
    # a patch not covered has no velocity and the risk class "none"
    empty = tg.occupancy[0, 0] == 0
    assert np.all(tg.velocity[0][:, empty] == 0) and np.all(tg.risk[0][empty] == 0)
    _, bevs_targets = tiny_data[1], tiny_data[2]
    assert len(bevs_targets) == len(tiny_data[1]) and bevs_targets.occupancy.max() > 0


def test_pretraining_lowers_its_own_loss(tiny_data):
    config, bevs, targets = tiny_data
    torch.manual_seed(0)
    tower, head = pv.new_tower(config), pv.DenseHead(config.vision_hidden_size)
    pixels, weights = pv.pixel_values(bevs), pv.risk_weights(targets.risk)

    def loss() -> float:
        with torch.no_grad():
            return float(pv.dense_loss(head(pv.patch_tokens(tower, pixels)), targets, weights)[0])

    before = loss()
    result = pv.train_tower(tower, head, pixels, targets, steps=40, batch_size=16, lr=3e-3)
    assert result.steps == 40
    assert loss() < 0.75 * before  # relative, with margin (measured 0.53x)


def test_saved_tower_loads_into_the_vla_and_round_trips(tmp_path, tiny_data):
    config, bevs, targets = tiny_data
    folder = _saved_tower(tmp_path / "tower", config, steps=5, data=(bevs, targets))
    assert (folder / "config.json").is_file() and json.loads((folder / pv.RECORD_FILE).read_text()) == {"test": True}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the temp folder was renamed
    from transformers import CLIPVisionModel

    saved = CLIPVisionModel.from_pretrained(str(folder)).state_dict()
    book = _stand_in_codebook(0)
    random_policy = VLAPolicy.build(book, config)
    policy = VLAPolicy.build(book, dataclasses.replace(config, vision_init=str(folder)))
    tower = policy.model.model.vision_tower.state_dict()
    assert all(torch.equal(tower[k], saved[k]) for k in saved)
    assert not torch.allclose(_image_features(policy, bevs), _image_features(random_policy, bevs))
    # the rest of the model is the same random init; the projector stays frozen with the tower
    assert torch.equal(policy.model.model.multi_modal_projector.linear_1.weight,
                       random_policy.model.model.multi_modal_projector.linear_1.weight)
    assert not any(p.requires_grad for p in policy.model.model.vision_tower.parameters())
    # recorded in the policy folder; from_pretrained gives the same tower
    policy.save_pretrained(tmp_path / "policy")
    again = VLAPolicy.from_pretrained(tmp_path / "policy")
    assert again.processor.vision_init == str(folder)
    assert torch.allclose(_image_features(again, bevs), _image_features(policy, bevs))


def test_mismatched_tower_config_names_the_field(tmp_path):
    config = VLAConfig.tiny(image_size=32)
    folder = _saved_tower(tmp_path / "tower", config)
    with pytest.raises(ValueError, match=r"hidden_size=16.*hidden_size=32.*VLAConfig.vision_hidden_size"):
        VLAPolicy.build(_stand_in_codebook(0), dataclasses.replace(config, vision_hidden_size=32,
                                                                   vision_init=str(folder)))
    with pytest.raises(ValueError, match=r"num_hidden_layers=1.*VLAConfig.vision_layers"):
        VLAPolicy.build(_stand_in_codebook(0), dataclasses.replace(config, vision_layers=2, vision_init=str(folder)))
    with pytest.raises(ValueError, match=r"vision_init: .*nowhere is not a saved vision tower \(no config.json\)"):
        VLAPolicy.build(_stand_in_codebook(0), dataclasses.replace(config, vision_init=str(tmp_path / "nowhere")))
    with pytest.raises(FileExistsError, match="tower"):
        pv.save_tower(pv.new_tower(config), folder, {})


def test_cli_writes_a_tower_the_pipeline_option_loads(tmp_path):
    from hydra import compose, initialize_config_module

    from experiments.run import typed_config

    out = tmp_path / "tower"
    assert pv.main(["--out", str(out), "--num-scenes", "1", "--steps", "2", "--batch-size", "4",
                    "--no-progress"]) == 0
    record = json.loads((out / pv.RECORD_FILE).read_text())
    assert record["steps"] == 2 and record["source"].startswith("SYNTHETIC") and record["bank"]["seed"] == 0
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=[f"agent.model.vision_init={out}"])
    model_config = typed_config(cfg).agent.model
    assert isinstance(model_config, VLAConfig) and model_config.vision_init == str(out)
    policy = VLAPolicy.build(_stand_in_codebook(0), model_config)  # what the SFT stage builds
    from transformers import CLIPVisionModel

    saved = CLIPVisionModel.from_pretrained(str(out)).state_dict()
    tower = policy.model.model.vision_tower.state_dict()
    assert all(torch.equal(tower[k], saved[k]) for k in saved)


def test_readability_benchmark_probes_the_pretrained_tower(tmp_path, capsys):
    from benchmarks import bench_readability as bench

    tower = pv.save_tower(pv.new_tower(VLAConfig(seed=5)), tmp_path / "tower", {})  # the VLA's default tower config
    assert bench.main(["--train-scenes", "3", "--eval-scenes", "3", "--no-cnn", "--probe-steps", "5", "--no-progress",
                       "--vision-init", str(tower), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("accuracy %"))
    assert head.split()[2:7] == ["majority", "probe", "probe", "blank", "probe-bev"]
    for row in ("language", "risk"):
        line = next(line for line in out.splitlines() if line.startswith(row + " "))
        assert len([float(v) for v in line.split()[1:6]]) == 5  # majority, probe, probe blank, probe-bev, blank


def test_vision_init_with_agent_init_is_an_error():
    from hydra import compose, initialize_config_module

    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=["agent.model.vision_init=/some/tower", "agent.init=/some/vlm"])
    with pytest.raises((ValueError, SystemExit), match="agent.model.vision_init.*agent.init"):
        typed_config(cfg)
