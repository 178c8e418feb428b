"""The environments' reward: route progress first in closed loop (default), and a linear combination of named scorer
terms (HighwayEnv / Waymax style) for open loop, GRPO's group score and ``kind="score"``:

``reward = w_score * score + w_collision * collision`` (weights and score choice: one :class:`RewardConfig`, the same
object for the replay env, the CARLA env and GRPO's group score, which sums the ``reward`` term) where

* ``score`` is, when the scene has a map, **SP-PDMS** (default, ``RewardConfig.reward_score="sp_pdms"``): the PDM score
  with EP normalised against the **safe-progress reference** (the largest progress a careful proposal achieves
  safely against the logged agents, :func:`rewards.scorer.safe_progress_for`), so standing still earns EP 0 wherever
  moving safely was possible; or the NAVSIM-faithful ``pdms`` (``reward_score="pdms"``), whose EP reference is the
  PDM-Closed-like planner: on accident-heavy data that reference often collides, its masked progress is 0 and EP is
  1 for any candidate, which makes stopping free (measured: ``benchmarks/bench_degenerate.py``). Both are always
  reported (``pdms``, ``ep`` and ``sp_pdms``, ``sp_ep``). Without a map (DeepAccident) PDMS, DAC, DDC and EP
  are unavailable (NaN), and ``score`` is the **map-free score** (:func:`rewards.pdm.map_free_score` without a
  progress measure: ``NC * (w_ttc TTC + w_c C) / (w_ttc + w_c)``, with NAVSIM's weights 5 and 2
  ``NC * (5 TTC + 2 C) / 7``), reported under its own name ``map_free_score``, never as ``pdms``;
* ``collision`` is the scorer's collision term (``-PDMConfig.collision_penalty`` for a candidate with any ego
  collision in its 4 s horizon, at fault or not, else 0).

Closed loop adds ``w_terminal_collision * terminal_collision`` where ``terminal_collision`` is ``-1`` on the step in
which the simulated ego actually collides at fault (NAVSIM's classification; a contact that is not the ego's fault is
reported, not penalised: see :mod:`envs.replay_env`).

``RewardConfig.kind="progress"`` (the default) replaces the closed-loop step reward by **route progress first** (the
CaRL reward's shape: route completion as the single term, soft infractions multiply it down, a crash or leaving the
road ends the episode with a penalty that makes it worth less than stopping safely; :func:`progress_reward`). The
group score of GRPO and the open-loop reward stay the score above.

One soft infraction of the progress reward is the **minimum-speed infraction** (CARLA leaderboard 2.0, spec
``driving-score.md``, "Infraction penalty IP": "a minimum-speed infraction (driving much slower than surrounding
traffic; coefficient scales with the speed ratio)"): over a window, the ratio ``r`` of the ego's mean speed to the
mean speed of the surrounding traffic (scenario_runner's ``MinimumSpeedRouteTest``: ego and background-vehicle
speeds averaged over the frames where traffic exists, ``r = 1`` without traffic, an infraction when ``r < 1``),
here one window per step (:func:`min_speed_ratio`, traffic: :func:`traffic_speeds`). The leaderboard turns ``r``
into an IP coefficient ``1 - (1 - 0.7)(1 - r)`` per route checkpoint; the CaRL reward (Jaeger et al. 2025, its
``use_min_speed_infraction`` soft penalty) multiplies the step's route progress by ``clip(r, 0, 1)``. The step
factor here is ``1 - min_speed_penalty (1 - r)``: the default ``min_speed_penalty = 1`` is CaRL's (``0.3`` would be
the leaderboard's coefficient applied per step). Braking to a stop on a clear road drives its last metres far
slower than the traffic and keeps less of its progress (measured: ``benchmarks/bench_degenerate.py``); a crash still
returns at most ``-w_terminal_collision``, below any stop, so waiting for a real hazard is never worth less than
crashing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.scenes.scene import AgentClass, Scene
from rewards.config import PDMConfig
from rewards.pdm import map_free_score

REWARD_TERMS = ("nc", "dac", "ddc", "ttc", "ep", "comfort", "pdms", "sp_ep", "sp_pdms", "collision", "map_free_score",
                "score", "reward")
"""The float terms a step reports in ``info["rewards"]`` (map-dependent ones are NaN without a map)."""
REWARD_SCORES = ("sp_pdms", "pdms")
"""Scores the reward can use where the scene has a map (see the module docstring)."""
REWARD_KINDS = ("score", "progress")
"""Closed-loop step rewards: the scored action (``score``) or route progress first (``progress``, see
:func:`progress_reward`)."""
PROGRESS_TERMS = ("route_progress", "soft_factor", "speed_ratio")
"""Closed-loop terms of the progress-first reward reported in ``info["rewards"]`` (both kinds report them;
``speed_ratio`` is NaN on a step without surrounding traffic)."""
EP_TERMS = ("ep", "pdms", "sp_ep", "sp_pdms", "score")
"""The terms of :data:`REWARD_TERMS` that depend on the EP references (``score``: SP-PDMS or PDMS; the map-free score
without a map, where no reference exists); the progress-first step reward reads none of them, so the replay env
computes them when ``info["rewards"]`` is first read (:class:`envs.sim.terms.DeferredTerms`)."""
PARKED_SPEED = 0.5
"""A vehicle never faster than this over its log [m/s] is parked, not traffic (:func:`traffic_speeds`); the driving
metrics' ``stopped_speed``."""


@dataclass(frozen=True)
class RewardConfig:
    """The reward: which score and the weights of its terms. One object serves every consumer: the replay env
    (``EnvConfig.reward``), the CARLA env (``CarlaEnvConfig.reward``) and GRPO's group score (the ``reward`` term
    of ``score_group``); the pipeline's ``reward`` group instantiates it once (``_target_: envs.sim.reward.RewardConfig``)."""

    reward_score: str = "sp_pdms"
    """Score in the reward where the scene has a map (:data:`REWARD_SCORES`): ``"sp_pdms"`` (EP against the
    safe-progress reference: stopping earns EP 0 where moving safely was possible) or ``"pdms"`` (NAVSIM's EP, against
    the PDM-Closed-like reference). Both are always reported in ``info["rewards"]``."""
    w_score: float = 1.0
    """Weight of ``score`` (SP-PDMS or PDMS, or the map-free score without a map)."""
    w_collision: float = 1.0
    """Weight of the scorer's collision term (``-PDMConfig.collision_penalty`` for a candidate that collides within
    its 4 s horizon)."""
    w_terminal_collision: float = 1.0
    """Closed loop: penalty magnitude added once when the simulated ego collides at fault (the CARLA ego: on any
    collision) (``kind="score"``); with ``kind="progress"`` the penalty of such a collision or leaving the road is
    ``w_terminal_collision * (1 + the episode's progress reward so far)`` (see :func:`progress_reward`)."""
    kind: str = "progress"
    """The closed-loop step reward (:data:`REWARD_KINDS`): ``"progress"`` (default), route progress first (the CaRL
    reward's shape, Jaeger et al. 2025; :func:`progress_reward`), or ``"score"``, the weighted score of the action
    above (every step pays ``w_score * score``, also for standing still, which keeps 0.54x the safe driver's return
    on normal scenes: ``benchmarks/bench_degenerate.py --reward-kind score``). Open loop and GRPO's group score always
    use the score (PDMS stays the method's group score)."""
    ttc_penalty: float = 0.5
    """``kind="progress"``: a step's progress is scaled by ``1 - ttc_penalty`` when the action's plan violates the
    time-to-collision bound (TTC = 0)."""
    comfort_penalty: float = 0.2
    """``kind="progress"``: scale-down when the action's plan is uncomfortable (C = 0)."""
    lane_penalty: float = 0.5
    """``kind="progress"``: scale-down when the action's plan leaves the driving direction's lanes (DDC < 1:
    ``1 - lane_penalty * (1 - DDC)``)."""
    min_speed_penalty: float = 1.0
    """``kind="progress"``: the minimum-speed infraction (leaderboard 2.0; module docstring): a step's progress is
    scaled by ``1 - min_speed_penalty * (1 - r)``, ``r`` the ego's mean speed over the step as a fraction of the
    surrounding traffic's, capped at 1 (:func:`min_speed_ratio`). 1 (default): CaRL's soft penalty (progress times
    ``r``); 0.3: the leaderboard's coefficient 0.7 at ``r = 0``; 0: off (the reward before issue 28's bound)."""

    def __post_init__(self) -> None:
        if self.reward_score not in REWARD_SCORES:
            raise ValueError(f"RewardConfig.reward_score: expected one of {REWARD_SCORES}, got {self.reward_score!r}")
        if self.kind not in REWARD_KINDS:
            raise ValueError(f"RewardConfig.kind: expected one of {REWARD_KINDS}, got {self.kind!r}")
        for name in ("ttc_penalty", "comfort_penalty", "lane_penalty", "min_speed_penalty"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"RewardConfig.{name}: expected a number in [0, 1], got {value!r}")
        for name in ("w_score", "w_collision", "w_terminal_collision"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
                raise ValueError(f"RewardConfig.{name}: expected a finite number, got {value!r}")

    @classmethod
    def coerce(cls, config: "RewardConfig | dict | None") -> "RewardConfig":
        """``config`` as a :class:`RewardConfig` (None: defaults; a mapping of its fields)."""
        from envs.configuration import coerce_config

        return coerce_config(cls, config)


def reward_terms(result, pdm_config: PDMConfig, reward: RewardConfig = RewardConfig(),
                 safe_progress: float | None = None, ep_terms: bool = True) -> dict[str, np.ndarray]:
    """Every named term of a scored group and the resulting reward.

    Args:
        result: a ``rewards.pdm.PDMResult`` for G candidates (EP normalised against the NAVSIM-faithful reference).
        pdm_config: the scorer configuration used.
        reward: the score choice and weights (:class:`RewardConfig`).
        safe_progress: the safe-progress reference [m] (None: SP-PDMS normalises EP among the group).
        ep_terms: False skips the :data:`EP_TERMS` and ``reward`` (NaN), for a caller that computes them later.

    Returns:
        ``{name: (G,) float64}`` with the scorer's terms (``nc, dac, ddc, ttc, ep, comfort, pdms, collision`` ...),
        ``map_free_score``, ``score``, ``reward``, and ``(G,)`` arrays ``is_collision`` (bool),
        ``at_fault_collision`` (bool), ``collision_time`` [s] (NaN without a collision), ``colliding_agent_id``
        (int64, -1 without a collision) and ``ttc_time`` [s] (time of the first TTC failure, NaN without one; GRPO's
        label-consistency term reads it). Plain numpy, picklable.
    """
    terms = {name: np.asarray(value, dtype=np.float64) for name, value in result.terms(pdm_config).items()}
    mfs = map_free_score(terms["nc"], terms["ttc"], terms["comfort"], pdm_config)
    if ep_terms:
        sp = result.renormalized(safe_progress, pdm_config)
        terms["sp_ep"] = np.asarray(sp.ep, dtype=np.float64)
        terms["sp_pdms"] = np.asarray(sp.pdms, dtype=np.float64)
        chosen = terms[reward.reward_score]
        score = np.where(np.isnan(chosen), mfs, chosen)
    else:
        terms["ep"] = terms["pdms"] = terms["sp_ep"] = terms["sp_pdms"] = score = np.full(len(mfs), np.nan)
    out = dict(terms)
    out["map_free_score"] = mfs
    out["score"] = score
    out["reward"] = reward.w_score * score + reward.w_collision * terms["collision"]
    out["is_collision"] = np.asarray(result.collision, dtype=bool)
    out["at_fault_collision"] = np.asarray(result.at_fault_collision, dtype=bool)
    out["collision_time"] = np.asarray(result.collision_time, dtype=np.float64)
    out["colliding_agent_id"] = np.asarray(result.colliding_agent_id, dtype=np.int64)
    out["ttc_time"] = (np.full(len(out["score"]), np.nan) if result.ttc_time is None
                       else np.asarray(result.ttc_time, dtype=np.float64))
    return out


def soft_factor(ttc: float, comfort: float, ddc: float, reward: RewardConfig, speed_ratio: float = math.nan) -> float:
    """The progress scale-down of soft infractions, in ``[0, 1]``: of the chosen action's 4 s plan
    ``(1 - ttc_penalty (1 - TTC)) (1 - comfort_penalty (1 - C)) (1 - lane_penalty (1 - DDC))``, times
    ``1 - min_speed_penalty (1 - speed_ratio)`` for the driven step (:func:`min_speed_ratio`); a NaN term (no map:
    DDC; lazily scored steps: TTC, C, DDC; no surrounding traffic: the speed ratio) counts as no infraction."""
    def keep(value: float, penalty: float) -> float:
        return 1.0 if math.isnan(value) else 1.0 - penalty * (1.0 - float(value))

    return (keep(ttc, reward.ttc_penalty) * keep(comfort, reward.comfort_penalty) * keep(ddc, reward.lane_penalty)
            * keep(speed_ratio, reward.min_speed_penalty))


def traffic_speeds(scene: Scene, parked_speed: float = PARKED_SPEED) -> np.ndarray:
    """The surrounding traffic's mean speed per frame ``(T,)`` [m/s]: the mean speed of the scene's vehicles
    (``AgentClass.VEHICLE``: the leaderboard's test averages its background *vehicles*) valid at the frame, leaving
    out parked ones (never faster than ``parked_speed`` [m/s] over their valid frames); NaN at a frame without such a
    vehicle. Every vehicle of the scene counts, as the leaderboard counts every background vehicle of the town."""
    speeds = np.hypot(scene.agent_velocities[..., 0], scene.agent_velocities[..., 1])  # (N, T) [m/s]
    valid = np.asarray(scene.agent_valid, dtype=bool)
    moving = np.where(valid, speeds, 0.0).max(axis=1, initial=0.0) > parked_speed  # (N,)
    traffic = valid & ((scene.agent_classes == AgentClass.VEHICLE) & moving)[:, None]  # (N, T)
    count = traffic.sum(axis=0)
    total = np.where(traffic, speeds, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def min_speed_ratio(ego_speeds: np.ndarray, traffic: np.ndarray) -> float:
    """The minimum-speed ratio of one window (scenario_runner's ``MinimumSpeedRouteTest._set_traffic_event``): the
    ego's mean speed over the window's frames with traffic, divided by the traffic's mean speed over them, capped at
    1; NaN (no infraction) when no frame has traffic or the traffic stands still.

    Args:
        ego_speeds: ``(k,)`` ego speed at the window's frames [m/s].
        traffic: ``(k,)`` the traffic's mean speed at the same frames [m/s] (:func:`traffic_speeds`; NaN: none).
    """
    ego_speeds, traffic = np.asarray(ego_speeds, dtype=np.float64), np.asarray(traffic, dtype=np.float64)
    if ego_speeds.shape != traffic.shape or ego_speeds.ndim != 1:
        raise ValueError(f"min_speed_ratio: ego_speeds {ego_speeds.shape} and traffic {traffic.shape} must be the "
                         "same (k,) window")
    seen = ~np.isnan(traffic)
    mean_traffic = float(traffic[seen].mean()) if seen.any() else 0.0
    if mean_traffic <= 0.0:
        return math.nan
    return min(1.0, max(0.0, float(ego_speeds[seen].mean())) / mean_traffic)


def progress_reward(completion: float, factor: float, ended_badly: bool, earned: float,
                    reward: RewardConfig) -> tuple[float, float]:
    """One closed-loop step of the progress-first reward (``RewardConfig.kind="progress"``).

    ``r = factor * completion``: the route completion gained this step (the driving score's RC after the step minus
    RC before it, :func:`envs.sim.metrics.route_completion`: capped at 1, progress past the reference earns nothing,
    backing up loses what it gives back, never double counted), scaled down by soft infractions
    (:func:`soft_factor`); with every factor 1 an episode's progress rewards sum to its final RC. A step that ends
    the episode in a collision or off the road adds ``-w_terminal_collision * (1 + max(0, earned + r))``: the crash
    takes back every progress reward of the episode and costs ``w_terminal_collision`` more, so an episode that
    crashes returns at most ``-w_terminal_collision`` and any episode that stops safely (return >= 0) is worth more,
    whatever the crash's progress before it. Standing still earns 0 per step, except the first step of an episode
    whose reference progresses less than the driving metrics' ``min_reference_progress`` (RC is 1 there: the step
    gains it, whatever the ego does).

    Args:
        completion: route completion gained this step [fraction of the route; signed: backing up is negative].
        factor: :func:`soft_factor` of the chosen action.
        ended_badly: this step ended the episode in a collision or off the road.
        earned: the episode's progress rewards before this step.

    Returns:
        ``(progress_term, terminal_term)``: the step's reward is their sum.
    """
    term = float(factor) * float(completion)
    terminal = -reward.w_terminal_collision * (1.0 + max(0.0, earned + term)) if ended_badly else 0.0
    return term, terminal


def closed_loop_reward(terms: dict[str, float], completion: float, ended_badly: bool, earned: float,
                       reward: RewardConfig, speed_ratio: float = math.nan) -> float:
    """The step reward of a closed-loop env (replay or CARLA), in place: sets ``terms["route_progress"]`` (the route
    completion gained this step, a fraction of the route), ``terms["speed_ratio"]``, ``terms["soft_factor"]`` and
    ``terms["reward"]`` of the configured kind (``"progress"``: :func:`progress_reward`; ``"score"``: the scored
    action's reward already in ``terms`` plus ``w_terminal_collision * terms["terminal_collision"]``).

    Args:
        terms: the step's terms (the scored action's ``ttc``, ``comfort``, ``ddc``, ``reward`` and
            ``terminal_collision``: -1 on a collision, else 0).
        completion: route completion gained this step (RC after it minus RC before it,
            :func:`envs.sim.metrics.route_completion`).
        ended_badly: the step ended the episode in a collision or off the road.
        earned: the episode's progress rewards before this step.
        speed_ratio: the step's minimum-speed ratio (:func:`min_speed_ratio`; NaN: no traffic, no infraction).

    Returns:
        The episode's progress rewards after this step (unchanged for ``kind="score"``).
    """
    factor = soft_factor(terms["ttc"], terms["comfort"], terms["ddc"], reward, speed_ratio)
    term, terminal = progress_reward(completion, factor, ended_badly, earned, reward)
    terms["route_progress"], terms["soft_factor"] = float(completion), factor
    terms["speed_ratio"] = float(speed_ratio)
    if reward.kind == "progress":
        terms["reward"] = term + terminal
        return earned + term
    terms["reward"] += reward.w_terminal_collision * terms["terminal_collision"]
    return earned
