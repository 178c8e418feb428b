"""``benchmarks.bench_ppo``'s budgets and observation options (SYNTHETIC bank, tiny runs), and SB3's
``MultiInputPolicy`` on the state-only observation with the agents (``prompt_state="agents"``, ``(K, 6)``)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import bench_ppo as bench
from envs.scenes.bank import ScenarioBank
from envs.replay_env import EnvConfig, ReplayEnv
from envs.wrappers import NormalizedTrajectoryAction

TINY = ["--train-scenes", "1", "--eval-scenes", "1", "--n-steps", "64"]


def _head(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("PPO (SB3 defaults"))


def _rows(out: str) -> dict[str, list[str]]:
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("policy "))
    return {line.split()[0]: line.split()[1:] for line in lines[head + 1:] if line.strip()}


def test_steps_budget_trains_whole_rollouts_and_prints_the_table(capsys, one_torch_thread):
    # 80 steps with 64-step rollouts: SB3 runs whole rollouts, so 128 env steps (2 updates), whatever the clock says
    assert bench.main([*TINY, "--steps", "80", "--prompt-state", "agents", "--prompt-agents", "3"]) == 0
    out = capsys.readouterr().out
    head = _head(out)
    assert " 128 env steps in " in head and "(--steps 80)" in head and "prompt state agents (K = 3)" in head
    rows = _rows(out)
    assert list(rows) == ["ppo", "stand_still", "brake_to_stop", "constant_velocity", "pdm_closed_like",
                          "safe_oracle"]
    for name, cells in rows.items():
        rc, coll = float(cells[0]), float(cells[1])
        assert 0.0 <= rc <= 1.0 and coll in (0.0, 100.0), (name, cells)
        assert sum(int(c) for c in cells[6:10]) == 1, (name, cells)  # one episode, one termination reason


def test_normalize_obs_trains_on_vecnormalize_and_evaluates_with_its_frozen_statistics(monkeypatch, capsys,
                                                                                        one_torch_thread):
    from stable_baselines3.common.vec_env import VecNormalize

    made: list[bench.SB3Policy] = []
    calls: list[bool] = []  # VecNormalize.training at each normalize_obs call
    normalize = VecNormalize.normalize_obs

    class Recorded(bench.SB3Policy):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    def spy(self, obs):
        calls.append(self.training)
        return normalize(self, obs)

    monkeypatch.setattr(bench, "SB3Policy", Recorded)
    monkeypatch.setattr(VecNormalize, "normalize_obs", spy)
    assert bench.main([*TINY, "--steps", "128", "--normalize-obs", "--prompt-state", "agents"]) == 0
    out = capsys.readouterr().out
    assert " 128 env steps in " in _head(out) and "normalised (VecNormalize)" in _head(out)
    (policy,) = made
    norm = policy.normalizer
    assert isinstance(norm, VecNormalize) and norm.norm_obs and not norm.norm_reward and not norm.training
    assert policy.model.get_env() is norm  # PPO trained on the normalised env
    assert set(norm.norm_obs_keys) == {"ego_state", "history", "ego_velocity", "agents"}  # Boxes, not command
    assert norm.obs_rms["agents"].count > 128  # statistics from the training rollouts
    trained, evaluated = calls.count(True), calls.count(False)
    assert trained >= 128 and evaluated >= 1  # every evaluation step of the ppo row went through the normaliser
    # evaluation uses the frozen statistics: they do not move, and the action is the one for the normalised obs
    env = ReplayEnv(ScenarioBank(2, seed=1000), "closed_loop", bench.env_config(
        bench.build_parser().parse_args(["--prompt-state", "agents"])))
    obs, info = env.reset(seed=0, options={"scene_index": 1})
    mean = norm.obs_rms["agents"].mean.copy()
    from agents.base import policy_input

    got = policy.act(policy_input(env, obs, info, policy.requires_privileged))
    np.testing.assert_array_equal(norm.obs_rms["agents"].mean, mean)
    scaled, _ = policy.model.predict(normalize(norm, dict(obs)), deterministic=True)
    raw, _ = policy.model.predict(dict(obs), deterministic=True)
    assert np.allclose(got, bench.kinematic_trajectories(scaled, policy.wrapper.max_speed,
                                                         policy.wrapper.max_yaw_rate))
    assert not np.allclose(scaled, raw)  # skipping the normaliser would act differently


def test_normalize_obs_is_off_by_default():
    assert bench.build_parser().parse_args([]).normalize_obs is False


def test_budget_options_are_checked():
    with pytest.raises(SystemExit):  # one budget at a time
        bench.main([*TINY, "--steps", "64", "--minutes", "1"])
    for bad in (["--steps", "0"], ["--minutes", "0"], ["--n-steps", "1"], ["--prompt-state", "bev"]):
        with pytest.raises(SystemExit):
            bench.main([*TINY, *bad])


def test_prompt_agents_error_names_the_field(capsys):
    with pytest.raises(SystemExit):
        bench.main([*TINY, "--steps", "64", "--prompt-state", "agents", "--prompt-agents", "0"])
    assert "EnvConfig.prompt_agents" in capsys.readouterr().err


@pytest.mark.parametrize("state, keys", [("none", set()), ("ego", {"ego_velocity"}),
                                         ("agents", {"ego_velocity", "agents"})])
def test_prompt_state_reaches_the_env(state, keys):
    args = bench.build_parser().parse_args(["--prompt-state", state, "--prompt-agents", "3"])
    config = bench.env_config(args)
    assert config.bev is None and config.prompt_state == state
    env = ReplayEnv(ScenarioBank(2, seed=1000), "closed_loop", config)
    space = env.observation_space.spaces
    assert "bev" not in space and set(space) - {"ego_state", "command", "history"} == keys
    obs, _ = env.reset(seed=0, options={"scene_index": 1})
    assert set(obs) == set(space)
    if state == "agents":
        assert space["agents"].shape == (3, 6) and obs["agents"].shape == (3, 6)
        assert obs["agents"][:, 0].sum() >= 1  # scene 1 (normal) starts with traffic in view


def test_default_observation_is_the_state_only_one_without_agents():
    args = bench.build_parser().parse_args([])
    assert (args.prompt_state, args.minutes, args.steps, args.n_steps) == (bench.DEFAULT_PROMPT_STATE, None, None, 2048)
    assert bench.env_config(args).prompt_state == bench.DEFAULT_PROMPT_STATE


def test_multi_input_policy_reads_the_agents(one_torch_thread):
    """SB3 flattens the ``(K, 6)`` Box into its features (CombinedExtractor) and the action depends on it."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.preprocessing import get_flattened_obs_dim

    env = NormalizedTrajectoryAction(ReplayEnv(ScenarioBank(2, seed=1000), "closed_loop",
                                               EnvConfig(bev=None, prompt_state="agents", prompt_agents=3)))
    model = PPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0, device="cpu")
    extractor = model.policy.features_extractor
    assert "agents" in extractor.extractors
    assert get_flattened_obs_dim(env.observation_space["agents"]) == 3 * 6
    assert extractor.features_dim == sum(get_flattened_obs_dim(s) for s in env.observation_space.spaces.values())
    obs, _ = env.reset(seed=0, options={"scene_index": 1})
    assert obs["agents"][:, 0].sum() >= 1
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(env.action_space.dtype))
    moved = dict(obs, agents=obs["agents"] + np.array([0, 0, 5, -3, 2, 1], dtype=np.float32))
    other, _ = model.predict(moved, deterministic=True)
    assert not np.allclose(action, other)  # the agents' numbers reach the action
    _, _, terminated, truncated, _ = env.step(action)
    assert isinstance(terminated, bool) and isinstance(truncated, bool)
    model.learn(total_timesteps=32)  # one rollout and update on the (K, 6) observation
    assert model.num_timesteps == 32 and torch.isfinite(next(model.policy.parameters())).all()


# ------------------------------------------------------------------------- the pipeline's PPO takes the same option
def _mlp_cfg(*overrides: str):
    from hydra import compose, initialize_config_module

    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        cfg = compose(config_name="config", overrides=["agent=mlp", "agent.bev=none", "env.num_scenes=2",
                                                       "tensorboard=false", *overrides])
    return typed_config(cfg)


def test_pipeline_ppo_sees_the_agents_with_the_mlp_agents_prompt_state(tmp_path, one_torch_thread):
    from agents.rl.ppo import make_ppo
    from experiments.builders import env_config, group_env
    from experiments.pipeline import Context

    ctx = Context(tmp_path, _mlp_cfg("agent.prompt_state=agents", "agent.prompt_agents=3"))
    config = env_config(ctx)
    assert (config.bev, config.prompt_state, config.prompt_agents) == (None, "agents", 3)
    env = group_env(ctx, normalized=True)
    model = make_ppo(env, seed=0)
    assert model.policy.observation_space["agents"].shape == (3, 6)
    assert "agents" in model.policy.features_extractor.extractors
    env.close()
    default = env_config(Context(tmp_path, _mlp_cfg()))
    assert default.prompt_state == "none" and "agents" not in ReplayEnv(ScenarioBank(1, seed=0), "closed_loop",
                                                                        default).observation_space.spaces


def test_mlp_agent_prompt_state_errors_name_the_field():
    with pytest.raises(SystemExit, match=r"agent\.prompt_state"):
        _mlp_cfg("agent.prompt_state=bev")
    with pytest.raises(SystemExit, match=r"agent\.prompt_agents"):
        _mlp_cfg("agent.prompt_state=agents", "agent.prompt_agents=0")


def test_mlp_agents_behaviour_cloning_trains_on_the_agents(tmp_path, monkeypatch, one_torch_thread):
    """BC (the MLP agent's SFT) renders its samples with the agent's prompt state, so the cloned policy reads them."""
    import agents.rl.bc as bc
    from counterfactual.dataset import write_anchor_pairs
    from experiments.pipeline import Context
    from experiments.registry import get_agent

    seen: list[dict] = []
    build = bc.build_bc_data

    def spy(*args, **kwargs):
        data = build(*args, **kwargs)
        seen.append(data.observations)
        return data

    monkeypatch.setattr(bc, "build_bc_data", spy)
    ctx = Context(tmp_path, _mlp_cfg("agent.prompt_state=agents", "agent.prompt_agents=2", "train.expert_frames=2",
                                     "train.bc.steps=2", "train.bc.batch_size=4"),
                  outputs={"mine": {"pairs_train": write_anchor_pairs([], tmp_path / "p.parquet")}})
    out = get_agent("mlp").train_sft(ctx, ["positive"])
    (observations,) = seen
    assert observations["agents"].shape[1:] == (2, 6) and observations["agents"][:, :, 0].sum() >= 1
    assert out["positive"].exists()
