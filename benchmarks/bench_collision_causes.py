"""Where and why the learned rows of finished runs crash: closed-loop collisions by the scene's outcome, the agent
hit and where the ego is against its own log at the contact (a benchmark: prints tables, asserts nothing)::

    python -m benchmarks.bench_collision_causes --runs RUN_0 RUN_1 RUN_2 -- <the runs' own overrides>

The overrides restate the runs' configuration (as for ``python -m experiments.reevaluate``; each run's ``seed`` is
read from its ``results.json`` and the rest is checked against it, every differing key named). Every row of
``algo.methods`` is loaded as the run trained it and driven once per held-out scene (the run's own closed-loop
evaluation: the same episodes, collisions and scenes as its ``per_scene.jsonl``). For every episode it records the
held-out scene's outcome (``normal`` or the bank's geometry-decided ``benign`` / ``near_miss`` / ``collision``,
``meta.extra["outcome"]``: what the **logged** drive does), and for every episode ending in a collision:

* ``hazard``: the agent hit is the scenario's hazard (:func:`envs.scenes.scene.designated_hazard`), else background
  traffic;
* ``lag`` [m]: the ego's arc length along its route at the contact frame minus the logged ego's at the same frame
  (``envs.observation.Route``): negative = behind its log (it slowed or hesitated), positive = ahead of it;
* ``offset_m`` [m]: the ego's distance from its logged path at contact (how far it left the logged lane line);
* the ego's speed at contact and NAVSIM's collision type (``benchmarks.bench_oracle.collision_kind``), and how far
  into the episode the contact is [s].

Tables: per row and outcome, episodes, the median of the episodes' speed ratio (the ego's mean speed over the
frames it drove / the logged ego's over the same frames), collision rate, then over the collisions the hazard share,
the share behind its log by more than ``--lag-margin`` m, ahead by more, the median lag, the median offset, the
speeds at contact and the collision types. ``--out`` writes every episode as JSON lines, ``--merge OUT_1 OUT_2 ...``
prints the table of several such files (runs driven in parallel). SYNTHETIC bank scenes only (the outcome is a
property of the generated bank).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from envs.scenes.scene import designated_hazard

OUTCOMES = ("normal", "benign", "near_miss", "collision")
"""Outcome classes of a held-out scene: a normal scene, or the varied bank's geometry-decided outcome of its log."""


def scene_outcome(scene: Any) -> str:
    """``normal`` for a scene without a hazard, else the bank's ``meta.extra["outcome"]`` (``collision`` for a scene
    of the collision-only bank, whose logs all crash); ``unknown`` when neither applies."""
    if scene.meta.scenario_type == "normal":
        return "normal"
    outcome = scene.meta.extra.get("outcome")
    if outcome is not None:
        return str(outcome)
    return "collision" if scene.meta.is_accident else "unknown"


def contact_record(env: Any, info: dict[str, Any], start: int) -> dict[str, Any]:
    """The facts of a closed-loop episode's collision (module docstring), read at the contact frame ``env.t``."""
    from shapely.geometry import LineString, Point

    from benchmarks.bench_oracle import collision_kind
    from envs.observation import Route

    scene, t = env.scene, env.t
    agent = int(info["colliding_agent"])
    route = Route.from_scene(scene)
    lag = route.project(env.ego_poses[t, :2]) - route.project(scene.ego_poses[t, :2])
    offset = LineString(scene.ego_poses[:, :2]).distance(Point(*env.ego_poses[t, :2]))
    speed, kind = collision_kind(env, agent)
    hazard = designated_hazard(scene)
    return {"scene_id": scene.scene_id, "scenario_type": scene.meta.scenario_type,
            "hazard": hazard is not None and int(hazard) == agent, "agent": agent, "lag_m": float(lag),
            "offset_m": float(offset),
            "speed": speed, "log_speed": float(np.hypot(*scene.ego_velocities[t])), "kind": kind,
            "seconds": (t - start) * scene.dt}


def episode_facts(env: Any, info: dict[str, Any], start: int) -> dict[str, Any]:
    """What this benchmark adds to an episode's record (:func:`agents.evaluation.evaluate_closed_loop`'s
    ``episode_record``): ``outcome``, ``speed_ratio`` (the ego's mean speed over the frames it drove / the logged
    ego's over the same frames; None where the log is slower than 0.5 m/s on average) and ``contact`` (the
    collision's :func:`contact_record`, None without a collision)."""
    frames = slice(start + 1, env.t + 1)  # the driven frames
    driven = np.hypot(*env.scene_view.ego_velocities[frames].T).mean() if env.t > start else np.nan
    logged = np.hypot(*env.scene.ego_velocities[frames].T).mean() if env.t > start else np.nan
    collided = info.get("termination_reason") == "collision"
    return {"outcome": scene_outcome(env.scene), "speed_ratio": float(driven / logged) if logged > 0.5 else None,
            "contact": contact_record(env, info, start) if collided else None}


def drive(policy: Any, env: Any) -> list[dict[str, Any]]:
    """The run's own closed-loop evaluation (:func:`agents.evaluation.evaluate_closed_loop`, one episode per scene of
    ``env.source``) with :func:`episode_facts` added; per episode ``{"scene_id", "outcome", "collision",
    "speed_ratio", "contact"}``."""
    from agents.evaluation import evaluate_closed_loop

    result = evaluate_closed_loop(policy, env, progress=False, episode_record=episode_facts)
    keys = ("scene_id", "outcome", "collision", "speed_ratio", "contact")
    return [{k: entry[k] for k in keys} for entry in result.per_scene]


def run_context(run: Path, overrides: Sequence[str]) -> Any:
    """The pipeline :class:`~experiments.pipeline.Context` of a finished run (its trained stages' outputs), from the
    overrides restating its configuration (``seed`` from its ``results.json``;
    :func:`experiments.reevaluate.restated_config`: ``SystemExit`` naming what differs)."""
    from experiments.pipeline import Context, _absolute, load_state
    from experiments.reevaluate import restated_config

    results = run / "results.json"
    if not results.is_file():
        raise SystemExit(f"--runs: {results} does not exist (finish the run first)")
    saved = json.loads(results.read_text())["config"]
    state = load_state(run)
    ctx = Context(out=run, cfg=restated_config(run, saved, [*overrides, f"seed={saved['seed']}"]))
    for name, stage in state.get("stages", {}).items():
        if stage.get("status") == "done":
            ctx.outputs[name] = _absolute(run, stage.get("outputs", {}))
    return ctx


def read_episodes(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """The records of ``--out`` JSON-lines files, in order (``--merge``)."""
    return [json.loads(line) for path in paths for line in path.read_text().splitlines()]


def write_episodes(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """``records`` as JSON lines at ``path`` (temp file, then rename) and a line saying so (``--out``)."""
    from envs.atomic import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in records))
    print(f"\nepisodes: {path}")


def summary(episodes: dict[str, list[dict[str, Any]]], lag_margin: float) -> str:
    """The per-row, per-outcome table (module docstring) in Markdown."""
    lines = ["| row | outcome | episodes | median speed / log | collision % | hazard hit % | behind log % | "
             "ahead of log % | median lag [m] | median offset [m] | median speed / log speed [m/s] | collision types |",
             "|" + "---|" * 12]
    for row, eps in episodes.items():
        for outcome in [*OUTCOMES, "unknown"]:
            sel = [e for e in eps if e["outcome"] == outcome]
            if not sel:
                continue
            hits = [e["contact"] for e in sel if e["collision"]]
            if hits:
                lags = np.array([h["lag_m"] for h in hits])
                kinds = Counter(h["kind"] for h in hits)
                cols = (f"{100 * np.mean([h['hazard'] for h in hits]):.0f} | "
                        f"{100 * np.mean(lags < -lag_margin):.0f} | {100 * np.mean(lags > lag_margin):.0f} | "
                        f"{np.median(lags):+.1f} | {np.median([h['offset_m'] for h in hits]):.1f} | "
                        f"{np.median([h['speed'] for h in hits]):.1f} / "
                        f"{np.median([h['log_speed'] for h in hits]):.1f} | "
                        + ", ".join(f"{k} {v}" for k, v in kinds.most_common()))
            else:
                cols = " | | | | | | "
            ratios = [e["speed_ratio"] for e in sel if e.get("speed_ratio") is not None]
            ratio = f"{np.median(ratios):.2f}" if ratios else ""
            lines.append(f"| {row} | {outcome} | {len(sel)} | {ratio} | {100 * len(hits) / len(sel):.1f} | {cols} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from envs.replay_env import EnvConfig, ReplayEnv
    from experiments.builders import env_config, sources, start_steering
    from experiments.registry import get_method

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_collision_causes", description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", type=Path, help="finished run folders (one per run seed)")
    p.add_argument("--merge", nargs="+", type=Path, default=None,
                   help="print the table of earlier --out files together (no driving)")
    p.add_argument("--methods", default=None, help="comma-separated rows (default: the runs' algo.methods)")
    p.add_argument("--lag-margin", type=float, default=2.0, help="behind / ahead of the log by more than this [m]")
    p.add_argument("--out", type=Path, default=None, help="JSON lines of every episode (rows, runs, contacts)")
    p.add_argument("overrides", nargs="*", help="the runs' own Hydra overrides (after --)")
    args = p.parse_args(argv)
    episodes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if args.merge:
        for record in read_episodes(args.merge):
            episodes[record["row"]].append(record)
        print(summary(episodes, args.lag_margin))
        return 0
    if not args.runs:
        p.error("give --runs (or --merge)")
    records = []
    for run in args.runs:
        ctx = run_context(run, args.overrides)
        _, held, text = sources(ctx)
        methods = args.methods.split(",") if args.methods else list(ctx.cfg.algo.methods)
        for name in methods:
            t0 = time.perf_counter()
            method = get_method(name)
            policy = method.load(ctx)
            config = EnvConfig(bev=None, reward=ctx.cfg.reward, start_steering=start_steering(ctx)) \
                if method.privileged_view else env_config(ctx)
            eps = drive(policy, ReplayEnv(held, "closed_loop", config))
            episodes[name] += eps
            records += [{"run": str(run), "row": name, **e} for e in eps]
            print(f"{run} {name}: {sum(e['collision'] for e in eps)} collisions in {len(eps)} episodes "
                  f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"\n{len(args.runs)} runs; held-out scenes: {text}\n")
    print(summary(episodes, args.lag_margin))
    if args.out is not None:
        write_episodes(args.out, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
