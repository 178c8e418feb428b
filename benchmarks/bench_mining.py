"""Anchor-pair mining throughput: ``python -m benchmarks.bench_mining [--num-scenes 30] [--seed 0]``.

Mines the built-in synthetic bank (``envs.bank.ScenarioBank``, all scenario types) with the default miner
(lead times 1, 2, 3 s; ~75 candidates per decision frame, one ``score_group`` call each) and prints pairs mined per
second, decision frames scored per second and scenes per second. Scene generation is timed separately (the bank
is generated before the clock starts). Single process, BLAS/OpenMP pinned to 1 thread.
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
    args = parser.parse_args(argv)

    from envs.bank import ScenarioBank

    t0 = time.perf_counter()
    bank = ScenarioBank(args.num_scenes, seed=args.seed)
    scenes = [bank[i] for i in range(len(bank))]
    t_gen = time.perf_counter() - t0

    config = MinerConfig(seed=args.seed)
    mine_scene(scenes[0], config)  # warm-up (imports, caches)
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
