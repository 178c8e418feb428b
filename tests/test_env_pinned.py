"""Pinned closed-loop episodes of the default ReplayEnv (128 px BEV, default reward): the env's speed work (issue 31)
must not change what an episode returns. ``tests/data/env_pinned.json`` holds, per step of a fixed sequence (6
SYNTHETIC bank scenes, log-replay and seeded random actions, resets included), the reward, every
``info["rewards"]`` term, the termination, the frame and a SHA-256 of the BEV, plus the state observation arrays.
Floats are compared to 1e-9 (relative) so a last-bit difference of a transcendental on another CPU does not fail
it; the BEV hashes are exact (OpenCV rasterises integer fixed-point coordinates).

Regenerate only for an intended behaviour change: ``python -m tests.test_env_pinned`` (and say why in the commit).
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from envs.replay_env import EnvConfig, ReplayEnv
from envs.spaces import clip_trajectories
from envs.wrappers import kinematic_trajectories

GOLDEN = Path(__file__).parent / "data" / "env_pinned.json"


def _obs(obs) -> dict:
    out = {k: np.asarray(v, dtype=np.float64).ravel().tolist() for k, v in obs.items() if k != "bev"}
    out["bev_sha256"] = hashlib.sha256(np.ascontiguousarray(obs["bev"]).tobytes()).hexdigest()
    return out


def record(steps: int = 80, config: EnvConfig | None = None) -> list[dict]:
    """The pinned sequence: default config, 6 bank scenes, every third action the log, else seeded random."""
    env = ReplayEnv("bank", "closed_loop", EnvConfig() if config is None else config, num_scenes=6)
    rng = np.random.default_rng(1)
    obs, info = env.reset(seed=2)
    rows = [{"reset": True, "scene_id": info["scene_id"], "t": info["t"], "obs": _obs(obs)}]
    for i in range(steps):
        if i % 3:
            action = clip_trajectories(kinematic_trajectories(rng.uniform(-1, 1, (8, 2)), 20.0, 0.6))
        else:
            action = env.logged_action()
        obs, reward, terminated, truncated, info = env.step(action)
        rows.append({"reward": float(reward), "terminated": bool(terminated), "truncated": bool(truncated),
                     "t": info["t"], "reason": info["termination_reason"], "contacts": info["contacts"],
                     "rewards": {k: float(v) for k, v in info["rewards"].items()}, "obs": _obs(obs),
                     "driving_metrics": info.get("driving_metrics")})
        if terminated or truncated:
            obs, info = env.reset()
            rows.append({"reset": True, "scene_id": info["scene_id"], "t": info["t"], "obs": _obs(obs)})
    return rows


def _close(a, b, path: str) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and sorted(a) == sorted(b), path
        for k in a:
            _close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, str):
        if math.isnan(a):
            assert b is None or math.isnan(b), (path, a, b)
        else:
            assert b == pytest.approx(a, rel=1e-9, abs=1e-12), (path, a, b)
    else:
        assert a == b, (path, a, b)


def test_default_env_episodes_are_pinned():
    golden = json.loads(GOLDEN.read_text())
    rows = json.loads(json.dumps(record(), allow_nan=True))
    assert len(rows) == len(golden)
    for i, (got, want) in enumerate(zip(rows, golden)):
        _close(want, got, f"row {i}")


EP_TERMS = ("ep", "pdms", "sp_ep", "sp_pdms", "score")
"""The terms that depend on the EP reference (``score``: SP-PDMS, the map-free score without a map)."""


def test_without_a_reference_the_progress_reward_is_unchanged():
    """``EnvConfig(reference=None)`` plans no EP reference (the largest cost of a step that leaves the log,
    ``benchmarks/bench_env.py``): with the default progress-first reward, rewards, terminations, observations and
    every term but EP, PDMS, SP-EP, SP-PDMS and the score equal the pinned default's (only those are normalised
    among the scored trajectory instead)."""
    golden = json.loads(GOLDEN.read_text())
    rows = json.loads(json.dumps(record(config=EnvConfig(reference=None)), allow_nan=True))
    assert len(rows) == len(golden)
    changed = 0
    for i, (got, want) in enumerate(zip(rows, golden)):
        for name in EP_TERMS:
            if "rewards" in want:
                a, b = want["rewards"].pop(name), got["rewards"].pop(name)
                changed += not (a == b or (math.isnan(a) and math.isnan(b)))
        _close(want, got, f"row {i}")
    assert changed > 10  # the EP terms do change: the comparison is not vacuous


if __name__ == "__main__":
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(record(), allow_nan=True))
    print(f"wrote {GOLDEN}")
