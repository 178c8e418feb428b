"""The learned path re-ranked by the group score at decision time (a benchmark: prints tables, asserts nothing)::

    python -m benchmarks.bench_rerank --runs RUN_0 RUN_1 RUN_2 [--methods sft_positive,anchor_grpo] \\
        [--futures cv] [--fractions 1,0.9,0.8,0.6,0.3,0] -- <the runs' own overrides>

Every row of every finished run (loaded as the run trained it, :mod:`benchmarks.bench_collision_causes`' loader,
the overrides restating the runs' configuration) is driven over the run's held-out scenes twice, one closed-loop
episode per scene each (:func:`agents.evaluation.evaluate_closed_loop`): **as trained**, and **re-ranked**
(:class:`ScoreReranked`, :meth:`ReplayEnv.best_response` with ``path=`` the policy's trajectory): at every decision
the policy's own trajectory ``(8, 3)`` [m, m, rad] is driven at each of ``--fractions`` of its speed
(:func:`envs.sim.scoring.slowed`), the ``F`` candidates are scored together by the env's group score against the
other agents' futures ``--futures`` (:data:`envs.sim.scoring.PRESENT_FUTURES`, default ``cv``: constant velocity
from their present states, PDM-Closed's forecast; :meth:`ReplayEnv.score_group`), and the highest ``reward`` is
executed (ties: the first fraction). The re-ranker reads the agents' present boxes and
velocities from the env, as PDM-Closed does: a measurement of what deciding the speed at decision time adds to a
learned path, not a policy that sees only its observation.

Printed: per row, as trained and re-ranked, collision rate, route completion and driving score [%] (mean over runs
and scenes) and the paired difference re-ranked - as trained with a hierarchical bootstrap 95% interval
(:func:`experiments.compare.paired_bootstrap`: runs, then scenes); ``--versus ROW`` adds every other row (as trained
and re-ranked) against ``ROW`` (as trained and re-ranked); ``--out`` writes every episode as JSON lines, ``--merge
OUT_1 OUT_2 ...`` prints the tables of such files together (runs driven in parallel).
SYNTHETIC or any bank the runs were evaluated on. docs/grpo_ablation.md, "The learned path re-ranked by the score at
decision time".
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agents.base import Policy, PolicyInput
from envs.replay_env import ReplayEnv
from envs.sim.scoring import BEST_RESPONSE_FRACTIONS, PRESENT_FUTURES

COLUMNS = ("collision", "route_completion", "driving_score")
"""Per-episode values compared (fractions; the evaluation's per-scene keys)."""


class ScoreReranked(Policy):
    """``base``'s trajectory at every decision, driven at the fraction of its speed the group score rates highest
    against ``futures`` (module docstring). Bound to the env whose decisions it scores (a benchmark instrument).
    :attr:`chosen` collects the fraction of every decision since :meth:`reset`."""

    requires_privileged = True

    def __init__(self, base: Policy, env: ReplayEnv, fractions: Sequence[float] = BEST_RESPONSE_FRACTIONS,
                 futures: str = "cv") -> None:
        fractions = [float(f) for f in fractions]
        if not fractions or any(not 0.0 <= f <= 1.0 for f in fractions):
            raise ValueError(f"ScoreReranked: fractions must be a non-empty list in [0, 1], got {fractions}")
        if futures not in PRESENT_FUTURES:
            raise ValueError(f"ScoreReranked: futures must be one of {PRESENT_FUTURES}, got {futures!r}")
        self.base = base
        self.env = env
        self.fractions = fractions
        self.futures = futures
        self.name = f"{getattr(base, 'name', type(base).__name__)}+rerank_{futures}"
        self.chosen: list[float] = []

    def reset(self) -> None:
        self.base.reset()
        self.chosen = []

    def act(self, inp: PolicyInput) -> np.ndarray:
        inp.require_privileged(self.name)
        best = self.env.best_response(self.fractions, self.futures, path=self.base.act(inp))
        self.chosen.append(best["fraction"])
        return best["trajectory"]


def episodes(policy: Policy, env: ReplayEnv) -> list[dict[str, Any]]:
    """One closed-loop episode per scene of ``env.source``: ``[{"scene_id", "collision", "route_completion",
    "driving_score"}]`` (fractions)."""
    from agents.evaluation import evaluate_closed_loop

    result = evaluate_closed_loop(policy, env, progress=False)
    return [{"scene_id": e["scene_id"], **{k: float(e[k]) for k in COLUMNS}} for e in result.per_scene]


def _paired(runs: dict[tuple[str, str], dict[str, dict[str, dict]]], a: tuple[str, str],
            b: tuple[str, str]) -> list[str]:
    """Markdown rows ``| b | a | column | a % | b % | b - a | [low, high] | runs |`` for ``(row, mode)`` ``a`` and
    ``b`` of ``runs`` (``{(row, mode): {run: {scene id: episode}}}``) over the runs both hold (hierarchical paired
    bootstrap on the same scenes)."""
    from experiments.compare import paired_bootstrap

    shared = [run for run in runs[a] if run in runs[b]]
    lines = []
    for col in COLUMNS:
        def sums(key: tuple[str, str], run: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
            return {sid: (np.array([e[col]]), np.ones(1)) for sid, e in runs[key][run].items()}

        res = paired_bootstrap([sums(a, run) for run in shared], [sums(b, run) for run in shared])
        lines.append(f"| {' '.join(b)} | {' '.join(a)} | {col} | {100 * res['a']:.1f} | {100 * res['b']:.1f} | "
                     f"{100 * res['diff']:+.1f} | [{100 * res['low']:+.1f}, {100 * res['high']:+.1f}] | {len(shared)} |")
    return lines


def summary(records: Sequence[dict[str, Any]], versus: str | None = None) -> str:
    """Per row: re-ranked against as trained, per column, with the paired difference and its interval; ``versus``
    (a row): every other row's re-ranked and as-trained episodes against that row's as trained and re-ranked too
    (Markdown)."""
    runs: dict[tuple[str, str], dict[str, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        runs[(r["row"], r["mode"])][r["run"]][r["scene_id"]] = r
    lines = ["| b | a | column | a % | b % | b - a | 95% interval | runs |", "|---|---|---|---|---|---|---|---|"]
    rows = list(dict.fromkeys(r["row"] for r in records))
    for row in rows:
        lines += _paired(runs, (row, "trained"), (row, "reranked"))
    if versus is not None:
        if versus not in rows:
            raise ValueError(f"--versus: {versus!r} is not a driven row ({rows})")
        for row in rows:
            if row != versus:
                for a in ((versus, "trained"), (versus, "reranked")):
                    for mode in ("trained", "reranked"):
                        lines += _paired(runs, a, (row, mode))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.bench_collision_causes import read_episodes, run_context, write_episodes
    from experiments.builders import env_config, sources
    from experiments.registry import get_method

    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_rerank", description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", type=Path, default=None, help="finished run folders (one per run seed)")
    p.add_argument("--merge", nargs="+", type=Path, default=None,
                   help="print the table of earlier --out files together (no driving)")
    p.add_argument("--methods", default=None, help="comma-separated rows (default: the runs' algo.methods)")
    p.add_argument("--futures", default="cv", choices=PRESENT_FUTURES, help="the futures the candidates are scored in")
    p.add_argument("--fractions", default=",".join(str(f) for f in BEST_RESPONSE_FRACTIONS),
                   help="comma-separated fractions of the policy's speed")
    p.add_argument("--out", type=Path, default=None, help="JSON lines of every episode")
    p.add_argument("--versus", default=None, help="a row: every other row against it too (e.g. sft_positive)")
    p.add_argument("overrides", nargs="*", help="the runs' own Hydra overrides (after --)")
    args = p.parse_args(argv)
    records: list[dict[str, Any]] = []
    if args.merge:
        print(summary(read_episodes(args.merge), args.versus))
        return 0
    if not args.runs:
        p.error("give --runs (or --merge)")
    try:
        fractions = [float(f) for f in args.fractions.split(",")]
    except ValueError:
        p.error(f"--fractions: expected comma-separated numbers in [0, 1], got {args.fractions!r}")
    for run in args.runs:
        ctx = run_context(run, args.overrides)
        _, held, _ = sources(ctx)
        methods = args.methods.split(",") if args.methods else list(ctx.cfg.algo.methods)
        for name in methods:
            method = get_method(name)
            if method.privileged_view:
                raise SystemExit(f"--methods: {name} is a planner, not a learned row")
            policy = method.load(ctx)
            env = ReplayEnv(held, "closed_loop", env_config(ctx))
            for mode, driver in (("trained", policy), ("reranked", ScoreReranked(policy, env, fractions,
                                                                                 args.futures))):
                t0 = time.perf_counter()
                eps = episodes(driver, env)
                records += [{"run": str(run), "row": name, "mode": mode, **e} for e in eps]
                print(f"{run} {name} {mode}: {sum(e['collision'] for e in eps):.0f} collisions in {len(eps)} episodes, "
                      f"RC {100 * np.mean([e['route_completion'] for e in eps]):.1f}% "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)
    print()
    print(summary(records, args.versus))
    if args.out is not None:
        write_episodes(args.out, records)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
