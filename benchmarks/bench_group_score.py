"""Does GRPO's group score pay for slowing down? The degenerate check of the group score (a benchmark: prints a
table, asserts nothing)::

    python -m benchmarks.bench_group_score --num-scenes 32 --seed 8300 [--roads families] [--fractions 1,0.9,0.8,0.6,0.3,0]

At every closed-loop decision of log replay on bank scenes (SYNTHETIC; the default bank ``--outcomes varied`` is
world v2's), the logged ego's own 4 s trajectory and the same path driven at fractions ``f`` of its speed (pose k at
time ``f * t_k`` along the logged path, :func:`slowed`; ``f = 0`` stays at the start pose) are scored together by
the env's ``score_group``, GRPO's group score with the default :class:`envs.sim.reward.RewardConfig`. Decisions with
less than the full 4 s of logged future are left out (the logged action repeats the log's last pose there, a stop
that is itself uncomfortable). Per outcome of the logged drive (normal, benign, near-miss, collision:
:func:`benchmarks.bench_collision_causes.scene_outcome`) and fraction: the mean group reward, the share of states
where the slowed trajectory scores above the log's own, the share whose 4 s plan collides, and the mean SP-EP / TTC
/ comfort terms.

What it answers: a policy that cannot tell a benign scene from a colliding one gains from slowing everywhere when
the collision scenes pay for slowing and the safe scenes do not charge for it. Measured 2026-12-07 (32 training
scenes of bank 8300, world v2, road families): on normal and benign scenes the log's trajectory beats its 0.8x
version in 100% of the states (group reward 0.914 against 0.723 normal, 0.915 against 0.834 benign), on collision
scenes slowing pays (-1.00 for the log, -0.88 at 0.8x, +0.20 at a stop) (docs/grpo_ablation.md, "Where the
closed-loop collisions are").

``--closed-loop``: the group score's own **best response**, closed loop (docs/grpo_ablation.md, "The group score's
own best response"). :class:`GroupScoreBestResponse` is a privileged planner that at every decision scores the
logged ego's path from the current pose driven at each fraction (:func:`slowed` of
:class:`agents.baselines.LogReplayPolicy`'s action) with the env's ``score_group`` and executes the highest-rated
one: what GRPO, a contextual bandit on that score, could at best learn over this family where the policy tells the
states apart. One episode per scene (:func:`agents.evaluation.evaluate_closed_loop`) for log replay and the best
response; per outcome of the logged drive: collision %, route completion RC %, driving score DS %, median speed /
log (:func:`benchmarks.bench_collision_causes.episode_facts`) and the mean fraction chosen. ``--ep-weight`` and
``--w-collision`` change the score's progress weight (``PDMConfig.ep_weight``, NAVSIM 5) and collision term
(``RewardConfig.w_collision``) for both the table and the best response::

    python -m benchmarks.bench_group_score --closed-loop --seed 8400 --num-scenes 96 --road-families all

``--futures log,cv,cv_hazard,cv_background,ctra,ctra_hazard,learned,worst``: one best-response row per future the
candidates are scored against (:data:`FUTURES`): the logged futures (the default), constant-velocity forecasts of
every agent, of the hazard only or of the background only, every agent (the hazard only) turning and accelerating as
over its last 0.5 s, every agent forecast by a learned model (``learned``, ``--forecaster FILE`` from
:mod:`benchmarks.bench_forecast`), or the worst case over ``cv``, ``ctra`` and that model (``worst``)
(docs/grpo_ablation.md, "The best response with forecast futures" and the sections after it); the episodes themselves
always replay the logs.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections import defaultdict
from typing import Any, Sequence

import numpy as np

from agents.base import Policy, PolicyInput, policy_input
from agents.baselines import LogReplayPolicy, make_baseline
from benchmarks.bench_collision_causes import OUTCOMES, episode_facts, scene_outcome
from envs.replay_env import EnvConfig, Forecast, ReplayEnv
from envs.scenes.scene import Scene, designated_hazard
from envs.sim.scoring import present_forecast, recent_motion, slowed
from envs.sim.reward import RewardConfig
from rewards.config import PDMConfig
from rewards.reference_planner import forecast_problem

TERMS = ("reward", "is_collision", "sp_ep", "ttc", "comfort")
"""``score_group`` terms kept per scored trajectory."""


def score_states(source, fractions: Sequence[float], horizon: float = 4.0,
                 config: EnvConfig | None = None) -> dict[str, list[np.ndarray]]:
    """``{outcome: [(F, len(TERMS)) per state]}``: the log's trajectory slowed to each fraction, scored together at
    every closed-loop decision of log replay with a full ``horizon`` of logged future (``config``: the env's
    scorer and reward; default ``EnvConfig(bev=None)``)."""
    env = ReplayEnv(source, "closed_loop", config or EnvConfig(bev=None))
    policy = make_baseline("log_replay")
    out: dict[str, list[np.ndarray]] = defaultdict(list)
    for i in range(len(source)):
        obs, info = env.reset(seed=i, options={"scene_index": i})
        outcome = scene_outcome(env.scene)
        for _ in range(400):
            if info.get("logged_horizon", horizon) < horizon - 1e-9:
                break
            action = policy.act(policy_input(env, obs, info, True))
            scored = env.score_group(np.stack([slowed(action, f) for f in fractions]))
            out[outcome].append(np.stack([np.asarray(scored[t], dtype=np.float64) for t in TERMS], axis=-1))
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
    return out


class GroupScoreBestResponse(Policy):
    """Privileged planner: at every decision executes :meth:`envs.replay_env.ReplayEnv.best_response`, the logged
    ego's path from the current pose driven at each of ``fractions`` of its speed (:func:`slowed`), scored together by
    ``env.score_group``, the one with the highest ``reward`` (GRPO's group score; ties: the first of ``fractions``).
    :attr:`chosen` collects the fraction of every decision since :meth:`reset`. Bound to the env whose decisions it
    scores (a benchmark instrument, not an agent)."""

    name = "group_score_best_response"
    requires_privileged = True

    def __init__(self, env: ReplayEnv, fractions: Sequence[float], futures: str = "log",
                 forecaster: Any = None) -> None:
        if not fractions:
            raise ValueError("GroupScoreBestResponse: fractions is empty")
        if futures not in FUTURES:
            raise ValueError(f"GroupScoreBestResponse: futures must be one of {FUTURES}, got {futures!r}")
        if (futures in ("learned", "worst")) != (forecaster is not None):
            raise ValueError("GroupScoreBestResponse: a forecaster goes with futures 'learned' / 'worst' and only "
                             "with them")
        self.forecaster = forecaster
        self.env = env
        self.fractions = [float(f) for f in fractions]
        self.futures = futures
        if futures != "log":  # the progress bar's label
            self.name = f"{type(self).name}_{futures}"
        self.chosen: list[float] = []

    def reset(self) -> None:
        self.chosen = []

    def act(self, inp: PolicyInput) -> np.ndarray:
        inp.require_privileged(self.name)
        forecast = forecast_for(self.futures, self.env.scene, self.env.config.pdm, self.forecaster)
        best = self.env.best_response(self.fractions, forecast)
        self.chosen.append(best["fraction"])
        return best["trajectory"]


FUTURES = ("log", "cv", "cv_hazard", "cv_background", "ctra", "ctra_hazard", "learned", "worst")
"""The other agents' futures the best response scores against (``--futures``): ``log`` their logged futures;
``cv`` every agent at constant velocity from its present box and velocity (PDM-Closed's forecast); ``cv_hazard``
the scene's designated hazard (:func:`envs.scenes.scene.designated_hazard`) at constant velocity, the others
logged; ``cv_background`` the hazard logged, every other agent at constant velocity; ``ctra`` every agent at the
constant turn rate and acceleration of its last :data:`envs.sim.scoring.MOTION_WINDOW` s of log
(:func:`~envs.sim.scoring.recent_motion`); ``ctra_hazard`` the hazard so, the others logged; ``learned`` every
agent forecast by a trained :class:`benchmarks.bench_forecast.AgentForecaster` (``--forecaster``); ``worst`` each
candidate scored under ``cv``, ``ctra`` and ``learned`` and kept at its lowest reward (the worst case over the
three). ``log``, ``cv`` and ``ctra`` are :func:`envs.sim.scoring.present_forecast`'s."""


def forecast_for(futures: str, scene: Scene, pdm: PDMConfig,
                 forecaster: Any = None) -> Forecast | list[Forecast] | None:
    """The ``forecast`` of :meth:`ReplayEnv.score_group` for one of :data:`FUTURES` on ``scene`` (None: ``log``;
    ``forecaster``: the :class:`benchmarks.bench_forecast.AgentForecaster` of ``learned``; ``worst``: the list of the
    three forecasts, for :meth:`ReplayEnv.best_response`'s worst case).
    Without a designated hazard (normal scenes) ``cv_hazard`` / ``ctra_hazard`` forecast no agent and
    ``cv_background`` every one."""
    if futures in ("log", "cv", "ctra"):
        return present_forecast(futures, scene, pdm)
    hazard = designated_hazard(scene)
    hazards = () if hazard is None else (hazard,)
    if futures == "cv_hazard":
        return functools.partial(forecast_problem, config=pdm, agent_ids=hazards)
    if futures == "cv_background":
        return lambda problem: forecast_problem(problem, pdm, [i for i in problem.agents.ids if i not in hazards])
    if futures == "ctra_hazard":
        return lambda problem: forecast_problem(problem, pdm, hazards, recent_motion(scene, problem.time_index))
    if futures in ("learned", "worst"):
        from benchmarks.bench_forecast import learned_problem

        if forecaster is None:
            raise ValueError(f"futures {futures!r} needs a forecaster (bench_forecast --out FILE, then --forecaster "
                             f"FILE)")
        learned = learned_problem(forecaster, scene, pdm)
        if futures == "learned":
            return learned
        return [forecast_for("cv", scene, pdm), forecast_for("ctra", scene, pdm), learned]
    raise ValueError(f"futures must be one of {FUTURES}, got {futures!r}")


def best_response_row(futures: str) -> str:
    """The table's row name of the best response against ``futures``."""
    return "group-score best response" + ("" if futures == "log" else f" ({futures} futures)")


def closed_loop_rows(source, fractions: Sequence[float], config: EnvConfig,
                     futures: Sequence[str] = ("log",), forecaster: Any = None) -> dict[str, list[dict]]:
    """``{row: [episode record]}`` for log replay and :class:`GroupScoreBestResponse` against each of ``futures``
    (:data:`FUTURES`; rows named by :func:`best_response_row`): one closed-loop episode per scene of ``source``;
    each record holds ``outcome``, ``collision``, ``route_completion``, ``driving_score``, ``speed_ratio`` and
    ``fraction`` (the mean fraction chosen, 1 for log replay); ``forecaster`` for ``learned`` and ``worst``."""
    from agents.evaluation import evaluate_closed_loop

    env = ReplayEnv(source, "closed_loop", config)
    planners = [(best_response_row(f), GroupScoreBestResponse(
        env, fractions, f, forecaster if f in ("learned", "worst") else None)) for f in futures]
    rows: dict[str, list[dict]] = {}
    for row, policy in (("log replay", LogReplayPolicy(config.pdm)), *planners):

        def record(env_: ReplayEnv, info: dict, start: int, policy=policy) -> dict:
            chosen = getattr(policy, "chosen", None)  # log replay drives the log: fraction 1
            return {**episode_facts(env_, info, start), "fraction": float(np.mean(chosen)) if chosen else 1.0}

        result = evaluate_closed_loop(policy, env, progress=True, episode_record=record)
        rows[row] = result.per_scene
    return rows


def closed_loop_table(rows: dict[str, list[dict]]) -> str:
    """Markdown: per row and outcome of the logged drive (and all), episodes, collision %, RC %, DS %, median
    speed / log and the mean fraction chosen."""
    lines = ["| row | outcome | episodes | collision % | RC % | DS % | median speed / log | mean fraction chosen |",
             "|" + "---|" * 8]
    for row, eps in rows.items():
        for outcome in [*OUTCOMES, "unknown", "all"]:
            sel = eps if outcome == "all" else [e for e in eps if e["outcome"] == outcome]
            if not sel:
                continue
            ratios = [e["speed_ratio"] for e in sel if e.get("speed_ratio") is not None]
            lines.append(f"| {row} | {outcome} | {len(sel)} | {100 * np.mean([e['collision'] for e in sel]):.1f} | "
                         f"{100 * np.nanmean([e['route_completion'] for e in sel]):.1f} | "
                         f"{100 * np.nanmean([e['driving_score'] for e in sel]):.1f} | "
                         f"{np.median(ratios) if ratios else float('nan'):.2f} | "
                         f"{np.mean([e['fraction'] for e in sel]):.2f} |")
    return "\n".join(lines)


def table(states: dict[str, list[np.ndarray]], fractions: Sequence[float]) -> str:
    """Markdown: per outcome and fraction, mean group reward, share beating the log, collision share, terms."""
    if 1.0 not in fractions:
        raise ValueError("fractions: include 1 (the log's own trajectory, the comparison)")
    base = list(fractions).index(1.0)
    lines = ["| outcome | states | fraction of the log's speed | group reward | beats the log % | plan collides % | "
             "SP-EP | TTC | comfort |", "|" + "---|" * 9]
    for outcome in [*OUTCOMES, "unknown"]:
        if not states.get(outcome):
            continue
        a = np.stack(states[outcome])  # (S, F, terms)
        for j, f in enumerate(fractions):
            beats = np.mean(a[:, j, 0] > a[:, base, 0] + 1e-9)
            lines.append(f"| {outcome} | {len(a)} | {f:g} | {a[:, j, 0].mean():.3f} | {100 * beats:.0f} | "
                         f"{100 * a[:, j, 1].mean():.0f} | {np.nanmean(a[:, j, 2]):.2f} | "
                         f"{np.nanmean(a[:, j, 3]):.2f} | {np.nanmean(a[:, j, 4]):.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from envs.scenes.sources import bank_options, open_source

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_group_score", description=__doc__.splitlines()[0])
    p.add_argument("--num-scenes", type=int, default=32)
    p.add_argument("--seed", type=int, default=8300, help="bank seed")
    p.add_argument("--outcomes", choices=("varied", "collision"), default="varied")
    p.add_argument("--roads", choices=("classic", "families"), default="families")
    p.add_argument("--fractions", default="1,0.9,0.8,0.6,0.3,0", help="comma-separated fractions of the log's speed")
    p.add_argument("--road-families", default=None,
                   help="comma-separated road families of the bank, or 'all' (the pipeline's world-v2 held-out "
                        "scenes); default: the bank's training families")
    p.add_argument("--closed-loop", action="store_true",
                   help="closed-loop episodes of log replay and the group score's best response (module docstring)")
    p.add_argument("--ep-weight", type=float, default=PDMConfig.ep_weight,
                   help="the score's progress weight (PDMConfig.ep_weight)")
    p.add_argument("--w-collision", type=float, default=RewardConfig.w_collision,
                   help="the group score's collision term (RewardConfig.w_collision)")
    p.add_argument("--futures", default="log",
                   help=f"--closed-loop: comma-separated futures the best response scores against, one row each, "
                        f"of {', '.join(FUTURES)} (FUTURES)")
    p.add_argument("--forecaster", default=None,
                   help="--futures learned: a forecaster saved by python -m benchmarks.bench_forecast --out FILE")
    args = p.parse_args(argv)
    futures = [f for f in args.futures.split(",") if f]
    if not futures or any(f not in FUTURES for f in futures):
        p.error(f"--futures: expected a comma-separated list of {', '.join(FUTURES)}, got {args.futures!r}")
    forecaster = None
    if bool({"learned", "worst"} & set(futures)) != (args.forecaster is not None):
        p.error("--forecaster FILE goes with --futures ...,learned / worst (and only with them)")
    if args.forecaster is not None:
        from benchmarks.bench_forecast import AgentForecaster

        try:
            forecaster = AgentForecaster.load(args.forecaster)
        except ValueError as exc:
            p.error(str(exc))
    fractions = [float(f) for f in args.fractions.split(",")]
    if any(not 0.0 <= f <= 1.0 for f in fractions):
        p.error(f"--fractions: every fraction must lie in [0, 1], got {args.fractions!r}")
    families = None if args.road_families is None else (
        "all" if args.road_families == "all" else [f for f in args.road_families.split(",") if f])
    varied = args.outcomes == "varied"
    try:
        source = open_source("bank", num_scenes=args.num_scenes, seed=args.seed, **bank_options(
            outcomes=args.outcomes, outcome_mix=None, difficulty=0.5 if varied else None,
            roads=args.roads if args.roads != "classic" else None, background_density=None, expert=None,
            road_families=families if args.roads != "classic" else None))
    except ValueError as exc:
        p.error(str(exc))
    config = EnvConfig(bev=None, pdm=PDMConfig(ep_weight=args.ep_weight),
                       reward=RewardConfig(w_collision=args.w_collision))
    t0 = time.perf_counter()
    head = (f"SYNTHETIC bank: {args.num_scenes} scenes of seed {args.seed} (outcomes {args.outcomes}, roads "
            f"{args.roads}, families {args.road_families or 'training'}); group score with ep_weight "
            f"{args.ep_weight:g}, w_collision {args.w_collision:g}")
    if args.closed_loop:
        rows = closed_loop_rows(source, fractions, config, futures, forecaster)
        print(f"{head}; closed loop, fractions {fractions}, futures {futures}, {time.perf_counter() - t0:.0f} s\n")
        print(closed_loop_table(rows))
        return 0
    states = score_states(source, fractions, config=config)
    print(f"{head}; log replay's closed-loop decisions with a full 4 s logged horizon, "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(table(states, fractions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
