"""benchmarks/bench_collision_causes.py: the contact facts of closed-loop collisions (outcome, hazard, lag)."""

from __future__ import annotations

import pytest

from agents.baselines import make_baseline
from benchmarks.bench_collision_causes import OUTCOMES, drive, run_context, scene_outcome, summary
from envs.replay_env import EnvConfig, ReplayEnv
from envs.scenes.bank import ScenarioBank


@pytest.fixture(scope="module")
def varied():
    return ScenarioBank(12, seed=5, outcomes="varied")


def test_log_replay_crashes_into_the_hazard_on_its_own_log(varied):
    """Following the log, every scene whose logged drive crashes crashes, into the hazard, at the log's own place
    (lag ~ 0); the benign, near-miss and normal scenes do not crash."""
    eps = drive(make_baseline("log_replay"), ReplayEnv(varied, "closed_loop", EnvConfig(bev=None)))
    assert [e["outcome"] for e in eps] == [scene_outcome(varied[i]) for i in range(len(varied))]
    assert {e["outcome"] for e in eps} <= set(OUTCOMES) and {"collision", "normal"} <= {e["outcome"] for e in eps}
    for e in eps:
        assert e["collision"] == (e["outcome"] == "collision"), e
        # at the log's pace (0.94-1.01: the logged action repeats the last pose past the log's end, so it slows there)
        assert e["speed_ratio"] is None or abs(e["speed_ratio"] - 1.0) < 0.08, e
        if e["collision"]:
            c = e["contact"]
            assert c["hazard"] and abs(c["lag_m"]) < 1.0 and c["seconds"] > 0 and c["kind"].startswith("active")
            # the tracker follows the log within ~1 m
            assert abs(c["speed"] - c["log_speed"]) < 1.0 and c["offset_m"] < 1.0
    table = summary({"log_replay": eps}, lag_margin=2.0)
    row = next(line for line in table.splitlines() if "| collision |" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:3] == ["log_replay", "collision", str(sum(e["outcome"] == "collision" for e in eps))]
    assert abs(float(cells[3]) - 1.0) < 0.08 and cells[4:8] == ["100.0", "100", "0", "0"]  # every one: the hazard


def test_a_braking_ego_that_is_hit_is_behind_its_log(varied):
    """Brake-to-stop drives slower than its log and ends any contact it has behind it; stand-still drives slower and
    never collides at fault (it stops from the logged speed it starts with)."""
    env = ReplayEnv(varied, "closed_loop", EnvConfig(bev=None))
    still = drive(make_baseline("stand_still"), env)
    assert not any(e["collision"] for e in still)
    assert all(e["speed_ratio"] is None or e["speed_ratio"] < 0.5 for e in still)  # it brakes from the log's speed
    braking = drive(make_baseline("brake_to_stop"), env)
    assert all(e["speed_ratio"] is None or e["speed_ratio"] < 0.9 for e in braking)
    for e in braking:
        if e["collision"]:
            assert e["contact"]["lag_m"] < 0


def test_run_context_names_a_missing_run(tmp_path):
    with pytest.raises(SystemExit, match="results.json"):
        run_context(tmp_path, [])


def test_the_collision_only_bank_names_its_colliding_agent_the_hazard():
    """Scenes without ``meta.extra["hazard_agent_id"]`` (the collision-only bank) count a crash into the scenario's
    colliding agent as a hazard hit (``designated_hazard``), as the varied bank's do."""
    bank = ScenarioBank(4, seed=5, outcomes="collision")
    eps = drive(make_baseline("log_replay"), ReplayEnv(bank, "closed_loop", EnvConfig(bev=None)))
    hits = [e["contact"] for e in eps if e["collision"]]
    assert hits and all("hazard_agent_id" not in (bank[i].meta.extra or {}) for i in range(len(bank)))
    assert all(c["hazard"] for c in hits)
