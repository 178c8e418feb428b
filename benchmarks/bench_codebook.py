"""Action-codebook quality: ``python -m benchmarks.bench_codebook [--train-scenes 1000] [--test-scenes 40]``.

Fits :class:`agents.vla.codebook.TrajectoryCodebook` on expert-log trajectories of a training bank (synthetic,
``--train-seed``, every 2nd frame) plus the verified positives of ``--pairs`` (if given), for each granularity
(one token per 4 s trajectory, one per 0.5 s segment) and size, and measures it on **held-out** trajectories: the
logs of another bank (``--test-seed``, every 10th frame) and the positives and negatives of ``--test-pairs``:

* reconstruction ADE / FDE [m]: mean / final rear-axle position error of ``decode(encode(traj))``;
* PDMS loss: mean PDMS of the originals minus that of the decoded trajectories, both simulated from the logged
  state (``rewards.tracking.simulate_candidates``) and scored together as one group (``rewards.pdm.score_states``,
  EP normalised within the pair) on the held-out logs' scenes, its mean absolute change, and the share of
  decisions whose decoded trajectory collides while the original does not (``coll +``) and the reverse
  (``coll -``; the logs of accident scenes collide, a coarse codeword may miss the contact);
* fit time and tokens per trajectory.
Single process, BLAS pinned to 1 thread.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402


def _pairs_trajectories(path: str | None, positives_only: bool) -> np.ndarray:
    if not path:
        return np.zeros((0, 8, 3))
    from counterfactual.dataset import load_anchor_pairs

    out = []
    for p in load_anchor_pairs(path):
        if p.positive is not None:
            out.append(p.positive)
        if not positives_only:
            out.append(p.negative)
    return np.asarray(out).reshape(-1, 8, 3)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_codebook", description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-scenes", type=int, default=1000, help="training bank size (synthetic)")
    parser.add_argument("--train-seed", type=int, default=0, help="training bank seed")
    parser.add_argument("--test-scenes", type=int, default=40, help="held-out bank size (synthetic)")
    parser.add_argument("--test-seed", type=int, default=1000, help="held-out bank seed")
    parser.add_argument("--pairs", default=None, help="training anchor pairs (positives join the fit)")
    parser.add_argument("--test-pairs", default=None, help="held-out anchor pairs (positives and negatives measured)")
    parser.add_argument("--sizes", default="256,1024", help="codebook sizes, comma-separated (docs/vla.md adds 2048)")
    args = parser.parse_args(argv)

    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories
    from envs.scenes.bank import ScenarioBank
    from envs.sim.scoring import problem_from_scene, trajectory_from_log
    from rewards.config import PDMConfig
    from rewards.pdm import score_states
    from rewards.tracking import simulate_candidates

    t0 = time.perf_counter()
    train = np.concatenate([log_trajectories(ScenarioBank(args.train_scenes, seed=args.train_seed), stride=2),
                            _pairs_trajectories(args.pairs, positives_only=True)])
    test_bank = ScenarioBank(args.test_scenes, seed=args.test_seed)
    config = PDMConfig()
    problems, test_logs = [], []
    for scene in test_bank:
        for t in range(0, scene.num_frames - 40, 10):
            problems.append(problem_from_scene(scene, t, config))
            test_logs.append(trajectory_from_log(scene, t, config))
    test_logs = np.asarray(test_logs)
    test_pairs = _pairs_trajectories(args.test_pairs, positives_only=False)
    print(f"training trajectories: {len(train)} (bank {args.train_scenes} scenes seed {args.train_seed}"
          f"{', + positives of ' + args.pairs if args.pairs else ''}); held-out: {len(test_logs)} logged decisions "
          f"(bank {args.test_scenes} scenes seed {args.test_seed}) + {len(test_pairs)} pair trajectories; data in "
          f"{time.perf_counter() - t0:.1f} s. SYNTHETIC scenes.")

    base = np.array([score_states(p, simulate_candidates(p.ego, log[None], config), config).pdms[0]
                     for p, log in zip(problems, test_logs)])
    head = ("mode", "K", "tokens", "fit s", "ADE m", "FDE m", "pairs ADE m", "PDMS orig", "PDMS dec", "PDMS loss",
            "|dPDMS|", "coll +%", "coll -%")
    rows = []
    for mode in ("trajectory", "segment"):
        for size in (int(s) for s in args.sizes.split(",")):
            t1 = time.perf_counter()
            book = TrajectoryCodebook.fit(train, CodebookConfig(size=size, mode=mode))
            fit_s = time.perf_counter() - t1
            dec = book.quantize(test_logs)
            err = np.linalg.norm(dec[..., :2] - test_logs[..., :2], axis=-1)
            pair_ade = (np.linalg.norm(book.quantize(test_pairs)[..., :2] - test_pairs[..., :2], axis=-1).mean()
                        if len(test_pairs) else np.nan)
            orig, new, coll_added, coll_removed = [], [], 0, 0
            for p, log, d in zip(problems, test_logs, dec):
                res = score_states(p, simulate_candidates(p.ego, np.stack([log, d]), config), config)
                orig.append(res.pdms[0])
                new.append(res.pdms[1])
                coll_added += int(res.collision[1] and not res.collision[0])
                coll_removed += int(res.collision[0] and not res.collision[1])
            orig, new = np.asarray(orig), np.asarray(new)
            rows.append((mode, str(size), str(book.tokens_per_trajectory), f"{fit_s:.1f}", f"{err.mean():.3f}",
                         f"{err[:, -1].mean():.3f}", f"{pair_ade:.3f}", f"{100 * np.nanmean(orig):.2f}",
                         f"{100 * np.nanmean(new):.2f}", f"{100 * np.nanmean(orig - new):.2f}",
                         f"{100 * np.nanmean(np.abs(orig - new)):.2f}", f"{100 * coll_added / len(problems):.1f}",
                         f"{100 * coll_removed / len(problems):.1f}"))
            print("  ".join(rows[-1]), flush=True)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    print()
    print(fmt.format(*head))
    for r in rows:
        print(fmt.format(*r))
    print(f"(logged-trajectory PDMS scored alone: {100 * np.nanmean(base):.2f}; PDMS in %, EP normalised within each "
          "(original, decoded) pair)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
