"""``agent.normalize_vectors``: the MLP's vector observations scaled to [-1, 1] by their bounds
(:class:`agents.rl.grpo.policies.BoundedCombinedExtractor`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import CombinedExtractor

from agents.rl.grpo.policies import BoundedCombinedExtractor


def _space() -> spaces.Dict:
    return spaces.Dict({
        "bev": spaces.Box(0, 255, (3, 36, 36), dtype=np.uint8),
        "command": spaces.Discrete(3),
        "history": spaces.Box(np.array([-200.0, -200.0, -np.pi], dtype=np.float32),
                              np.array([200.0, 200.0, np.pi], dtype=np.float32), dtype=np.float32),
        "ego_state": spaces.Box(np.array([0.0, -20.0, -4.0], dtype=np.float32),
                                np.array([60.0, 20.0, 4.0], dtype=np.float32), dtype=np.float32),
    })


def test_vectors_are_divided_by_their_bounds_and_the_rest_is_unchanged():
    space = _space()
    torch.manual_seed(0)
    raw = CombinedExtractor(space, cnn_output_dim=8)
    torch.manual_seed(0)
    bounded = BoundedCombinedExtractor(space, cnn_output_dim=8)
    assert bounded.features_dim == raw.features_dim
    obs = {"bev": np.random.default_rng(0).integers(0, 255, (2, 3, 36, 36), dtype=np.uint8),
           "command": np.array([0, 2]),
           "history": np.array([[20.0, -4.0, 0.5], [-150.0, 0.0, -3.0]], dtype=np.float32),
           "ego_state": np.array([[9.0, -1.0, 0.2], [30.0, 20.0, -4.0]], dtype=np.float32)}
    batch = preprocess_obs({k: torch.as_tensor(v) for k, v in obs.items()}, space)
    a, b = raw(batch), bounded(batch)
    # keys in the space's (sorted) order: bev (8 CNN features), command (3, one-hot), ego_state (3), history (3)
    torch.testing.assert_close(b[:, :11], a[:, :11])  # image features and one-hot as SB3's
    torch.testing.assert_close(b[:, 11:14], a[:, 11:14] / torch.tensor([60.0, 20.0, 4.0]))
    torch.testing.assert_close(b[:, 14:17], a[:, 14:17] / torch.tensor([200.0, 200.0, np.pi]))
    assert b[:, 11:].abs().max() <= 1.0 + 1e-6
    assert {name for name, _ in bounded.named_buffers()} == {"scale_0", "scale_1"}  # saved with the weights


def test_an_unbounded_vector_is_refused_by_name():
    space = spaces.Dict({"speed": spaces.Box(-np.inf, np.inf, (2,), dtype=np.float32)})
    with pytest.raises(ValueError, match="'speed'"):
        BoundedCombinedExtractor(space)


def test_the_agent_option_reaches_the_policy_and_survives_save_load(tmp_path):
    from hydra import compose, initialize_config_module
    from hydra.errors import ConfigCompositionException

    from agents.rl.env import GroupEnvConfig, make_group_vec_env
    from agents.rl.grpo import GRPO, GRPOConfig
    from envs.scenes.bank import ScenarioBank
    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = typed_config(compose(config_name="config", overrides=["agent=mlp", "agent.normalize_vectors=true"]))
        with pytest.raises((ValueError, SystemExit, ConfigCompositionException), match="normalize_vectors"):
            typed_config(compose(config_name="config", overrides=["agent=mlp", "agent.normalize_vectors=maybe"]))
    assert cfg.agent.normalize_vectors is True
    env = make_group_vec_env(GroupEnvConfig(source=ScenarioBank(2, seed=3)), n_envs=1, seed=0)
    model = GRPO("MultiInputPolicy", env, GRPOConfig(n_steps=2, batch_size=2, n_epochs=1, anchors=False), seed=0,
                 policy_kwargs={"features_extractor_class": BoundedCombinedExtractor})
    assert isinstance(model.policy.features_extractor, BoundedCombinedExtractor)
    model.learn(2)
    model.save(tmp_path / "m.zip")
    loaded = GRPO.load(tmp_path / "m.zip", env=env)
    assert isinstance(loaded.policy.features_extractor, BoundedCombinedExtractor)
    obs = model._last_obs
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])
