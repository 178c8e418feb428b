"""benchmarks/bench_outcome_readability.py: rows of the hazard scenes, the privileged state, the predictors."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_outcome_readability import HAZARD_OUTCOMES, cnn, collect, logistic, report
from benchmarks.bench_collision_causes import scene_outcome
from envs.scenes.bank import ScenarioBank


@pytest.fixture(scope="module")
def rows():
    bank = ScenarioBank(12, seed=5, outcomes="varied")
    return bank, collect(bank, seconds=1.0)


def test_rows_are_the_hazard_scenes_decisions(rows):
    bank, r = rows
    hazard = {bank[i].scene_id for i in range(len(bank)) if scene_outcome(bank[i]) in HAZARD_OUTCOMES}
    assert set(r["scene_id"]) == hazard  # normal scenes left out, every hazard scene in
    n = len(r["outcome"])
    assert r["bev"].shape[0] == n and r["bev"].dtype == np.uint8 and r["bev"].shape[2:] == (64, 64)
    assert r["state"].shape == (n, 7) and np.isfinite(r["state"]).all()
    assert set(np.round(r["seconds"], 1)) <= {0.0, 0.5, 1.0}
    for sid, y in zip(r["scene_id"], r["outcome"]):
        scene = next(bank[i] for i in range(len(bank)) if bank[i].scene_id == sid)
        assert HAZARD_OUTCOMES[y] == scene_outcome(scene)
    # the most-conflicting visible agent (no privileged knowledge): its projected approach is no farther than the
    # hazard's wherever the hazard is within its 50 m
    assert r["conflict"].shape == (n, 7) and np.isfinite(r["conflict"]).all()
    near = r["state"][:, 4] <= 50.0
    assert (r["conflict"][near, 5] <= r["state"][near, 5] + 1e-4).all()
    # the projection's closest approach is never farther than the current distance
    visible = r["state"][:, 4] < 1e3
    assert visible.any() and (r["state"][visible, 5] <= r["state"][visible, 4] + 1e-4).all()


def test_predictors_fit_their_training_rows(rows):
    """On their own training rows both predictors beat the majority (they can fit what they see); the report has a
    row per predictor and a column per decision time."""
    _, r = rows
    y = r["outcome"]
    majority = np.full(len(y), np.bincount(y).argmax())
    fitted = logistic(r["state"], y, r["scene_id"], r["state"])
    assert fitted.shape == y.shape and set(fitted) <= set(range(len(HAZARD_OUTCOMES)))
    trained = cnn(r["bev"], y, r["bev"], steps=60)
    assert np.mean(trained == y) > np.mean(majority == y)
    text = report(r, {"majority": majority, "bev-cnn": trained})
    assert "| majority |" in text and "| bev-cnn |" in text and "| 0.5 s |" in text.splitlines()[0]


def test_state_mlp_fits_its_training_rows(rows):
    from benchmarks.bench_outcome_readability import state_mlp

    _, r = rows
    y = r["outcome"]
    fitted = state_mlp(r["state"], y, r["state"])
    assert np.mean(fitted == y) > np.mean(y == np.bincount(y).argmax())


def test_agents_numbers_are_the_observation_of_prompt_state_agents():
    r = collect(ScenarioBank(4, seed=5, outcomes="varied"), seconds=0.5, prompt_agents=3)
    assert r["numbers"].shape == (len(r["outcome"]), 2 + 6 * 3) and np.isfinite(r["numbers"]).all()
    assert (r["numbers"][:, 2] == 1).any()  # some row sees an agent (the first row's valid flag)
