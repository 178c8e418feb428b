"""Anchor-pair mining throughput: ``python -m benchmarks.bench_mining [--num-scenes 30] [--seed 0]``.

Mines the built-in synthetic bank (``envs.scenes.bank.ScenarioBank``, all scenario types) with the default miner
(lead times 1, 2, 3 s; ~75 candidates per decision frame, one ``score_group`` call each, then the execution checks
of :mod:`counterfactual.verify` for the whole group: raw poses, batched closed-loop following, clearance, oncoming
lanes) and prints pairs mined per second, decision frames scored per second and scenes per second, and the time the
execution checks take per decision frame. Scene generation is timed separately (the bank is generated before the clock
starts); the warm-up mines scenes until one has a decision frame, so imports, compiled kernels and caches are warm.
Single process, BLAS/OpenMP pinned to 1 thread.

``--audit`` runs :mod:`counterfactual.audit` on the same bank instead (safety of the positives as executed, label
checks, per-type table).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

from counterfactual.miner import MinerConfig, MiningStats, mine_scene  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its numbers."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_mining", description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-scenes", type=int, default=30, help="bank scenes to mine")
    parser.add_argument("--seed", type=int, default=0, help="bank seed")
    parser.add_argument("--audit", action="store_true", help="run counterfactual.audit on this bank instead")
    args = parser.parse_args(argv)
    if args.audit:
        from counterfactual.audit import main as audit_main

        return audit_main(["--num-scenes", str(args.num_scenes), "--seed", str(args.seed), "--no-progress"])

    from envs.scenes.bank import ScenarioBank

    t0 = time.perf_counter()
    bank = ScenarioBank(args.num_scenes, seed=args.seed)
    scenes = [bank[i] for i in range(len(bank))]
    t_gen = time.perf_counter() - t0

    config = MinerConfig(seed=args.seed)
    for scene in scenes:  # warm-up: imports, compiled kernels, caches (until a scene has a decision frame)
        warm = mine_scene(scene, config)
        if warm.pairs or warm.skipped:
            break
    stats = MiningStats()
    pairs = frames = 0
    t0 = time.perf_counter()
    for scene in scenes:
        mined = mine_scene(scene, config)
        stats.add(mined, scene.meta.is_accident)
        pairs += len(mined.pairs)
        frames += len(mined.pairs) + len(mined.skipped)
    elapsed = time.perf_counter() - t0

    print(stats.table())
    print()
    print(f"scenes: {len(scenes)} (generated in {t_gen:.2f} s), decision frames scored: {frames}, pairs: {pairs}")
    print(f"mining time: {elapsed:.2f} s")
    print(f"pairs mined per second: {pairs / elapsed:.2f}")
    print(f"decision frames per second: {frames / elapsed:.2f}")
    print(f"scenes per second: {len(scenes) / elapsed:.2f}")
    checks, n = _execution_check_time(scenes, config)
    if n:
        print(f"execution checks (counterfactual.verify, all candidates of a frame in one batch): {1000 * checks / n:.1f} "
              f"ms per decision frame, {100 * checks / elapsed:.0f}% of the mining time")
    return 0


def _execution_check_time(scenes: list, config: MinerConfig) -> tuple[float, int]:
    """Seconds spent in :func:`counterfactual.verify.verify_candidates` over every decision frame of ``scenes``
    (candidates generated and scored outside the clock), and the number of frames."""
    from counterfactual.miner import _reference_candidate
    from counterfactual.mining import find_risk_moments
    from counterfactual.search import generate_candidates, result_arrays
    from counterfactual.verify import verify_candidates
    from envs.sim.scoring import problem_from_scene, trajectory_from_log
    from rewards.scorer import score_group

    total, frames = 0.0, 0
    for scene in scenes:
        for moment in find_risk_moments(scene, config.moments):
            for t in moment.decision_frames:
                problem = problem_from_scene(scene, t, config.pdm)
                negative = trajectory_from_log(scene, t, config.pdm)
                ref = _reference_candidate(problem, config.pdm) if scene.map is not None else None
                cands = generate_candidates(negative, float(problem.ego.velocity[0]), config.pdm, config.search,
                                            [ref] if ref is not None else [])
                arrays = result_arrays(score_group(problem, cands.trajectories, config.pdm))
                t0 = time.perf_counter()
                verify_candidates(scene, problem, cands.trajectories, arrays, config.pdm, config.verify)
                total += time.perf_counter() - t0
                frames += 1
    return total, frames


if __name__ == "__main__":
    raise SystemExit(main())
