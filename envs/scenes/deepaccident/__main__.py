"""Write built-in SYNTHETIC bank scenes as a DeepAccident-layout folder.

Usage::

    python -m envs.scenes.deepaccident --out /tmp/da --num-scenes 24 --seed 0 --split train
    python -m envs.scenes.deepaccident --out /tmp/da --num-scenes 8 --seed 1000 --split val
    python -m experiments.run env=deepaccident env.root=/tmp/da     # trains on train, evaluates on val

Each scene goes through :func:`envs.scenes.deepaccident.write_scenario` (padded frame names, the dataset's frame
convention, meta with the accident facts) and is listed in ``<out>/<split>.txt``. The data are synthetic: scenario
folders are named ``synthetic_<type>_<accident|normal>`` and scenarios ``Synthetic_s<seed>-<scene id>`` (bank scene
ids repeat across seeds, so the seed keeps the splits of different seeds apart in one folder).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from envs.scenes.deepaccident.errors import DeepAccidentWarning
from envs.scenes.deepaccident.writer import write_scenario


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m envs.scenes.deepaccident", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output DeepAccident root (created if needed)")
    p.add_argument("--num-scenes", type=int, default=12, help="number of bank scenes")
    p.add_argument("--seed", type=int, default=0, help="bank seed")
    p.add_argument("--split", default="val", help="split file to list the scenes in (default: val)")
    p.add_argument("--scenario-types", default=None, help="comma-separated bank scenario types (default: all)")
    p.add_argument("--overwrite", action="store_true", help="replace scenarios that already exist")
    args = p.parse_args(argv)
    from envs.scenes.bank import ScenarioBank

    types = args.scenario_types.split(",") if args.scenario_types else None
    bank = ScenarioBank(args.num_scenes, seed=args.seed, scenario_types=types)
    out = Path(args.out)
    accidents = skipped = 0
    for i in range(len(bank)):
        scene = bank[i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeepAccidentWarning)  # STATIC agents: counted below
            name = f"Synthetic_s{args.seed}-{scene.scene_id.replace('/', '-').replace('_', '-')}"
            result = write_scenario(scene, out, scenario_name=name, split=args.split, overwrite=args.overwrite)
        accidents += int(scene.meta.is_accident)
        skipped += len(result.skipped_static_ids)
    print(f"wrote {len(bank)} scenes ({accidents} accidents; {skipped} STATIC agents not exportable) to {out} "
          f"(split {args.split}, SYNTHETIC bank seed {args.seed})")
    print(f"try: python -m experiments.run env=deepaccident env.root={out}  (trains on train.txt, evaluates on "
          "val.txt; env.split / env.eval_split choose others)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
