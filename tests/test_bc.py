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
