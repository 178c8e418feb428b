"""The PRIVILEGED hazard observation (``ObservationConfig.privileged_hazard`` / ``agent.privileged_hazard``): the
scenario's designated hazard agent's relative motion and closest approach, a diagnostic (docs/grpo_ablation.md)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from envs.observation import ObservationConfig, build_observation, text_prompt
from envs.prompt_state import HAZARD_COLUMNS, hazard_state
from envs.scenes.scene import designated_hazard
from envs.scenes.sources import open_source
from envs.spaces import observation_space
from rewards.geometry import rotate_vectors, world_to_local

HAZARD = ObservationConfig(privileged_hazard=True)


@pytest.fixture(scope="module")
def varied():
    source = open_source("bank", num_scenes=12, seed=7, outcomes="varied")
    return [source[i] for i in range(len(source))]


def test_hazard_rows_are_the_designated_agents_relative_motion(varied):
    checked = absent = 0
    for scene in varied:
        hazard = designated_hazard(scene)
        for t in range(0, scene.num_frames, 7):
            obs = build_observation(scene, t, config=HAZARD)
            assert observation_space(HAZARD).contains(obs), (scene.scene_id, t)
            row = obs["hazard"]
            assert row.shape == (len(HAZARD_COLUMNS),) and row.dtype == np.float32
            i = None if hazard is None else int(np.flatnonzero(scene.agent_ids == hazard)[0])
            if i is None or not scene.agent_valid[i, t]:
                assert not row.any()
                absent += 1
                continue
            pose = scene.ego_poses[t]
            p = world_to_local(scene.agent_poses[i, t, :2], pose)
            v = rotate_vectors(scene.agent_velocities[i, t] - scene.ego_velocities[t], -pose[2])
            # closest approach of the constant-velocity projection, analytically (the grid is 0.1 s)
            tau = float(np.clip(-(p @ v) / max(v @ v, 1e-12), 0.0, 5.0))
            assert row[0] == 1
            np.testing.assert_allclose(row[1:5], [*p, *v], atol=1e-4)
            assert row[5] == pytest.approx(np.hypot(*p), abs=1e-4)
            assert row[6] == pytest.approx(np.hypot(*(p + v * tau)), abs=0.05 * np.hypot(*v) + 1e-3)
            assert abs(row[7] - tau) <= 0.05 + 1e-6 or row[6] == pytest.approx(np.hypot(*(p + v * row[7])), abs=1e-3)
            checked += 1
    assert checked > 20 and absent > 0  # hazard scenes and normal scenes / frames without the hazard both occur


def test_a_hazard_on_collision_course_closes_to_contact(varied):
    """In a scene whose logged drive collides, the hazard's closest approach shortly before contact is small and
    soon; the nearest agent's numbers (prompt_state=agents) are not told which agent it is."""
    scene = next(s for s in varied if s.meta.extra.get("outcome") == "collision")
    t = int(scene.meta.collision_frame) - 10  # 1 s before contact
    row = build_observation(scene, t, config=HAZARD)["hazard"]
    assert row[0] == 1 and row[6] < 4.0 and 0.3 < row[7] < 2.5


def test_default_observation_and_prompt_are_unchanged(varied):
    scene, t = varied[0], 20
    plain, privileged = build_observation(scene, t), build_observation(scene, t, config=HAZARD)
    assert set(privileged) - set(plain) == {"hazard"} and "hazard" not in plain
    assert text_prompt(privileged) == text_prompt(plain)  # never stated in the prompt
    for key in plain:
        np.testing.assert_array_equal(plain[key], privileged[key])


def test_only_the_present_is_read(varied):
    scene = next(s for s in varied if designated_hazard(s) is not None)
    i = int(np.flatnonzero(scene.agent_ids == designated_hazard(scene))[0])
    t = int(np.flatnonzero(scene.agent_valid[i])[0]) + 5
    before = hazard_state(scene, t, scene.ego_poses[t], rotate_vectors(scene.ego_velocities[t], -scene.ego_poses[t, 2]))
    poses, vels = np.array(scene.agent_poses), np.array(scene.agent_velocities)
    poses[:, t + 1:, :2] += 9.0
    vels[:, t + 1:] *= -1.0
    altered = dataclasses.replace(scene, agent_poses=poses, agent_velocities=vels)
    after = build_observation(altered, t, config=HAZARD)["hazard"]
    np.testing.assert_array_equal(after, before)
    vels[i, t] += 2.0  # the present changes it (the test can fail)
    present = dataclasses.replace(altered, agent_velocities=vels)
    assert not np.array_equal(build_observation(present, t, config=HAZARD)["hazard"], before)


def test_configs_check_and_carry_the_option(tmp_path):
    from hydra import compose, initialize_config_module

    from envs.replay_env import EnvConfig
    from experiments.builders import env_config
    from experiments.pipeline import Context
    from experiments.registry import get_agent
    from experiments.run import typed_config

    with pytest.raises(ValueError, match="ObservationConfig.privileged_hazard"):
        ObservationConfig(privileged_hazard="yes")
    with pytest.raises(ValueError, match="EnvConfig.privileged_hazard"):
        EnvConfig(privileged_hazard=1)
    assert EnvConfig(privileged_hazard=True).observation.privileged_hazard
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = typed_config(compose(config_name="config", overrides=["agent=mlp", "agent.privileged_hazard=true"]))
        default = typed_config(compose(config_name="config", overrides=["agent=mlp"]))
    assert get_agent("mlp").env_config(cfg.agent, None).observation.privileged_hazard
    assert not get_agent("mlp").env_config(default.agent, None).observation.privileged_hazard
    assert env_config(Context(tmp_path, cfg)).privileged_hazard


def test_replay_env_and_the_mlp_extractor_take_the_observation(varied):
    import torch
    from stable_baselines3.common.preprocessing import preprocess_obs
    from stable_baselines3.common.torch_layers import CombinedExtractor

    from envs.replay_env import EnvConfig, ReplayEnv

    env = ReplayEnv(varied[:3], mode="closed_loop", config=EnvConfig(bev=None, privileged_hazard=True,
                                                                    scene_order="sequential"))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs) and "hazard" in obs
    extractor = CombinedExtractor(env.observation_space)  # the MLP agent's default extractor for dict observations
    assert "hazard" in extractor.extractors
    batch = {k: torch.as_tensor(np.asarray(v)[None]) for k, v in obs.items()}
    assert extractor(preprocess_obs(batch, env.observation_space)).shape == (1, extractor.features_dim)
    env.close()
