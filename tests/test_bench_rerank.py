"""``benchmarks/bench_rerank.py``: a learned path re-ranked by the group score at decision time."""

from __future__ import annotations

import numpy as np
import pytest

from agents.baselines import LogReplayPolicy
from benchmarks.bench_rerank import ScoreReranked, episodes, summary
from envs.replay_env import EnvConfig, ReplayEnv
from envs.scenes.bank import ScenarioBank
from envs.sim.scoring import slowed


@pytest.fixture(scope="module")
def crash_scenes():
    bank = ScenarioBank(4, seed=5, outcomes="collision")
    return [bank[i] for i in range(len(bank))]


def test_reranking_executes_the_base_path_at_the_chosen_fraction(crash_scenes):
    """The action is the base policy's trajectory slowed to the fraction chosen; with the single fraction 1 the
    re-ranked episodes are the base policy's; against constant-velocity futures the re-ranked log replay crashes
    less often than the logs it drives (all of these scenes' logs crash)."""
    from agents.base import policy_input

    config = EnvConfig(bev=None)
    env = ReplayEnv(crash_scenes, "closed_loop", config)
    base = LogReplayPolicy(config.pdm)
    reranked = ScoreReranked(base, env, futures="cv")
    for i in range(len(crash_scenes)):
        obs, info = env.reset(options={"scene_index": i})
        for _ in range(3):
            inp = policy_input(env, obs, info, True)
            out = reranked.act(inp)
            expected = slowed(np.asarray(base.act(inp), dtype=np.float64), reranked.chosen[-1],
                              config.pdm.pose_interval)
            np.testing.assert_allclose(out, expected, atol=1e-5)
            obs, _, terminated, truncated, info = env.step(out)
            if terminated or truncated:
                break
    assert set(reranked.chosen) <= set(reranked.fractions)
    plain = episodes(base, env)
    assert sum(e["collision"] for e in plain) >= 2
    same = episodes(ScoreReranked(base, env, [1.0]), env)
    assert [e["collision"] for e in same] == [e["collision"] for e in plain]
    np.testing.assert_allclose([e["route_completion"] for e in same], [e["route_completion"] for e in plain])
    assert sum(e["collision"] for e in episodes(reranked, env)) < sum(e["collision"] for e in plain)


def test_options_and_summary(crash_scenes):
    env = ReplayEnv(crash_scenes, "closed_loop", EnvConfig(bev=None))
    base = LogReplayPolicy()
    with pytest.raises(ValueError, match="fractions"):
        ScoreReranked(base, env, [])
    with pytest.raises(ValueError, match="futures must be one of"):
        ScoreReranked(base, env, futures="log_oracle")
    records = [{"run": f"r{k}", "row": "x", "mode": mode, "scene_id": f"s{i}", "collision": float(c),
                "route_completion": 0.5, "driving_score": 0.5}
               for k in range(2) for i in range(4)
               for mode, c in (("trained", i < 2), ("reranked", i < 1))]
    text = summary(records)
    assert "| x reranked | x trained | collision | 50.0 | 25.0 | -25.0 |" in text and "| 2 |" in text
    both = records + [{**r, "row": "y", "collision": 0.0} for r in records]
    text = summary(both, versus="x")
    assert "| y trained | x trained | collision | 50.0 | 0.0 | -50.0 |" in text
    assert "| y reranked | x reranked | collision | 25.0 | 0.0 | -25.0 |" in text
    with pytest.raises(ValueError, match="--versus"):
        summary(records, versus="z")
