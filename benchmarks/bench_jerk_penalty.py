"""How much the tracker's velocity-fit regulariser matters: ``python -m benchmarks.bench_jerk_penalty``.

NAVSIM v1.1's ``_make_banded_difference_matrix`` executes ``[-I | e_n]`` instead of the jerk (difference) matrix its
docstring describes (:func:`rewards.tracking.banded_difference_matrix`). This script simulates and scores the same
candidates with both forms (``PDMConfig.jerk_penalty_form`` ``"navsim"``, the default, and ``"jerk"``) on the
SYNTHETIC bank and prints, per candidate family, the largest and mean differences of the simulated rear-axle
positions over the 4 s horizon [m], of the route progress [m], of PDMS, and how many sub-scores flip.

Candidates per decision frame (every 2 s of each scene, from 2 s on, while 4 s of log remain): the logged
trajectory (NAVSIM's human proposal), the PDM-Closed-like reference, and the counterfactual search families
(:func:`counterfactual.search.generate_candidates`). The reference planner runs with each form (EP normalised
against each form's own reference, as the scorer does).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402

FORMS = ("navsim", "jerk")


def measure(num_scenes: int, seed: int) -> dict[str, dict[str, list]]:
    """Per family: lists of per-candidate differences (``pos``, ``progress``, ``pdms``) and sub-score flips."""
    from counterfactual.search import generate_candidates
    from envs.scenes.bank import ScenarioBank
    from envs.sim.scoring import problem_from_scene, trajectory_from_log
    from rewards.config import PDMConfig
    from rewards.scorer import reference_for, score_group
    from rewards.tracking import simulate_candidates

    configs = {form: PDMConfig(jerk_penalty_form=form) for form in FORMS}
    base = configs["navsim"]
    step = int(round(2.0 / base.sim_dt))
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    bank = ScenarioBank(num_scenes, seed=seed)
    for i in range(len(bank)):
        scene = bank[i]
        last = scene.num_frames - 1 - int(round(base.horizon / scene.dt))
        for t in range(step, last + 1, step):
            problem = problem_from_scene(scene, t, base)
            log = trajectory_from_log(scene, t, base)
            cands = generate_candidates(log, float(problem.ego.velocity[0]), base)
            trajs, families = [cands.trajectories], [s.family for s in cands.specs]
            ref = reference_for(problem, base)
            if ref is not None:
                trajs.append(ref.trajectory[None])
                families.append("reference")
            trajs = np.concatenate(trajs)
            states = {f: simulate_candidates(problem.ego, trajs, c) for f, c in configs.items()}
            scores = {f: score_group(problem, trajs, c) for f, c in configs.items()}
            pos = np.abs(states["navsim"][..., :2] - states["jerk"][..., :2]).max(axis=(1, 2))
            a, b = scores["navsim"], scores["jerk"]
            for g, family in enumerate(families):
                name = "log" if g == 0 else family
                rec = out[name]
                rec["pos"].append(pos[g])
                rec["progress"].append(abs(a.progress[g] - b.progress[g]))
                rec["pdms"].append(abs(a.pdms[g] - b.pdms[g]))
                rec["flips"].append(sum(int(getattr(a, k)[g] != getattr(b, k)[g])
                                        for k in ("nc", "dac", "ttc", "comfort")))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its table."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_jerk_penalty",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-scenes", type=int, default=60, help="bank scenes")
    parser.add_argument("--seed", type=int, default=0, help="bank seed")
    args = parser.parse_args(argv)
    out = measure(args.num_scenes, args.seed)
    print(f"tracker velocity-fit regulariser 'navsim' (NAVSIM v1.1 as executed) vs 'jerk' (documented intent); "
          f"{args.num_scenes} SYNTHETIC bank scenes, seed {args.seed}")
    header = (f"{'family':<14}{'candidates':>11}{'pos max m':>11}{'pos mean m':>11}{'prog max m':>11}"
              f"{'prog mean m':>12}{'PDMS max':>10}{'sub-score flips':>16}")
    print(header)
    print("-" * len(header))
    total: dict[str, list] = defaultdict(list)
    for family in sorted(out, key=lambda f: (f != "log", f != "reference", f)):
        rec = out[family]
        for k, v in rec.items():
            total[k].extend(v)
        print(f"{family:<14}{len(rec['pos']):>11}{max(rec['pos']):>11.4f}{np.mean(rec['pos']):>11.4f}"
              f"{np.nanmax(rec['progress']):>11.4f}{np.nanmean(rec['progress']):>12.4f}"
              f"{np.nanmax(rec['pdms']):>10.4f}{sum(rec['flips']):>16}")
    print(f"{'all':<14}{len(total['pos']):>11}{max(total['pos']):>11.4f}{np.mean(total['pos']):>11.4f}"
          f"{np.nanmax(total['progress']):>11.4f}{np.nanmean(total['progress']):>12.4f}"
          f"{np.nanmax(total['pdms']):>10.4f}{sum(total['flips']):>16}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
