"""The closed-loop step's EP terms computed on first read (issue 31's env speed): :class:`envs.sim.terms.DeferredTerms`
behaves as the plain dict it replaces, and a ReplayEnv whose steps defer the EP references returns exactly what the
eager path returns, whenever the terms are read (SYNTHETIC bank scenes)."""

from __future__ import annotations

import copy
import json
import math
import pickle

import numpy as np
import pytest

from envs.replay_env import EnvConfig, ReplayEnv
from envs.sim.reward import EP_TERMS
from envs.sim.terms import PENDING, DeferredTerms
from envs.spaces import clip_trajectories
from envs.wrappers import kinematic_trajectories


def _terms(calls: list[int]) -> DeferredTerms:
    def compute() -> dict[str, float]:
        calls.append(1)
        return {"ep": 0.25, "score": 0.5}

    return DeferredTerms({"nc": 1.0, "ep": math.nan, "score": math.nan, "reward": 0.1}, ("ep", "score"), compute)


def test_keys_are_there_before_any_value_is_computed():
    calls: list[int] = []
    terms = _terms(calls)
    assert len(terms) == 4 and "ep" in terms and list(terms) == ["nc", "ep", "score", "reward"]
    assert set(terms.keys()) == {"nc", "ep", "score", "reward"}
    assert terms["nc"] == 1.0 and terms.get("reward") == 0.1 and terms.get("missing", 3) == 3
    assert calls == [] and terms.pending


@pytest.mark.parametrize("read", [
    lambda d: d["ep"], lambda d: d.get("score"), lambda d: list(d.items()), lambda d: list(d.values()),
    lambda d: dict(d), lambda d: {**d}, lambda d: d.copy(), lambda d: d == {}, lambda d: repr(d),
    lambda d: json.dumps(d), lambda d: pickle.loads(pickle.dumps(d)), lambda d: copy.deepcopy(d),
    lambda d: copy.copy(d), lambda d: d | {}, lambda d: {} | d, lambda d: (lambda **kw: kw)(**d),
])
def test_every_read_computes_the_deferred_values_once(read):
    calls: list[int] = []
    terms = _terms(calls)
    out = read(terms)
    assert calls == [1] and not terms.pending
    assert "PENDING" not in repr(out) and "deferred term" not in str(out)
    plain = {"nc": 1.0, "ep": 0.25, "score": 0.5, "reward": 0.1}
    assert terms == plain and plain == terms and dict(terms) == plain
    read(terms)
    assert calls == [1]  # computed at most once


def test_copies_are_plain_dicts_and_writes_are_kept():
    calls: list[int] = []
    terms = _terms(calls)
    assert type(pickle.loads(pickle.dumps(terms))) is dict and type(copy.deepcopy(terms)) is dict
    terms2 = _terms(calls)
    terms2["ep"] = 7.0  # a write computes first, so it is not overwritten later
    assert terms2["ep"] == 7.0 and terms2["score"] == 0.5
    assert dict.__getitem__(_terms([]), "ep") is PENDING  # only code bypassing the mapping sees the placeholder


def _random_action(rng: np.random.Generator) -> np.ndarray:
    return clip_trajectories(kinematic_trajectories(rng.uniform(-1, 1, (8, 2)), 20.0, 0.6))


def _run(env: ReplayEnv, steps: int, read_late: bool) -> list[tuple]:
    """A fixed sequence (log and seeded random actions, resets included); with ``read_late`` the infos of a whole
    episode are read only after it ended (the deferred terms computed after the env moved on)."""
    rng = np.random.default_rng(3)
    env.reset(seed=4)
    rows, pending = [], []
    for i in range(steps):
        action = env.logged_action() if i % 3 == 0 else _random_action(rng)
        obs, reward, terminated, truncated, info = env.step(action)
        pending.append((reward, terminated, truncated, info, obs["bev"].tobytes(), obs["history"].tobytes()))
        if not read_late or terminated or truncated:
            rows += [(r, te, tr, dict(inf["rewards"]), bev, hist) for r, te, tr, inf, bev, hist in pending]
            pending = []
        if terminated or truncated:
            env.reset()
    return rows + [(r, te, tr, dict(inf["rewards"]), bev, hist) for r, te, tr, inf, bev, hist in pending]


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("read_late", [False, True])
def test_deferred_steps_equal_the_eager_path_bit_for_bit(read_late):
    deferred = ReplayEnv("bank", "closed_loop", EnvConfig(), num_scenes=4)
    eager = ReplayEnv("bank", "closed_loop", EnvConfig(), num_scenes=4)
    eager._defer_ep_terms = False  # the path every step took before issue 31's change
    got, want = _run(deferred, 40, read_late), _run(eager, 40, False)
    assert len(got) == len(want)
    changed = 0
    for g, w in zip(got, want):
        assert g[0] == w[0] and g[1:3] == w[1:3] and g[4:] == w[4:]
        assert list(g[3]) == list(w[3])
        assert all(_same(g[3][k], w[3][k]) for k in w[3]), (g[3], w[3])
        changed += any(not _same(w[3][k], w[3]["nc"]) for k in EP_TERMS)
    assert changed  # the EP terms carry information (the comparison is not of constants)


def test_a_step_defers_the_reference_until_read():
    env = ReplayEnv("bank", "closed_loop", EnvConfig(), num_scenes=2)
    env.reset(seed=0)
    info = env.step(env.logged_action())[4]
    assert isinstance(info["rewards"], DeferredTerms) and info["rewards"].pending
    assert np.isfinite(info["rewards"]["sp_pdms"]) and not info["rewards"].pending
    scored = ReplayEnv("bank", "closed_loop", EnvConfig(reward={"kind": "score"}), num_scenes=2)
    scored.reset(seed=0)
    assert type(scored.step(scored.logged_action())[4]["rewards"]) is dict  # its step reward reads the score
