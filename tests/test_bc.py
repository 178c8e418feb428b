"""Behaviour cloning of the Gaussian trajectory policy with the teacher's demonstrations (``agents.rl.bc``)."""

from __future__ import annotations

import numpy as np
import pytest


def test_teacher_demonstrations_brake_where_the_log_crashes():
    """``BCConfig.demonstrations="teacher"``: the expert rows are the env's best response at logged states of the
    closed-loop window (one per stride, none whose plan collides); on scenes whose log crashes the teacher's plans
    are shorter than the log's own, elsewhere it mostly keeps the log's pace; the pairs' rows are unchanged."""
    from agents.rl.bc import BCConfig, build_bc_data, teacher_decisions
    from envs.observation import ObservationConfig
    from envs.replay_env import EnvConfig, ReplayEnv
    from envs.scenes.bank import ScenarioBank
    from envs.sim.scoring import trajectory_from_log

    bank = ScenarioBank(4, seed=5, outcomes="collision")
    scenes = [bank[i] for i in range(len(bank))]
    decisions = teacher_decisions(scenes, stride=0.5)
    assert decisions and len({i for i, _, _ in decisions}) >= 3
    env = ReplayEnv(scenes, "closed_loop", EnvConfig(bev=None))
    shorter = []
    for i, t, trajectory in decisions:
        env.reset(options={"scene_index": i, "t": t})
        best = env.best_response()
        assert not best["is_collision"]
        np.testing.assert_allclose(trajectory, best["trajectory"], atol=1e-6)
        shorter.append(np.linalg.norm(trajectory[-1, :2]) < np.linalg.norm(trajectory_from_log(scenes[i], t)[-1, :2]) - 1)
    assert np.mean(shorter) > 0.5  # where the logs crash, the teacher brakes in most states
    dense = teacher_decisions(scenes, stride=0.2)
    assert len(dense) > len(decisions)
    data = build_bc_data(scenes, [], ObservationConfig(bev=None), 20.0, 1.0, demonstrations="teacher",
                         teacher_stride=0.5)
    assert len(data) == len(decisions) and set(data.kinds) == {"expert"}
    with pytest.raises(ValueError, match="demonstrations"):
        BCConfig(demonstrations="oracle")
    with pytest.raises(ValueError, match="teacher_stride"):
        BCConfig(teacher_stride=0)


def test_dagger_rows_are_the_teachers_labels_at_the_states_the_policy_reaches(one_torch_thread):
    """``dagger_data``: the model's mean drives its training env; every state it reaches gets the env's best response
    as target (normalised), with observations shaped as ``build_bc_data``'s (BEV HWC) so the two merge; the options
    are checked."""
    from agents.rl.bc import BCConfig, build_bc_data, dagger_data, merge_bc_data, train_bc
    from agents.rl.env import GroupEnvConfig, make_group_vec_env
    from agents.rl.grpo import GRPO, GRPOConfig
    from envs.scenes.bank import ScenarioBank

    bank = ScenarioBank(2, seed=5, outcomes="collision")
    scenes = [bank[i] for i in range(len(bank))]
    env = make_group_vec_env(GroupEnvConfig(source=scenes), n_envs=1, seed=0)
    model = GRPO("MultiInputPolicy", env, GRPOConfig(n_steps=1, batch_size=1, n_epochs=1, group_size=2), seed=0)
    policy = model.policy
    rows = dagger_data(model, 6, policy.max_speed, policy.max_yaw_rate)
    assert 1 <= len(rows) <= 6 and set(rows.kinds) == {"dagger"}
    assert np.isfinite(rows.targets).all() and np.isnan(rows.negatives).all()
    assert np.abs(rows.targets).max() <= 1.0 + 1e-6  # normalised actions
    assert len(dagger_data(model, 2, policy.max_speed, policy.max_yaw_rate, futures="cv")) >= 1  # a name crosses envs
    observation = env.get_attr("config")[0].observation
    base = build_bc_data(scenes, [], observation, policy.max_speed, policy.max_yaw_rate, demonstrations="teacher")
    assert {k: v.shape[1:] for k, v in rows.observations.items()} == {k: v.shape[1:] for k, v in base.observations.items()}
    both = merge_bc_data(base, rows)
    assert len(both) == len(base) + len(rows) and both.kinds[-1] == "dagger"
    losses = train_bc(policy, both, "positive", BCConfig(steps=3, batch_size=4))
    assert len(losses) == 3 and all(np.isfinite(losses))
    with pytest.raises(ValueError, match="dagger_rounds: DAgger relabels"):
        BCConfig(dagger_rounds=1)
    with pytest.raises(ValueError, match="dagger_steps"):
        BCConfig(demonstrations="teacher", dagger_rounds=1, dagger_steps=0)
    env.close()


def test_a_teacher_that_reads_only_the_present():
    """``teacher_futures="cv"``: the teacher's plan is the best response scored against every agent at constant
    velocity (``best_response(forecast="cv")``, the same as passing the forecast function), never a plan that
    collides under those futures; on scenes whose log crashes it differs from the log-futures teacher somewhere;
    options are checked."""
    import functools

    from agents.rl.bc import BCConfig, teacher_decisions
    from envs.replay_env import EnvConfig, ReplayEnv
    from envs.scenes.bank import ScenarioBank
    from rewards.reference_planner import forecast_problem

    bank = ScenarioBank(3, seed=5, outcomes="collision")
    scenes = [bank[i] for i in range(len(bank))]
    cv = teacher_decisions(scenes, stride=0.5, futures="cv")
    log = {(i, t): trajectory for i, t, trajectory in teacher_decisions(scenes, stride=0.5)}
    assert cv
    env = ReplayEnv(scenes, "closed_loop", EnvConfig(bev=None))
    differs = 0
    for i, t, trajectory in cv:
        env.reset(options={"scene_index": i, "t": t})
        best = env.best_response(forecast="cv")
        assert not best["is_collision"]
        np.testing.assert_allclose(trajectory, best["trajectory"], atol=1e-6)
        by_function = env.best_response(forecast=functools.partial(forecast_problem, config=env.config.pdm))
        np.testing.assert_array_equal(best["trajectory"], by_function["trajectory"])
        differs += (i, t) not in log or not np.allclose(log[(i, t)], trajectory, atol=1e-6)
    assert differs >= 1
    with pytest.raises(ValueError, match="futures must be one of"):
        env.best_response(forecast="oracle")
    with pytest.raises(ValueError, match="teacher_futures must be one of"):
        BCConfig(demonstrations="teacher", teacher_futures="oracle")
    with pytest.raises(ValueError, match="teacher_futures='cv' is the teacher's"):
        BCConfig(teacher_futures="cv")
    assert BCConfig(demonstrations="teacher", teacher_futures="ctra").teacher_futures == "ctra"
