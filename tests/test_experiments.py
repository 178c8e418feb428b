"""The main job end to end on a tiny synthetic bank, and the baseline policies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hydra import compose, initialize

from agents.base import policy_input
from agents.baselines import (
    ConstantVelocityPolicy,
    LogReplayPolicy,
    ReferencePlannerPolicy,
    StandStillPolicy,
    make_baseline,
)
from counterfactual.dataset import load_anchor_pairs, read_provenance
from envs.bank import ScenarioBank
from envs.replay_env import EnvConfig, ReplayEnv
from experiments.evaluate import evaluate_open_loop, results_table
from experiments.run import run


def _cfg(*overrides: str):
    with initialize(version_base=None, config_path=None):
        return compose(config_name="config", overrides=list(overrides))


def test_default_config_is_embedded():
    cfg = _cfg()
    assert cfg.env.name == "bank" and cfg.env.num_scenes > 0
    assert list(cfg.evaluate.baselines) == ["constant_velocity", "log_replay", "pdm_closed_like"]
    with pytest.raises(Exception, match="carla|env"):
        _cfg("env=not_a_source")


def test_pipeline_runs_and_writes_outputs(tmp_path, capsys):
    cfg = _cfg(
        "env.num_scenes=4",
        "env.scenario_types=[rear_end,normal]",
        "render.num_scenes=2",
        "render.size=96",
        "mine.lead_times=[2.0]",
        "evaluate.baselines=[log_replay,pdm_closed_like]",
        "evaluate.closed_loop=false",
        "progress=false",
        f"out_dir={tmp_path}",
    )
    summary = run(cfg, tmp_path)
    out = capsys.readouterr().out
    assert "synthetic" in out and "PDMS" in out and "collision %" in out
    assert (tmp_path / "render" / "contact_sheet.png").stat().st_size > 0
    pairs = load_anchor_pairs(tmp_path / "pairs.parquet")
    assert len(pairs) == summary["pairs"]["count"] >= 2  # two rear-end scenes, one lead time each
    assert all(p.negative_scores["collision"] for p in pairs)
    prov = read_provenance(tmp_path / "pairs.parquet")
    assert prov["miner_config"]["moments"]["lead_times"] == [2.0] and prov["source"].startswith("bank")
    saved = json.loads((tmp_path / "results.json").read_text())
    by_policy = {r["policy"]: r for r in saved["results"]}
    # The log drives into the rear-end in every accident scene (decision 2 s before contact, 4 s horizon) and into
    # nothing in normal scenes.
    bank = ScenarioBank(4, seed=0, scenario_types=["rear_end", "normal"])
    accident_share = np.mean([bank[i].meta.is_accident for i in range(len(bank))])
    assert 0 < accident_share < 1
    assert by_policy["log_replay"]["collision_rate"] == pytest.approx(accident_share)
    for r in by_policy.values():
        assert 0.0 <= r["score"] <= 1.0 and r["num_scenes"] == 4 and r["language_accuracy"] is None
    assert list((tmp_path / "tb").iterdir())


def test_baselines_produce_valid_actions():
    env = ReplayEnv("bank", mode="open_loop", config=EnvConfig(bev=None), num_scenes=3, seed=1)
    obs, info = env.reset(seed=0, options={"scene_index": 0})
    for policy in (ConstantVelocityPolicy(), LogReplayPolicy(), ReferencePlannerPolicy(), StandStillPolicy()):
        action = policy.act(policy_input(env, obs, info, privileged=policy.requires_privileged))
        assert action.shape == (8, 3) and action.dtype == np.float32
        assert env.action_space.contains(action)
    np.testing.assert_array_equal(LogReplayPolicy().act(policy_input(env, obs, info, True)), env.logged_action())
    for policy in (LogReplayPolicy(), ReferencePlannerPolicy()):  # privileged policies refuse a plain input
        with pytest.raises(ValueError, match="privileged PolicyInput"):
            policy.act(policy_input(env, obs, info))
    cv = ConstantVelocityPolicy().act(policy_input(env, obs))
    np.testing.assert_allclose(np.diff(cv[:, 0]), 0.5 * obs["ego_state"][0], rtol=1e-5)
    assert np.all(cv[:, 1:] == 0)
    with pytest.raises(ValueError, match="unknown baseline 'x'"):
        make_baseline("x")


def test_results_table_marks_missing_language_metrics():
    env = ReplayEnv("bank", mode="open_loop", config=EnvConfig(bev=None), num_scenes=2, seed=0)
    result = evaluate_open_loop(ConstantVelocityPolicy(), env, progress=False)
    table = results_table([result])
    assert "n/a" in table and "constant_velocity" in table
    assert 0.0 <= result.score <= 1.0 and result.num_scenes == 2
