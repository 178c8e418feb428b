"""Anchor-pair mining throughput: ``python -m benchmarks.bench_mining [--num-scenes 30] [--seed 0]``.

Mines the built-in synthetic bank (``envs.bank.ScenarioBank``, all scenario types) with the default miner
(lead times 1, 2, 3 s; ~75 candidates per decision frame, one ``score_group`` call each, then the execution checks
of :mod:`counterfactual.verify` for the whole group: raw poses, batched closed-loop following, clearance, oncoming
lanes) and prints pairs mined per second, decision frames scored per second and scenes per second, and where the
time of a decision frame goes. Scene generation is timed separately (the bank is generated before the clock
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

    from envs.bank import ScenarioBank

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
