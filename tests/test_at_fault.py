"""Closed-loop termination on at-fault collisions only (issue 28): the env reuses the scorer's NC classification
(:func:`rewards.pdm.contacts_at_fault`, NAVSIM's ``get_collision_type``); a contact that is not the ego's fault is
recorded, not terminated or penalised, and its agent is ignored for the rest of the episode."""

from __future__ import annotations

import numpy as np
import pytest

from envs.replay_env import EnvConfig, ReplayEnv
from envs.scenes.bank import ScenarioBank, generate_scene
from envs.sim.reward import RewardConfig
from envs.sim.scoring import problem_from_scene, trajectory_from_log
from rewards.config import PDMConfig
from rewards.pdm import contacts_at_fault, score_states
from rewards.tracking import simulate_candidates

STATE_ONLY = EnvConfig(bev=None)


def test_contacts_at_fault_is_the_scorers_nc_classification():
    """For every candidate of a spread of groups whose first contact is classified, ``contacts_at_fault`` of that
    contact equals the scorer's verdict (NC < 1 with the at-fault time at the first contact)."""
    cfg = PDMConfig()
    rng = np.random.default_rng(0)
    seen = {True: 0, False: 0}
    for scenario_type in ("rear_end", "cut_in", "pedestrian_occluded", "red_light_runner_left", "head_on_drift"):
        for seed in (0, 1):
            scene = generate_scene(scenario_type, seed=seed)
            for lead in (10, 20, 30):
                t = max(0, scene.meta.collision_frame - lead)
                problem = problem_from_scene(scene, t, cfg)
                log = trajectory_from_log(scene, t, cfg)
                group = log[None] * rng.uniform(0.0, 1.6, (48, 1, 1))  # slower and faster along the log
                group[:, :, 1] += rng.uniform(-2.0, 2.0, (48, 1))  # and shifted sideways
                states = simulate_candidates(problem.ego, group, cfg)
                result = score_states(problem, states, cfg)
                for g in np.flatnonzero(result.collision):
                    step = int(round(result.collision_time[g] / cfg.sim_dt))
                    verdict = bool(contacts_at_fault(problem, states[g, step][None], [step],
                                                     [result.colliding_agent_id[g]], cfg)[0])
                    at_first = bool(result.at_fault_time[g] == result.collision_time[g])
                    assert verdict == at_first, (scenario_type, seed, t, g)
                    seen[verdict] += 1
    assert seen[True] >= 20 and seen[False] >= 5, seen  # both verdicts are exercised


def test_contacts_at_fault_names_bad_input():
    scene = generate_scene("rear_end", seed=0)
    problem = problem_from_scene(scene, 10)
    state = np.zeros((1, 7))
    with pytest.raises(ValueError, match="not all in problem.agents.ids"):
        contacts_at_fault(problem, state, [1], [123456789])
    with pytest.raises(ValueError, match=r"steps \[99\] outside the window"):
        contacts_at_fault(problem, state, [99], [int(problem.agents.ids[0])])
    with pytest.raises(ValueError, match=r"expected states \(1, 7\)"):
        contacts_at_fault(problem, np.zeros((2, 7)), [1], [int(problem.agents.ids[0])])


def _stand_still(env: ReplayEnv, index: int, seed: int):
    obs, info = env.reset(seed=seed, options={"scene_index": index})
    assert info["contacts"] == []
    steps = []
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(np.zeros((8, 3), np.float32))
        steps.append((reward, info))
        done = terminated or truncated
    return steps


def test_being_hit_while_stopped_is_recorded_not_terminated():
    """SYNTHETIC bank scene (seed 1000, index 1, normal): a follower runs into the ego braking to a standstill. The
    contact is not the ego's fault (the ego is stopped or the follower is behind it): the episode goes on to the
    log's end, no step pays the collision penalty, the contact is reported once (``info["contacts"]``, then the
    agent is ignored while the boxes overlap) and counted in the driving metrics, not as an infraction."""
    bank = ScenarioBank(2, seed=1000)
    env = ReplayEnv(bank, "closed_loop", STATE_ONLY)
    steps = _stand_still(env, 1, 4243)
    contacts = [c for _, info in steps for c in info["contacts"]]
    last = steps[-1][1]
    assert len(contacts) == 1, contacts
    assert last["termination_reason"] == "time_limit"
    assert all(info["rewards"]["terminal_collision"] == 0.0 and not info["collision"] for _, info in steps)
    assert all(reward > -0.5 for reward, _ in steps)  # no crash penalty (progress reward of a stop: ~0)
    metrics = last["driving_metrics"]
    assert metrics["contacts_not_at_fault"] == 1 and metrics["infractions"] == {}
    assert metrics["driving_score"] == metrics["route_completion"]  # IP 1: no infraction


def test_an_at_fault_collision_still_ends_the_episode_with_the_penalty():
    """Replaying the log of a rear-end accident (the ego drives into its lead: its front bumper, its fault) ends in a
    collision with the logged agent and the progress reward's crash penalty (return <= -w_terminal_collision)."""
    scene = generate_scene("rear_end", seed=3)
    env = ReplayEnv([scene], "closed_loop", STATE_ONLY)
    env.reset(seed=0)
    done, ret = False, 0.0
    while not done:
        _, reward, terminated, truncated, info = env.step(env.logged_action())
        ret += reward
        done = terminated or truncated
    assert info["termination_reason"] == "collision" and info["collision"]
    assert info["colliding_agent"] == scene.meta.colliding_agent_id and info["contacts"] == []
    assert ret <= -RewardConfig().w_terminal_collision + 1e-9
    assert info["driving_metrics"]["infractions"] == {"vehicle": 1}
