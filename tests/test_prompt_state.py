"""The agents' motion as numbers in the observation and the prompt (:mod:`envs.prompt_state`, ``agent.prompt_state``):
the default prompt is unchanged (pinned before the option existed), the text round-trips, the tokenizer covers it,
nothing after ``t`` is read, and the numbers reach every place a prompt is built (env, SFT rows, GRPO inputs, the
pipeline's env config, the readability benchmark). SYNTHETIC bank scenes."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from envs.observation import ObservationConfig, build_observation, text_prompt
from envs.prompt_state import (AGENT_COLUMNS, CLASS_WORDS, NO_AGENTS, PROMPT_STATES, STATE_HEAD, parse_state_text,
                               state_text)
from envs.scenes.sources import open_source
from envs.spaces import observation_space

AGENTS = ObservationConfig(prompt_state="agents")

# Computed with the code of main at 01e7a60 (before prompt_state existed): 9 default prompts of 3 bank scenes of
# seed 7 at frames 0, 20, 40, and the default tokenizer's vocabulary. Re-pinned on branch kinfix when the ego's
# acceleration / yaw rate became backward differences (frames <= t only): of the 9 prompts only prompt 4 changed,
# "acceleration -0.0" -> "+0.0" (the prompt SHA was c5c6090a0b8fe65b); the vocabulary is unchanged.
DEFAULT_PROMPTS_SHA = "b15dd9bb60a2bdf6"
DEFAULT_PROMPT_4 = ("Navigation command: go straight. Speed 10.2 m/s, acceleration +0.0 m/s2, yaw rate +0.00 rad/s. "
                    "Past 2.0 s: 20.3 m travelled, heading change -0 deg. Plan the next 4 s as 8 waypoints.")
DEFAULT_VOCAB_SHA = "b0c925cb4be9508e"


@pytest.fixture(scope="module")
def scenes():
    source = open_source("bank", num_scenes=3, seed=7)
    return [source[i] for i in range(3)]


def test_default_prompt_and_tokenizer_are_unchanged(scenes):
    from agents.vla.tokenizer import build_tokenizer

    prompts = [text_prompt(build_observation(s, t)) for s in scenes for t in (0, 20, 40)]
    assert prompts[4] == DEFAULT_PROMPT_4
    assert hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:16] == DEFAULT_PROMPTS_SHA
    assert set(build_observation(scenes[0], 20)) == {"bev", "ego_state", "command", "history"}
    vocab = build_tokenizer(16).get_vocab()
    assert hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16] == DEFAULT_VOCAB_SHA


def test_each_mode_adds_its_numbers_and_keeps_the_space_valid(scenes):
    for mode in PROMPT_STATES:
        config = ObservationConfig(prompt_state=mode)
        for scene in scenes:
            for t in (0, 25, scene.num_frames - 1):
                obs = build_observation(scene, t, config=config)
                assert observation_space(config).contains(obs), (mode, scene.scene_id, t)
                prompt = text_prompt(obs)
                assert (STATE_HEAD in prompt) == (mode != "none")
                assert prompt.endswith(" Plan the next 4 s as 8 waypoints.")
                assert ("ego_velocity" in obs) == (mode != "none") and ("agents" in obs) == (mode == "agents")
    obs = build_observation(scenes[0], 25, config=AGENTS)
    assert obs["agents"].shape == (AGENTS.prompt_agents, len(AGENT_COLUMNS))
    with pytest.raises(ValueError, match="ObservationConfig.prompt_state"):
        ObservationConfig(prompt_state="speeds")
    with pytest.raises(ValueError, match="ObservationConfig.prompt_agents"):
        ObservationConfig(prompt_state="agents", prompt_agents=0)


def test_agents_are_the_nearest_visible_ones_with_relative_motion(scenes):
    from rewards.geometry import rotate_vectors, world_to_local

    k = 3
    config = ObservationConfig(prompt_state="agents", prompt_agents=k)
    x_min, x_max, y_min, y_max = config.bev.view_extent
    checked = 0
    for scene in scenes:
        for t in range(0, scene.num_frames, 10):
            rows = build_observation(scene, t, config=config)["agents"]
            pose, vel = scene.ego_poses[t], rotate_vectors(scene.ego_velocities[t], -scene.ego_poses[t, 2])
            idx = np.flatnonzero(scene.agent_valid[:, t])
            pos = world_to_local(scene.agent_poses[idx, t, :2], pose)
            seen = (pos[:, 0] >= x_min) & (pos[:, 0] < x_max) & (pos[:, 1] >= y_min) & (pos[:, 1] < y_max)
            dist = np.hypot(*pos[seen].T)
            n = min(k, int(seen.sum()))
            assert np.all(rows[:n, 0] == 1) and np.all(rows[n:] == 0)
            if n:
                near = idx[seen][np.argsort(dist, kind="stable")[:n]]
                np.testing.assert_array_equal(rows[:n, 1], scene.agent_classes[near])
                want_pos = world_to_local(scene.agent_poses[near, t, :2], pose)
                want_vel = rotate_vectors(scene.agent_velocities[near, t], -pose[2]) - vel
                np.testing.assert_allclose(rows[:n, 2:4], want_pos, atol=0.5 + 1e-4)  # rounded to 1 m
                np.testing.assert_allclose(rows[:n, 4:6], want_vel, atol=0.05 + 1e-4)  # rounded to 0.1 m/s
                checked += n
    assert checked > 10


def test_state_text_round_trips():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(0, 5))
        rows = np.zeros((4, 6), dtype=np.float32)
        rows[:n, 0] = 1
        rows[:n, 1] = rng.integers(0, len(CLASS_WORDS), n)
        rows[:n, 2:4] = np.round(rng.uniform(-200, 200, (n, 2)))
        rows[:n, 4:6] = np.round(rng.uniform(-60, 60, (n, 2)), 1)
        ego = np.round(rng.uniform(-60, 60, 2), 1).astype(np.float32)
        text = "Navigation command: go straight. Speed 1.0 m/s." + state_text(
            {"ego_velocity": ego, "agents": rows}) + " Plan the next 4 s as 8 waypoints."
        ego_back, rows_back = parse_state_text(text)
        np.testing.assert_allclose(ego_back, ego, atol=1e-5)
        np.testing.assert_allclose(rows_back, rows[:n], atol=1e-4)
    assert parse_state_text(text_prompt({"command": 1, "ego_state": np.zeros(3), "history": np.zeros((4, 3))})) \
        == (None, None)
    ego_only = state_text({"ego_velocity": np.array([-0.0, 3.04], dtype=np.float32)})
    assert ego_only == STATE_HEAD + "ego vx+0.0 vy+3.0."  # no negative zero
    assert parse_state_text(ego_only)[1] is None
    none_seen = state_text({"ego_velocity": np.zeros(2), "agents": np.zeros((4, 6))})
    assert none_seen.endswith(NO_AGENTS + ".") and parse_state_text(none_seen)[1].shape == (0, 6)
    with pytest.raises(ValueError, match="'agents' without 'ego_velocity'"):
        state_text({"agents": np.zeros((4, 6))})


def test_state_prompts_tokenize_without_unknowns(scenes):
    from agents.vla.tokenizer import TokenizerConfig, build_tokenizer

    default = build_tokenizer(16)
    tokenizer = build_tokenizer(16, TokenizerConfig(prompt_state="agents"))
    prompts = [text_prompt(build_observation(s, t, config=AGENTS)) for s in scenes for t in (5, 30, 55)]
    prompts.append(text_prompt({"command": 2, "ego_state": np.array([60.0, -20.0, 4.0]), "history": np.zeros((4, 3)),
                                "ego_velocity": np.array([-60.0, 60.0]),
                                "agents": np.array([[1, 3, -200, 200, -60, 60]] * 4, dtype=np.float32)}))
    assert sum(p.count("; ") for p in prompts) > 10  # agents are stated
    unknown = tokenizer.unk_token_id
    for prompt in prompts:
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        assert unknown is None or unknown not in ids
        assert tokenizer.decode(ids) == prompt
        pieces = [tokenizer.decode([i]) for i in ids]
        assert all(len(p) == 1 for p in pieces if any(c.isdigit() for c in p)), pieces  # one token per digit
        assert len(ids) < len(default.encode(prompt, add_special_tokens=False))  # the block's glue was learnt
    assert len(tokenizer) < 1024 + 16 + 9


def test_tokenizer_config_checks_its_prompt_options():
    from agents.vla.tokenizer import TokenizerConfig

    assert TokenizerConfig(prompt_state="agents", prompt_agents=np.int64(3)).prompt_agents == 3
    with pytest.raises(ValueError, match=r"TokenizerConfig.prompt_state: expected one of .*, got 'speeds'"):
        TokenizerConfig(prompt_state="speeds")
    for bad in (-1, 0, 2.5, "3", True, None):  # the number of agents a generated state block states at most
        with pytest.raises(ValueError, match=rf"TokenizerConfig.prompt_agents: expected an int >= 1, got {bad!r}"):
            TokenizerConfig(prompt_state="agents", prompt_agents=bad)


def test_no_future_is_read(scenes):
    scene, t = scenes[1], 30
    before = build_observation(scene, t, config=AGENTS)
    assert before["agents"][0, 0] == 1  # an agent is in view
    future = slice(t + 1, None)
    poses, vels, valid = (np.array(a) for a in (scene.agent_poses, scene.agent_velocities, scene.agent_valid))
    poses[:, future, :2] += 7.0
    vels[:, future] *= -2.0
    valid[:, future] = ~valid[:, future]
    # The logged ego from t + 1 on (the prompt's acceleration / yaw rate are backward differences,
    # EgoKinematics.from_log; every observation key: tests/test_observation_causal.py).
    ego_poses, ego_vels = np.array(scene.ego_poses), np.array(scene.ego_velocities)
    ego_poses[t + 1:, :2] += 3.0
    ego_vels[t + 1:] += 1.0
    altered = dataclasses.replace(scene, agent_poses=poses, agent_velocities=vels, agent_valid=valid,
                                  ego_poses=ego_poses, ego_velocities=ego_vels)
    after = build_observation(altered, t, config=AGENTS)
    for key in ("agents", "ego_velocity"):
        np.testing.assert_array_equal(after[key], before[key])
    assert text_prompt(after) == text_prompt(before)
    vels[:, t] += 1.0  # the present does change it (the test can fail)
    present = dataclasses.replace(altered, agent_velocities=vels)
    assert text_prompt(build_observation(present, t, config=AGENTS)) != text_prompt(before)


def test_env_sft_rows_and_grpo_inputs_state_the_same_numbers(scenes):
    from agents.rl.grpo.vla_policy import VLAGroupPolicy
    from agents.sft.data import SampleConfig, build_sample_table, cache_key
    from envs.replay_env import EnvConfig, ReplayEnv

    env = ReplayEnv(scenes, mode="closed_loop", config=EnvConfig(text_prompt=True, prompt_state="agents",
                                                                 scene_order="sequential"))
    obs, info = env.reset(seed=0)
    for _ in range(3):
        assert env.observation_space.contains(obs)
        assert info["prompt"] == text_prompt(obs) and STATE_HEAD in info["prompt"]
        expected = build_observation(env.unwrapped._track.scene_view, env.t, env.unwrapped._track.kinematics,
                                     env.unwrapped._obs_config)
        np.testing.assert_array_equal(obs["agents"], expected["agents"])
        # GRPO's inputs rebuild the prompt from a batch of (SB3-stacked, channels-first) observations
        batch = {k: np.asarray(v)[None] for k, v in obs.items()}
        batch["bev"] = batch["bev"].transpose(0, 3, 1, 2)
        assert VLAGroupPolicy.inputs(None, batch)[0].prompt == info["prompt"]
        obs, _, terminated, truncated, info = env.step(np.zeros((8, 3), dtype=np.float32) + [[2.0, 0, 0]])
        if terminated or truncated:
            break
    env.close()
    with pytest.raises(ValueError, match="EnvConfig.prompt_state"):
        EnvConfig(prompt_state="all")

    samples = SampleConfig(expert_frames_per_scene=1, observation=AGENTS)
    rows = build_sample_table(scenes[:1], [], samples, progress=False)
    assert rows
    for row in rows:
        assert row["prompt"] == text_prompt(build_observation(scenes[0], row["frame"], config=AGENTS))
    assert cache_key([], [], samples) != cache_key([], [], SampleConfig(expert_frames_per_scene=1))


def test_agent_prompt_state_on_the_command_line_reaches_env_and_tokenizer(tmp_path):
    from hydra import compose, initialize_config_module

    from experiments.agents import _vla_tokenizer_config
    from experiments.builders import env_config
    from experiments.pipeline import Context
    from experiments.run import typed_config

    with initialize_config_module(config_module="experiments.conf", version_base=None):
        default = typed_config(compose(config_name="config", overrides=[]))
        stated = typed_config(compose(config_name="config", overrides=["agent.prompt_state=agents",
                                                                        "agent.prompt_agents=3"]))
        with pytest.raises((ValueError, SystemExit), match="agent.prompt_state"):
            typed_config(compose(config_name="config", overrides=["agent.prompt_state=everything"]))
    assert env_config(Context(tmp_path, default)).observation == ObservationConfig(bev=env_config(
        Context(tmp_path, default)).observation.bev)
    observation = env_config(Context(tmp_path, stated)).observation
    assert (observation.prompt_state, observation.prompt_agents) == ("agents", 3)
    assert _vla_tokenizer_config(stated.agent).prompt_state == "agents"
    assert _vla_tokenizer_config(default.agent).prompt_state == "none"


def test_readability_benchmark_reads_the_prompt_numbers(tmp_path, capsys):
    from benchmarks import bench_readability as bench

    prompt = text_prompt(build_observation(open_source("bank", num_scenes=1, seed=7)[0], 30, config=AGENTS))
    features = bench.prompt_features([prompt], 4)
    ego_v, agents = parse_state_text(prompt)
    np.testing.assert_allclose(features[0, 7:9], ego_v)
    np.testing.assert_allclose(features[0, 9 + 5: 9 + 9], agents[0, 2:6], atol=1e-5)
    assert features[0, 9] == 1 and features[0, 10 + int(agents[0, 1])] == 1

    rc = bench.main(["--train-scenes", "4", "--eval-scenes", "3", "--eval-seed", "5151", "--cnn-steps", "3",
                     "--probe-steps", "5", "--mlp-steps", "5", "--prompt-state", "agents", "--cache-dir",
                     str(tmp_path), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    head = next(line for line in out.splitlines() if line.startswith("accuracy %"))
    assert head.split()[2:] == [*bench.PREDICTORS, *bench.STATE_PREDICTORS]
    assert "prompt_state=agents" in out and "with the prompt's numbers" in out


def test_prompt_projection_times_contact_from_the_numbers():
    from benchmarks.bench_readability import prompt_projection

    def prompt(agents):
        obs = {"command": 1, "ego_state": np.array([10.0, 0.0, 0.0]), "history": np.zeros((4, 3)),
               "ego_velocity": np.array([10.0, 0.0]), "agents": np.array(agents, dtype=np.float32)}
        return text_prompt(obs)

    # a stopped car 20 m ahead in the lane: relative velocity -10 m/s; gap 20 - 1.461 - 2.588 - 2.5 ~ 13.5 m -> ~1.3 s
    ahead = prompt_projection(prompt([[1, 0, 20, 0, -10, 0]]))
    assert ahead.risk_level == "high" and 1.1 <= ahead.conflict_time_s[0] <= 1.5
    farther = prompt_projection(prompt([[1, 0, 40, 0, -10, 0]]))  # ~3.3 s: low, closing at 10 m/s >= 8 -> medium
    assert farther.risk_level == "medium" and 3.0 < farther.conflict_time_s[0] < 3.6
    slow = prompt_projection(prompt([[1, 0, 40, 0, -6, 0]]))  # ~5.6 s: beyond the 5 s horizon
    assert slow.risk_level == "none" and not np.isfinite(slow.conflict_time_s[0])
    beside = prompt_projection(prompt([[1, 0, 5, 8, 0, 0], [1, 1, -10, 0, -1, 0]]))  # same speed beside, one behind
    assert beside.risk_level == "none" and beside.risk_index == -1
