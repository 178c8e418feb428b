"""Online mining: a trivial policy drives into a rear-end in the closed-loop ReplayEnv; the crash is mined."""

from __future__ import annotations

import numpy as np
import pytest

from counterfactual.dataset import load_anchor_pairs
from counterfactual.miner import MinerConfig
from counterfactual.mining import MomentConfig
from envs.scenes.sources import resolve as resolve_scene
from counterfactual.online import CollisionMiningWrapper, OnlineMiningCallback
from envs.scenes.bank import ScenarioBank
from envs.replay_env import ReplayEnv

CONFIG = MinerConfig(moments=MomentConfig(lead_times=(1.0, 2.0)))


def keep_speed(obs) -> np.ndarray:
    """Trivial policy: straight ahead at the current speed (never brakes), an (8, 3) ego-frame trajectory."""
    v = float(obs["ego_state"][0])
    x = v * 0.5 * np.arange(1, 9)
    return np.stack([x, np.zeros(8), np.zeros(8)], axis=1).astype(np.float32)


def make_env() -> CollisionMiningWrapper:
    bank = ScenarioBank(2, seed=0, scenario_types=("rear_end",))
    return CollisionMiningWrapper(ReplayEnv(list(bank), "closed_loop"), CONFIG, policy_name="keep_speed")


def run_episode(env, **reset_kwargs):
    obs, info = env.reset(**reset_kwargs)
    for _ in range(40):
        obs, reward, terminated, truncated, info = env.step(keep_speed(obs))
        if terminated or truncated:
            return info
    raise AssertionError("episode did not end")


def test_wrapper_mines_a_rear_end_crash():
    env = make_env()
    info = run_episode(env, seed=0, options={"scene_index": 0})
    assert info["collision"] and info["termination_reason"] == "collision"
    pairs = info["anchor_pairs"]
    assert pairs and env.pairs == pairs and env.collisions == 1
    for p in pairs:
        assert p.source == "rollout" and p.moment_kind == "collision"
        assert p.label.risk_agent_id == info["colliding_agent"]
        assert p.negative_scores["collision"] is True
        assert p.observation_ref["origin"]["kind"] == "rollout"
    assert any(p.has_positive for p in pairs)
    rollout = env.last_mining
    # the rollout scene re-created from the stored reference equals the mined one
    again = resolve_scene(pairs[0].observation_ref)
    base = env.unwrapped.scene
    start = again.meta.extra["start_frame"]
    rec = again.meta.extra["recorded_frames"]
    np.testing.assert_allclose(again.ego_poses[start : start + rec], env.unwrapped.ego_poses[start : start + rec])
    assert again.scene_id == rollout.scene_id and again.meta.collision_frame == pairs[0].contact_frame
    assert again.meta.extra["base_scene_id"] == base.scene_id
    np.testing.assert_array_equal(again.agent_poses, base.agent_poses)


def test_callback_collects_and_flushes(tmp_path):
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([make_env])
    model = PPO("MultiInputPolicy", venv, n_steps=8, batch_size=8, n_epochs=1, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # learn() would set one; we step by hand
    callback = OnlineMiningCallback(flush_path=tmp_path / "online.parquet", flush_every=1)
    callback.init_callback(model)
    callback.on_training_start(locals(), globals())
    obs = venv.reset()
    episodes = 0
    for _ in range(60):
        action = keep_speed({"ego_state": obs["ego_state"][0]})[None]
        obs, rewards, dones, infos = venv.step(action)
        callback.update_locals({"infos": infos, "dones": dones})
        assert callback.on_step()
        episodes += int(dones[0])
        if episodes == 2:
            break
    callback.on_training_end()
    wrapper = venv.envs[0]
    assert wrapper.collisions >= 1 and [p.pair_id for p in callback.pairs] == [p.pair_id for p in wrapper.pairs]
    assert callback.pairs and len({p.scene_id for p in callback.pairs}) == wrapper.collisions
    stored = load_anchor_pairs(tmp_path / "online.parquet")
    assert [p.pair_id for p in stored] == [p.pair_id for p in callback.pairs]
    with pytest.raises(ValueError, match="closed-loop"):
        CollisionMiningWrapper(ReplayEnv(list(ScenarioBank(1, seed=0, scenario_types=("rear_end",))), "open_loop"))
