"""Randomized agreement of the vectorized scorer with the shapely oracle on the built-in synthetic scenes.

Over 1,000+ small candidate groups (G = 1..2, to keep the shapely oracle fast) drawn from ``envs.scenes.bank`` scenes at
random decision times, :func:`rewards.pdm.score_states` and :func:`rewards.reference.score_states_reference` must
give the same sub-scores (within 1e-6, NaN == NaN), the same collision flags, first-contact times and object ids, and
the same at-fault / TTC times. Candidates mix noisy log trajectories, braking, stopping, swerves and random
8-pose trajectories; some groups get an extra object dropped on a candidate's path (a cone, a parked or slow car,
a car closing from behind) or lose their map, so every branch is exercised; the branch counts are printed and
each must occur a minimum number of times.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from envs.sim.scoring import problem_from_scene, trajectory_from_log
from rewards.config import PDMConfig
from rewards.pdm import PDMResult, score_states
from rewards.reference import score_states_reference
from rewards.tracking import SX, SY, SYAW, simulate_candidates
from rewards.types import AgentsFuture, ScoringProblem

bank_module = pytest.importorskip("envs.scenes.bank", reason="envs.scenes.bank (synthetic scenario bank) is not available")

NUM_SCENES = 24
NUM_GROUPS = 1050
SEED = 20240611
TOLERANCE = 1e-6
FLOAT_FIELDS = ("nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms", "progress", "masked_progress")
EXACT_FIELDS = ("collision", "at_fault_collision", "colliding_agent_id", "collision_time", "at_fault_time", "ttc_time")
MIN_BRANCH_COUNT = {
    "at_fault_agent": 10,
    "at_fault_static": 5,
    "not_at_fault_contact": 10,
    "dac_fail": 10,
    "ddc_below_1": 10,
    "ttc_fail": 10,
    "comfort_fail": 10,
    "ep_normalised": 10,
    "no_map": 10,
}


# ------------------------------------------------------------------------------------------------------ candidates
def _unicycle(rng: np.random.Generator, v0: float, config: PDMConfig) -> np.ndarray:
    """Random 8-pose trajectory ``(8, 3)``: constant acceleration and yaw rate from the current speed."""
    accel, yaw_rate = rng.uniform(-4.0, 3.0), rng.uniform(-0.5, 0.5)
    pose, v, out = np.zeros(3), v0, []
    for _ in range(config.num_poses):
        for _ in range(5):  # integrate at 0.1 s
            v = max(0.0, v + accel * 0.1)
            pose = pose + 0.1 * np.array([v * np.cos(pose[2]), v * np.sin(pose[2]), yaw_rate])
        out.append(pose.copy())
    return np.array(out)


def _candidate(rng: np.random.Generator, log: np.ndarray, v0: float, config: PDMConfig) -> tuple[str, np.ndarray]:
    """One random ego-frame candidate ``(8, 3)`` and its kind."""
    kind = rng.choice(["log", "brake", "stop", "swerve", "random"], p=[0.25, 0.15, 0.1, 0.25, 0.25])
    k = np.arange(1, config.num_poses + 1) / config.num_poses
    if kind == "log":
        traj = log + rng.normal(0.0, [0.3, 0.3, 0.02], log.shape)
    elif kind == "brake":
        traj = log * np.array([rng.uniform(0.1, 0.8), rng.uniform(0.1, 0.8), 1.0])
    elif kind == "stop":
        traj = rng.normal(0.0, [0.02, 0.02, 0.005], log.shape)
    elif kind == "swerve":
        shift = rng.choice([-1.0, 1.0]) * rng.uniform(1.0, 6.0)
        traj = log.copy()
        traj[:, 1] += shift * k**1.5
        traj[:, 2] += np.arctan2(1.5 * shift * np.sqrt(k) / config.horizon, max(v0, 1.0))
    else:
        traj = _unicycle(rng, v0, config)
    return str(kind), traj


def _inject_object(rng: np.random.Generator, problem: ScoringProblem, states: np.ndarray, config: PDMConfig):
    """``problem`` with one more object on the path of ``states[0]``: a cone/barrier, a parked or slow car, or a
    car closing in from behind. Returns ``(problem, kind)``."""
    kind = str(rng.choice(["static", "parked", "slow", "from_behind"]))
    steps = config.num_observation_steps
    time_s = np.arange(steps) * config.sim_dt
    s = int(rng.integers(5, config.num_sim_steps))
    heading = states[0, s, SYAW]
    forward = np.array([np.cos(heading), np.sin(heading)])
    left = np.array([-forward[1], forward[0]])
    anchor = states[0, s, [SX, SY]] + forward * rng.uniform(-1.0, 5.0) + left * rng.uniform(-2.0, 2.0)
    velocity = np.zeros(2)
    if kind == "static":
        size = (rng.uniform(0.3, 2.0), rng.uniform(0.3, 0.8))
    elif kind == "parked":
        size = (4.5, 1.9)
        velocity = forward * rng.choice([0.0, 0.03])
    elif kind == "slow":
        size = (4.5, 1.9)
        velocity = forward * rng.uniform(0.5, 4.0)
    else:
        size = (4.5, 1.9)
        velocity = forward * rng.uniform(8.0, 15.0)
        anchor = states[0, 0, [SX, SY]] - forward * rng.uniform(6.0, 12.0) + left * rng.uniform(-1.0, 1.0)
    start = anchor if kind == "from_behind" else anchor - velocity * s * config.sim_dt
    pose = np.column_stack([start[0] + velocity[0] * time_s, start[1] + velocity[1] * time_s,
                            np.full(steps, heading + rng.normal(0.0, 0.2))])
    a = problem.agents
    s_len = a.num_steps
    new_id = int(a.ids.max()) + 1 if a.num_agents else 1
    agents = AgentsFuture(
        ids=np.append(a.ids, new_id),
        is_static=np.append(a.is_static, kind == "static"),
        sizes=np.vstack([a.sizes, size]),
        poses=np.concatenate([a.poses, pose[None, :s_len]]),
        velocities=np.concatenate([a.velocities, np.tile(velocity, (1, s_len, 1))]),
        valid=np.vstack([a.valid, np.ones((1, s_len), dtype=bool)]),
    )
    return replace(problem, agents=agents), kind


# ------------------------------------------------------------------------------------------------------ comparison
def _mismatches(fast: PDMResult, slow: PDMResult) -> list[str]:
    """Human-readable differences between two results of the same group (empty when they agree)."""
    out = []
    if fast.map_available != slow.map_available:
        out.append(f"map_available {fast.map_available} != {slow.map_available}")
    for name in FLOAT_FIELDS:
        a, b = np.asarray(getattr(fast, name), float), np.asarray(getattr(slow, name), float)
        same = (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= TOLERANCE)
        if not same.all():
            out.append(f"{name}: vectorized {a} vs reference {b}")
    for name in EXACT_FIELDS:
        a, b = np.asarray(getattr(fast, name)), np.asarray(getattr(slow, name))
        if a.dtype.kind == "f":
            same = (np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=0.0, atol=1e-9)
        else:
            same = a == b
        if not np.all(same):
            out.append(f"{name}: vectorized {a} vs reference {b}")
    return out


def _count_branches(result: PDMResult, counts: Counter) -> None:
    at_fault = result.at_fault_collision
    counts["at_fault_agent"] += int(np.sum(at_fault & (result.nc == 0.0)))
    counts["at_fault_static"] += int(np.sum(at_fault & (result.nc == 0.5)))
    counts["not_at_fault_contact"] += int(np.sum(result.collision & ~at_fault))
    counts["ttc_fail"] += int(np.sum(result.ttc == 0.0))
    counts["comfort_fail"] += int(np.sum(result.comfort == 0.0))
    if result.map_available:
        counts["dac_fail"] += int(np.sum(result.dac == 0.0))
        counts["ddc_below_1"] += int(np.sum(result.ddc < 1.0))
        counts["ep_normalised"] += int(np.sum((result.ep > 0.0) & (result.ep < 1.0)))
    else:
        counts["no_map"] += len(result.nc)


# ------------------------------------------------------------------------------------------------------------ test
def test_vectorized_scorer_agrees_with_the_shapely_oracle():
    rng = np.random.default_rng(SEED)
    bank = bank_module.ScenarioBank(NUM_SCENES, seed=0)
    scenes = [bank[i] for i in range(NUM_SCENES)]
    configs = {True: PDMConfig(tracking=True), False: PDMConfig(tracking=False)}
    counts: Counter = Counter()
    failures: list[str] = []
    num_candidates = 0
    for group in range(NUM_GROUPS):
        scene = scenes[int(rng.integers(NUM_SCENES))]
        config = configs[bool(rng.random() < 0.2)]
        horizon_frames = int(round(config.horizon / scene.dt))
        t = int(rng.integers(0, scene.num_frames - horizon_frames))
        problem = problem_from_scene(scene, t, config)
        log = trajectory_from_log(scene, t, config)
        v0 = float(np.hypot(*problem.ego.velocity))
        size = int(rng.integers(1, 3))
        kinds, trajectories = zip(*(_candidate(rng, log, v0, config) for _ in range(size)))
        states = simulate_candidates(problem.ego, np.stack(trajectories), config)
        extra = "-"
        if rng.random() < 0.35:
            problem, extra = _inject_object(rng, problem, states, config)
        if rng.random() < 0.08:
            problem = replace(problem, map=None)
        reference_progress = None if rng.random() < 0.5 else float(rng.uniform(0.0, 40.0))

        fast = score_states(problem, states, config, reference_progress=reference_progress)
        slow = score_states_reference(problem, states, config, reference_progress=reference_progress)
        num_candidates += size
        _count_branches(slow, counts)
        diff = _mismatches(fast, slow)
        if diff:
            failures.append(
                f"group {group}: scene {scene.scene_id} t={t} tracking={config.tracking} candidates={kinds} "
                f"extra={extra} ref={reference_progress}: " + "; ".join(diff)
            )

    print(f"\nagreement: {NUM_GROUPS} groups, {num_candidates} candidates, {len(failures)} disagreeing groups")
    print("branch coverage: " + ", ".join(f"{k}={counts[k]}" for k in MIN_BRANCH_COUNT))
    assert not failures, f"{len(failures)} of {NUM_GROUPS} groups disagree; first ones:\n" + "\n".join(failures[:10])
    rare = {k: counts[k] for k, n in MIN_BRANCH_COUNT.items() if counts[k] < n}
    assert not rare, f"branches exercised too rarely: {rare} (minimums {MIN_BRANCH_COUNT})"
