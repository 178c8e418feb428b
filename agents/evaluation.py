"""Evaluate policies on the replay environment and format the paper-style results table.

Open loop (NAVSIM-style): one decision per scene, the action scored by the PDM scorer; reported as means over
scenes of PDMS (or the map-free score where a scene has no map), its sub-scores, and the **collision rate** (share of
decisions whose trajectory collides with any agent within the 4 s horizon, at fault or not).
Closed loop: one episode per scene, re-planning every 0.5 s; the collision rate is the share of episodes that end
in an actual collision of the simulated ego.

Language accuracy and risk-prediction accuracy need a policy that states a safety label (the VLA of the learning
stages); for policies that do not, they are reported as ``n/a``, never as a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from agents.base import Policy, policy_input
from envs.replay_env import ReplayEnv

SUB_SCORES = ("nc", "dac", "ddc", "ttc", "ep", "comfort")
DRIVING_KEYS = ("pdms", "sp_pdms", "route_completion", "infraction_penalty", "driving_score", "stopped_share")
"""Keys of :attr:`EvalResult.driving` (closed loop)."""


@dataclass
class EvalResult:
    """Aggregated metrics of one policy (means over scenes / episodes; NaN where unavailable)."""

    policy: str
    mode: str
    num_scenes: int
    score: float
    """Mean PDMS (mean map-free score where the scenes have no map) [0, 1]."""
    score_kind: str
    """``"pdms"``, ``"map_free"`` or ``"mixed"``."""
    collision_rate: float
    """Share of decisions (open loop) / episodes (closed loop) with a collision."""
    sub_scores: dict[str, float] = field(default_factory=dict)
    """Mean NC, DAC, DDC, TTC, EP, C (open loop)."""
    mean_return: float = math.nan
    """Closed loop: mean episode return."""
    language_accuracy: float | None = None
    """Share of correct safety-label fields in the policy's text (None: the policy states no label)."""
    risk_accuracy: float | None = None
    """Share of correct risk-level predictions (None: the policy predicts none)."""
    per_type: dict[str, dict[str, float]] = field(default_factory=dict)
    """``{scenario_type: {"score": ..., "collision_rate": ..., "n": ...}}``."""
    driving: dict[str, float] = field(default_factory=dict)
    """Closed loop: means over episodes of the per-step ``pdms`` and ``sp_pdms`` (each episode's mean over its
    steps) and of the episode-end driving metrics ``route_completion``, ``infraction_penalty``,
    ``driving_score``, ``stopped_share`` (:mod:`envs.sim.metrics`)."""
    distinct_decisions: int | None = None
    """Open loop: how many different trajectories (poses rounded to 1 mm / 1 mrad) the policy gave for the
    ``num_scenes`` decisions: a policy whose decision no longer depends on its input gives few (a collapse GRPO can
    cause, docs/grpo_ablation.md)."""
    per_scene: list[dict[str, Any]] = field(default_factory=list)
    """One record per scene, in index order, the values the means above average: ``scene_id``, ``scenario_type``,
    ``score`` [0, 1] and ``collision`` (bool); closed loop also ``route_completion`` and ``driving_score`` [0, 1]
    (NaN where the episode has none). Paired comparisons between methods on the same scenes read them
    (:mod:`experiments.compare`)."""


def _mean(values: Sequence[float]) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if len(arr) else math.nan


def _per_type(types: list[str], scores: list[float], collisions: list[bool]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name in sorted(set(types)):
        idx = [i for i, t in enumerate(types) if t == name]
        out[name] = {
            "score": _mean([scores[i] for i in idx]),
            "collision_rate": float(np.mean([collisions[i] for i in idx])),
            "n": float(len(idx)),
        }
    return out


def evaluate_open_loop(policy: Policy, env: ReplayEnv, progress: bool = True,
                       on_scene: Callable[[int, dict[str, Any]], None] | None = None) -> EvalResult:
    """One decision per scene of ``env.source`` (in index order), scored by the environment's reward terms.

    Args:
        policy: a :class:`~agents.base.Policy` (privileged inputs only when it declares ``requires_privileged``).
        env: an open-loop :class:`ReplayEnv`.
        on_scene: called with ``(index, info)`` after each scene (e.g. to log curves).
    """
    if env.mode != "open_loop":
        raise ValueError(f"evaluate_open_loop: env.mode is {env.mode!r}, expected 'open_loop'")
    n = len(env.source)
    rows: dict[str, list[float]] = {k: [] for k in (*SUB_SCORES, "score")}
    collisions: list[bool] = []
    types: list[str] = []
    kinds: set[str] = set()
    per_scene: list[dict[str, Any]] = []
    decisions: set[bytes] = set()
    for i in tqdm(range(n), desc=f"open loop: {policy.name}", disable=not progress, leave=False):
        obs, info = env.reset(seed=i, options={"scene_index": i})
        policy.reset()
        action = np.asarray(policy.act(policy_input(env, obs, info, policy.requires_privileged)), dtype=np.float64)
        decisions.add(np.round(action, 3).tobytes())
        _, _, _, _, info = env.step(action)
        for k in rows:
            rows[k].append(float(info["rewards"][k]))
        collisions.append(bool(info["collision"]))
        types.append(info["scenario_type"])
        kinds.add(info["score_kind"])
        per_scene.append({"scene_id": str(info["scene_id"]), "scenario_type": info["scenario_type"],
                          "score": rows["score"][-1], "collision": collisions[-1]})
        if on_scene is not None:
            on_scene(i, info)
    return EvalResult(
        policy=policy.name,
        mode="open_loop",
        num_scenes=n,
        score=_mean(rows["score"]),
        score_kind=kinds.pop() if len(kinds) == 1 else "mixed",
        collision_rate=float(np.mean(collisions)) if collisions else math.nan,
        sub_scores={k: _mean(rows[k]) for k in SUB_SCORES},
        distinct_decisions=len(decisions),
        per_type=_per_type(types, rows["score"], collisions),
        per_scene=per_scene,
    )


def evaluate_closed_loop(policy: Policy, env: ReplayEnv, progress: bool = True, max_steps: int = 200,
                         episode_record: Callable[[ReplayEnv, dict[str, Any], int], dict[str, Any]] | None = None,
                         ) -> EvalResult:
    """One closed-loop episode per scene of ``env.source``; collision rate = episodes ending in a collision;
    :attr:`EvalResult.driving` holds the per-episode means of PDMS, SP-PDMS and the driving metrics.

    ``episode_record(env, last_info, start_frame)``: called at the end of every episode (the env still on its last
    frame); its dict is added to that episode's :attr:`EvalResult.per_scene` entry (analyses of the episodes, e.g.
    ``benchmarks.bench_collision_causes``)."""
    if env.mode != "closed_loop":
        raise ValueError(f"evaluate_closed_loop: env.mode is {env.mode!r}, expected 'closed_loop'")
    n = len(env.source)
    returns, scores, collisions, types = [], [], [], []
    driving: dict[str, list[float]] = {k: [] for k in DRIVING_KEYS}
    kinds: set[str] = set()
    per_scene: list[dict[str, Any]] = []
    for i in tqdm(range(n), desc=f"closed loop: {policy.name}", disable=not progress, leave=False):
        obs, info = env.reset(seed=i, options={"scene_index": i})
        policy.reset()
        start = env.t
        total, step_scores, collided = 0.0, [], False
        step_terms: dict[str, list[float]] = {"pdms": [], "sp_pdms": []}
        for _ in range(max_steps):
            action = policy.act(policy_input(env, obs, info, policy.requires_privileged))
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            step_scores.append(float(info["rewards"]["score"]))
            for k, values in step_terms.items():
                values.append(float(info["rewards"].get(k, math.nan)))
            kinds.add(info["score_kind"])
            if terminated or truncated:
                collided = info.get("termination_reason") == "collision"
                break
        returns.append(total)
        scores.append(_mean(step_scores))
        for k, values in step_terms.items():
            driving[k].append(_mean(values))
        metrics = info.get("driving_metrics") or {}
        for k in DRIVING_KEYS[2:]:
            driving[k].append(float(metrics.get(k, math.nan)))
        collisions.append(collided)
        types.append(info["scenario_type"])
        per_scene.append({"scene_id": str(info["scene_id"]), "scenario_type": info["scenario_type"],
                          "score": scores[-1], "collision": collided,
                          "route_completion": driving["route_completion"][-1],
                          "driving_score": driving["driving_score"][-1],
                          **(episode_record(env, info, start) if episode_record is not None else {})})
    return EvalResult(
        policy=policy.name,
        mode="closed_loop",
        num_scenes=n,
        score=_mean(scores),
        score_kind=kinds.pop() if len(kinds) == 1 else "mixed",
        collision_rate=float(np.mean(collisions)) if collisions else math.nan,
        mean_return=_mean(returns),
        per_type=_per_type(types, scores, collisions),
        driving={k: _mean(v) for k, v in driving.items()},
        per_scene=per_scene,
    )


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "nan" if math.isnan(value) else f"{100.0 * value:.1f}"


def results_table(results: Sequence[EvalResult]) -> str:
    """The paper-style table: PDMS, collision rate, language accuracy, risk prediction accuracy (all in %),
    then the open-loop sub-scores."""
    head = ["method", "mode", "scenes", "PDMS", "collision %", "lang acc %", "risk acc %", *[s.upper() for s in SUB_SCORES]]
    lines = []
    for r in results:
        score_name = "" if r.score_kind == "pdms" else f" ({r.score_kind})"
        lines.append([
            r.policy, r.mode, str(r.num_scenes), _pct(r.score) + score_name, _pct(r.collision_rate),
            _pct(r.language_accuracy), _pct(r.risk_accuracy),
            *[_pct(r.sub_scores.get(s)) if s in r.sub_scores else "-" for s in SUB_SCORES],
        ])
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(head)] if lines else [len(h) for h in head]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in lines]
    return "\n".join(out)
