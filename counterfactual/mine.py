"""CLI: mine anchor pairs from the built-in bank or a DeepAccident folder into a versioned parquet file.

Usage::

    python -m counterfactual.mine --source bank --num-scenes 100 --seed 0 --out outputs/pairs.parquet \\
        [--lead-times 1,2,3] [--scenario-types rear_end,cut_in] [--deepaccident-root PATH --split train] \\
        [--outcomes varied [--expert reacting]] [--roads families] \\
        [--near-miss-rule ttc|clearance] [--backend serial|ray --workers N [--ray-address auto|HOST:PORT]]

``--backend ray`` mines scene shards on Ray tasks, ``--workers`` at once, on a local Ray or the cluster at
``--ray-address`` (:mod:`counterfactual.distributed`): the same pairs file, row for row, as the serial run.

Prints a progress bar (tqdm) and a summary table per scenario type: scenes, accident scenes, risky moments (of
which near-misses, and moments without a usable decision frame), pairs, pairs with a verified-safe positive, pairs
whose negative collides, the yield (accident scenes with a colliding negative + verified-safe positive), and the
no-safe-counterfactual counts by reason.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from typing import Any, Iterator, Sequence

from counterfactual.dataset import collect_provenance, write_anchor_pairs
from counterfactual.distributed import MINE_BACKENDS, mine_source, stats_and_pairs
from counterfactual.miner import NEAR_MISS_RULES, MinerConfig
from envs.scenes.scene import Scene
from envs.scenes.sources import Origin, SceneSource, SourceError, open_source


def _floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one lead time")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = argparse.ArgumentParser(prog="python -m counterfactual.mine", description=__doc__.split("\n\n")[0])
    p.add_argument("--source", choices=("bank", "deepaccident"), default="bank", help="scene source")
    p.add_argument("--num-scenes", type=int, default=100, help="bank: number of scenes")
    p.add_argument("--seed", type=int, default=0, help="bank seed; also the explanation base seed")
    p.add_argument("--scenario-types", default=None, help="bank: comma-separated scenario types (default: all)")
    p.add_argument("--outcomes", choices=("collision", "varied"), default="collision",
                   help="bank: every accident collides (default) or outcome-varied typologies")
    p.add_argument("--roads", choices=("classic", "families"), default="classic", help="bank: road geometry")
    p.add_argument("--expert", choices=("logged", "reacting"), default="logged",
                   help="varied bank: the near-miss / benign scenes' ego keeps its plan (logged) or reacts to its hazard")
    p.add_argument("--deepaccident-root", default=None, help="DeepAccident root folder (for --source deepaccident)")
    p.add_argument("--split", default="train", help="DeepAccident split")
    p.add_argument("--lead-times", type=_floats, default=(1.0, 2.0, 3.0), help="seconds before contact, e.g. 1,2,3")
    p.add_argument("--near-miss-rule", choices=NEAR_MISS_RULES, default="ttc",
                   help="which near-misses become pairs (MinerConfig.near_miss_rule): ttc (default) or clearance (a pass "
                        "closer than the clearance margin a positive must keep)")
    p.add_argument("--out", default="outputs/pairs.parquet", help="output parquet file (written atomically)")
    p.add_argument("--no-progress", action="store_true", help="disable the progress bar")
    p.add_argument("--backend", choices=MINE_BACKENDS, default="serial",
                   help="serial (this process) or ray (scene shards on Ray tasks; same output)")
    p.add_argument("--workers", type=int, default=1, help="ray: shards mined at once (1 CPU each)")
    p.add_argument("--ray-address", default=None,
                   help="ray: cluster to join ('auto', HOST:PORT, ray://HOST:10001; default: a local Ray)")
    return p


def open_scenes(args: argparse.Namespace) -> SceneSource:
    """The chosen source (:func:`envs.scenes.sources.open_source`)."""
    if args.source == "bank":
        types = None if args.scenario_types is None else tuple(t.strip() for t in args.scenario_types.split(","))
        options: dict[str, Any] = {"num_scenes": args.num_scenes, "seed": args.seed, "scenario_types": types}
        if args.outcomes != "collision":
            options["outcomes"] = args.outcomes
        if args.roads != "classic":
            options["roads"] = args.roads
        if args.expert != "logged":
            if args.outcomes != "varied":
                raise SystemExit("--expert reacting needs --outcomes varied")
            options["expert"] = args.expert
    else:
        if not args.deepaccident_root:
            raise SystemExit("--source deepaccident needs --deepaccident-root PATH")
        options = {"root": args.deepaccident_root, "split": args.split, "strict": False}
    try:
        return open_source(args.source, **options)
    except SourceError as exc:
        raise SystemExit(str(exc)) from None


def iter_scenes(args: argparse.Namespace) -> tuple[int, Iterator[tuple[Scene, Origin]]]:
    """``(count, iterator of (scene, origin))`` for the chosen source (:func:`open_scenes`)."""
    source = open_scenes(args)

    def gen() -> Iterator[tuple[Scene, Origin]]:
        for i in range(len(source)):
            yield source[i], source.origin(i)

    return len(source), gen()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    if args.workers < 1:
        raise SystemExit(f"--workers: expected >= 1, got {args.workers}")
    if args.backend == "serial" and (args.workers != 1 or args.ray_address):
        raise SystemExit("--workers / --ray-address need --backend ray")
    config = MinerConfig(seed=args.seed, near_miss_rule=args.near_miss_rule)
    config = replace(config, moments=replace(config.moments, lead_times=args.lead_times))
    source = open_scenes(args)
    start = time.perf_counter()
    with tqdm(total=len(source), desc="mining", unit="scene", disable=args.no_progress) as bar:
        mined = mine_source(source, config, args.backend, args.workers, args.ray_address, on_scenes=bar.update)
    elapsed = time.perf_counter() - start
    stats, pairs = stats_and_pairs(mined)
    count = len(source)
    path = write_anchor_pairs(pairs, args.out, collect_provenance(config, argv=sys.argv if argv is None else
                                                                   [sys.argv[0], *argv]))
    print(stats.table())
    if getattr(args, "outcomes", "collision") == "varied":  # pairs by the scene's geometry-decided outcome
        outcome = {source[m.index].scene_id: (source[m.index].meta.extra or {}).get("outcome") for m in mined}
        by: dict[str, list[int]] = {}
        for pair in pairs:
            entry = by.setdefault(str(outcome.get(pair.scene_id)), [0, 0])
            entry[0] += 1
            entry[1] += int(pair.has_positive)
        print("pairs by scene outcome (pairs, with a verified-safe positive): "
              + ", ".join(f"{k} {n} ({v})" for k, (n, v) in sorted(by.items())))
    print(f"{len(pairs)} pairs from {count} scenes in {elapsed:.1f} s ({len(pairs) / max(elapsed, 1e-9):.2f} pairs/s) "
          f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
