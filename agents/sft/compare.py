"""CLI: positive-only vs negative-enhanced SFT over several seeds, evaluated on held-out scenes (mean +- std).

One line (about 10 minutes per mode and seed on 2 CPU cores with the defaults)::

    python -m agents.sft.compare --pairs outputs/pairs.parquet --seeds 0,1,2 --out outputs/sft_compare

For each seed and mode it trains the default VLA (:mod:`agents.sft.train`'s defaults: same scenes, same rendered
samples, same codebook, same step budget; the seed sets the initialisation and the data order), evaluates it on
the held-out bank (:mod:`agents.vla.evaluate`: open-loop PDMS and collision rate, closed-loop collision rate and
PDMS, language and risk accuracy) and prints the table of means +- std over seeds, with the trivial baselines'
accuracies beside them. Writes ``<out>/compare.json`` and ``<out>/compare.md``; each run keeps its folder
``<out>/<mode>-s<seed>`` (``final/``, TensorBoard ``runs/``, ``eval.json``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from agents.sft.data import MODES

METRICS = (
    ("OL PDMS", ("open_loop", "score")),
    ("OL coll", ("open_loop", "collision_rate")),
    ("CL coll", ("closed_loop", "collision_rate")),
    ("CL PDMS", ("closed_loop", "score")),
    ("CL RC", ("closed_loop", "driving", "route_completion")),
    ("CL DS", ("closed_loop", "driving", "driving_score")),
    ("lang acc", ("accuracy", "language_accuracy")),
    ("risk acc", ("accuracy", "risk_accuracy")),
    ("risk acc pairs", ("accuracy", "risk_accuracy_pairs")),
    ("no-hazard acc", ("accuracy", "no_hazard_accuracy")),
)
"""Table columns: (header, where in the evaluation report: section, then keys), all in %. CL RC / CL DS: closed-loop
route completion and driving score (:mod:`envs.sim.metrics`), means over episodes."""


def _value(report: dict[str, Any], where: tuple[str, ...], index: int = 0) -> float:
    part = report.get(where[0])
    if where[0] == "accuracy":
        part = part[index] if part and len(part) > index else None
    for key in where[1:-1]:
        part = part.get(key) if part else None
    return math.nan if not part else float(part.get(where[-1], math.nan))


def _cell(values: Sequence[float]) -> str:
    arr = 100.0 * np.asarray([v for v in values if not math.isnan(v)])
    if len(arr) == 0:
        return "-"
    return f"{arr.mean():.1f}" if len(arr) == 1 else f"{arr.mean():.1f} +- {arr.std(ddof=1):.1f}"


def summary_table(reports: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown table of mean +- std over seeds per mode (reports as written by :func:`main`), then the trivial
    baselines' accuracies (from the first report)."""
    head = ["method", "seeds", *(h + " %" for h, _ in METRICS)]
    rows = []
    for mode, runs in reports.items():
        rows.append([f"SFT {mode}", str(len(runs)), *(_cell([_value(r, w) for r in runs]) for _, w in METRICS)])
    first = next((r for runs in reports.values() for r in runs), None)
    if first is not None:
        for k, base in enumerate(first.get("accuracy", [])[1:], start=1):
            rows.append([base["name"], "-", *("" if w[0] != "accuracy" else _cell([_value(first, w, k)])
                                              for _, w in METRICS)])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m agents.sft.compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", required=True, help="training anchor pairs (counterfactual.mine)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated training views")
    p.add_argument("--num-scenes", type=int, default=400, help="bank: training scenes (the pairs' bank)")
    p.add_argument("--scene-seed", type=int, default=0, help="bank: training seed")
    p.add_argument("--max-steps", type=int, default=800, help="optimizer steps per run")
    p.add_argument("--batch-size", type=int, default=16, help="examples per step")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate")
    p.add_argument("--eval-num-scenes", type=int, default=40, help="held-out bank scenes")
    p.add_argument("--eval-seed", type=int, default=1000, help="held-out bank seed")
    p.add_argument("--eval-pairs", default=None, help="held-out pairs (default: mined once, on the fly)")
    p.add_argument("--no-closed-loop", action="store_true", help="skip the closed-loop evaluation")
    p.add_argument("--cache-dir", default="outputs/sft_cache", help="rendered samples and codebooks")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: 1 without CUDA)")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    from agents.sft.trainer import set_threads

    from agents.sft.data import SampleConfig, SFTDataset, load_or_build_samples
    from agents.sft.train import codebook_for
    from agents.sft.trainer import SFTConfig, train_sft
    from agents.vla.evaluate import evaluate_vla, heldout_pairs
    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.processor import write_json
    from counterfactual.dataset import load_anchor_pairs
    from envs.atomic import atomic_write_text
    from envs.scenes.sources import open_source

    args = build_parser().parse_args(argv)
    set_threads(args.threads)
    progress = not args.no_progress
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; known: {MODES}")
    pairs = load_anchor_pairs(args.pairs)
    source = open_source("bank", num_scenes=args.num_scenes, seed=args.scene_seed)
    table = load_or_build_samples(source, pairs, args.cache_dir, SampleConfig(), progress=progress)
    codebook = codebook_for(pairs, args.cache_dir, scene_seed=args.scene_seed, progress=progress)
    held = open_source("bank", num_scenes=args.eval_num_scenes, seed=args.eval_seed)
    held_table = load_or_build_samples(held, heldout_pairs(held, args.eval_pairs, progress), args.cache_dir,
                                       progress=progress)
    reports: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    timing: dict[str, list[float]] = {m: [] for m in modes}
    for seed in seeds:
        for mode in modes:
            run = out / f"{mode}-s{seed}"
            t0 = time.perf_counter()
            policy = VLAPolicy.build(codebook, VLAConfig(seed=seed), name=f"vla_sft_{mode}")
            config = SFTConfig(max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr, seed=seed,
                               progress=progress)
            result = train_sft(policy, SFTDataset(table, mode), run, config)
            report = evaluate_vla(policy, held, held_table, table, closed_loop=not args.no_closed_loop,
                                  progress=progress).to_dict()
            report = json.loads(json.dumps(report, default=float))
            report["train_seconds"] = result.train_seconds
            report["total_seconds"] = time.perf_counter() - t0
            write_json(run / "eval.json", report)
            reports[mode].append(report)
            timing[mode].append(report["total_seconds"])
            print(f"{mode} seed {seed}: trained {result.train_seconds:.0f} s, train + eval "
                  f"{report['total_seconds']:.0f} s; loss {result.losses[0][1]:.3f} -> {result.losses[-1][1]:.3f}",
                  flush=True)
    text = summary_table(reports)
    header = (f"SFT comparison on SYNTHETIC bank scenes: train {args.num_scenes} scenes (seed {args.scene_seed}), "
              f"{len(pairs)} pairs; held-out {args.eval_num_scenes} scenes (seed {args.eval_seed}); {args.max_steps} "
              f"steps x {args.batch_size}; seeds {seeds}; mean +- std over seeds; minutes per run (train + eval): "
              + ", ".join(f"{m} {np.mean(t) / 60:.1f}" for m, t in timing.items()))
    print(header)
    print(text)
    atomic_write_text(out / "compare.md", header + "\n\n" + text + "\n")
    write_json(out / "compare.json", {"args": vars(args), "reports": reports})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
