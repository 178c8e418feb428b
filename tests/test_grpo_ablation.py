"""Issue 30's progress-ablation options of anchor-GRPO reach the algorithm: ``anchor_members`` (which of a pair's
members join the group), ``anchor_weight`` (the anchors' advantages in the clipped surrogate) and ``step_with`` (the
action that advances the env); the anchor counts the pipeline records (``experiments.methods.anchor_stats``); the
Hydra options. Small sizes (seconds)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

import agents.rl.grpo.grpo as grpo_module
from agents.rl.env import GroupEnvConfig, make_group_vec_env
from agents.rl.grpo import GRPO, GRPOConfig
from agents.rl.grpo.buffer import SAMPLED
from tests.test_grpo import rear_end  # noqa: F401  (fixture)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield
    gc.collect()


def _one_state(scene, pairs, **options) -> GRPO:
    """GRPO after one env step at the episode's start (on the log at the lead-3 s decision frame: a pair applies)."""
    env = make_group_vec_env(GroupEnvConfig(source=[scene]), n_envs=1, seed=0)
    cfg = GRPOConfig(n_steps=1, batch_size=1, n_epochs=1, group_size=4, **options)
    model = GRPO("MultiInputPolicy", env, cfg, anchor_pairs=pairs, seed=0)
    model.learn(1)
    return model


def test_anchor_members_choose_the_group_slots(rear_end):  # noqa: F811
    """``both`` fills slots G (positive) and G + 1 (negative), ``negative`` / ``positive`` one of them; the sampled
    members are the same draws in all three (the option draws no random numbers)."""
    scene, pairs = rear_end
    G = 4
    slots = {}
    members = {}
    for which in ("both", "negative", "positive"):
        model = _one_state(scene, pairs, anchor_members=which)
        slots[which] = model.rollout_buffer.valid[0, 0, G:].tolist()
        members[which] = model.rollout_buffer.members[0, 0, :G]
        assert model.anchor_states_seen == 1
    assert slots == {"both": [True, True], "negative": [False, True], "positive": [True, False]}
    np.testing.assert_array_equal(members["both"], members["negative"])
    np.testing.assert_array_equal(members["both"], members["positive"])


def test_anchor_weight_scales_only_the_anchors_advantages_in_the_loss(rear_end, monkeypatch):  # noqa: F811
    """The advantages handed to the loss: the anchors' are ``anchor_weight`` x the stored group-relative ones, the
    sampled members' unchanged; weight 1 (default) hands the stored ones."""
    scene, pairs = rear_end
    seen: list[torch.Tensor] = []
    real = grpo_module.grpo_loss

    def spy(logp, old_logp, ref_logp, advantages, *args, **kwargs):
        seen.append(advantages.detach().clone())
        return real(logp, old_logp, ref_logp, advantages, *args, **kwargs)

    monkeypatch.setattr(grpo_module, "grpo_loss", spy)
    handed = {}
    for w in (1.0, 0.25, 0.0):
        seen.clear()
        model = _one_state(scene, pairs, anchor_weight=w)
        buf = model.rollout_buffer
        rows = buf.valid[0, 0]
        stored = buf.advantages[0, 0][rows]
        kinds = buf.kinds[0, 0][rows]
        assert rows.sum() == 6 and np.abs(stored[kinds != SAMPLED]).min() > 0  # both anchors, with an advantage
        expected = np.where(kinds == SAMPLED, stored, w * stored)
        np.testing.assert_allclose(seen[0].numpy(), expected, rtol=1e-6)
        handed[w] = seen[0].numpy()
    assert not np.allclose(handed[1.0], handed[0.25])


def test_anchor_stats_count_the_states_with_anchors(rear_end):  # noqa: F811
    """The grpo stage's anchor counts (``state.json``): env steps, states with anchors and their share, bank size."""
    from experiments.methods import anchor_stats

    scene, pairs = rear_end
    model = _one_state(scene, pairs)
    stats = anchor_stats(model, "anchor_grpo")
    assert stats["anchor_grpo_env_steps"] == 1 and stats["anchor_grpo_anchor_states"] == 1
    assert stats["anchor_grpo_anchor_state_share"] == 1.0 and stats["anchor_grpo_online_anchor_states"] == 0
    assert stats["anchor_grpo_bank_pairs"] == len({p.pair_id for p in pairs}) and stats["anchor_grpo_online_pairs"] == 0


def test_hydra_anchor_ablation_options_reach_the_grpo_config():
    """``train.grpo.anchor_weight`` / ``train.grpo.anchor_members`` on the command line become the typed
    GRPOConfig's; the defaults are today's (1, ``both``); bad values name the field."""
    from hydra import compose, initialize_config_module

    from experiments.run import typed_config

    def typed(*overrides: str):
        with initialize_config_module(config_module="experiments.conf", version_base=None):
            return typed_config(compose(config_name="config", overrides=list(overrides)))

    default = typed().train.grpo
    assert default.anchor_weight == 1.0 and default.anchor_members == "both"
    chosen = typed("train.grpo.anchor_weight=0.5", "train.grpo.anchor_members=negative").train.grpo
    assert chosen.anchor_weight == 0.5 and chosen.anchor_members == "negative"
    with pytest.raises(SystemExit, match="GRPOConfig.anchor_members: expected one of"):
        typed("train.grpo.anchor_members=all")
    with pytest.raises(SystemExit, match="GRPOConfig.anchor_weight: expected >= 0"):
        typed("train.grpo.anchor_weight=-1")
    assert default.teacher_anchor is False
    taught = typed("train.grpo.teacher_anchor=true", "train.grpo.teacher_fractions=[1,0.5,0]").train.grpo
    assert taught.teacher_anchor is True and tuple(taught.teacher_fractions) == (1.0, 0.5, 0.0)


@pytest.mark.parametrize("step_with", ["sample", "greedy", "best"])
def test_step_with_chooses_the_action_that_advances_the_env(rear_end, step_with):  # noqa: F811
    """The action handed to ``env.step`` (the progress ablation's "member that advances the env"): ``sample`` the
    first sampled member, ``greedy`` the policy's mode on that step's observation (not a group member), ``best``
    the sampled member with the highest group reward. 3 env steps of one env, before any update."""
    scene, pairs = rear_end
    env = make_group_vec_env(GroupEnvConfig(source=[scene]), n_envs=1, seed=0)
    G = 4
    cfg = GRPOConfig(n_steps=3, batch_size=3, n_epochs=1, group_size=G, step_with=step_with)
    model = GRPO("MultiInputPolicy", env, cfg, anchor_pairs=pairs, seed=0)
    stepped, modes = [], []
    real_step = env.step

    def spy(actions):
        stepped.append(np.array(actions, dtype=np.float64))
        with torch.no_grad():
            modes.append(np.array(model.policy.greedy(model._last_obs)[0], dtype=np.float64))
        return real_step(actions)

    env.step = spy
    model.learn(3)
    buf = model.rollout_buffer
    assert len(stepped) == 3
    for t in range(3):
        sampled = model.policy.env_actions_of(buf.members[t, 0, :G], None).astype(np.float64)
        chosen = {"sample": 0, "best": int(buf.rewards[t, 0, :G].argmax())}.get(step_with)
        if step_with == "greedy":
            np.testing.assert_allclose(stepped[t][0], modes[t][0], atol=1e-6)
            assert np.abs(sampled - stepped[t][0]).max(axis=-1).min() > 1e-3  # not one of the group's draws
        else:
            np.testing.assert_allclose(stepped[t][0], sampled[chosen], atol=1e-6)
            assert np.abs(stepped[t][0] - modes[t][0]).max() > 1e-3


def test_greedy_member_puts_the_mode_in_the_last_sampled_slot(rear_end, monkeypatch):  # noqa: F811
    """``greedy_member=True``: G - 1 draws and, in slot G - 1, the policy's mean (its mode), valid, with pi_old its
    teacher-forced log-density; the step action ``greedy`` is that member's; the draws are the first G - 1 of
    the default run's (the option draws no extra random numbers before them)."""
    scene, pairs = rear_end
    G = 4
    from agents.rl.grpo.policies import TrajectoryGaussianPolicy

    seen = {}
    real_greedy = TrajectoryGaussianPolicy.greedy_members

    def spy(self, obs):
        out = real_greedy(self, obs)
        if "greedy" not in seen:
            seen["greedy"] = out
            with torch.no_grad():
                seen["mode_logp"] = self.distribution(self._tensor_obs(obs)).log_prob(
                    torch.as_tensor(out.members).reshape(len(out.members), -1)).sum(-1).numpy()
        return out

    monkeypatch.setattr(TrajectoryGaussianPolicy, "greedy_members", spy)
    model = _one_state(scene, pairs, greedy_member=True)
    default = _one_state(scene, pairs)
    buf = model.rollout_buffer
    assert buf.valid[0, 0, :G].all()
    np.testing.assert_allclose(buf.members[0, 0, G - 1], seen["greedy"].members[0], atol=1e-6)
    np.testing.assert_allclose(buf.trajectories[0, 0, G - 1], seen["greedy"].trajectories[0], atol=1e-6)
    np.testing.assert_allclose(buf.old_logp[0, 0, G - 1, 0], seen["mode_logp"][0], rtol=1e-5)
    # the mode is the Gaussian's densest point: above every draw's log-density
    assert buf.old_logp[0, 0, G - 1, 0] > buf.old_logp[0, 0, : G - 1, 0].max()
    np.testing.assert_array_equal(buf.members[0, 0, : G - 1], default.rollout_buffer.members[0, 0, : G - 1])
    with pytest.raises(NotImplementedError, match="greedy member"):
        grpo_module.GroupPolicy.greedy_members(model.policy, None)


def test_mean_fractions_put_the_slowed_mean_in_the_last_slots(rear_end):  # noqa: F811
    """``mean_fractions=[1, 0.5]``: G - 2 draws, then the policy's mean trajectory at full and half its speed (the
    path kept, the time stretched), valid, pi_old their teacher-forced log-density; the draws are the default run's
    first G - 2; the options are checked."""
    from envs.sim.scoring import slowed

    scene, pairs = rear_end
    G = 4
    model = _one_state(scene, pairs, mean_fractions=[1.0, 0.5])
    default = _one_state(scene, pairs)
    buf = model.rollout_buffer
    assert buf.valid[0, 0, :G].all()
    full, half = buf.trajectories[0, 0, G - 2], buf.trajectories[0, 0, G - 1]
    np.testing.assert_allclose(half, model.policy.encode_trajectories(slowed(full, 0.5)[None], [""]).trajectories[0],
                               atol=1e-6)
    assert np.hypot(*half[-1, :2]) < 0.6 * np.hypot(*full[-1, :2])  # half the speed: about half as far
    # the mean is the Gaussian's densest point: above every draw's log-density
    assert buf.old_logp[0, 0, G - 2, 0] > buf.old_logp[0, 0, : G - 2, 0].max()
    np.testing.assert_array_equal(buf.members[0, 0, : G - 2], default.rollout_buffer.members[0, 0, : G - 2])
    with pytest.raises(ValueError, match="mean_fractions"):
        GRPOConfig(group_size=4, mean_fractions=[1.0, 0.8, 0.6, 0.3])  # no sampled member left
    with pytest.raises(ValueError, match="mean_fractions"):
        GRPOConfig(mean_fractions=[1.5])
    assert GRPOConfig().mean_fractions == ()


def test_mean_fractions_are_refused_for_a_policy_that_states_a_label(rear_end, monkeypatch):  # noqa: F811
    from agents.rl.grpo.policies import TrajectoryGaussianPolicy

    scene, pairs = rear_end
    monkeypatch.setattr(TrajectoryGaussianPolicy, "states_label", True)
    env = make_group_vec_env(GroupEnvConfig(source=[scene]), n_envs=1, seed=0)
    with pytest.raises(ValueError, match="mean_fractions"):
        GRPO("MultiInputPolicy", env, GRPOConfig(group_size=4, mean_fractions=[0.5]), anchor_pairs=pairs, seed=0)


def test_shuffle_advantages_permutes_within_each_group(rear_end):  # noqa: F811
    """The control ``shuffle_advantages``: each group's stored advantages are a permutation of the ones the rewards
    give (same multiset per group, invalid slots 0), and not the same order everywhere."""
    from agents.rl.grpo.loss import group_advantages

    scene, pairs = rear_end
    env = make_group_vec_env(GroupEnvConfig(source=[scene]), n_envs=1, seed=0)
    cfg = GRPOConfig(n_steps=6, batch_size=6, n_epochs=1, group_size=4, shuffle_advantages=True)
    model = GRPO("MultiInputPolicy", env, cfg, anchor_pairs=pairs, seed=0)
    model.learn(6)
    buf = model.rollout_buffer
    n, M = buf.pos, buf.num_slots
    rewards = torch.as_tensor(buf.rewards[:n].reshape(-1, M))
    valid = buf.valid[:n].reshape(-1, M)
    expected, _ = group_advantages(rewards, torch.as_tensor(valid), cfg.scale_rewards, cfg.advantage_eps,
                                   cfg.zero_std_tol)
    got = buf.advantages[:n].reshape(-1, M)
    moved = False
    for row in range(len(got)):
        np.testing.assert_allclose(np.sort(got[row][valid[row]]), np.sort(expected.numpy()[row][valid[row]]),
                                   atol=1e-6)
        assert np.all(got[row][~valid[row]] == 0)
        moved |= not np.allclose(got[row], expected.numpy()[row])
    assert moved


def test_greedy_member_stats():
    """The greedy member's TensorBoard terms from stored group rewards (slot G - 1 against slots 0 .. G - 2)."""
    from agents.rl.grpo.grpo import greedy_member_stats

    rewards = np.zeros((2, 1, 6))  # G = 4 (+ 2 anchor slots), two states
    rewards[0, 0, :4] = [0.1, 0.3, 0.2, 0.5]  # greedy 0.5 beats every sample
    rewards[1, 0, :4] = [0.6, 0.2, 0.4, 0.3]  # greedy 0.3 does not
    stats = greedy_member_stats(rewards, 4)
    assert stats["group/greedy_reward"] == pytest.approx(0.4)
    assert stats["group/greedy_minus_sampled"] == pytest.approx(((0.5 - 0.2) + (0.3 - 0.4)) / 2)
    assert stats["group/greedy_best_share"] == pytest.approx(0.5)
    assert greedy_member_stats(np.zeros((0, 1, 6)), 4) == {}


def test_teacher_anchor_fills_the_positive_slot_with_the_group_scores_best_response(rear_end):  # noqa: F811
    """``teacher_anchor``: where no pair gives a positive, slot G holds the env's best response (projected onto the
    policy's parametrisation) and the state counts as an anchor state; a mined positive keeps its slot; off: the
    group is the vanilla one. The option draws no random numbers (the sampled members are the same)."""
    from envs.replay_env import EnvConfig, ReplayEnv

    scene, pairs = rear_end
    G = 4
    plain = _one_state(scene, [], teacher_anchor=False)
    assert not plain.rollout_buffer.valid[0, 0, G:].any() and plain.teacher_states_seen == 0
    taught = _one_state(scene, [], teacher_anchor=True)
    buf = taught.rollout_buffer
    assert buf.valid[0, 0, G:].tolist() == [True, False]
    assert taught.teacher_states_seen == 1 == taught.anchor_states_seen
    np.testing.assert_array_equal(buf.members[0, 0, :G], plain.rollout_buffer.members[0, 0, :G])
    env = ReplayEnv([scene], "closed_loop", EnvConfig(bev=None))
    env.reset(seed=0, options={"scene_index": 0})
    best = env.best_response(taught.config.teacher_fractions)
    assert not best["is_collision"] and best["fraction"] < 1.0  # the log crashes here: the teacher slows down
    expected = taught.policy.encode_trajectories(best["trajectory"][None], [""])
    np.testing.assert_allclose(buf.members[0, 0, G], expected.members[0], atol=1e-6)
    mined = _one_state(scene, pairs, teacher_anchor=True)
    assert mined.teacher_states_seen == 0 and mined.anchor_states_seen == 1  # the pair's positive applies


def test_best_response_is_the_highest_scored_slowed_log():
    """``ReplayEnv.best_response``: the candidate with the highest group reward among the logged action slowed to
    each fraction; the env's state is unchanged; bad fractions are refused."""
    from envs.replay_env import EnvConfig, ReplayEnv
    from envs.scenes.bank import ScenarioBank
    from envs.sim.scoring import slowed

    env = ReplayEnv(ScenarioBank(3, seed=5, outcomes="collision"), "closed_loop", EnvConfig(bev=None))
    env.reset(seed=0, options={"scene_index": 0})
    t = env.t
    fractions = [1.0, 0.6, 0.0]
    candidates = np.stack([slowed(env.logged_action(), f) for f in fractions])
    rewards = env.score_group(candidates)["reward"]
    best = env.best_response(fractions)
    j = int(np.argmax(rewards))
    assert best["fraction"] == fractions[j] and best["reward"] == pytest.approx(float(rewards[j]))
    np.testing.assert_allclose(best["trajectory"], candidates[j], atol=1e-5)
    assert env.t == t
    with pytest.raises(ValueError, match="fractions"):
        env.best_response([1.5])


def test_teacher_anchor_options_are_checked():
    with pytest.raises(ValueError, match="teacher_anchor: the teacher is a positive anchor"):
        GRPOConfig(teacher_anchor=True, anchors=False)
    with pytest.raises(ValueError, match="teacher_anchor: the teacher is a positive anchor"):
        GRPOConfig(teacher_anchor=True, anchor_members="negative")
    with pytest.raises(ValueError, match="teacher_fractions"):
        GRPOConfig(teacher_fractions=[0.5, 2.0])
    assert GRPOConfig(teacher_fractions=[1, 0.5]).teacher_fractions == (1.0, 0.5)


def test_yaw_log_std_init_narrows_only_the_yaw_rate_samples():
    """``yaw_log_std_init``: the 8 yaw-rate dimensions start with their own log-std (the speeds keep
    ``log_std_init``), so a group's members differ in speed and hardly in heading; it survives SB3's save / load
    constructor round trip, and ``agent.yaw_log_std_init`` reaches the MLP agent's config (default None: today)."""
    from gymnasium import spaces
    from hydra import compose, initialize_config_module

    from agents.rl.grpo.policies import TrajectoryGaussianPolicy
    from experiments.run import typed_config

    obs_space = spaces.Box(-1.0, 1.0, (3,), np.float32)
    act_space = spaces.Box(-1.0, 1.0, (8, 2), np.float32)
    torch.manual_seed(0)
    policy = TrajectoryGaussianPolicy(obs_space, act_space, lambda _: 1e-3, log_std_init=-1.0, yaw_log_std_init=-4.0)
    log_std = policy.log_std.detach().reshape(8, 2)
    assert torch.all(log_std[:, 0] == -1.0) and torch.all(log_std[:, 1] == -4.0)
    members = policy.sample_group(np.zeros((1, 3), np.float32), 64).members[0]  # (64, 8, 2)
    spread = members.std(axis=0)
    assert spread[:, 0].min() > 0.25 and spread[:, 1].max() < 0.03
    params = policy._get_constructor_parameters()
    again = TrajectoryGaussianPolicy(obs_space, act_space, lambda _: 1e-3, **{
        k: v for k, v in params.items() if k not in ("observation_space", "action_space")})
    assert torch.equal(again.log_std, policy.log_std)
    same = TrajectoryGaussianPolicy(obs_space, act_space, lambda _: 1e-3, log_std_init=-1.0)
    assert torch.all(same.log_std == -1.0)
    with initialize_config_module(config_module="experiments.conf", version_base=None):
        default = typed_config(compose(config_name="config", overrides=["agent=mlp"])).agent
        chosen = typed_config(compose(config_name="config", overrides=["agent=mlp", "agent.yaw_log_std_init=-4"])).agent
    assert default.yaw_log_std_init is None and chosen.yaw_log_std_init == -4.0
