"""Aggregate several runs' results into one mean +- std table (a multirun over seeds, or any run folders).

``python -m experiments.aggregate RUN_DIR [RUN_DIR ...] [--out DIR]`` writes ``results_seeds.md`` / ``.csv`` /
``.json`` into ``--out`` (default: the first folder's parent). After ``python -m experiments.run -m seed=0,1,2`` the
Hydra callback :class:`AggregateSeeds` does the same in the sweep folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from hydra.experimental.callback import Callback


def write_aggregate(run_dirs: Sequence[Path], out: Path) -> Path:
    """Write the aggregate table of ``run_dirs`` into ``out``; returns the markdown path."""
    from envs.atomic import atomic_write_text
    from experiments.results import aggregate

    md, csv_text, data = aggregate(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results_seeds.md", md)
    atomic_write_text(out / "results_seeds.csv", csv_text)
    atomic_write_text(out / "results_seeds.json", json.dumps(data, indent=2, default=str))
    print(md)
    return out / "results_seeds.md"


class AggregateSeeds(Callback):
    """Hydra callback: at the end of a multirun, aggregate the jobs' ``results.json`` in the sweep folder."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep = Path(config.hydra.sweep.dir)
        runs = sorted(p.parent for p in sweep.glob("*/results.json"))
        if runs:
            print(f"== aggregate over {len(runs)} runs: {write_aggregate(runs, sweep)}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.aggregate", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders with results.json")
    p.add_argument("--out", default=None, help="output folder (default: the first run's parent)")
    args = p.parse_args(argv)
    runs = [Path(r) for r in args.runs]
    try:
        write_aggregate(runs, Path(args.out) if args.out else runs[0].parent)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
